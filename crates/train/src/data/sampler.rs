//! Seeded samplers: each walks a fresh permutation of its set every pass, so a run's batches depend only on
//! the seed, the stream (labeled / unlabeled) and the position, which is all the checkpoint has to store.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SamplerState {
    pub(crate) pass: u64,
    pub(crate) pos: usize,
}

pub(crate) struct Sampler {
    n: usize,
    seed: u64,
    stream: u64,
    state: SamplerState,
    perm: Vec<usize>,
}

impl Sampler {
    pub(crate) fn new(n: usize, seed: u64, stream: u64) -> Self {
        let mut s = Sampler { n, seed, stream, state: SamplerState { pass: 0, pos: 0 }, perm: Vec::new() };
        s.shuffle();
        s
    }

    fn shuffle(&mut self) {
        let mix = self.seed
            ^ self.stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.state.pass.wrapping_mul(0xD1B5_4A32_D192_ED03);
        self.perm = (0..self.n).collect();
        self.perm.shuffle(&mut ChaCha8Rng::seed_from_u64(mix));
    }

    /// The next `b` indices; a pass that runs out continues into a freshly shuffled one.
    pub(crate) fn next_batch(&mut self, b: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(b);
        while out.len() < b && self.n > 0 {
            if self.state.pos == self.n {
                self.state = SamplerState { pass: self.state.pass + 1, pos: 0 };
                self.shuffle();
            }
            out.push(self.perm[self.state.pos]);
            self.state.pos += 1;
        }
        out
    }

    pub(crate) fn state(&self) -> SamplerState {
        self.state
    }

    pub(crate) fn restore(&mut self, state: SamplerState) {
        self.state = state;
        self.shuffle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_permutations_and_restore_continues_exactly() {
        let mut s = Sampler::new(10, 7, 1);
        let mut first: Vec<usize> = s.next_batch(10);
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        let a = s.next_batch(4);
        let saved = s.state();
        let rest: Vec<Vec<usize>> = (0..5).map(|_| s.next_batch(4)).collect();
        let mut t = Sampler::new(10, 7, 1);
        t.restore(saved);
        assert_eq!((0..5).map(|_| t.next_batch(4)).collect::<Vec<_>>(), rest);
        assert_ne!(Sampler::new(10, 7, 2).next_batch(10), Sampler::new(10, 7, 1).next_batch(10));
        assert_eq!(a.len(), 4);
    }
}
