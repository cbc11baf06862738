//! What-if: with the per-level probabilities stored, every fusion rule and weighting can be replayed
//! offline. At the quantity the run actually selected (k rows), which setting would have given the most
//! accurate k pseudo-labels? Candidates: both fusion modes over a grid of weights on the simplex of the
//! available levels, plus each level alone. Comparing at equal quantity is what makes settings comparable:
//! any rule can look precise by selecting fewer rows.

use exchange::fusion::{Fusion, FusionMode, Threshold};
use rayon::prelude::*;
use serde::Serialize;
use wide::f32x8;

use crate::analysis::{fused_in_force, Override};
use crate::fusion::describe;
use crate::load::EpochData;
use crate::metrics::decide;
use crate::metrics::quality::{selection, top_k};

#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub fusion: String,
    pub mode: String,
    pub weights: [f32; 3],
    /// Accuracy of its k most confident pseudo-labels.
    pub quality: Option<f64>,
    /// The threshold that would select those k rows under this setting.
    pub threshold: f32,
    pub delta: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    pub epoch: u32,
    pub setting: String,
    pub threshold: Threshold,
    pub selected: usize,
    pub quantity: f64,
    pub quality: Option<f64>,
    /// Best first.
    pub candidates: Vec<Candidate>,
}

const LANES: usize = 8;

/// Weight vectors on the simplex with the given step over the levels in `present`.
fn grid(present: [bool; 3], step: f32) -> Vec<[f32; 3]> {
    let m = (1.0 / step).round() as i32;
    let mut out = Vec::new();
    for a in 0..=m {
        for b in 0..=(m - a) {
            let w = [a as f32 / m as f32, b as f32 / m as f32, (m - a - b) as f32 / m as f32];
            if (0..3).all(|l| present[l] || w[l] == 0.0) && w.iter().any(|x| *x > 0.0) {
                out.push(w);
            }
        }
    }
    out
}

