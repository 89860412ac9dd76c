//! The XML format of `thin_dump`/`thin_restore` (thin-provisioning-tools 0.9.0),
//! written and read with quick-xml, the library thin-provisioning-tools uses.
//!
//! [`XmlWriter`] emits byte for byte what `thin_dump` prints: quick-xml's
//! writer with two-space indentation (a line break before every element
//! but the first, so the writer adds the final newline), attributes in
//! `thin_dump`'s order, and its run-length grouping of mappings (a run
//! continues while the virtual and data blocks both advance by one and the
//! time stays the same; a run of one is a `single_mapping`). It streams:
//! only the current run is held. [`parse`] reads that format (any layout,
//! elements by name) back into plain structures, for tests and `restore`.

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer, XmlVersion};

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
    xml: Writer<W>,
    run: Option<Run>,
}

#[derive(Clone, Copy)]
struct Run {
    origin: u64,
    data: u64,
    time: u32,
    len: u64,
}

/// An element with its attributes, in the order given.
fn element<'a>(name: &'a str, attrs: &[(&str, String)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, v.as_str()));
    }
    e
}

impl<W: std::io::Write> XmlWriter<W> {
    pub fn new(out: W) -> Self {
        XmlWriter {
            xml: Writer::new_with_indent(out, b' ', 2),
            run: None,
        }
    }

    pub fn begin_superblock(&mut self, sb: &XmlSuperblock) -> std::io::Result<()> {
        // thin_dump 0.9.0 never prints `metadata_snap` (it passes none to
        // its emitter), so neither does this writer.
        let e = element(
            "superblock",
            &[
                ("uuid", sb.uuid.clone()),
                ("time", sb.time.to_string()),
                ("transaction", sb.transaction.to_string()),
                ("flags", sb.flags.to_string()),
                ("version", sb.version.to_string()),
                ("data_block_size", sb.data_block_size.to_string()),
                ("nr_data_blocks", sb.nr_data_blocks.to_string()),
            ],
        );
        self.xml.write_event(Event::Start(e))
    }

    pub fn end_superblock(&mut self) -> std::io::Result<()> {
        self.xml
            .write_event(Event::End(BytesEnd::new("superblock")))?;
        self.xml.get_mut().write_all(b"\n")
    }

    pub fn begin_device(&mut self, d: &XmlDevice) -> std::io::Result<()> {
        let e = element(
            "device",
            &[
                ("dev_id", d.dev_id.to_string()),
                ("mapped_blocks", d.mapped_blocks.to_string()),
                ("transaction", d.transaction.to_string()),
                ("creation_time", d.creation_time.to_string()),
                ("snap_time", d.snap_time.to_string()),
            ],
        );
        self.xml.write_event(Event::Start(e))
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
        let Some(r) = self.run.take() else {
            return Ok(());
        };
        let e = if r.len == 1 {
            element(
                "single_mapping",
                &[
                    ("origin_block", r.origin.to_string()),
                    ("data_block", r.data.to_string()),
                    ("time", r.time.to_string()),
                ],
            )
        } else {
            element(
                "range_mapping",
                &[
                    ("origin_begin", r.origin.to_string()),
                    ("data_begin", r.data.to_string()),
                    ("length", r.len.to_string()),
                    ("time", r.time.to_string()),
                ],
            )
        };
        self.xml.write_event(Event::Empty(e))
    }

    pub fn end_device(&mut self) -> std::io::Result<()> {
        self.flush_run()?;
        self.xml.write_event(Event::End(BytesEnd::new("device")))
    }

