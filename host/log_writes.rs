//! The `dm-log-writes` log format: read a log, list its entries and marks,
//! replay a prefix of it onto a device, and write a log of the same format.
//!
//! The format is the kernel's (`drivers/md/dm-log-writes.c`). The log device
//! starts with a superblock sector (`struct log_write_super`); entries follow
//! from sector 1 (in units of the logged device's logical block size,
//! `sectorsize`). Each entry is one sector holding `struct log_write_entry`,
//! followed by the written data: `nr_sectors` sectors for a write, nothing for
//! a discard (the kernel does not advance over a discard's range), a flush
//! without data or a mark. A mark keeps its text in the entry sector, right
//! after the 32-byte entry, `data_len` bytes long. Writes are logged in the
//! order they reached stable storage: a plain write is logged only when a
//! later FLUSH completes, a FUA write when it completes; so the state after
//! the first N entries is a state the device could have had after a power cut.
//!
//! All values are little endian. `nr_entries` in the superblock is updated
//! on every FUA write and mark, and by the final `dm-log-writes-end` mark when
//! the target is removed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// `WRITE_LOG_MAGIC`.
pub const MAGIC: u64 = 0x006a_7366_7773_6872;
/// `WRITE_LOG_VERSION`.
pub const VERSION: u64 = 1;
/// `LOG_FLUSH_FLAG`: the bio carried REQ_PREFLUSH.
pub const FLUSH: u64 = 1 << 0;
/// `LOG_FUA_FLAG`: the bio carried REQ_FUA.
pub const FUA: u64 = 1 << 1;
/// `LOG_DISCARD_FLAG`: a discard; no data follows the entry.
pub const DISCARD: u64 = 1 << 2;
/// `LOG_MARK_FLAG`: a mark from `dmsetup message ... mark NAME`.
pub const MARK: u64 = 1 << 3;
/// `LOG_METADATA_FLAG`: the bio carried REQ_META.
pub const METADATA: u64 = 1 << 4;

/// Bytes of `struct log_write_super` as the kernel copies it (`sizeof`, with
/// the 4 bytes of tail padding after `sectorsize`).
pub const SUPER_SIZE: usize = 32;
/// Bytes of `struct log_write_entry`.
pub const ENTRY_SIZE: usize = 32;

/// `struct log_write_super`: magic, version, nr_entries (le64), sectorsize (le32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Super {
    pub magic: u64,
    pub version: u64,
    pub nr_entries: u64,
    pub sectorsize: u32,
}

impl Super {
    pub fn pack(&self) -> [u8; SUPER_SIZE] {
        let mut b = [0u8; SUPER_SIZE];
        b[0..8].copy_from_slice(&self.magic.to_le_bytes());
        b[8..16].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.nr_entries.to_le_bytes());
        b[24..28].copy_from_slice(&self.sectorsize.to_le_bytes());
        b
    }

    pub fn unpack(b: &[u8]) -> Super {
        Super {
            magic: le64(&b[0..8]),
            version: le64(&b[8..16]),
            nr_entries: le64(&b[16..24]),
            sectorsize: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
        }
    }
}

/// `struct log_write_entry`: sector, nr_sectors (in `sectorsize` units),
/// flags, data_len (the mark text's length; 0 for writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub sector: u64,
    pub nr_sectors: u64,
    pub flags: u64,
    pub data_len: u64,
}

impl RawEntry {
    pub fn pack(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..8].copy_from_slice(&self.sector.to_le_bytes());
        b[8..16].copy_from_slice(&self.nr_sectors.to_le_bytes());
        b[16..24].copy_from_slice(&self.flags.to_le_bytes());
        b[24..32].copy_from_slice(&self.data_len.to_le_bytes());
        b
    }

    pub fn unpack(b: &[u8]) -> RawEntry {
        RawEntry {
            sector: le64(&b[0..8]),
            nr_sectors: le64(&b[8..16]),
            flags: le64(&b[16..24]),
            data_len: le64(&b[24..32]),
        }
    }
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// One parsed entry and where its data sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, from 0.
    pub index: u64,
    pub raw: RawEntry,
    /// The mark's text (MARK entries only).
    pub mark: Option<String>,
    /// Byte offset of the entry's data in the log (write entries).
    pub data_offset: u64,
}