pub fn what_if(e: &EpochData, over: &Override, step: f32) -> WhatIf {
    let c = e.classes;
    let threshold = over.threshold.map_or_else(|| e.threshold.clone(), Threshold::Global);
    let (fused_p, fusion) = fused_in_force(e, over);
    let base = selection(&decide(&fused_p, c), &e.truth, &threshold);
    let k = base.selected;
    let present = [e.levels[0].is_some(), e.levels[1].is_some(), e.levels[2].is_some()];
    let mut settings: Vec<Fusion> = Vec::new();
    for mode in [FusionMode::MeanProb, FusionMode::WeightedLogit] {
        for w in grid(present, step) {
            settings.push(Fusion { mode, weights: w, tau_text: e.fusion.tau_text, tau_ins: e.fusion.tau_ins });
        }
    }
    // Weighted-logit needs log p per level: computed once, not per candidate.
    let logs: [Option<Vec<f32>>; 3] =
        std::array::from_fn(|l| e.levels[l].as_ref().map(|p| p.par_iter().map(|x| x.max(1e-30).ln()).collect()));
    // The candidates in parallel, dealt round-robin to one job per thread (the cheap mean-prob and the costlier
    // weighted-logit candidates spread evenly), each job reusing its two row buffers: fresh megabyte buffers
    // per candidate cost more in page faults than the scoring. Back in grid order before the ranking.
    let jobs = rayon::current_num_threads().clamp(1, settings.len().max(1));
    let mut scored: Vec<(usize, Candidate)> = (0..jobs)
        .into_par_iter()
        .flat_map_iter(|job| {
            let (mut conf, mut correct) = (Vec::with_capacity(e.n), Vec::with_capacity(e.n));
            settings
                .iter()
                .enumerate()
                .skip(job)
                .step_by(jobs)
                .map(|(i, f)| {
                    score_rows(e, &logs, f, &mut conf, &mut correct);
                    let (quality, kth) = top_k(&conf, &correct, k);
                    let candidate = Candidate {
                        fusion: describe(f),
                        mode: f.mode.name().to_string(),
                        weights: f.weights,
                        quality,
                        threshold: kth,
                        delta: quality.zip(base.quality).map(|(q, b)| q - b),
                    };
                    (i, candidate)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    scored.sort_by_key(|(i, _)| *i);
    let mut candidates: Vec<Candidate> = scored.into_iter().map(|(_, c)| c).collect();
    candidates.par_sort_by(|a, b| b.quality.unwrap_or(-1.0).total_cmp(&a.quality.unwrap_or(-1.0)));
    WhatIf {
        epoch: e.epoch,
        setting: describe(&fusion),
        threshold,
        selected: k,
        quantity: base.quantity,
        quality: base.quality,
        candidates,
    }
}

/// Confidence and correctness of every row under fusion `f`, into `conf` and `correct`, without materialising
/// the fused matrix: a row's (at most 8) classes are one 8-lane vector, padded with lanes that never win.
/// Same arithmetic as [`crate::fusion::fuse`] but for the exponential of weighted-logit's softmax, a
/// polynomial good to about one unit in the last place (`wide`).
fn score_rows(e: &EpochData, logs: &[Option<Vec<f32>>; 3], f: &Fusion, conf: &mut Vec<f32>, correct: &mut Vec<bool>) {
    let c = e.classes;
    assert!(c <= LANES, "what-if handles at most {LANES} classes (the expressions), got {c}");
    let taus = [1.0, f.tau_text, f.tau_ins];
    let logit = f.mode == FusionMode::WeightedLogit;
    let active: Vec<(&[f32], f32)> = (0..3)
        .filter(|&l| e.levels[l].is_some() && f.weights[l] != 0.0)
        .map(|l| {
            let src = if logit { logs[l].as_deref() } else { e.levels[l].as_deref() };
            (src.expect("active levels are present"), if logit { f.weights[l] * taus[l] } else { f.weights[l] })
        })
        .collect();
    let wsum: f32 = (0..3).filter(|&l| e.levels[l].is_some()).map(|l| f.weights[l]).sum();
    // Padding lanes: probability 0 (mean-prob) or log-probability −∞ (weighted-logit): never the maximum.
    let pad = if logit { f32::NEG_INFINITY } else { 0.0 };
    let rows = Rows { active: &active, truth: &e.truth, pad, logit, wsum };
    conf.clear();
    correct.clear();
    // The class count as a constant, so a row's copy into its lanes and its argmax compile to straight code.
    match c {
        8 => rows.score::<8>(conf, correct),
        7 => rows.score::<7>(conf, correct),
        6 => rows.score::<6>(conf, correct),
        5 => rows.score::<5>(conf, correct),
        4 => rows.score::<4>(conf, correct),
        3 => rows.score::<3>(conf, correct),
        2 => rows.score::<2>(conf, correct),
        _ => rows.score::<1>(conf, correct),
    }
}

/// What [`score_rows`] reads, per row.
struct Rows<'a> {
    /// Each fused level's row-major values (probabilities, or log-probabilities) and its weight.
    active: &'a [(&'a [f32], f32)],
    /// One per row.
    truth: &'a [u8],
    pad: f32,
    logit: bool,
    wsum: f32,
}

impl Rows<'_> {
    fn score<const C: usize>(&self, conf: &mut Vec<f32>, correct: &mut Vec<bool>) {
        for (i, &truth) in self.truth.iter().enumerate() {
            let mut acc = f32x8::ZERO;
            for &(src, w) in self.active {
                let mut lanes = [self.pad; LANES];
                lanes[..C].copy_from_slice(&src[i * C..(i + 1) * C]);
                acc = f32x8::from(lanes).mul_add(f32x8::splat(w), acc);
            }
            let row = acc.to_array();
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for (j, v) in row[..C].iter().enumerate() {
                if *v > best {
                    best = *v;
                    arg = j;
                }
            }
            conf.push(if self.logit {
                1.0 / (acc - f32x8::splat(best)).exp().reduce_add()
            } else {
                best / self.wsum.max(1e-12)
            });
            correct.push(arg == truth as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_respects_missing_levels() {
        let g = grid([true, true, true], 0.5);
        assert_eq!(g.len(), 6);
        let g = grid([true, false, true], 0.5);
        assert!(g.iter().all(|w| w[1] == 0.0));
        assert_eq!(g.len(), 3);
    }
}
