//! Oracle tests: images written by this code must pass `thin_check` 0.9.0
//! and 1.1.0, `thin_dump` must show exactly the model's mappings and equal
//! `thinmeta dump`; images written by `thin_restore` must be read, modified
//! and still pass. The tools are required: a missing one fails the test.

use std::path::Path;
use std::process::Command;

use dm_thin_host::file_device::FileDevice;
use dm_thin_host::metadata::PoolMetadata;
use dm_thin_host::oracle::{
    assert_checks, scratch, thin_dump, thin_dump_with, thin_restore, zero_image,
};
use dm_thin_host::rng::Rng;
use dm_thin_host::thin_model::{check_against, dump_matches, state_from_dump, Model, Outcome};
use dm_thin_host::thin_ops::{random_op, OpMix};
use dm_thin_host::thin_script::execute;
use dm_thin_host::thin_xml::{parse, render, XmlDevice, XmlDump, XmlSuperblock};

const THINMETA: &str = env!("CARGO_BIN_EXE_thinmeta");

fn thinmeta(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut c = Command::new(THINMETA);
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("run thinmeta");
    {
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            si.write_all(s.as_bytes()).unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// thin_dump of `image` equals `thinmeta dump` byte for byte; returns it.
fn dumps_agree(image: &Path) -> String {
    let theirs = thin_dump(image);
    let (ok, ours, err) = thinmeta(&["dump", image.to_str().unwrap()], None);
    assert!(ok, "thinmeta dump failed: {err}");
    if theirs != ours {
        let line = theirs.lines().zip(ours.lines()).position(|(a, b)| a != b);
        panic!(
            "thinmeta dump differs from thin_dump (first differing line {line:?}, {} vs {} bytes)",
            ours.len(),
            theirs.len()
        );
    }
    theirs
}

fn open(image: &Path) -> PoolMetadata<FileDevice> {
    PoolMetadata::open_with_cache(
        FileDevice::open(image, false).unwrap(),
        None,
        false,
        1 << 15,
    )
    .unwrap()
}

/// Random operations on a file image, checked with the tools at every
/// checkpoint (commit, close, check, dump, reopen).
fn model_on_image(
    image: &Path,
    mut model: Model,
    seed: u64,
    rounds: usize,
    ops_per_round: u64,
    mix: OpMix,
) {
    let mut rng = Rng::new(seed);
    let mut check_rng = Rng::new(seed + 1);
    for round in 0..rounds {
        let mut pmd = open(image);
        for i in 0..ops_per_round {
            let op = random_op(&mut rng, &model, &mix);
            let outcome = match execute(&mut pmd, &op) {
                Ok(b) => Outcome::Ok(b),
                Err(_) => Outcome::Err,
            };
            model
                .apply(&op, outcome)
                .unwrap_or_else(|e| panic!("round {round} op {i}: {e}"));
        }
        check_against(&mut pmd, &model.cur, &mut check_rng)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        pmd.close().unwrap();
        drop(pmd.into_device());
        model.committed = model.cur.clone();
        assert_checks(image);
        let xml = dumps_agree(image);
        let d = parse(&xml).unwrap();
        dump_matches(&d, &model.cur)
            .unwrap_or_else(|e| panic!("round {round}: thin_dump vs model: {e}"));
    }
}

#[test]
fn thinmeta_format_passes_checks() {
    let dir = scratch("format");
    let img = dir.join("meta.img");
    zero_image(&img, 1024);
    let (ok, _, err) = thinmeta(
        &[
            "format",
            img.to_str().unwrap(),
            "--data-blocks",
            "5000",
            "--data-block-size",
            "128",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_checks(&img);
    let d = parse(&dumps_agree(&img)).unwrap();
    assert_eq!(d.superblock.nr_data_blocks, 5000);
    assert_eq!(d.superblock.data_block_size, 128);
    assert!(d.devices.is_empty());
}

#[test]
fn model_images_pass_checks_and_dump_matches() {
    let dir = scratch("model-images");
    let img = dir.join("meta.img");
    zero_image(&img, 8192);
    let (ok, _, err) = thinmeta(
        &[
            "format",
            img.to_str().unwrap(),
            "--data-blocks",
            "30000",
            "--data-block-size",
            "128",
        ],
        None,
    );
    assert!(ok, "{err}");
    let mix = OpMix {
        max_devices: 6,
        vblocks: 20_000,
        commit_pct: 1,
        abort_pct: 1,
        deletes: true,
    };
    model_on_image(&img, Model::new(30_000), 11, 6, 4000, mix);
}

#[test]
fn apply_script_errors_name_the_line_and_keep_commits() {
    let dir = scratch("apply");
    let img = dir.join("meta.img");
    zero_image(&img, 1024);
    let p = img.to_str().unwrap();
    assert!(
        thinmeta(
            &[
                "format",
                p,
                "--data-blocks",
                "1000",
                "--data-block-size",
                "128"
            ],
            None
        )
        .0
    );
    let script = "# a comment\n\ncreate_thin 1\ninsert 1 0 10\nprovision 1 7\ncommit\ncreate_snap 2 1\nprovision 2 0\ncommit\n";
    let (ok, _, err) = thinmeta(&["apply", p], Some(script));
    assert!(ok, "{err}");
    let before = dumps_agree(&img);
    // A failing op after uncommitted work: message names line 4, nothing kept.
    let (ok, _, err) = thinmeta(
        &["apply", p],
        Some("create_thin 3\ninsert 3 5 6\n\ndelete 9\ncommit\n"),
    );
    assert!(!ok);
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(dumps_agree(&img), before);
    // A bad line.
    let (ok, _, err) = thinmeta(&["apply", p], Some("commit\nfrobnicate 1\n"));
    assert!(!ok);
    assert!(err.contains("line 2"), "{err}");
    let (ok, _, err) = thinmeta(&["apply", p], Some("insert 1 2\n"));
    assert!(!ok && err.contains("line 1"), "{err}");
    assert_eq!(dumps_agree(&img), before);
    // Metadata snapshot: reserve shows in the dump, release removes it.
    let (ok, _, err) = thinmeta(
        &["apply", p],
        Some("reserve_metadata_snap\nprovision 1 9\ncommit\n"),
    );
    assert!(ok, "{err}");
    assert_checks(&img);
    let d = parse(&dumps_agree(&img)).unwrap();
    assert_eq!(
        d.devices
            .iter()
            .find(|x| x.dev_id == 1)
            .unwrap()
            .mappings
            .len(),
        3
    );
    // The snapshot shows the pool as it was at reserve time.
    let m = thin_dump_with(&img, &["-m"]);
    assert!(m.ok, "thin_dump -m: {}", m.stderr);
    let snap = parse(&m.stdout).unwrap();
    assert_eq!(
        snap.devices
            .iter()
            .find(|x| x.dev_id == 1)
            .unwrap()
            .mappings
            .len(),
        2
    );
    let (ok, _, err) = thinmeta(
        &["apply", p],
        Some("release_metadata_snap\nset_transaction_id 0 5\n"),
    );
    assert!(ok, "{err}");
    assert_checks(&img);
    let d = parse(&dumps_agree(&img)).unwrap();
    assert!(
        !thin_dump_with(&img, &["-m"]).ok,
        "metadata snapshot still there"
    );
    assert_eq!(d.superblock.transaction, 5);
    let dev2 = d.devices.iter().find(|x| x.dev_id == 2).unwrap();
    assert_eq!(dev2.mappings.len(), 2);
}

/// A restore-able XML: several devices, snapshots sharing blocks, runs and
/// single mappings, more than 100,000 mappings in all.
fn generated_xml(rng: &mut Rng) -> XmlDump {
    let nr_data_blocks = 400_000;
    let mut next_data = 0u64;
    let mut devices = Vec::new();
    // Origin: 70,000 mappings in runs, made at times 0..3.
    let mut origin = XmlDevice {
        dev_id: 1,
        transaction: 0,
        creation_time: 0,
        snap_time: 4,
        ..Default::default()
    };
    let mut v = 0u64;
    while origin.mappings.len() < 70_000 {
        v += rng.below(40);
        let run = 1 + rng.below(20);
        let t = rng.below(4) as u32;
        for k in 0..run {
            origin.mappings.push((v + k, next_data, t));
            next_data += 1;
        }
        v += run;
        next_data += rng.below(3);
    }
    // Snapshot of it at time 4: shares everything, then some blocks broken.
    let mut snap = origin.clone();
    snap.dev_id = 7;
    snap.transaction = 3;
    snap.creation_time = 4;
    snap.snap_time = 4;
    for m in snap.mappings.iter_mut() {
        if rng.chance(10) {
            *m = (m.0, next_data, 5);
            next_data += 1;
        }
    }
    // A snapshot of the snapshot (time 5), untouched.
    let mut snap2 = snap.clone();
    snap2.dev_id = 8;
    snap2.creation_time = 5;
    snap2.snap_time = 5;
    snap.snap_time = 5;
    // An unrelated thin with 40,000 single-block mappings, and an empty one.
    let mut other = XmlDevice {
        dev_id: 20,
        transaction: 9,
        creation_time: 5,
        snap_time: 5,
        ..Default::default()
    };
    let mut v = 1_000_000u64;
    while other.mappings.len() < 40_000 {
        v += 1 + rng.below(3);
        other.mappings.push((v, next_data, 5));
        next_data += 2;
    }
    let empty = XmlDevice {
        dev_id: 21,
        transaction: 9,
        creation_time: 5,
        snap_time: 5,
        ..Default::default()
    };
    devices.push(origin);
    devices.push(snap);
    devices.push(snap2);
    devices.push(other);
    devices.push(empty);
    for d in devices.iter_mut() {
        d.mapped_blocks = d.mappings.len() as u64;
    }
    assert!(next_data < nr_data_blocks);
    XmlDump {
        superblock: XmlSuperblock {
            // Stored by thin_restore, never printed by thin_dump 0.9.0.
            uuid: "generated".into(),
            time: 5,
            transaction: 9,
            version: 2,
            data_block_size: 128,
            nr_data_blocks,
            ..Default::default()
        },
        devices,
    }
}

#[test]
fn restored_images_are_read_modified_and_pass() {
    let dir = scratch("restore");
    let xml_path = dir.join("in.xml");
    let img = dir.join("meta.img");
    let mut rng = Rng::new(77);
    let xml = generated_xml(&mut rng);
    let total: usize = xml.devices.iter().map(|d| d.mappings.len()).sum();
    assert!(total > 100_000);
    std::fs::write(&xml_path, render(&xml)).unwrap();
    zero_image(&img, 16384);
    thin_restore(&xml_path, &img);
    assert_checks(&img);
    // Our dump of their image equals theirs, and shows what we wrote.
    let dumped = parse(&dumps_agree(&img)).unwrap();
    assert_eq!(dumped.devices, xml.devices);
    // Read every mapping through the API.
    let state = state_from_dump(&xml);
    let mut pmd = open(&img);
    check_against(&mut pmd, &state, &mut rng).unwrap();
    drop(pmd);
    // Modify with random operations (snapshots, provisioning that breaks
    // sharing, removals, deletes...), checking with the tools each round.
    let model = Model {
        cur: state.clone(),
        committed: state,
    };
    let mix = OpMix {
        max_devices: 24,
        vblocks: 1_200_000,
        commit_pct: 1,
        abort_pct: 1,
        deletes: true,
    };
    model_on_image(&img, model, 5, 3, 3000, mix);
}

#[test]
fn needs_check_flag_shows_in_dumps() {
    let dir = scratch("needs-check");
    let img = dir.join("meta.img");
    zero_image(&img, 1024);
    let p = img.to_str().unwrap();
    assert!(
        thinmeta(
            &[
                "format",
                p,
                "--data-blocks",
                "1000",
                "--data-block-size",
                "1024"
            ],
            None
        )
        .0
    );
    assert!(thinmeta(&["apply", p], Some("create_thin 4\nprovision 4 1\n")).0);
    let mut pmd = open(&img);
    pmd.set_needs_check().unwrap();
    pmd.close().unwrap();
    drop(pmd.into_device());
    let d = parse(&dumps_agree(&img)).unwrap();
    assert_eq!(d.superblock.flags, 1);
    assert_eq!(d.superblock.data_block_size, 1024);
    let mut pmd = open(&img);
    assert!(pmd.needs_check());
    pmd.clear_needs_check().unwrap();
    pmd.close().unwrap();
    drop(pmd.into_device());
    assert_checks(&img);
    assert_eq!(parse(&dumps_agree(&img)).unwrap().superblock.flags, 0);
}

#[test]
fn big_script_through_the_cli() {
    // 400,000 provisions in random order, a snapshot that breaks sharing
    // on some of them, a range removal: thin_dump equals thinmeta dump and
    // shows every mapping, both checkers pass.
    let dir = scratch("big-script");
    let img = dir.join("meta.img");
    zero_image(&img, 32_768);
    let p = img.to_str().unwrap();
    assert!(
        thinmeta(
            &[
                "format",
                p,
                "--data-blocks",
                "1000000",
                "--data-block-size",
                "128"
            ],
            None
        )
        .0
    );
    let mut rng = Rng::new(31);
    let mut vs: Vec<u64> = (0..480_000).collect();
    for i in (1..vs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        vs.swap(i, j);
    }
    vs.truncate(400_000);
    let mut script = String::from("create_thin 0\n");
    for v in &vs {
        script.push_str(&format!("provision 0 {v}\n"));
    }
    script.push_str("commit\ncreate_snap 1 0\n");
    for v in &vs[..20_000] {
        script.push_str(&format!("provision 1 {v}\n"));
    }
    script.push_str("remove_range 0 1000 5000\n");
    let path = dir.join("script.txt");
    std::fs::write(&path, script).unwrap();
    let (ok, _, err) = thinmeta(&["apply", p, path.to_str().unwrap()], None);
    assert!(ok, "{err}");
    assert_checks(&img);
    let d = parse(&dumps_agree(&img)).unwrap();
    let dev0 = d.devices.iter().find(|x| x.dev_id == 0).unwrap();
    let dev1 = d.devices.iter().find(|x| x.dev_id == 1).unwrap();
    let removed = vs.iter().filter(|&&v| (1000..5000).contains(&v)).count();
    assert_eq!(dev0.mappings.len(), 400_000 - removed);
    assert_eq!(dev1.mappings.len(), 400_000);
    assert_eq!(dev0.mapped_blocks, dev0.mappings.len() as u64);
    // The snapshot's broken-sharing blocks are new (time 1); the rest are
    // the origin's (time 0).
    let new = dev1.mappings.iter().filter(|m| m.2 == 1).count();
    assert_eq!(new, 20_000);
}