impl Entry {
    pub fn is(&self, flag: u64) -> bool {
        self.raw.flags & flag != 0
    }

    /// Flags as text: FLUSH|FUA|DISCARD|MARK|META, or "-" for a plain write.
    pub fn flag_names(&self) -> String {
        let names = [
            (FLUSH, "FLUSH"),
            (FUA, "FUA"),
            (DISCARD, "DISCARD"),
            (MARK, "MARK"),
            (METADATA, "META"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(f, _)| self.is(*f))
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "-".into()
        } else {
            v.join("|")
        }
    }
}

/// A bad or truncated log.
#[derive(Debug)]
pub enum LogError {
    Io(io::Error),
    BadMagic(u64),
    BadVersion(u64),
    BadSectorSize(u32),
    /// Entry INDEX (or its data) lies past the end of the log.
    Truncated(u64),
    /// Entry INDEX has a mark text longer than its sector.
    BadMark(u64),
    /// A replay asked for entries past the log's last one.
    PastEnd {
        wanted: u64,
        entries: u64,
    },
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e)
    }
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "I/O error: {e}"),
            LogError::BadMagic(m) => write!(f, "bad log magic {m:#x} (expected {MAGIC:#x})"),
            LogError::BadVersion(v) => write!(f, "unknown log version {v}"),
            LogError::BadSectorSize(s) => write!(f, "bad sector size {s}"),
            LogError::Truncated(i) => write!(f, "entry {i} lies past the end of the log"),
            LogError::BadMark(i) => write!(f, "entry {i}: mark text longer than its sector"),
            LogError::PastEnd { wanted, entries } => {
                write!(
                    f,
                    "replay to entry {wanted}, but the log has {entries} entries"
                )
            }
        }
    }
}

/// Where a log is read from: a file or block device, or bytes in memory.
pub trait Source {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= self.len());
        let end = end.ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        // A block device's metadata says 0 bytes: seek to its end instead.
        use std::io::{Seek, SeekFrom};
        let mut f = self;
        let n = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(0))?;
        Ok(n)
    }
}

/// A parsed log: its superblock and every entry (headers only; data stays
/// in the source and is read on replay).
pub struct Log<'a, S: Source + ?Sized> {
    src: &'a S,
    pub sup: Super,
    pub entries: Vec<Entry>,
}

impl<'a, S: Source + ?Sized> Log<'a, S> {
    /// Reads the superblock and the `nr_entries` entry headers it announces,
    /// checking that each entry and its data lie within the log.
    pub fn open(src: &'a S) -> Result<Self, LogError> {
        let size = src.size()?;
        let mut sb = [0u8; SUPER_SIZE];
        src.read_at(&mut sb, 0)?;
        let sup = Super::unpack(&sb);
        if sup.magic != MAGIC {
            return Err(LogError::BadMagic(sup.magic));
        }
        if sup.version != VERSION {
            return Err(LogError::BadVersion(sup.version));
        }
        let ss = sup.sectorsize;
        if !(512..=65536).contains(&ss) || !ss.is_power_of_two() {
            return Err(LogError::BadSectorSize(ss));
        }
        let ss = u64::from(ss);
        let mut entries = Vec::new();
        let mut pos = ss; // entries start one sector in
        let mut sector = vec![0u8; ss as usize];
        for index in 0..sup.nr_entries {
            if pos.checked_add(ss).is_none_or(|e| e > size) {
                return Err(LogError::Truncated(index));
            }
            src.read_at(&mut sector, pos)?;
            let raw = RawEntry::unpack(&sector[..ENTRY_SIZE]);
            let mut mark = None;
            if raw.flags & MARK != 0 {
                let len = usize::try_from(raw.data_len).unwrap_or(usize::MAX);
                if len > sector.len() - ENTRY_SIZE {
                    return Err(LogError::BadMark(index));
                }
                mark = Some(
                    String::from_utf8_lossy(&sector[ENTRY_SIZE..ENTRY_SIZE + len]).into_owned(),
                );
            }
            let data_offset = pos + ss;
            let data_len = if raw.flags & DISCARD != 0 {
                Some(0)
            } else {
                raw.nr_sectors.checked_mul(ss)
            };
            let next = data_len
                .and_then(|d| data_offset.checked_add(d))
                .filter(|&n| n <= size);
            pos = next.ok_or(LogError::Truncated(index))?;
            entries.push(Entry {
                index,
                raw,
                mark,
                data_offset,
            });
        }
        Ok(Log { src, sup, entries })
    }

