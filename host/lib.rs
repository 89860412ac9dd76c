//! Host build of the kernel module's pure layers.
//!
//! The very same files that `dm_thin_rs.ko` compiles (`rust/pdata/` and
//! `rust/thin/metadata/`, with the table-line parser and the in-flight
//! epochs) are mounted here so they can be tested with
//! `cargo test` and driven by the `thinmeta` tool. Nothing here is compiled
//! into the module.

#[path = "../rust/pdata/mod.rs"]
pub mod pdata;

pub mod ramdisk;

#[path = "../rust/thin/metadata/mod.rs"]
pub mod metadata;

#[path = "../rust/thin/table_line.rs"]
pub mod table_line;

#[path = "../rust/thin/io_epochs.rs"]
pub mod io_epochs;

#[path = "../rust/thin/per_cpu.rs"]
pub mod per_cpu;


pub mod file_device;
pub mod hostile;
pub mod log_writes;
pub mod oracle;
pub mod rng;
pub mod thin_check;
pub mod thin_ls;
pub mod thin_model;
pub mod thin_ops;
pub mod thin_restore;
pub mod thin_script;
pub mod thin_xml;
