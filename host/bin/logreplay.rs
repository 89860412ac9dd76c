//! logreplay: read `dm-log-writes` logs, and rebuild the logged devices as
//! they were at any entry, for crash-replay tests of the thin pool.
//!
//! ```text
//! logreplay info LOG                    superblock and entry counts
//! logreplay list LOG                    INDEX SECTOR NR_SECTORS FLAGS [MARK] per entry
//! logreplay marks LOG                   INDEX NAME per mark
//! logreplay replay LOG TARGET [--from N] (--to N | --to-mark NAME | --all)
//!                  [--discard zero|skip] [--buffered]
//! logreplay points META_LOG DATA_LOG --seed S [--between K | --every N]
//! logreplay hash DEV --chunk-kib K      INDEX HASH per chunk of DEV
//! ```
//!
//! The command line is clap's: `--to`, `--to-mark` and `--all` are one
//! choice, as are `--between` and `--every`; bad arguments exit with 2,
//! failures with 1.
//!
//! Sectors are in the log's `sectorsize` units (512 on virtio and brd). An
//! entry count N means "the state after the first N entries": `replay --to N`
//! applies entries 0..N, `--from M` assumes TARGET already holds the state
//! after M entries (replays move forward only). `--to-mark NAME` replays up
//! to and including the first mark NAME. Discards are applied as zeroing
//! (what brd, and a thin pool with passdown to brd, read afterwards) unless
//! `--discard skip`. A block-device TARGET is written with O_DIRECT unless
//! `--buffered`; the target is fsynced at the end.
//!
//! `points` lists the crash points of two logs taken side by side (a thin
//! pool's metadata and data devices) that carry the same marks in the same
//! order: every mark, as `mark NAME META_TO DATA_TO`, and seeded points
//! between marks, as `between PREV NEXT META_TO DATA_TO`: the metadata log at
//! an entry strictly between mark PREV and mark NEXT, and the data log at a
//! seeded entry of the same interval (both nondecreasing down the list, so
//! one pair of targets can be replayed forward through them). `--between K`
//! picks K points over the whole log; `--every N` takes every Nth metadata
//! entry instead (N=1: all). Points before the first mark are left out (the
//! pool's metadata is not formatted yet). Any pairing within an interval is
//! sound for the checks the scenario makes: a region no one touched between
//! the two marks keeps its blocks and bytes through the whole interval on both
//! devices.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::exit;

use clap::{ArgGroup, Parser, Subcommand};

use dm_thin_host::log_writes::{
    chunk_hash, Entry, FileSink, Log, LogError, Sink, FLUSH, FUA, MARK, O_DIRECT,
};
use dm_thin_host::rng::Rng;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("logreplay: {msg}");
    exit(1)
}

fn open_file(path: &str) -> File {
    File::open(path).unwrap_or_else(|e| die(format!("{path}: {e}")))
}

fn open_log<'a>(path: &str, f: &'a File) -> Log<'a, File> {
    Log::open(f).unwrap_or_else(|e: LogError| die(format!("{path}: {e}")))
}

#[derive(Parser)]
#[command(
    name = "logreplay",
    about = "Reads dm-log-writes logs and replays them"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Superblock and entry counts.
    Info { log: String },
    /// INDEX SECTOR NR_SECTORS FLAGS [MARK] per entry.
    List { log: String },
    /// INDEX NAME per mark.
    Marks { log: String },
    /// Rebuilds TARGET as it was after an entry of LOG.
    #[command(group(ArgGroup::new("end").required(true).args(["to", "to_mark", "all"])))]
    Replay {
        log: String,
        target: String,
        /// TARGET already holds the state after this many entries.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Replay up to (not including) this entry.
        #[arg(long)]
        to: Option<u64>,
        /// Replay up to and including the first mark NAME.
        #[arg(long, value_name = "NAME")]
        to_mark: Option<String>,
        /// Replay every entry.
        #[arg(long)]
        all: bool,
        /// Discards zero their range, or are skipped.
        #[arg(long, default_value = "zero", value_parser = ["zero", "skip"])]
        discard: String,
        /// No O_DIRECT on a block-device TARGET.
        #[arg(long)]
        buffered: bool,
    },
    /// Crash points of a pool's metadata and data logs.
    #[command(group(ArgGroup::new("pick").required(true).args(["between", "every"])))]
    Points {
        meta_log: String,
        data_log: String,
        #[arg(long)]
        seed: u64,
        /// K seeded points over the whole log.
        #[arg(long, value_name = "K")]
        between: Option<u64>,
        /// Every Nth metadata entry.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        every: Option<u64>,
    },
    /// INDEX HASH per chunk of DEV.
    Hash {
        dev: String,
        #[arg(long, value_name = "K")]
        chunk_kib: u64,
    },
}

