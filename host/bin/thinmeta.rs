//! thinmeta: format, modify, check, list, dump and restore thin-pool
//! metadata images on the host, with the very metadata code the kernel
//! module runs.
//!
//! ```text
//! thinmeta format IMAGE --data-blocks N --data-block-size SECTORS
//! thinmeta apply IMAGE [SCRIPT]          (script from stdin if absent or -)
//! thinmeta dump IMAGE [-o OUT] [-f xml]  (thin_dump 0.9.0 XML)
//! thinmeta restore -i XML -o IMAGE       (as thin_restore, through the engine)
//! thinmeta check IMAGE [-q]              (thin_check's stages and report)
//! thinmeta ls IMAGE [-o FIELDS] [--no-headers]   (thin_ls's table)
//! thinmeta bench
//! thinmeta hostile-corpus DIR [--seed S] [--count N]
//! ```
//!
//! `dump`, `restore`, `check` and `ls` take the arguments of `thin_dump`,
//! `thin_restore`, `thin_check` and `thin_ls` for what they share, and
//! print what those print (see `dm_thin_host::thin_check`, `thin_ls`,
//! `thin_restore`). `apply` runs one operation per line (see
//! `thin_script`); a script that runs to its end is committed, as closing
//! the pool commits. A bad line or a failing operation stops it with the
//! line number and a non-zero exit, keeping only what earlier `commit`
//! lines (and `resize_data`, `reserve_metadata_snap`, which commit) made
//! durable. Bad arguments exit with 2, failures with 1.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::Instant;

use clap::{Parser, Subcommand};
use dm_thin_host::file_device::FileDevice;
use dm_thin_host::metadata::{Error, PoolMetadata};
use dm_thin_host::ramdisk::RamDisk;
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_ls::{parse_fields, Field, DEFAULT_FIELDS};
use dm_thin_host::thin_script::{execute, parse_line};
use dm_thin_host::thin_xml::{XmlDevice, XmlSuperblock, XmlWriter};

const CACHE_BLOCKS: usize = 1 << 16;

#[derive(Parser)]
#[command(
    name = "thinmeta",
    about = "Thin-pool metadata images, with the kernel module's metadata code"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Formats IMAGE (an existing file) as an empty pool.
    Format {
        image: PathBuf,
        /// Data device size in blocks.
        #[arg(long)]
        data_blocks: u64,
        /// Data block size in 512-byte sectors: a multiple of 128, at most 2097152.
        #[arg(long, value_parser = data_block_size)]
        data_block_size: u32,
    },
    /// Runs a `thin_script` of operations on IMAGE and commits.
    Apply {
        image: PathBuf,
        /// The script; stdin if absent or `-`.
        script: Option<PathBuf>,
    },
    /// Writes the pool as thin_dump XML.
    Dump {
        image: PathBuf,
        /// Output file (stdout if absent).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Output format: only thin_dump's `xml`.
        #[arg(short = 'f', long = "format", default_value = "xml", value_parser = ["xml"])]
        format: String,
    },
    /// Builds a pool from thin_dump XML through the engine's operations.
    Restore {
        /// thin_dump XML.
        #[arg(short = 'i', long = "input")]
        input: PathBuf,
        /// The metadata image to write (an existing file, as for thin_restore).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Validates the pool's metadata; non-zero exit on any error.
    Check {
        image: PathBuf,
        /// Prints nothing; the exit code tells.
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
    },
    /// Lists the thin devices, as thin_ls does.
    Ls {
        image: PathBuf,
        /// Comma-separated thin_ls fields (default DEV,MAPPED,CREATE_TIME,SNAP_TIME).
        #[arg(short = 'o', long = "format", value_parser = field_list)]
        fields: Option<FieldList>,
        /// Leaves out the header line.
        #[arg(long)]
        no_headers: bool,
    },
    /// Times the metadata operations on a RAM disk.
    Bench,
    /// Writes a hostile-metadata corpus (NNN-kind.img and MANIFEST) to DIR.
    HostileCorpus {
        dir: PathBuf,
        #[arg(long, default_value_t = 68)]
        seed: u64,
        #[arg(long, default_value_t = 32)]
        count: usize,
    },
}

/// The fields of `ls -o`.
#[derive(Clone)]
struct FieldList(Vec<Field>);

fn field_list(s: &str) -> Result<FieldList, String> {
    parse_fields(s).map(FieldList)
}

fn data_block_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(128..=2097152).contains(&n) || !n.is_multiple_of(128) {
        return Err("must be a multiple of 128 sectors (64 KiB) up to 1 GiB".into());
    }
    Ok(n)
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("thinmeta: {msg}");
    exit(1)
}

