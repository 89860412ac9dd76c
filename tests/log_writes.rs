//! The dm-log-writes reader and replayer, on logs written in the kernel's
//! layout by `LogWriter`, and the layout itself against the C structs of
//! `drivers/md/dm-log-writes.c`.

use dm_thin_host::log_writes::*;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `struct log_write_super { __le64 magic; __le64 version; __le64 nr_entries;
/// __le32 sectorsize; }` and `struct log_write_entry { __le64 sector;
/// __le64 nr_sectors; __le64 flags; __le64 data_len; }`, byte by byte.
#[test]
fn layout_matches_the_kernel_structs() {
    let s = Super {
        magic: MAGIC,
        version: VERSION,
        nr_entries: 0x0102_0304_0506_0708,
        sectorsize: 4096,
    };
    let b = s.pack();
    assert_eq!(
        b.len(),
        32,
        "sizeof(struct log_write_super) with its tail padding"
    );
    assert_eq!(
        &b[0..8],
        &[0x72, 0x68, 0x73, 0x77, 0x66, 0x73, 0x6a, 0x00],
        "magic 0x6a736677736872 LE"
    );
    assert_eq!(&b[8..16], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[24..28], &[0, 0x10, 0, 0]);
    assert_eq!(Super::unpack(&b), s);

    let e = RawEntry {
        sector: 0x11,
        nr_sectors: 0x2233,
        flags: FLUSH | FUA | METADATA,
        data_len: 5,
    };
    let b = e.pack();
    assert_eq!(b.len(), 32);
    assert_eq!(&b[0..8], &[0x11, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[8..16], &[0x33, 0x22, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        &b[16..24],
        &[0x13, 0, 0, 0, 0, 0, 0, 0],
        "LOG_FLUSH_FLAG|LOG_FUA_FLAG|LOG_METADATA_FLAG"
    );
    assert_eq!(&b[24..32], &[5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(RawEntry::unpack(&b), e);
    assert_eq!((FLUSH, FUA, DISCARD, MARK, METADATA), (1, 2, 4, 8, 16));
}

/// The byte offsets `log_writes_kthread` gives entries: one sector each,
/// plus the write's data, nothing for a discard's range.
#[test]
fn entries_sit_where_the_kernel_puts_them() {
    let mut w = LogWriter::new(512);
    w.write(8, &pattern(1, 1024), 0); // entry 0 at 512, data at 1024..2048
    w.discard(100, 64); // entry 1 at 2048, no data
    w.flush(); // entry 2 at 2560
    w.mark("m1"); // entry 3 at 3072
    let bytes = w.bytes.clone();
    let e = |off: usize| RawEntry::unpack(&bytes[off..off + 32]);
    assert_eq!(
        e(512),
        RawEntry {
            sector: 8,
            nr_sectors: 2,
            flags: 0,
            data_len: 0
        }
    );
    assert_eq!(&bytes[1024..2048], &pattern(1, 1024)[..]);
    assert_eq!(
        e(2048),
        RawEntry {
            sector: 100,
            nr_sectors: 64,
            flags: DISCARD,
            data_len: 0
        }
    );
    assert_eq!(e(2560).flags, FLUSH);
    assert_eq!(
        e(3072),
        RawEntry {
            sector: 0,
            nr_sectors: 0,
            flags: MARK,
            data_len: 2
        }
    );
    assert_eq!(&bytes[3072 + 32..3072 + 34], b"m1");
    assert_eq!(
        Super::unpack(&bytes[..32]).nr_entries,
        4,
        "a mark rewrites the superblock"
    );

    let log = Log::open(&bytes[..]).unwrap();
    assert_eq!(log.entries.len(), 4);
    assert_eq!(log.entries[0].data_offset, 1024);
    assert_eq!(log.entries[3].mark.as_deref(), Some("m1"));
    assert_eq!(log.find_mark("m1"), Some(3));
    assert_eq!(log.entries[1].flag_names(), "DISCARD");
}

/// Replaying a log rebuilds what a model of the device holds after each
/// entry; from..to in steps equals one replay; discards zero or are skipped.
#[test]
fn replay_rebuilds_every_prefix() {
    for ss in [512u32, 4096] {
        let s = ss as usize;
        let dev_len = 64 * s;
        let mut w = LogWriter::new(ss);
        let mut model = vec![0u8; dev_len];
        let mut states = vec![model.clone()];
        let mut rnd = 12345u64;
        let mut next = |n: u64| {
            rnd = rnd
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rnd >> 33) % n
        };
        for i in 0..200u32 {
            match next(10) {
                0 => {
                    let (sec, n) = (next(60), 1 + next(4));
                    w.discard(sec, n);
                    model[sec as usize * s..(sec + n) as usize * s].fill(0);
                }
                1 => w.flush(),
                2 => w.mark(&format!("m{i}")),
                _ => {
                    let (sec, n) = (next(60), 1 + next(4));
                    let data = pattern(i as u8, n as usize * s);
                    let flags = [0, FUA, FLUSH, METADATA][next(4) as usize];
                    w.write(sec, &data, flags);
                    model[sec as usize * s..(sec + n) as usize * s].copy_from_slice(&data);
                }
            }
            states.push(model.clone());
        }
        let bytes = w.bytes.clone();
        let log = Log::open(&bytes[..]).unwrap();
        assert_eq!(log.entries.len(), 200);
        // Every prefix from scratch, and forward in uneven steps on one target.
        let mut step_target = vec![0u8; dev_len];
        let mut at = 0u64;
        for to in 0..=200u64 {
            let mut t = vec![0u8; dev_len];
            log.replay(&mut t, 0, to, true).unwrap();
            assert_eq!(
                t, states[to as usize],
                "sectorsize {ss}, state after {to} entries"
            );
            if to % 7 == 0 || to == 200 {
                log.replay(&mut step_target, at, to, true).unwrap();
                at = to;
                assert_eq!(step_target, states[to as usize], "forward replay to {to}");
            }
        }
        // Up to a mark: its state is the one after the mark entry.
        let m = log.marks().nth(2).unwrap();
        let mut t = vec![0u8; dev_len];
        log.replay(&mut t, 0, m.index + 1, true).unwrap();
        assert_eq!(t, states[m.index as usize + 1]);
        // Discards skipped: only the writes land.
        let mut t = vec![0u8; dev_len];
        log.replay(&mut t, 0, 200, false).unwrap();
        let mut only_writes = vec![0u8; dev_len];
        for e in &log.entries {
            if !e.is(DISCARD) && e.raw.nr_sectors > 0 {
                let (o, n) = (e.raw.sector as usize * s, e.raw.nr_sectors as usize * s);
                only_writes[o..o + n]
                    .copy_from_slice(&bytes[e.data_offset as usize..e.data_offset as usize + n]);
            }
        }
        assert_eq!(t, only_writes);
        assert!(matches!(
            log.replay(&mut t, 0, 201, true),
            Err(LogError::PastEnd { .. })
        ));
    }
}

#[test]
fn bad_logs_are_refused() {
    let mut w = LogWriter::new(512);
    w.write(0, &pattern(3, 2048), FUA);
    w.mark("end");
    let good = w.bytes.clone();
    assert!(Log::open(&good[..]).is_ok());
    // Cut inside the write's data, and inside the mark's sector.
    assert!(matches!(
        Log::open(&good[..1500]),
        Err(LogError::Truncated(0))
    ));
    assert!(matches!(
        Log::open(&good[..good.len() - 1]),
        Err(LogError::Truncated(1))
    ));
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(matches!(Log::open(&bad[..]), Err(LogError::BadMagic(_))));
    let mut bad = good.clone();
    bad[8] = 2;
    assert!(matches!(Log::open(&bad[..]), Err(LogError::BadVersion(2))));
    let mut bad = good.clone();
    bad[24..28].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        Log::open(&bad[..]),
        Err(LogError::BadSectorSize(1000))
    ));
    // A mark whose text would run past its sector; a count past the end.
    let mut bad = good.clone();
    let mark_at = 512 + 512 + 2048;
    bad[mark_at + 24..mark_at + 32].copy_from_slice(&600u64.to_le_bytes());
    assert!(matches!(Log::open(&bad[..]), Err(LogError::BadMark(1))));
    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Log::open(&bad[..]), Err(LogError::Truncated(2))));
    // A nr_sectors that overflows the byte offset.
    let mut bad = good.clone();
    bad[512 + 8..512 + 16].copy_from_slice(&(u64::MAX / 256).to_le_bytes());
    assert!(matches!(Log::open(&bad[..]), Err(LogError::Truncated(0))));
}

