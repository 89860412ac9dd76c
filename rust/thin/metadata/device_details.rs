//! The value stored in the device details tree, one per thin device
//! (`struct disk_device_details`).

/// Size of a packed [`DeviceDetails`] on disk.
pub const DEVICE_DETAILS_SIZE: usize = 24;

/// Per-device bookkeeping kept in the details btree, keyed by device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceDetails {
    /// Number of virtual blocks that have a mapping.
    pub mapped_blocks: u64,
    /// Pool transaction id when the device was created.
    pub transaction_id: u64,
    /// Pool time when the device was created.
    pub creation_time: u32,
    /// Pool time of the last snapshot taken of (or as) this device.
    pub snapshotted_time: u32,
}

impl DeviceDetails {
    /// Packs in C field order, little endian.
    pub fn pack(&self) -> [u8; DEVICE_DETAILS_SIZE] {
        let mut b = [0u8; DEVICE_DETAILS_SIZE];
        b[0..8].copy_from_slice(&self.mapped_blocks.to_le_bytes());
        b[8..16].copy_from_slice(&self.transaction_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.creation_time.to_le_bytes());
        b[20..24].copy_from_slice(&self.snapshotted_time.to_le_bytes());
        b
    }

    /// Unpacks; `None` if `b` is shorter than [`DEVICE_DETAILS_SIZE`].
    pub fn unpack(b: &[u8]) -> Option<Self> {
        Some(DeviceDetails {
            mapped_blocks: u64::from_le_bytes(b.get(0..8)?.try_into().ok()?),
            transaction_id: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            creation_time: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
            snapshotted_time: u32::from_le_bytes(b.get(20..24)?.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = DeviceDetails {
            mapped_blocks: 0x0102_0304_0506_0708,
            transaction_id: 9,
            creation_time: 10,
            snapshotted_time: 0xdead_beef,
        };
        let b = d.pack();
        assert_eq!(b[0], 0x08);
        assert_eq!(b[8], 9);
        assert_eq!(b[16], 10);
        assert_eq!(&b[20..24], &[0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(DeviceDetails::unpack(&b), Some(d));
        assert_eq!(DeviceDetails::unpack(&b[..23]), None);
    }
}
