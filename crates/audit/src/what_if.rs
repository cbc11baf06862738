//! What-if: with the per-level probabilities stored, every fusion rule and weighting can be replayed
//! offline. At the quantity the run actually selected (k rows), which setting would have given the most
//! accurate k pseudo-labels? Candidates: both fusion modes over a grid of weights on the simplex of the
//! available levels, plus each level alone. Comparing at equal quantity is what makes settings comparable:
//! any rule can look precise by selecting fewer rows.

use exchange::fusion::{Fusion, FusionMode, Threshold};
use rayon::prelude::*;
use serde::Serialize;

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
    let mut candidates: Vec<Candidate> = settings
        .iter()
        .map(|f| {
            let rows = score_rows(e, &logs, f);
            let (quality, kth) = top_k(rows, k);
            Candidate {
                fusion: describe(f),
                mode: f.mode.name().to_string(),
                weights: f.weights,
                quality,
                threshold: kth,
                delta: quality.zip(base.quality).map(|(q, b)| q - b),
            }
        })
        .collect();
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

/// (confidence, correct) of every row under fusion `f`, without materialising the fused matrix: one
/// parallel pass, the row's fused distribution on the stack. Same arithmetic as [`crate::fusion::fuse`].
fn score_rows(e: &EpochData, logs: &[Option<Vec<f32>>; 3], f: &Fusion) -> Vec<(f32, bool)> {
    let c = e.classes;
    let taus = [1.0, f.tau_text, f.tau_ins];
    let active: Vec<(usize, f32)> =
        (0..3).filter(|&l| e.levels[l].is_some() && f.weights[l] != 0.0).map(|l| (l, f.weights[l])).collect();
    let wsum: f32 = active.iter().map(|a| a.1).sum();
    (0..e.n)
        .into_par_iter()
        .map(|i| {
            let mut row = [0f32; 64];
            let row = &mut row[..c];
            for &(l, w) in &active {
                let src = match f.mode {
                    FusionMode::MeanProb => e.levels[l].as_deref(),
                    FusionMode::WeightedLogit => logs[l].as_deref(),
                }
                .expect("active levels are present");
                let scale = if f.mode == FusionMode::WeightedLogit { w * taus[l] } else { w };
                for (o, x) in row.iter_mut().zip(&src[i * c..(i + 1) * c]) {
                    *o += scale * x;
                }
            }
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for (j, v) in row.iter().enumerate() {
                if *v > best {
                    best = *v;
                    arg = j;
                }
            }
            let conf = match f.mode {
                FusionMode::MeanProb => best / wsum.max(1e-12),
                FusionMode::WeightedLogit => 1.0 / row.iter().map(|v| (v - best).exp()).sum::<f32>(),
            };
            (conf, arg == e.truth[i] as usize)
        })
        .collect()
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
