//! Random operation sequences for the model tests, as raw choices resolved
//! against the model's state.
//!
//! An [`OpChoice`] is a few plain numbers; [`OpChoice::resolve`] turns it
//! into an [`Op`] that is mostly valid for the current [`Model`] state (an
//! existing device, a mapped block to remove, the current transaction id).
//! The numbers come from the seeded [`Rng`] ([`random_op`]) or from a
//! proptest strategy: a choice stays meaningful whatever the ops before it
//! became, so proptest can drop ops from a failing sequence and shrink each
//! number toward zero, and the resolved sequence is still a runnable
//! `thinmeta apply` script. Zero is the simplest value of every field: the
//! first existing device, block 0, no extra length.

use crate::rng::Rng;
use crate::thin_model::Model;
use crate::thin_script::Op;

/// Shape of a random operation sequence.
#[derive(Debug, Clone, Copy)]
pub struct OpMix {
    /// Device ids are drawn from `0..max_devices`.
    pub max_devices: u64,
    /// Virtual blocks are drawn from `0..vblocks`.
    pub vblocks: u64,
    /// Percent of operations that are `commit`.
    pub commit_pct: u64,
    /// Percent of operations that are `abort`.
    pub abort_pct: u64,
    /// Whether whole devices get deleted (off: trees grow deep).
    pub deletes: bool,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix {
            max_devices: 6,
            vblocks: 4000,
            commit_pct: 2,
            abort_pct: 1,
            deletes: true,
        }
    }
}

/// One operation as raw numbers, before it meets a model state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpChoice {
    /// Which operation, in per mille (`0..1000`): commits, then aborts (by
    /// the mix's percentages), then the others by fixed weights.
    pub kind: u16,
    /// Which device: an existing one 19 times in 20.
    pub dev: u64,
    /// First operand (a virtual block, a device id, a size step).
    pub x: u64,
    /// Second operand (a data block, a length).
    pub y: u64,
}

impl OpChoice {
    /// A choice drawn from `rng`.
    pub fn random(rng: &mut Rng) -> Self {
        OpChoice {
            kind: rng.below(1000) as u16,
            dev: rng.next_u64(),
            x: rng.next_u64(),
            y: rng.next_u64(),
        }
    }

    /// The operation this choice makes in the model's current state.
    pub fn resolve(&self, m: &Model, mix: &OpMix) -> Op {
        let s = &m.cur;
        let max_devices = mix.max_devices.max(1);
        let vblocks = mix.vblocks.max(1);
        let dev = {
            let existing = s.devices.len() as u64;
            let (pick, i) = (self.dev % 20, self.dev / 20);
            if existing > 0 && pick != 19 {
                *s.devices.keys().nth((i % existing) as usize).unwrap()
            } else {
                i % max_devices
            }
        };
        let commit = mix.commit_pct * 10;
        let abort = commit + mix.abort_pct * 10;
        let kind = u64::from(self.kind % 1000);
        if kind < commit {
            return Op::Commit;
        }
        if kind < abort {
            return Op::Abort;
        }
        // The rest of the range, stretched over 0..1000.
        let k = (kind - abort) * 1000 / (1000 - abort).max(1);
        let (x, y) = (self.x, self.y);
        match k {
            0..=469 | 780..=879 => Op::Provision(dev, x % vblocks),
            470..=649 => Op::Insert(dev, x % vblocks, y % (s.nr_data_blocks.max(1) + 2)),
            650..=779 => {
                // Mostly a mapped block (one of the device's first 64).
                let v = match s.devices.get(&dev) {
                    Some(d) if !d.mappings.is_empty() && y % 10 != 9 => {
                        let n = (d.mappings.len() as u64).min(64);
                        *d.mappings.keys().nth((x % n) as usize).unwrap()
                    }
                    _ => x % vblocks,
                };
                Op::Remove(dev, v)
            }
            880..=894 => {
                let b = x % vblocks;
                let len = if y % 10 == 9 {
                    (y / 10) % vblocks
                } else {
                    (y / 10) % 64
                };
                Op::RemoveRange(dev, b, b + len)
            }
            895..=912 => Op::CreateThin(x % max_devices),
            913..=930 => Op::CreateSnap(x % max_devices, dev),
            931..=934 if mix.deletes => Op::Delete(dev),
            931..=934 => Op::Provision(dev, x % vblocks),
            935..=954 => {
                let old = if x % 5 != 4 { s.trans_id } else { (x / 5) % 5 };
                Op::SetTransactionId(old, s.trans_id + 1)
            }
            955..=969 => Op::ReserveMetadataSnap,
            970..=984 => Op::ReleaseMetadataSnap,
            _ => Op::ResizeData(s.nr_data_blocks + x % 64),
        }
    }
}

/// A random operation, mostly valid for the model's current state.
pub fn random_op(rng: &mut Rng, m: &Model, mix: &OpMix) -> Op {
    OpChoice::random(rng).resolve(m, mix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_choice_is_the_simplest_op() {
        let m = Model::new(100);
        let none = OpMix {
            commit_pct: 0,
            abort_pct: 0,
            ..OpMix::default()
        };
        assert_eq!(OpChoice::default().resolve(&m, &none), Op::Provision(0, 0));
        assert_eq!(
            OpChoice::default().resolve(&m, &OpMix::default()),
            Op::Commit
        );
        let top = OpChoice {
            kind: 999,
            x: 5,
            ..OpChoice::default()
        };
        assert_eq!(top.resolve(&m, &none), Op::ResizeData(105));
    }
}
