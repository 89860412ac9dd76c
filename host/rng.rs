//! The one random source of the host code: `rand`'s ChaCha8 generator,
//! seeded from a printable `u64`.
//!
//! Every seeded choice the tools and tests make (`thinmeta hostile-corpus
//! --seed`, `logreplay points --seed`, the random operation sequences of
//! the model tests, the pdata tests' workloads) draws from [`Rng`], so a
//! seed replays the same run on every machine: ChaCha8's output for a seed
//! is fixed by its specification, not by the `rand` version. Property tests
//! draw from proptest's strategies instead, which shrink.

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// A seeded generator; cheap to create, not for cryptography.
#[derive(Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A uniform 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        rand::Rng::next_u64(&mut self.0)
    }

    /// Uniform in `0..n`; 0 if `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.random_range(0..n)
        }
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0.random_range(lo..=hi)
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Puts `v` in a uniformly random order.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        v.shuffle(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_values_and_bounds_kept() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let va: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..64).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..64).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        assert!((0..1000).all(|_| a.below(10) < 10 && (3..=5).contains(&a.range(3, 5))));
        assert_eq!(a.below(0), 0);
    }
}
