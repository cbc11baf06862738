//! The bounded prefetch queue between the input pipeline and the training step. A producer thread draws each
//! step's indices from the two samplers, builds the weak and strong views on rayon threads and packs them into
//! one CPU tensor, at most `depth` steps ahead; the training thread only receives. A view depends on
//! (seed, step, stream, slot) alone, so the queue changes when work happens, never what a run computes. In a
//! data-parallel run every rank draws the same global batch and keeps its own contiguous share of it, each face
//! augmented as its slot in the global batch says: the ranks together see exactly the one-process batch.
//! This module must not touch the model or any device tensor.

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Tensor;

use super::augment::Img;
use super::sampler::{Sampler, SamplerState};
use super::views;

/// What one step consumes.
pub(crate) struct Batch {
    pub(crate) step: u64,
    /// Labeled slots (indices into the labeled set and the memory bank).
    pub(crate) labeled: Vec<usize>,
    /// Unlabeled indices (empty for supervised runs).
    pub(crate) unlabeled: Vec<usize>,
    /// `[labeled-weak; unlabeled-weak; unlabeled-strong]` on the CPU.
    pub(crate) x: Tensor,
    /// The samplers' positions after this step, for its checkpoint.
    pub(crate) labeled_state: SamplerState,
    pub(crate) unlabeled_state: SamplerState,
}

impl Batch {
    /// The same faces and views, as step `step`'s batch (replay).
    fn again(&self, step: u64) -> Batch {
        Batch {
            step,
            labeled: self.labeled.clone(),
            unlabeled: self.unlabeled.clone(),
            x: self.x.copy(),
            labeled_state: self.labeled_state,
            unlabeled_state: self.unlabeled_state,
        }
    }
}

/// The input side of a run: images, batch sizes and augmentation settings.
pub(crate) struct Plan<'a> {
    pub(crate) labeled: &'a [Img],
    pub(crate) unlabeled: &'a [Img],
    pub(crate) batch_labeled: usize,
    /// 0 for supervised runs: no unlabeled views are drawn.
    pub(crate) batch_unlabeled: usize,
    pub(crate) pad: usize,
    pub(crate) seed: u64,
    /// Threads of the augmentation pool (0: one per core).
    pub(crate) threads: usize,
    /// Which share of every global batch this process trains on.
    pub(crate) shard: Shard,
    /// N > 0: the first N batches, augmented once, are sent again and again (a benchmark of the step alone).
    pub(crate) replay: usize,
}

/// Rank `rank` of `world` takes the `rank`-th of `world` equal, contiguous slices of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) rank: usize,
    pub(crate) world: usize,
}

impl Shard {
    pub(crate) const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// This rank's slice of a global batch and the global slot of its first face (`world` divides the
    /// batch: the configuration is checked before training).
    fn of<'b>(&self, global: &'b [usize]) -> (&'b [usize], usize) {
        let n = global.len() / self.world;
        let start = self.rank * n;
        (&global[start..start + n], start)
    }
}

/// Deterministic per-sample augmentation RNG: the same (seed, step, stream, slot) gives the same view,
/// whichever thread computes it and whether or not the run was resumed.
fn rng(seed: u64, step: u64, stream: u64, i: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ stream.wrapping_mul(0xBF58_476D_1CE4_E5B9)
            ^ (i as u64).wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

impl Plan<'_> {
    /// The views of `images[idx]` for `stream` (1 labeled weak, 2 unlabeled weak, 3 unlabeled strong), the
    /// first of them at slot `first` of the global batch, rendered into `out` (one input's floats per face).
    fn views(&self, images: &[Img], idx: &[usize], first: usize, step: u64, stream: u64, out: &mut [f32]) {
        let (pad, seed) = (self.pad, self.seed);
        let per_face = out.len() / idx.len().max(1);
        out.par_chunks_mut(per_face.max(1)).zip(idx).enumerate().for_each(|(i, (out, &j))| {
            let mut r = rng(seed, step, stream, first + i);
            let img = &images[j];
            let plan = if stream == 3 {
                views::Plan::strong(img.w, img.h, pad, &mut r)
            } else {
                views::Plan::weak(pad, &mut r)
            };
            views::render(img, &plan, out);
        });
    }

    /// This rank's share of one step's batch; advances the samplers (by the whole global batch).
    pub(crate) fn batch(&self, step: u64, lab: &mut Sampler, unl: &mut Sampler) -> Batch {
        let global_l = lab.next_batch(self.batch_labeled);
        let global_u = if self.batch_unlabeled > 0 { unl.next_batch(self.batch_unlabeled) } else { Vec::new() };
        let ((li, lf), (ui, uf)) = (self.shard.of(&global_l), self.shard.of(&global_u));
        // Every face of a run has the same size and channels (the loader resizes them all).
        let (w, h) = self.labeled.first().or(self.unlabeled.first()).map_or((1, 1), |f| (f.w, f.h));
        let per_face = 3 * w * h;
        let faces = li.len() + 2 * ui.len();
        let mut flat = vec![0f32; faces * per_face];
        let (lab_out, rest) = flat.split_at_mut(li.len() * per_face);
        self.views(self.labeled, li, lf, step, 1, lab_out);
        if !ui.is_empty() {
            let (weak_out, strong_out) = rest.split_at_mut(ui.len() * per_face);
            self.views(self.unlabeled, ui, uf, step, 2, weak_out);
            self.views(self.unlabeled, ui, uf, step, 3, strong_out);
        }
        Batch {
            step,
            labeled: li.to_vec(),
            unlabeled: ui.to_vec(),
            x: Tensor::from_slice(&flat).view([faces as i64, 3, h as i64, w as i64]),
            labeled_state: lab.state(),
            unlabeled_state: unl.state(),
        }
    }
}

