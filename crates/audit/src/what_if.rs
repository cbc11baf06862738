//! What-if: with the per-level probabilities stored, every fusion rule and weighting can be replayed
//! offline. At the quantity the run actually selected (k rows), which setting would have given the most
//! accurate k pseudo-labels? Candidates: both fusion modes over a grid of weights on the simplex of the
//! available levels, plus each level alone. Comparing at equal quantity is what makes settings comparable:
//! any rule can look precise by selecting fewer rows.

use exchange::schema::run_info::{Fusion, FusionMode};
use rayon::prelude::*;
use serde::Serialize;

use crate::analysis::{fused_in_force, levels_of, Override};
use crate::fusion::{describe, fuse};
use crate::load::EpochData;
use crate::metrics::decide;
use crate::metrics::quality::{selection, top_k_accuracy};

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
    pub threshold: f32,
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
    let threshold = over.threshold.unwrap_or(e.threshold);
    let (fused_p, fusion) = fused_in_force(e, over);
    let base = selection(&decide(&fused_p, c), &e.truth, threshold);
    let k = base.selected;
    let present = [e.levels[0].is_some(), e.levels[1].is_some(), e.levels[2].is_some()];
    let mut settings: Vec<Fusion> = Vec::new();
    for mode in [FusionMode::MeanProb, FusionMode::WeightedLogit] {
        for w in grid(present, step) {
            settings.push(Fusion { mode, weights: w, tau_text: e.fusion.tau_text, tau_ins: e.fusion.tau_ins });
        }
    }
    let levels = levels_of(e);
    // Candidates run one after another with each fusion parallel inside; memory stays at one n × C array.
    let mut candidates: Vec<Candidate> = settings
        .iter()
        .map(|f| {
            let d = decide(&fuse(levels, c, f), c);
            let (quality, kth) = top_k_accuracy(&d, &e.truth, k);
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
