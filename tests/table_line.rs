//! Table-line parsing: the acceptance rules and error strings of dm-thin.c.

use dm_thin_host::table_line::{self, msg, PoolFeatures};

fn features(words: &[&str]) -> Result<PoolFeatures, &'static std::ffi::CStr> {
    table_line::parse_pool_features(words.iter().map(|w| w.as_bytes()))
}

#[test]
fn no_feature_words_gives_defaults() {
    let pf = features(&[]).unwrap();
    assert_eq!(pf, PoolFeatures::default());
    assert!(pf.zero_new_blocks && pf.discard_enabled && pf.discard_passdown);
    assert!(!pf.read_only && !pf.error_if_no_space);
    assert_eq!(pf.words().count(), 0);
}

#[test]
fn every_feature_and_case_insensitive() {
    let pf = features(&[
        "5",
        "skip_block_zeroing",
        "IGNORE_DISCARD",
        "No_Discard_Passdown",
        "read_only",
        "error_if_no_space",
    ]);
    // five is more than the four allowed
    assert_eq!(pf, Err(msg::FEATURE_COUNT));
    let pf = features(&[
        "4",
        "skip_block_zeroing",
        "IGNORE_DISCARD",
        "No_Discard_Passdown",
        "error_if_no_space",
    ])
    .unwrap();
    assert!(
        !pf.zero_new_blocks && !pf.discard_enabled && !pf.discard_passdown && pf.error_if_no_space
    );
    assert_eq!(
        pf.words().collect::<Vec<_>>(),
        [
            "skip_block_zeroing",
            "ignore_discard",
            "no_discard_passdown",
            "error_if_no_space"
        ]
    );
    assert!(features(&["1", "read_only"]).unwrap().read_only);
}

#[test]
fn bad_feature_groups() {
    for words in [
        &["x"][..],
        &["-1"],
        &["2", "read_only"],
        &["1"],
        &["+1", "read_only"],
        &["1x", "read_only"],
    ] {
        assert_eq!(features(words), Err(msg::FEATURE_COUNT), "{words:?}");
    }
    assert_eq!(features(&["1", "bogus"]), Err(msg::UNKNOWN_FEATURE));
    assert_eq!(
        features(&["2", "read_only", "bogus"]),
        Err(msg::UNKNOWN_FEATURE)
    );
    // Words after the counted group are ignored, as in C.
    assert!(features(&["1", "read_only", "anything"]).unwrap().read_only);
    // The count may be zero.
    assert_eq!(features(&["0", "junk"]).unwrap(), PoolFeatures::default());
}

#[test]
fn block_sizes() {
    for ok in [128u32, 256, 1024, 2097152, 2096128] {
        assert_eq!(
            table_line::parse_block_size(ok.to_string().as_bytes()),
            Ok(ok)
        );
    }
    assert_eq!(table_line::parse_block_size(b"+128"), Ok(128));
    assert_eq!(table_line::parse_block_size(b"128\n"), Ok(128));
    for bad in [
        "0",
        "64",
        "100",
        "129",
        "192",
        "2097280",
        "4194304",
        "abc",
        "-128",
        "12x",
        "",
        "128\n\n",
        "18446744073709551616",
    ] {
        assert_eq!(
            table_line::parse_block_size(bad.as_bytes()),
            Err(msg::BLOCK_SIZE),
            "{bad:?}"
        );
    }
}

#[test]
fn low_water_marks_and_dev_ids() {
    assert_eq!(table_line::parse_low_water(b"0"), Ok(0));
    assert_eq!(
        table_line::parse_low_water(b"18446744073709551615"),
        Ok(u64::MAX)
    );
    for bad in ["abc", "-1", "1.5", "18446744073709551616", ""] {
        assert_eq!(
            table_line::parse_low_water(bad.as_bytes()),
            Err(msg::LOW_WATER),
            "{bad:?}"
        );
    }
    assert_eq!(table_line::read_dev_id(b"0"), Some(0));
    assert_eq!(table_line::read_dev_id(b"16777215"), Some(16777215));
    assert_eq!(table_line::read_dev_id(b"16777216"), None);
    assert_eq!(table_line::read_dev_id(b"-1"), None);
    assert_eq!(table_line::read_dev_id(b"x"), None);
}
