//! The thin-provisioning metadata: superblock, device details and the
//! two-level mapping tree, behind the API the targets call (`dm-thin-metadata.h`).