/// Starts the producer for `steps` inside `scope`. Dropping the receiver stops it at its next send.
pub(crate) fn spawn<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    plan: Plan<'env>,
    mut lab: Sampler,
    mut unl: Sampler,
    steps: Range<u64>,
    depth: usize,
) -> anyhow::Result<Receiver<Batch>> {
    let (tx, rx) = sync_channel(depth.max(1));
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(plan.threads).thread_name(|i| format!("augment-{i}")).build()?;
    std::thread::Builder::new().name("prefetch".into()).spawn_scoped(scope, move || {
        let mut replayed: Vec<Batch> = Vec::new();
        for (i, step) in steps.enumerate() {
            let b = if plan.replay > 0 && replayed.len() == plan.replay {
                replayed[i % plan.replay].again(step)
            } else {
                let b = pool.install(|| plan.batch(step, &mut lab, &mut unl));
                if plan.replay > 0 {
                    replayed.push(b.again(step));
                }
                b
            };
            if tx.send(b).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faces(n: usize) -> Vec<Img> {
        (0..n)
            .map(|k| Img { w: 8, h: 8, c: 1, data: (0..64).map(|p| ((p * 7 + k * 31) % 256) as u8).collect() })
            .collect()
    }

    /// 4 labeled + 6 unlabeled faces a step from `l` and `u`, seed 3.
    fn test_plan<'a>(l: &'a [Img], u: &'a [Img], threads: usize, shard: Shard) -> Plan<'a> {
        Plan {
            labeled: l,
            unlabeled: u,
            batch_labeled: 4,
            batch_unlabeled: 6,
            pad: 1,
            seed: 3,
            threads,
            shard,
            replay: 0,
        }
    }

    #[test]
    fn queued_batches_equal_inline_batches_and_stop_when_dropped() {
        let (l, u) = (faces(10), faces(30));
        let plan = || test_plan(&l, &u, 2, Shard::WHOLE);
        let (mut lab, mut unl) = (Sampler::new(10, 3, 1), Sampler::new(30, 3, 2));
        let inline: Vec<Batch> = (5..12).map(|s| plan().batch(s, &mut lab, &mut unl)).collect();
        std::thread::scope(|scope| {
            let rx = spawn(scope, plan(), Sampler::new(10, 3, 1), Sampler::new(30, 3, 2), 5..1000, 2).unwrap();
            for want in &inline {
                let got = rx.recv().unwrap();
                assert_eq!((got.step, &got.labeled, &got.unlabeled), (want.step, &want.labeled, &want.unlabeled));
                assert_eq!(got.x.size(), vec![16, 3, 8, 8]);
                assert!(got.x.equal(&want.x), "step {}", want.step);
                assert_eq!((got.labeled_state, got.unlabeled_state), (want.labeled_state, want.unlabeled_state));
            }
            // dropping the receiver ends the producer (the scope would hang otherwise)
        });
    }

    #[test]
    fn two_shards_together_are_the_whole_batch_row_for_row() {
        let (l, u) = (faces(10), faces(30));
        let batch =
            |shard| test_plan(&l, &u, 1, shard).batch(7, &mut Sampler::new(10, 3, 1), &mut Sampler::new(30, 3, 2));
        let whole = batch(Shard::WHOLE);
        let parts = [batch(Shard { rank: 0, world: 2 }), batch(Shard { rank: 1, world: 2 })];
        assert_eq!([parts[0].labeled.clone(), parts[1].labeled.clone()].concat(), whole.labeled);
        assert_eq!([parts[0].unlabeled.clone(), parts[1].unlabeled.clone()].concat(), whole.unlabeled);
        // [labeled; weak; strong] per rank: rows 0-1 | 2-4 | 5-7 of 8; the whole batch has 4 | 6 | 6.
        let rows = |b: &Batch, at: i64, n: i64| b.x.narrow(0, at, n);
        for (stream_at_whole, stream_at_part, n) in [(0, 0, 2), (4, 2, 3), (10, 5, 3)] {
            for (r, p) in parts.iter().enumerate() {
                let at = stream_at_whole + r as i64 * n;
                assert!(rows(p, stream_at_part, n).equal(&rows(&whole, at, n)), "rank {r}, rows from {at}");
            }
        }
        assert_eq!(parts[1].labeled_state, whole.labeled_state);
    }

    #[test]
    fn replay_sends_the_first_batches_again_under_new_step_numbers() {
        let (l, u) = (faces(10), faces(30));
        std::thread::scope(|scope| {
            let plan = Plan { replay: 2, ..test_plan(&l, &u, 1, Shard::WHOLE) };
            let rx = spawn(scope, plan, Sampler::new(10, 3, 1), Sampler::new(30, 3, 2), 4..9, 1).unwrap();
            let got: Vec<Batch> = rx.iter().collect();
            assert_eq!(got.iter().map(|b| b.step).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
            for (i, b) in got.iter().enumerate().skip(2) {
                let first = &got[i % 2];
                assert!(b.x.equal(&first.x) && b.labeled == first.labeled, "step {}", b.step);
            }
            assert!(!got[0].x.equal(&got[1].x));
        });
    }
}