fn main() {
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    match Cli::parse().cmd {
        Cmd::Info { log: path } => {
            let f = open_file(&path);
            let log = open_log(&path, &f);
            let count = |flag| log.entries.iter().filter(|e: &&Entry| e.is(flag)).count();
            let data: u64 = log
                .entries
                .iter()
                .filter(|e| !e.is(dm_thin_host::log_writes::DISCARD))
                .map(|e| e.raw.nr_sectors)
                .sum();
            writeln!(
                out,
                "sectorsize {} entries {} flushes {} fua {} discards {} marks {} data_sectors {}",
                log.sup.sectorsize,
                log.entries.len(),
                count(FLUSH),
                count(FUA),
                count(dm_thin_host::log_writes::DISCARD),
                count(MARK),
                data
            )
            .ok();
        }
        Cmd::List { log: path } => {
            let f = open_file(&path);
            let log = open_log(&path, &f);
            for e in &log.entries {
                let mark = e
                    .mark
                    .as_deref()
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{} {} {} {}{}",
                    e.index,
                    e.raw.sector,
                    e.raw.nr_sectors,
                    e.flag_names(),
                    mark
                )
                .ok();
            }
        }
        Cmd::Marks { log: path } => {
            let f = open_file(&path);
            let log = open_log(&path, &f);
            for e in log.marks() {
                writeln!(out, "{} {}", e.index, e.mark.as_deref().unwrap_or("")).ok();
            }
        }
        Cmd::Replay {
            log: lp,
            target: tp,
            from,
            to,
            to_mark,
            all: _,
            discard,
            buffered,
        } => {
            let (lp, tp) = (lp.as_str(), tp.as_str());
            let f = open_file(lp);
            let log = open_log(lp, &f);
            let n = log.entries.len() as u64;
            let to = match (to_mark, to) {
                (Some(name), _) => log
                    .find_mark(&name)
                    .map(|i| i + 1)
                    .unwrap_or_else(|| die(format!("{lp}: no mark '{name}'"))),
                (None, Some(to)) => to,
                (None, None) => n,
            };
            let zero = discard == "zero";
            let direct = !buffered && is_block_device(tp);
            let mut sink = FileSink::open(tp, direct).unwrap_or_else(|e| die(format!("{tp}: {e}")));
            let sink: &mut dyn Sink = &mut sink;
            match log.replay(sink, from, to, zero) {
                Ok(applied) => writeln!(
                    out,
                    "replayed entries {from}..{to} of {n} onto {tp}: {applied} changed data"
                )
                .ok(),
                Err(e) => die(format!("{lp} -> {tp}: {e}")),
            };
        }
        Cmd::Points {
            meta_log: mp,
            data_log: dp,
            seed,
            between,
            every,
        } => {
            let (mf, df) = (open_file(&mp), open_file(&dp));
            let (ml, dl) = (open_log(&mp, &mf), open_log(&dp, &df));
            let choice = match every {
                Some(n) => Choice::Every(n),
                None => Choice::Between(between.unwrap_or(0)),
            };
            for p in points(&ml.entries, &dl.entries, seed, choice).unwrap_or_else(|e| die(e)) {
                writeln!(out, "{p}").ok();
            }
        }
        Cmd::Hash {
            dev: path,
            chunk_kib: kib,
        } => {
            hash_device(&path, kib as usize * 1024, &mut out)
                .unwrap_or_else(|e| die(format!("{path}: {e}")));
        }
    }
    out.flush().ok();
}

fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

/// Hashes DEV chunk by chunk; a block device is read with O_DIRECT, so what
/// is hashed is what the device returns, not what a writer left in its
/// page cache.
fn hash_device(path: &str, chunk: usize, out: &mut impl Write) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    if chunk == 0 || !chunk.is_multiple_of(ALIGN) {
        return Err(std::io::Error::other(
            "the chunk must be a multiple of 4 KiB",
        ));
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if is_block_device(path) && O_DIRECT != 0 {
        o.custom_flags(O_DIRECT);
    }
    let mut f = o.open(path)?;
    let mut raw = vec![0u8; chunk + ALIGN];
    let a = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[a..a + chunk];
    let mut i = 0u64;
    loop {
        let mut got = 0;
        while got < chunk {
            let n = f.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(());
        }
        writeln!(out, "{i} {:016x}", chunk_hash(&buf[..got]))?;
        i += 1;
        if got < chunk {
            return Ok(());
        }
    }
}

#[derive(Clone, Copy)]
enum Choice {
    Between(u64),
    Every(u64),
}

fn points(
    meta: &[Entry],
    data: &[Entry],
    seed: u64,
    choice: Choice,
) -> Result<Vec<String>, String> {
    let marks = |es: &[Entry]| -> Vec<(u64, String)> {
        es.iter()
            .filter(|e| e.is(MARK))
            .map(|e| (e.index, e.mark.clone().unwrap_or_default()))
            .collect()
    };
    let (mm, dm) = (marks(meta), marks(data));
    let (mn, dn): (Vec<&String>, Vec<&String>) = (
        mm.iter().map(|m| &m.1).collect(),
        dm.iter().map(|m| &m.1).collect(),
    );
    if mn != dn {
        return Err(format!(
            "the logs' marks differ: metadata {mn:?}, data {dn:?}"
        ));
    }
    let mut rng = Rng::new(seed);
    // Metadata entry counts strictly between marks i and i+1: m_i+2 ..= m_{i+1}.
    let span = |i: usize| (mm[i].0 + 2, mm[i + 1].0);
    let mut chosen: Vec<Vec<u64>> = vec![Vec::new(); mm.len().saturating_sub(1)];
    match choice {
        Choice::Every(n) => {
            for (i, c) in chosen.iter_mut().enumerate() {
                let (lo, hi) = span(i);
                c.extend((lo..=hi).filter(|m| (m - lo) % n == 0));
            }
        }
        Choice::Between(k) => {
            let total: u64 = (0..chosen.len())
                .map(span)
                .filter(|(lo, hi)| lo <= hi)
                .map(|(lo, hi)| hi - lo + 1)
                .sum();
            for _ in 0..k.min(total) {
                // A uniform pick over all between-mark entries, found by interval.
                let mut r = rng.range(0, total - 1);
                for (i, c) in chosen.iter_mut().enumerate() {
                    let (lo, hi) = span(i);
                    if lo > hi {
                        continue;
                    }
                    if r <= hi - lo {
                        if !c.contains(&(lo + r)) {
                            c.push(lo + r);
                        }
                        break;
                    }
                    r -= hi - lo + 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (i, m) in mm.iter().enumerate() {
        out.push(format!("mark {} {} {}", m.1, m.0 + 1, dm[i].0 + 1));
        let Some(c) = chosen.get_mut(i) else { break };
        c.sort_unstable();
        // Data entry counts in the same interval, sorted, paired in order.
        let (dlo, dhi) = (dm[i].0 + 1, dm[i + 1].0);
        let mut ds: Vec<u64> = c.iter().map(|_| rng.range(dlo, dhi)).collect();
        ds.sort_unstable();
        for (mt, dt) in c.iter().zip(ds) {
            out.push(format!("between {} {} {} {}", m.1, mm[i + 1].1, mt, dt));
        }
    }
    Ok(out)
}
