//! `thinmeta ls`: one row of fields per thin device, as `thin_ls` 0.9.0
//! prints them.
//!
//! The fields and their names are `thin_ls`'s. A data block is *exclusive*
//! to a device when exactly one mapping in the whole pool points at it
//! (counting every device's mappings, however their trees share nodes);
//! *shared* is the device's `mapped_blocks` less its exclusive ones. Sizes
//! come in blocks, sectors, bytes, or the human form (`64KiB`, `1024MiB`,
//! see [`human_size`]). The table is right-justified to the widest cell of
//! each column, every cell followed by one space, as `thin_ls` lays it out
//! (with or without its header line).

use std::collections::HashMap;

use crate::metadata::{DeviceDetails, Error, PoolMetadata, ThinId};
use crate::pdata::block_device::BlockDevice;

/// One column of `thin_ls`'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Dev,
    MappedBlocks,
    ExclusiveBlocks,
    SharedBlocks,
    MappedSectors,
    ExclusiveSectors,
    SharedSectors,
    MappedBytes,
    ExclusiveBytes,
    SharedBytes,
    Mapped,
    Exclusive,
    Shared,
    Transaction,
    CreateTime,
    SnapTime,
}

/// Every field, by its `thin_ls` name.
pub const FIELDS: [(&str, Field); 16] = [
    ("DEV", Field::Dev),
    ("MAPPED_BLOCKS", Field::MappedBlocks),
    ("EXCLUSIVE_BLOCKS", Field::ExclusiveBlocks),
    ("SHARED_BLOCKS", Field::SharedBlocks),
    ("MAPPED_SECTORS", Field::MappedSectors),
    ("EXCLUSIVE_SECTORS", Field::ExclusiveSectors),
    ("SHARED_SECTORS", Field::SharedSectors),
    ("MAPPED_BYTES", Field::MappedBytes),
    ("EXCLUSIVE_BYTES", Field::ExclusiveBytes),
    ("SHARED_BYTES", Field::SharedBytes),
    ("MAPPED", Field::Mapped),
    ("EXCLUSIVE", Field::Exclusive),
    ("SHARED", Field::Shared),
    ("TRANSACTION", Field::Transaction),
    ("CREATE_TIME", Field::CreateTime),
    ("SNAP_TIME", Field::SnapTime),
];

/// `thin_ls`'s fields when `-o` is not given.
pub const DEFAULT_FIELDS: [Field; 4] = [
    Field::Dev,
    Field::Mapped,
    Field::CreateTime,
    Field::SnapTime,
];

impl Field {
    /// The column header (the field's name).
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }
}

/// Parses a comma-separated field list (`DEV,MAPPED,...`).
pub fn parse_fields(list: &str) -> Result<Vec<Field>, String> {
    list.split(',')
        .map(|name| {
            FIELDS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| *f)
                .ok_or_else(|| format!("unknown field {name:?}"))
        })
        .collect()
}

/// A byte count the way `thin_ls` shows it: divided by 1024 (rounding down)
/// while above 1 MiB of the current unit, then once more, rounded to the
/// nearest, if still above 8 KiB of it; no unit for plain bytes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (mut n, mut i) = (bytes, 0);
    while n > 1024 * 1024 {
        n /= 1024;
        i += 1;
    }
    if n > 8 * 1024 {
        // Half up, as C's round() of the quotient.
        n = (n + 512) / 1024;
        i += 1;
    }
    format!("{n}{}", UNITS[i])
}

/// The per-device counts a row is made of.
struct Row {
    id: ThinId,
    details: DeviceDetails,
    exclusive: u64,
}