fn open_image(path: &Path) -> PoolMetadata<FileDevice> {
    let dev =
        FileDevice::open(path, true).unwrap_or_else(|e| die(format!("{}: {e}", path.display())));
    PoolMetadata::open_with_cache(dev, None, false, CACHE_BLOCKS)
        .unwrap_or_else(|e| die(format!("{}: cannot open metadata: {e:?}", path.display())))
}

fn open_read_only(path: &Path) -> PoolMetadata<FileDevice> {
    let dev = FileDevice::open_read_only(path)
        .unwrap_or_else(|e| die(format!("{}: {e}", path.display())));
    PoolMetadata::open_with_cache(dev, None, false, CACHE_BLOCKS)
        .unwrap_or_else(|e| die(format!("{}: cannot open metadata: {e:?}", path.display())))
}

/// A new, empty pool on the existing file `path`: format means format, so
/// the superblock is zeroed first (an all-zero superblock makes open
/// format).
fn format_image(path: &Path, dbs: u32) -> PoolMetadata<FileDevice> {
    use std::os::unix::fs::FileExt;
    let name = path.display();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| die(format!("{name}: {e}")));
    if f.metadata().map(|m| m.len()).unwrap_or(0) < 2 * 4096 {
        die(format!("{name}: too small for metadata"));
    }
    f.write_all_at(&[0u8; 4096], 0)
        .unwrap_or_else(|e| die(format!("{name}: {e}")));
    let dev = FileDevice::open(path, true).unwrap_or_else(|e| die(format!("{name}: {e}")));
    PoolMetadata::open_with_cache(dev, Some(dbs), true, CACHE_BLOCKS)
        .unwrap_or_else(|e| die(format!("{name}: format failed: {e:?}")))
}

fn format(image: &Path, data_blocks: u64, dbs: u32) {
    let mut pmd = format_image(image, dbs);
    pmd.resize_data_dev(data_blocks)
        .unwrap_or_else(|e| die(format!("resize: {e:?}")));
    pmd.commit()
        .unwrap_or_else(|e| die(format!("commit: {e:?}")));
}

