//! The XML format of `thin_dump`/`thin_restore` (thin-provisioning-tools 0.9.0).
//!
//! [`XmlWriter`] emits byte for byte what `thin_dump` prints: two-space
//! indentation, attributes in its order, and its run-length grouping of
//! mappings (a run continues while the virtual and data blocks both advance
//! by one and the time stays the same; a run of one is a `single_mapping`).
//! [`parse`] reads that format back into plain structures, for tests.

use std::fmt::Write as _;

/// The `<superblock>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlSuperblock {
    /// Always empty in images the kernel makes.
    pub uuid: String,
    pub time: u64,
    pub transaction: u64,
    pub flags: u32,
    pub version: u32,
    pub data_block_size: u32,
    pub nr_data_blocks: u64,
    /// Parsed if present; never written (thin_dump 0.9.0 does not).
    pub metadata_snap: Option<u64>,
}

/// A `<device>` element with its mappings expanded, sorted by virtual block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlDevice {
    pub dev_id: u64,
    pub mapped_blocks: u64,
    pub transaction: u64,
    pub creation_time: u64,
    pub snap_time: u64,
    /// (virtual block, data block, time).
    pub mappings: Vec<(u64, u64, u32)>,
}

/// A whole dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlDump {
    pub superblock: XmlSuperblock,
    pub devices: Vec<XmlDevice>,
}

/// Streaming writer of `thin_dump`'s XML.
pub struct XmlWriter<W: std::io::Write> {
    out: W,
    run: Option<Run>,
}

#[derive(Clone, Copy)]
struct Run {
    origin: u64,
    data: u64,
    time: u32,
    len: u64,
}

impl<W: std::io::Write> XmlWriter<W> {
    pub fn new(out: W) -> Self {
        XmlWriter { out, run: None }
    }

    pub fn begin_superblock(&mut self, sb: &XmlSuperblock) -> std::io::Result<()> {
        let mut s = String::new();
        let _ = write!(
            s,
            "<superblock uuid=\"{}\" time=\"{}\" transaction=\"{}\" flags=\"{}\" version=\"{}\" data_block_size=\"{}\" nr_data_blocks=\"{}",
            sb.uuid, sb.time, sb.transaction, sb.flags, sb.version, sb.data_block_size, sb.nr_data_blocks
        );
        // thin_dump 0.9.0 never prints `metadata_snap` (it passes none to
        // its emitter), so neither does this writer.
        s.push_str("\">\n");
        self.out.write_all(s.as_bytes())
    }

    pub fn end_superblock(&mut self) -> std::io::Result<()> {
        self.out.write_all(b"</superblock>\n")
    }

    pub fn begin_device(&mut self, d: &XmlDevice) -> std::io::Result<()> {
        writeln!(
            self.out,
            "  <device dev_id=\"{}\" mapped_blocks=\"{}\" transaction=\"{}\" creation_time=\"{}\" snap_time=\"{}\">",
            d.dev_id, d.mapped_blocks, d.transaction, d.creation_time, d.snap_time
        )
    }

    /// Adds one mapping; mappings must come in increasing virtual block order.
    pub fn mapping(&mut self, origin: u64, data: u64, time: u32) -> std::io::Result<()> {
        if let Some(r) = &mut self.run {
            if Some(origin) == r.origin.checked_add(r.len)
                && Some(data) == r.data.checked_add(r.len)
                && time == r.time
            {
                r.len += 1;
                return Ok(());
            }
            self.flush_run()?;
        }
        self.run = Some(Run {
            origin,
            data,
            time,
            len: 1,
        });
        Ok(())
    }

    fn flush_run(&mut self) -> std::io::Result<()> {
        if let Some(r) = self.run.take() {
            if r.len == 1 {
                writeln!(
                    self.out,
                    "    <single_mapping origin_block=\"{}\" data_block=\"{}\" time=\"{}\"/>",
                    r.origin, r.data, r.time
                )?;
            } else {
                writeln!(
                    self.out,
                    "    <range_mapping origin_begin=\"{}\" data_begin=\"{}\" length=\"{}\" time=\"{}\"/>",
                    r.origin, r.data, r.len, r.time
                )?;
            }
        }
        Ok(())
    }