    pub fn into_inner(self) -> W {
        self.xml.into_inner()
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

/// Attribute `k` of `e`, parsed.
fn get<T: std::str::FromStr>(e: &BytesStart, k: &str) -> Result<T, String> {
    let a = e
        .try_get_attribute(k)
        .map_err(|err| format!("<{}>: {err}", name(e)))?
        .ok_or_else(|| format!("<{}>: missing attribute {k}", name(e)))?;
    let v = a
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(|err| format!("<{}>: attribute {k}: {err}", name(e)))?;
    v.parse()
        .map_err(|_| format!("<{}>: bad attribute {k}=\"{v}\"", name(e)))
}

fn name(e: &BytesStart) -> String {
    e.name().as_ref().to_string()
}

/// Parses `thin_dump` XML into a whole dump.
pub fn parse(text: &str) -> Result<XmlDump, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut d = XmlDump::default();
    let mut seen_superblock = false;
    let mut cur: Option<XmlDevice> = None;
    loop {
        let pos = reader.buffer_position();
        let ctx = |e: String| format!("byte {pos}: {e}");
        let ev = reader.read_event().map_err(|e| ctx(e.to_string()))?;
        let (e, empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                if e.name().as_ref() == "device" {
                    d.devices
                        .push(cur.take().ok_or_else(|| ctx("stray </device>".into()))?);
                }
                continue;
            }
            Event::Eof => break,
            Event::Text(t) if !t.as_ref().is_empty() => {
                return Err(ctx("unexpected text".into()));
            }
            _ => continue,
        };
        match e.name().as_ref() {
            "superblock" => {
                seen_superblock = true;
                d.superblock = XmlSuperblock {
                    uuid: get(&e, "uuid").map_err(ctx)?,
                    time: get(&e, "time").map_err(ctx)?,
                    transaction: get(&e, "transaction").map_err(ctx)?,
                    flags: get(&e, "flags").unwrap_or(0),
                    version: get(&e, "version").unwrap_or(2),
                    data_block_size: get(&e, "data_block_size").map_err(ctx)?,
                    nr_data_blocks: get(&e, "nr_data_blocks").map_err(ctx)?,
                    metadata_snap: get(&e, "metadata_snap").ok(),
                };
            }
            "device" => {
                if cur.is_some() {
                    return Err(ctx("nested <device>".into()));
                }
                let dev = XmlDevice {
                    dev_id: get(&e, "dev_id").map_err(ctx)?,
                    mapped_blocks: get(&e, "mapped_blocks").map_err(ctx)?,
                    transaction: get(&e, "transaction").map_err(ctx)?,
                    creation_time: get(&e, "creation_time").map_err(ctx)?,
                    snap_time: get(&e, "snap_time").map_err(ctx)?,
                    mappings: Vec::new(),
                };
                if empty {
                    d.devices.push(dev);
                } else {
                    cur = Some(dev);
                }
            }
            "single_mapping" => {
                let dev = cur
                    .as_mut()
                    .ok_or_else(|| ctx("mapping outside device".into()))?;
                dev.mappings.push((
                    get(&e, "origin_block").map_err(ctx)?,
                    get(&e, "data_block").map_err(ctx)?,
                    get(&e, "time").map_err(ctx)?,
                ));
            }
            "range_mapping" => {
                let dev = cur
                    .as_mut()
                    .ok_or_else(|| ctx("mapping outside device".into()))?;
                let o: u64 = get(&e, "origin_begin").map_err(ctx)?;
                let b: u64 = get(&e, "data_begin").map_err(ctx)?;
                let n: u64 = get(&e, "length").map_err(ctx)?;
                let t: u32 = get(&e, "time").map_err(ctx)?;
                if o.checked_add(n).is_none() || b.checked_add(n).is_none() {
                    return Err(ctx("range_mapping overflows".into()));
                }
                dev.mappings.extend((0..n).map(|k| (o + k, b + k, t)));
            }
            other => return Err(ctx(format!("unexpected element <{other}>"))),
        }
    }
    if cur.is_some() {
        return Err("unterminated <device>".into());
    }
    if !seen_superblock {
        return Err("no <superblock>".into());
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

    #[test]
    fn empty_pool_and_device_and_bad_input() {
        let d = XmlDump {
            superblock: XmlSuperblock {
                uuid: "a<b".into(),
                ..Default::default()
            },
            devices: vec![XmlDevice::default()],
        };
        let s = render(&d);
        assert_eq!(
            s,
            "<superblock uuid=\"a&lt;b\" time=\"0\" transaction=\"0\" flags=\"0\" version=\"0\" data_block_size=\"0\" nr_data_blocks=\"0\">
  <device dev_id=\"0\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">
  </device>
</superblock>
"
        );
        assert_eq!(parse(&s).unwrap(), d);
        assert!(parse("").unwrap_err().contains("no <superblock>"));
        let bad = s.replace("dev_id=\"0\"", "dev_id=\"x\"");
        assert!(parse(&bad).unwrap_err().contains("bad attribute dev_id"));
        let unknown = s.replace("</device>", "<def name=\"1\"/></device>");
        assert!(parse(&unknown)
            .unwrap_err()
            .contains("unexpected element <def>"));
        assert!(parse(&s.replace("  </device>\n", "")).is_err());
    }
}