/// The table for `fields` (with a header line if `headers`).
pub fn ls<D: BlockDevice>(
    pmd: &mut PoolMetadata<D>,
    fields: &[Field],
    headers: bool,
) -> Result<String, String> {
    let mut devs = Vec::new();
    pmd.walk_devices(|id, d| {
        devs.push((id, *d));
        Ok(())
    })
    .map_err(|err: Error| format!("devices tree: {err:?}"))?;
    // Pass 1: how many mappings point at each data block.
    let mut refs: HashMap<u64, u32> = HashMap::new();
    for &(id, _) in &devs {
        pmd.walk_mappings(id, |_, bt| {
            *refs.entry(bt.block).or_insert(0) += 1;
            Ok(())
        })
        .map_err(|err| format!("mapping tree of device {id}: {err:?}"))?;
    }
    // Pass 2: each device's mappings that are the only one on their block.
    let mut rows = Vec::new();
    for &(id, details) in &devs {
        let mut exclusive = 0u64;
        pmd.walk_mappings(id, |_, bt| {
            if refs.get(&bt.block) == Some(&1) {
                exclusive += 1;
            }
            Ok(())
        })
        .map_err(|err| format!("mapping tree of device {id}: {err:?}"))?;
        rows.push(Row {
            id,
            details,
            exclusive,
        });
    }
    let sectors = u64::from(pmd.data_block_size());
    let mut grid: Vec<Vec<String>> = Vec::new();
    if headers {
        grid.push(fields.iter().map(|f| f.name().to_string()).collect());
    }
    for r in &rows {
        let mapped = r.details.mapped_blocks;
        let shared = mapped.saturating_sub(r.exclusive);
        grid.push(
            fields
                .iter()
                .map(|f| match f {
                    Field::Dev => r.id.to_string(),
                    Field::MappedBlocks => mapped.to_string(),
                    Field::ExclusiveBlocks => r.exclusive.to_string(),
                    Field::SharedBlocks => shared.to_string(),
                    Field::MappedSectors => (mapped * sectors).to_string(),
                    Field::ExclusiveSectors => (r.exclusive * sectors).to_string(),
                    Field::SharedSectors => (shared * sectors).to_string(),
                    Field::MappedBytes => (mapped * sectors * 512).to_string(),
                    Field::ExclusiveBytes => (r.exclusive * sectors * 512).to_string(),
                    Field::SharedBytes => (shared * sectors * 512).to_string(),
                    Field::Mapped => human_size(mapped * sectors * 512),
                    Field::Exclusive => human_size(r.exclusive * sectors * 512),
                    Field::Shared => human_size(shared * sectors * 512),
                    Field::Transaction => r.details.transaction_id.to_string(),
                    Field::CreateTime => r.details.creation_time.to_string(),
                    Field::SnapTime => r.details.snapshotted_time.to_string(),
                })
                .collect(),
        );
    }
    Ok(render(&grid))
}

/// `thin_ls`'s layout: every column right-justified to its widest cell
/// (header included, if any), one space after every cell.
fn render(grid: &[Vec<String>]) -> String {
    let cols = grid.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            grid.iter()
                .filter_map(|row| row.get(c).map(String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in grid {
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            out.push_str(&format!("{cell:>w$} "));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_as_thin_ls_prints_them() {
        // Observed from thin_ls 0.9.0 on 64 KiB blocks.
        for (blocks, want) in [
            (0u64, "0"),
            (1, "64KiB"),
            (16, "1024KiB"),
            (128, "8192KiB"),
            (129, "8MiB"),
            (255, "16MiB"),
            (1000, "63MiB"),
            (1023, "64MiB"),
            (65535, "4095MiB"),
            (65537, "4096MiB"),
            (1048577, "64GiB"),
            (16 << 20, "1024GiB"),
        ] {
            assert_eq!(human_size(blocks * 65536), want, "{blocks} blocks");
        }
    }

    #[test]
    fn fields_parse_and_table_layout() {
        assert_eq!(
            parse_fields("DEV,SNAP_TIME").unwrap(),
            vec![Field::Dev, Field::SnapTime]
        );
        assert!(parse_fields("DEV,BOGUS").is_err());
        let g = vec![
            vec!["DEV".to_string(), "MAPPED".to_string()],
            vec!["12345".to_string(), "0".to_string()],
        ];
        assert_eq!(render(&g), "  DEV MAPPED \n12345      0 \n");
        assert_eq!(render(&g[1..]), "12345 0 \n");
    }
}