    /// The MARK entries, in log order.
    pub fn marks(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.is(MARK))
    }

    /// The index of the first mark named NAME.
    pub fn find_mark(&self, name: &str) -> Option<u64> {
        self.marks()
            .find(|e| e.mark.as_deref() == Some(name))
            .map(|e| e.index)
    }

    /// Applies entries `from..to` (the state after `to` entries, given the
    /// target holds the state after `from`) to TARGET. Discards are applied
    /// as zeroing when `zero_discards` (what brd and a thin read after a
    /// discard), else skipped. Returns the number of entries that changed data.
    pub fn replay(
        &self,
        target: &mut dyn Sink,
        from: u64,
        to: u64,
        zero_discards: bool,
    ) -> Result<u64, LogError> {
        let n = self.entries.len() as u64;
        if to > n || from > to {
            return Err(LogError::PastEnd {
                wanted: to.max(from),
                entries: n,
            });
        }
        let ss = u64::from(self.sup.sectorsize);
        let mut buf = Vec::new();
        let mut applied = 0;
        for e in &self.entries[from as usize..to as usize] {
            let off = e
                .raw
                .sector
                .checked_mul(ss)
                .ok_or(LogError::Truncated(e.index))?;
            let len = e
                .raw
                .nr_sectors
                .checked_mul(ss)
                .ok_or(LogError::Truncated(e.index))?;
            if e.is(DISCARD) {
                if zero_discards && len > 0 {
                    target.zero(off, len)?;
                    applied += 1;
                }
            } else if len > 0 {
                // Copy in pieces of at most 1 MiB.
                let mut done = 0;
                while done < len {
                    let piece = (len - done).min(1 << 20) as usize;
                    buf.resize(piece, 0);
                    self.src.read_at(&mut buf, e.data_offset + done)?;
                    target.write_at(&buf, off + done)?;
                    done += piece as u64;
                }
                applied += 1;
            }
        }
        target.flush()?;
        Ok(applied)
    }
}