#[test]
fn long_marks_are_cut_as_the_kernel_cuts_them() {
    let mut w = LogWriter::new(512);
    let long = "x".repeat(600);
    w.mark(&long);
    let log_bytes = w.bytes.clone();
    let log = Log::open(&log_bytes[..]).unwrap();
    assert_eq!(
        log.entries[0].mark.as_deref().map(str::len),
        Some(512 - 32 - 1)
    );
}

#[test]
fn chunk_hash_tells_contents_apart() {
    let a = pattern(1, 65536);
    let mut b = a.clone();
    b[40000] ^= 0x80;
    assert_ne!(chunk_hash(&a), chunk_hash(&b));
    assert_eq!(chunk_hash(&a), chunk_hash(&a.clone()));
    assert_ne!(chunk_hash(&[0u8; 4096]), chunk_hash(&[0u8; 8192]));
}

/// The logreplay binary on a metadata/data log pair written here: marks,
/// replay to a mark, and crash points that stay inside their intervals and
/// move forward on both logs.
#[test]
fn logreplay_cli_points_and_replay() {
    let dir = std::env::temp_dir().join(format!("logreplay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut meta, mut data) = (LogWriter::new(512), LogWriter::new(512));
    for step in 0..5u8 {
        for i in 0..(3 + step as u64) {
            meta.write(i * 8, &pattern(step, 4096), METADATA);
            data.write(i * 128, &pattern(step + 100, 8192), 0);
        }
        meta.flush();
        data.write(1000, &pattern(step, 512), FUA);
        meta.mark(&format!("s{step}"));
        data.mark(&format!("s{step}"));
    }
    let (mp, dp) = (dir.join("meta.log"), dir.join("data.log"));
    std::fs::write(&mp, &meta.bytes).unwrap();
    std::fs::write(&dp, &data.bytes).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_logreplay"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logreplay {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (m, d) = (mp.to_str().unwrap(), dp.to_str().unwrap());
    let marks = run(&["marks", m]);
    assert_eq!(marks.lines().count(), 5);
    assert!(marks.starts_with("4 s0\n"), "{marks}");

    // Replay to a mark through the CLI equals the in-memory replay.
    let target = dir.join("target");
    std::fs::write(&target, vec![0u8; 64 * 512]).unwrap();
    run(&["replay", m, target.to_str().unwrap(), "--to-mark", "s2"]);
    let log = Log::open(&meta.bytes[..]).unwrap();
    let mut want = vec![0u8; 64 * 512];
    log.replay(&mut want, 0, log.find_mark("s2").unwrap() + 1, true)
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), want);

    let mlog = Log::open(&meta.bytes[..]).unwrap();
    let dlog = Log::open(&data.bytes[..]).unwrap();
    let mm: Vec<u64> = mlog.marks().map(|e| e.index).collect();
    let dm: Vec<u64> = dlog.marks().map(|e| e.index).collect();
    for pick in [["--between", "7"], ["--every", "1"]] {
        let pts = run(&["points", m, d, "--seed", "42", pick[0], pick[1]]);
        let (mut last_m, mut last_d, mut nmarks, mut nbetween) = (0u64, 0u64, 0, 0);
        for line in pts.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (mt, dt, k): (u64, u64, usize);
            if f[0] == "mark" {
                k = f[1][1..].parse().unwrap();
                (mt, dt) = (f[2].parse().unwrap(), f[3].parse().unwrap());
                assert_eq!((mt, dt), (mm[k] + 1, dm[k] + 1), "{line}");
                nmarks += 1;
            } else {
                k = f[1][1..].parse().unwrap();
                assert_eq!(f[2], format!("s{}", k + 1));
                (mt, dt) = (f[3].parse().unwrap(), f[4].parse().unwrap());
                assert!(mt >= mm[k] + 2 && mt <= mm[k + 1], "{line}");
                assert!(dt > dm[k] && dt <= dm[k + 1], "{line}");
                nbetween += 1;
            }
            assert!(mt >= last_m && dt >= last_d, "points move forward: {line}");
            (last_m, last_d) = (mt, dt);
        }
        assert_eq!(nmarks, 5);
        if pick[0] == "--every" {
            // Every metadata entry strictly between two marks.
            let want: u64 = (0..4).map(|k| mm[k + 1] - (mm[k] + 1)).sum();
            assert_eq!(nbetween, want);
        } else {
            assert!(nbetween > 0 && nbetween <= 7);
        }
    }

    // The forms tests/vm/scenarios/67-crash-replay.sh uses.
    let t = target.to_str().unwrap();
    let info = run(&["info", m]);
    assert!(info.starts_with(&format!("sectorsize 512 entries {} ", mlog.entries.len())), "{info}");
    let (from, to) = (log.find_mark("s2").unwrap() + 1, log.find_mark("s4").unwrap() + 1);
    run(&["replay", m, t, "--from", &from.to_string(), "--to", &to.to_string()]);
    let mut want = vec![0u8; 64 * 512];
    log.replay(&mut want, 0, to, true).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), want);
    let hashes = run(&["hash", t, "--chunk-kib", "4"]);
    let expect: String = want
        .chunks(4096)
        .enumerate()
        .map(|(i, c)| format!("{i} {:016x}\n", chunk_hash(c)))
        .collect();
    assert_eq!(hashes, expect);
    // Bad arguments exit with 2.
    for bad in [
        vec!["replay", m, t],
        vec!["points", m, d, "--seed", "1", "--every", "1", "--between", "2"],
        vec!["points", m, d, "--seed", "1", "--every", "0"],
        vec!["hash", t],
    ] {
        let code = std::process::Command::new(env!("CARGO_BIN_EXE_logreplay"))
            .args(&bad)
            .output()
            .unwrap()
            .status
            .code();
        assert_eq!(code, Some(2), "{bad:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
