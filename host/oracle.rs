//! The thin-provisioning-tools binaries used as oracles by the tests:
//! Debian's 0.9.0 (`/usr/sbin/thin_*`) and 1.1.0 (`pdata_tools`, extracted
//! under the setup cache, `$DM_THIN_RS_CACHE` or else
//! `$HOME/.cache/dm-thin-rs`, as `scripts/common.sh` chooses it, in
//! `tools/tpt-1.1.0`). A missing tool is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `thin_check` 0.9.0.
pub const THIN_CHECK_09: &str = "/usr/sbin/thin_check";
/// `thin_dump` 0.9.0.
pub const THIN_DUMP_09: &str = "/usr/sbin/thin_dump";
/// `thin_restore` 0.9.0.
pub const THIN_RESTORE_09: &str = "/usr/sbin/thin_restore";
/// `thin_ls` 0.9.0.
pub const THIN_LS_09: &str = "/usr/sbin/thin_ls";

/// Path of the 1.1.0 `pdata_tools` multi-call binary.
pub fn pdata_tools_11() -> PathBuf {
    let cache = match std::env::var_os("DM_THIN_RS_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/dm-thin-rs")
        }
    };
    cache.join("tools/tpt-1.1.0/usr/sbin/pdata_tools")
}

fn require(p: &Path) {
    assert!(
        p.exists(),
        "oracle tool {} is missing: run scripts/setup-packages.sh and scripts/setup-tools.sh",
        p.display()
    );
}

/// Output of a tool run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

fn run(mut c: Command) -> Run {
    let o = c.output().expect("cannot run oracle tool");
    Run {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `thin_check` 0.9.0 on `image`.
pub fn thin_check_09(image: &Path) -> Run {
    require(Path::new(THIN_CHECK_09));
    let mut c = Command::new(THIN_CHECK_09);
    c.arg(image);
    run(c)
}

/// `pdata_tools thin_check` 1.1.0 on `image` (fails on leaked blocks).
pub fn thin_check_11(image: &Path) -> Run {
    let p = pdata_tools_11();
    require(&p);
    let mut c = Command::new(p);
    c.arg("thin_check").arg(image);
    run(c)
}

/// Both checkers must accept `image`; panics with their output otherwise.
pub fn assert_checks(image: &Path) {
    let a = thin_check_09(image);
    assert!(
        a.ok,
        "thin_check 0.9.0 failed on {}:\n{}{}",
        image.display(),
        a.stdout,
        a.stderr
    );
    let b = thin_check_11(image);
    assert!(
        b.ok,
        "thin_check 1.1.0 failed on {}:\n{}{}",
        image.display(),
        b.stdout,
        b.stderr
    );
}

/// `thin_dump` 0.9.0 of `image`, which must succeed.
pub fn thin_dump(image: &Path) -> String {
    require(Path::new(THIN_DUMP_09));
    let mut c = Command::new(THIN_DUMP_09);
    c.arg(image);
    let r = run(c);
    assert!(
        r.ok,
        "thin_dump failed on {}: {}",
        image.display(),
        r.stderr
    );
    r.stdout
}

/// `thin_dump` 0.9.0 with extra arguments (e.g. `-m` for the metadata
/// snapshot); the result of the run.
pub fn thin_dump_with(image: &Path, args: &[&str]) -> Run {
    require(Path::new(THIN_DUMP_09));
    let mut c = Command::new(THIN_DUMP_09);
    c.args(args).arg(image);
    run(c)
}

/// `thin_restore -i xml -o image` (0.9.0), which must succeed.
pub fn thin_restore(xml: &Path, image: &Path) {
    require(Path::new(THIN_RESTORE_09));
    let mut c = Command::new(THIN_RESTORE_09);
    c.arg("-i").arg(xml).arg("-o").arg(image);
    let r = run(c);
    assert!(r.ok, "thin_restore failed: {}{}", r.stdout, r.stderr);
}

/// `thin_ls` 0.9.0 with `args` on `image`; the result of the run.
pub fn thin_ls(image: &Path, args: &[&str]) -> Run {
    require(Path::new(THIN_LS_09));
    let mut c = Command::new(THIN_LS_09);
    c.args(args).arg(image);
    run(c)
}

/// A scratch directory under the cargo target dir, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dm-thin-rs-tests"));
    let d = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("cannot create scratch dir");
    d
}

/// A zero-filled image file of `nr_blocks` 4 KiB metadata blocks.
pub fn zero_image(path: &Path, nr_blocks: u64) {
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(nr_blocks * 4096).expect("size image");
}