/// Where a replay writes: a device or file, or bytes in memory.
pub trait Sink {
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let z = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0;
        while done < len {
            let piece = (len - done).min(z.len() as u64) as usize;
            self.write_at(&z[..piece], offset + done)?;
            done += piece as u64;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Vec<u8> {
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let start = offset as usize;
        if self.len() < start + data.len() {
            self.resize(start + data.len(), 0);
        }
        self[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// A file or block device as a replay target. With `direct` the writes go
/// through an aligned buffer with O_DIRECT (a block device whose page cache
/// another writer may have left stale); either way `flush` fsyncs.
pub struct FileSink {
    pub file: File,
    direct: bool,
    buf: Vec<u8>,
}

/// `O_DIRECT` on x86_64 and most Linux architectures (arm64 differs).
#[cfg(target_arch = "x86_64")]
pub const O_DIRECT: i32 = 0o40000;
#[cfg(not(target_arch = "x86_64"))]
pub const O_DIRECT: i32 = 0;

const DIRECT_ALIGN: usize = 4096;

impl FileSink {
    /// Opens PATH for writing; O_DIRECT when `direct` and the platform has it.
    pub fn open(path: &str, direct: bool) -> io::Result<FileSink> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = direct && O_DIRECT != 0;
        let mut o = std::fs::OpenOptions::new();
        o.write(true);
        if direct {
            o.custom_flags(O_DIRECT);
        }
        Ok(FileSink {
            file: o.open(path)?,
            direct,
            buf: Vec::new(),
        })
    }
}

impl Sink for FileSink {
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        if !self.direct {
            return self.file.write_all_at(data, offset);
        }
        // O_DIRECT: offsets and lengths are sector multiples in a log; the
        // memory must be aligned, so copy into an aligned slice of `buf`.
        self.buf.resize(data.len() + DIRECT_ALIGN, 0);
        let a = self.buf.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = &mut self.buf[a..a + data.len()];
        aligned.copy_from_slice(data);
        self.file.write_all_at(aligned, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Writes a log in the kernel's layout, as `log_one_block` and `log_super`
/// do: for tests, and for making logs by hand.
pub struct LogWriter {
    pub bytes: Vec<u8>,
    sectorsize: u64,
    nr_entries: u64,
    next: u64,
}

impl LogWriter {
    pub fn new(sectorsize: u32) -> LogWriter {
        let ss = u64::from(sectorsize);
        let mut w = LogWriter {
            bytes: Vec::new(),
            sectorsize: ss,
            nr_entries: 0,
            next: ss,
        };
        w.write_super();
        w
    }

    fn write_super(&mut self) {
        let s = Super {
            magic: MAGIC,
            version: VERSION,
            nr_entries: self.nr_entries,
            sectorsize: self.sectorsize as u32,
        };
        let mut sector = vec![0u8; self.sectorsize as usize];
        sector[..SUPER_SIZE].copy_from_slice(&s.pack());
        self.bytes.write_at(&sector, 0).expect("memory");
    }

    fn entry(&mut self, raw: RawEntry, text: &[u8], data: &[u8]) {
        let mut sector = vec![0u8; self.sectorsize as usize];
        sector[..ENTRY_SIZE].copy_from_slice(&raw.pack());
        sector[ENTRY_SIZE..ENTRY_SIZE + text.len()].copy_from_slice(text);
        let at = self.next;
        self.bytes.write_at(&sector, at).expect("memory");
        self.bytes
            .write_at(data, at + self.sectorsize)
            .expect("memory");
        self.next += self.sectorsize;
        if raw.flags & DISCARD == 0 {
            self.next += raw.nr_sectors * self.sectorsize;
        }
        self.nr_entries += 1;
        // The kernel rewrites the superblock after FUA writes and marks only.
        if raw.flags & (FUA | MARK) != 0 {
            self.write_super();
        }
    }

    /// A write of DATA (a whole number of sectors) at SECTOR, with FLUSH/FUA/METADATA flags.
    pub fn write(&mut self, sector: u64, data: &[u8], flags: u64) {
        assert_eq!(data.len() as u64 % self.sectorsize, 0, "whole sectors");
        let nr_sectors = data.len() as u64 / self.sectorsize;
        self.entry(
            RawEntry {
                sector,
                nr_sectors,
                flags,
                data_len: 0,
            },
            &[],
            data,
        );
    }

    /// A flush without data.
    pub fn flush(&mut self) {
        self.entry(
            RawEntry {
                sector: 0,
                nr_sectors: 0,
                flags: FLUSH,
                data_len: 0,
            },
            &[],
            &[],
        );
    }

    pub fn discard(&mut self, sector: u64, nr_sectors: u64) {
        self.entry(
            RawEntry {
                sector,
                nr_sectors,
                flags: DISCARD,
                data_len: 0,
            },
            &[],
            &[],
        );
    }

    /// A mark; the kernel keeps at most `sectorsize - 32 - 1` bytes of its text.
    pub fn mark(&mut self, name: &str) {
        let max = self.sectorsize as usize - ENTRY_SIZE - 1;
        let text = &name.as_bytes()[..name.len().min(max)];
        self.entry(
            RawEntry {
                sector: 0,
                nr_sectors: 0,
                flags: MARK,
                data_len: text.len() as u64,
            },
            text,
            &[],
        );
    }
}

/// A fast 64-bit hash of a chunk (not cryptographic: it tells a block's
/// contents apart from other contents, it does not resist an adversary).
pub fn chunk_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(K);
    h ^ (h >> 29)
}