    pub fn end_device(&mut self) -> std::io::Result<()> {
        self.flush_run()?;
        self.out.write_all(b"  </device>\n")
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Renders a whole dump as `thin_dump` would (for feeding `thin_restore`).
pub fn render(d: &XmlDump) -> String {
    let mut w = XmlWriter::new(Vec::new());
    w.begin_superblock(&d.superblock).unwrap();
    for dev in &d.devices {
        w.begin_device(dev).unwrap();
        for &(o, b, t) in &dev.mappings {
            w.mapping(o, b, t).unwrap();
        }
        w.end_device().unwrap();
    }
    w.end_superblock().unwrap();
    String::from_utf8(w.into_inner()).unwrap()
}

fn attrs(line: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut rest = line;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq]
            .rsplit(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap_or("");
        let after = &rest[eq + 2..];
        let end = match after.find('"') {
            Some(e) => e,
            None => break,
        };
        v.push((name.to_string(), after[..end].to_string()));
        rest = &after[end + 1..];
    }
    v
}

fn get<T: std::str::FromStr>(a: &[(String, String)], k: &str) -> Result<T, String> {
    a.iter()
        .find(|(n, _)| n == k)
        .ok_or_else(|| format!("missing attribute {k}"))?
        .1
        .parse()
        .map_err(|_| format!("bad attribute {k}"))
}

/// Parses `thin_dump` XML (one element per line, as it writes it).
pub fn parse(text: &str) -> Result<XmlDump, String> {
    let mut d = XmlDump::default();
    let mut cur: Option<XmlDevice> = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        let a = attrs(l);
        let ctx = |e: String| format!("line {}: {e}", i + 1);
        if l.starts_with("<superblock") {
            d.superblock = XmlSuperblock {
                uuid: get(&a, "uuid").map_err(ctx)?,
                time: get(&a, "time").map_err(ctx)?,
                transaction: get(&a, "transaction").map_err(ctx)?,
                flags: get(&a, "flags").unwrap_or(0),
                version: get(&a, "version").unwrap_or(2),
                data_block_size: get(&a, "data_block_size").map_err(ctx)?,
                nr_data_blocks: get(&a, "nr_data_blocks").map_err(ctx)?,
                metadata_snap: get(&a, "metadata_snap").ok(),
            };
        } else if l.starts_with("<device") {
            cur = Some(XmlDevice {
                dev_id: get(&a, "dev_id").map_err(ctx)?,
                mapped_blocks: get(&a, "mapped_blocks").map_err(ctx)?,
                transaction: get(&a, "transaction").map_err(ctx)?,
                creation_time: get(&a, "creation_time").map_err(ctx)?,
                snap_time: get(&a, "snap_time").map_err(ctx)?,
                mappings: Vec::new(),
            });
        } else if l.starts_with("<single_mapping") {
            let dev = cur
                .as_mut()
                .ok_or_else(|| ctx("mapping outside device".into()))?;
            dev.mappings.push((
                get(&a, "origin_block").map_err(ctx)?,
                get(&a, "data_block").map_err(ctx)?,
                get(&a, "time").map_err(ctx)?,
            ));
        } else if l.starts_with("<range_mapping") {
            let dev = cur
                .as_mut()
                .ok_or_else(|| ctx("mapping outside device".into()))?;
            let o: u64 = get(&a, "origin_begin").map_err(ctx)?;
            let b: u64 = get(&a, "data_begin").map_err(ctx)?;
            let n: u64 = get(&a, "length").map_err(ctx)?;
            let t: u32 = get(&a, "time").map_err(ctx)?;
            for k in 0..n {
                dev.mappings.push((o + k, b + k, t));
            }
        } else if l.starts_with("</device") {
            d.devices
                .push(cur.take().ok_or_else(|| ctx("stray </device>".into()))?);
        } else if l.starts_with("</superblock") || l.is_empty() {
        } else {
            return Err(ctx(format!("unexpected: {l}")));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_like_thin_dump() {
        let d = XmlDump {
            superblock: XmlSuperblock {
                time: 3,
                transaction: 7,
                version: 2,
                data_block_size: 128,
                nr_data_blocks: 1000,
                ..Default::default()
            },
            devices: vec![XmlDevice {
                dev_id: 1,
                mapped_blocks: 6,
                snap_time: 2,
                mappings: vec![
                    (0, 10, 0),
                    (1, 11, 0),
                    (2, 12, 0),
                    (5, 20, 1),
                    (6, 21, 2),
                    (7, 22, 2),
                ],
                ..Default::default()
            }],
        };
        let s = render(&d);
        assert_eq!(
            s,
            "<superblock uuid=\"\" time=\"3\" transaction=\"7\" flags=\"0\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"1000\">
  <device dev_id=\"1\" mapped_blocks=\"6\" transaction=\"0\" creation_time=\"0\" snap_time=\"2\">
    <range_mapping origin_begin=\"0\" data_begin=\"10\" length=\"3\" time=\"0\"/>
    <single_mapping origin_block=\"5\" data_block=\"20\" time=\"1\"/>
    <range_mapping origin_begin=\"6\" data_begin=\"21\" length=\"2\" time=\"2\"/>
  </device>
</superblock>
"
        );
        assert_eq!(parse(&s).unwrap(), d);
    }
}
