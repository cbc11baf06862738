//! `artifacts/runs/<run>/run.json`: what a training run was, as far as other stages need to know — its
//! inputs (shards, split), class list, pseudo-label threshold and fusion rule. train writes it when a run
//! starts; audit reads it to find the ground truth and to recompute fusions. The full resolved training
//! config lives beside it in `config.toml` and is train's own business.
//!
//! Each pseudo-label file also records the fusion that was *in effect at that epoch* (it changes at the
//! instance warm-up) as JSON under the metadata key [`crate::keys::FUSION`], and the threshold under
//! [`crate::keys::THRESHOLD`]; those win over `run.json`'s values for that file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fusion::Fusion;
use crate::layout::run::INFO_FILE;

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
    /// The run's `run.seed` (model init and sampling; the split is the split file's). Absent in runs written
    /// before it was recorded.
    #[serde(default)]
    pub seed: Option<u64>,
    /// How many processes trained the run when it started (1 for a single process). Absent in runs written
    /// before it was recorded. A resume may continue at another world size; this is the first one.
    #[serde(default)]
    pub world_size: Option<u32>,
    /// Each rank's training device in rank order, as libtorch names it (`cpu`, `cuda:0`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

impl RunInfo {
    pub fn read(run_dir: &Path) -> crate::Result<Self> {
        crate::atomic::read_json(&run_dir.join(INFO_FILE))
    }

    pub fn write(&self, run_dir: &Path) -> crate::Result<()> {
        crate::atomic::write_json(run_dir.join(INFO_FILE), self)
    }
}
