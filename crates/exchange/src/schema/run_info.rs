//! `artifacts/runs/<run>/run.json`: what a training run was, as far as other stages need to know — its
//! inputs (shards, split), class list, pseudo-label threshold and fusion rule. train writes it when a run
//! starts; audit reads it to find the ground truth and to recompute fusions. The full resolved training
//! config lives beside it in `config.toml` and is train's own business.
//!
//! Each pseudo-label file also records the fusion that was *in effect at that epoch* (it changes at the
//! instance warm-up) as JSON under the metadata key [`FUSION_KEY`], and the threshold under
//! [`THRESHOLD_KEY`]; those win over `run.json`'s values for that file.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const RUN_INFO_FILE: &str = "run.json";
pub const PSEUDO_LABEL_DIR: &str = "pseudo_labels";
pub const FUSION_KEY: &str = "sitfer.fusion";
pub const THRESHOLD_KEY: &str = "sitfer.threshold";
pub const RUN_KEY: &str = "sitfer.run";

/// How the three levels are fused into the pseudo-label distribution (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusionMode {
    /// `p = (w_sem p_sem + w_text p_text + w_ins p_ins) / Σw` (the paper).
    MeanProb,
    /// `p = softmax(w_sem z + w_text s_text + w_ins s_ins)` on raw scores (the released code).
    WeightedLogit,
}

impl FusionMode {
    pub fn name(self) -> &'static str {
        match self {
            FusionMode::MeanProb => "mean-prob",
            FusionMode::WeightedLogit => "weighted-logit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mean-prob" => Some(FusionMode::MeanProb),
            "weighted-logit" => Some(FusionMode::WeightedLogit),
            _ => None,
        }
    }
}

/// A fusion rule with its weights (semantic, text, instance) and the level temperatures, which
/// weighted-logit fusion needs to recover raw scores from stored probabilities: `log p_text = s_text/τ_t + c`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    pub mode: FusionMode,
    pub weights: [f32; 3],
    pub tau_text: f32,
    pub tau_ins: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run: String,
    pub preset: String,
    pub dataset: String,
    /// Shard folder the run trained from (as given to train; relative paths are relative to where train ran).
    pub shards: String,
    /// Split file the run used.
    pub split: String,
    /// Canonical class names indexing every probability vector of the run.
    pub classes: Vec<String>,
    pub threshold: f32,
    pub fusion: Fusion,
    /// Which levels the run computes (an ablation switches some off): [semantic, text, instance].
    pub levels: [bool; 3],
    pub created_at: String,
}

impl RunInfo {
    pub fn read(run_dir: &Path) -> crate::Result<Self> {
        let path = run_dir.join(RUN_INFO_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| crate::Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| crate::Error::Invalid { path: path.clone(), message: format!("line {}: {e}", e.line()) })
    }

    pub fn write(&self, run_dir: &Path) -> crate::Result<()> {
        crate::atomic::write_json(run_dir.join(RUN_INFO_FILE), self)
    }
}