fn apply(image: &Path, script: Option<&Path>) {
    let reader: Box<dyn BufRead> = match script {
        Some(s) if s != Path::new("-") => Box::new(std::io::BufReader::new(
            std::fs::File::open(s).unwrap_or_else(|e| die(format!("{}: {e}", s.display()))),
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let mut pmd = open_image(image);
    for (n, line) in reader.lines().enumerate() {
        let lineno = n + 1;
        let line = line.unwrap_or_else(|e| die(format!("line {lineno}: {e}")));
        let op = match parse_line(&line) {
            Ok(Some(op)) => op,
            Ok(None) => continue,
            Err(e) => die(format!("line {lineno}: {e}")),
        };
        if let Err(e) = execute(&mut pmd, &op) {
            // Nothing after the last commit is kept.
            die(format!("line {lineno}: {op}: {}", describe(e)));
        }
    }
    pmd.close()
        .unwrap_or_else(|e| die(format!("final commit: {e:?}")));
}

fn describe(e: Error) -> String {
    match e {
        Error::Exists => "device already exists".into(),
        Error::NoSuchDevice => "no such device".into(),
        Error::NotMapped => "block not mapped".into(),
        Error::NoDataSpace => "no free data blocks".into(),
        Error::TransactionIdMismatch => "transaction id mismatch".into(),
        Error::MetadataSnapExists => "metadata snapshot already held".into(),
        Error::NoMetadataSnap => "no metadata snapshot held".into(),
        Error::CannotShrink => "cannot shrink the data device".into(),
        Error::Invalid => "invalid argument".into(),
        e => format!("{e:?}"),
    }
}

fn dump(image: &Path, output: Option<&Path>) {
    let mut pmd = open_read_only(image);
    let out: Box<dyn Write> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p).unwrap_or_else(|e| die(format!("{}: {e}", p.display()))),
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = XmlWriter::new(BufWriter::with_capacity(1 << 20, out));
    if let Err(e) = dump_to(&mut pmd, &mut w) {
        die(e)
    }
    let mut out = w.into_inner();
    out.flush().unwrap_or_else(|e| die(e));
}

fn restore(input: &Path, output: &Path) {
    let text =
        std::fs::read_to_string(input).unwrap_or_else(|e| die(format!("{}: {e}", input.display())));
    let xml = dm_thin_host::thin_xml::parse(&text)
        .unwrap_or_else(|e| die(format!("{}: {e}", input.display())));
    let dbs = data_block_size(&xml.superblock.data_block_size.to_string())
        .unwrap_or_else(|e| die(format!("{}: data_block_size {e}", input.display())));
    let mut pmd = format_image(output, dbs);
    dm_thin_host::thin_restore::restore(&mut pmd, &xml)
        .unwrap_or_else(|e| die(format!("{}: {e}", input.display())));
    pmd.close()
        .unwrap_or_else(|e| die(format!("final commit: {e:?}")));
}

fn check(image: &Path, quiet: bool) {
    let dev = FileDevice::open_read_only(image)
        .unwrap_or_else(|e| die(format!("{}: {e}", image.display())));
    let stage = |s: &str| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    match dm_thin_host::thin_check::check(dev, CACHE_BLOCKS, stage) {
        Ok(s) => {
            if !quiet {
                println!("TRANSACTION_ID={}", s.transaction_id);
                println!("METADATA_FREE_BLOCKS={}", s.metadata_free_blocks);
            }
        }
        Err(errors) => {
            if !quiet {
                for e in errors {
                    eprintln!("{e}");
                }
            }
            exit(1)
        }
    }
}

fn ls(image: &Path, fields: Option<&[Field]>, no_headers: bool) {
    let mut pmd = open_read_only(image);
    let table = dm_thin_host::thin_ls::ls(&mut pmd, fields.unwrap_or(&DEFAULT_FIELDS), !no_headers)
        .unwrap_or_else(|e| die(e));
    print!("{table}");
}

/// Writes the whole pool as `thin_dump` XML.
fn dump_to<W: Write>(
    pmd: &mut PoolMetadata<FileDevice>,
    w: &mut XmlWriter<W>,
) -> Result<(), String> {
    let info = pmd.superblock_info();
    let sb = XmlSuperblock {
        // thin_dump 0.9.0 prints an empty uuid whatever the superblock
        // holds (checked with a thin_restore'd uuid), and so does this.
        uuid: String::new(),
        time: info.time as u64,
        transaction: info.trans_id,
        flags: info.flags,
        version: info.version,
        data_block_size: info.data_block_size,
        nr_data_blocks: pmd.data_dev_size().map_err(|e| format!("{e:?}"))?,
        metadata_snap: if info.held_root != 0 {
            Some(info.held_root)
        } else {
            None
        },
    };
    w.begin_superblock(&sb).map_err(|e| e.to_string())?;
    let mut devs = Vec::new();
    pmd.walk_devices(|id, d| {
        devs.push((id, *d));
        Ok(())
    })
    .map_err(|e| format!("devices tree: {e:?}"))?;
    for (id, d) in devs {
        let xd = XmlDevice {
            dev_id: id,
            mapped_blocks: d.mapped_blocks,
            transaction: d.transaction_id,
            creation_time: d.creation_time as u64,
            snap_time: d.snapshotted_time as u64,
            mappings: Vec::new(),
        };
        w.begin_device(&xd).map_err(|e| e.to_string())?;
        let mut io_err = None;
        pmd.walk_mappings(id, |v, bt| {
            if let Err(e) = w.mapping(v, bt.block, bt.time) {
                io_err = Some(e);
                return Err(Error::Invalid);
            }
            Ok(())
        })
        .map_err(|e| match io_err.take() {
            Some(io) => io.to_string(),
            None => format!("mapping tree of device {id}: {e:?}"),
        })?;
        w.end_device().map_err(|e| e.to_string())?;
    }
    w.end_superblock().map_err(|e| e.to_string())
}

fn rate(label: &str, n: u64, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    println!(
        "{label:<40} {n:>9} ops in {s:>7.3} s = {:>12.0} ops/s",
        n as f64 / s
    );
}

fn bench() {
    const N: u64 = 1_000_000;
    const DATA_BLOCKS: u64 = 4_000_000;
    let dev = RamDisk::new(262_144); // 1 GiB of metadata
    let mut pmd = PoolMetadata::open_with_cache(dev, Some(128), true, CACHE_BLOCKS).unwrap();
    pmd.resize_data_dev(DATA_BLOCKS).unwrap();
    pmd.create_thin(0).unwrap();
    pmd.commit().unwrap();

    // Random virtual blocks, each mapped to its own data block.
    let mut vblocks: Vec<u64> = (0..N).map(|i| i * 3).collect();
    Rng::new(0x9e37_79b9_7f4a_7c15).shuffle(&mut vblocks);
    let t = Instant::now();
    for &v in &vblocks {
        let b = pmd.alloc_data_block().unwrap().unwrap();
        pmd.insert_block(0, v, b).unwrap();
    }
    pmd.commit().unwrap();
    rate("alloc + insert (random vblocks) + commit", N, t);

    let t = Instant::now();
    let mut found = 0u64;
    for &v in &vblocks {
        if pmd.find_block(0, v, true).unwrap().is_some() {
            found += 1;
        }
    }
    assert_eq!(found, N);
    rate("lookup (random vblocks)", N, t);

    let t = Instant::now();
    let mut found = 0u64;
    for v in 0..N {
        if pmd.find_block(0, v * 3, false).unwrap().is_some() {
            found += 1;
        }
    }
    assert_eq!(found, N);
    rate("non-blocking lookup (ascending vblocks)", N, t);

    // map()'s lookups, through `&self` as under the pool's shared lock:
    // the same random lookups on 1 thread, then split over 2.
    let shared = |threads: usize| {
        let pmd = &pmd;
        let t = Instant::now();
        let found: u64 = std::thread::scope(|s| {
            let per = vblocks.len().div_ceil(threads);
            let workers: Vec<_> = vblocks
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .filter(|&&v| pmd.find_block_shared(0, v).unwrap().is_some())
                            .count() as u64
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(found, N);
        let s = t.elapsed().as_secs_f64();
        rate(&format!("shared lookup, {threads} thread(s) (random)"), N, t);
        N as f64 / s
    };
    let one = shared(1);
    let two = shared(2);
    println!("{:<40} {:>9.2}x", "shared lookup, 2 threads / 1", two / one);

    // Snapshot, then break sharing on 100,000 blocks of it.
    pmd.create_snap(1, 0).unwrap();
    pmd.commit().unwrap();
    let t = Instant::now();
    let n_break = 100_000u64;
    for &v in vblocks.iter().take(n_break as usize) {
        let r = pmd.find_block(1, v, true).unwrap().unwrap();
        assert!(r.shared);
        let b = pmd.alloc_data_block().unwrap().unwrap();
        pmd.insert_block(1, v, b).unwrap();
    }
    pmd.commit().unwrap();
    rate("break sharing on a fresh snapshot", n_break, t);

    // Remove a 1,000,000-mapping range (the origin's whole range).
    let t = Instant::now();
    let removed = pmd.remove_range(0, 0, 3 * N).unwrap();
    pmd.commit().unwrap();
    assert_eq!(removed, N);
    rate("remove_range of 1,000,000 mappings", N, t);

    // Delete a 1,000,000-mapping thin (the snapshot).
    let t = Instant::now();
    pmd.delete_thin_device(1).unwrap();
    pmd.commit().unwrap();
    rate("delete a 1,000,000-mapping thin", N, t);
}

/// Writes a hostile-metadata corpus (`dm_thin_host::hostile::corpus`):
/// `NNN-kind.img` files (metadata images of a 1 MiB device, trailing zero
/// blocks left out; data device 1024 blocks of 64 KiB) and `MANIFEST`, one
/// line per image: name, `loop` or `-` (a btree loops: C hangs), the host
/// engine's outcome, the mutations.
fn hostile_corpus(dir: &Path, seed: u64, count: usize) {
    use dm_thin_host::hostile::corpus;
    std::fs::create_dir_all(dir).unwrap_or_else(|e| die(format!("{}: {e}", dir.display())));
    let mut manifest = String::new();
    let images = corpus(seed, count);
    for img in &images {
        let path = dir.join(format!("{}.img", img.name));
        std::fs::write(&path, &img.bytes)
            .unwrap_or_else(|e| die(format!("{}: {e}", path.display())));
        manifest.push_str(&format!(
            "{} {} {} {}\n",
            img.name,
            if img.cycle { "loop" } else { "-" },
            img.host.replace(' ', ""),
            img.mutations.replace('\n', " ")
        ));
    }
    std::fs::write(dir.join("MANIFEST"), manifest).unwrap_or_else(|e| die(e));
    eprintln!(
        "thinmeta: {} hostile images (seed {seed}) in {}",
        images.len(),
        dir.display()
    );
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Format {
            image,
            data_blocks,
            data_block_size,
        } => format(&image, data_blocks, data_block_size),
        Cmd::Apply { image, script } => apply(&image, script.as_deref()),
        Cmd::Dump { image, output, .. } => dump(&image, output.as_deref()),
        Cmd::Restore { input, output } => restore(&input, &output),
        Cmd::Check { image, quiet } => check(&image, quiet),
        Cmd::Ls {
            image,
            fields,
            no_headers,
        } => ls(&image, fields.as_ref().map(|f| f.0.as_slice()), no_headers),
        Cmd::Bench => bench(),
        Cmd::HostileCorpus { dir, seed, count } => hostile_corpus(&dir, seed, count),
    }
}
