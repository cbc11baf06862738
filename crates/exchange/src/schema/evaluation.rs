//! `artifacts/runs/<run>/evaluations/<dataset>--<split>--<role>--<snapshot>.json`: a trained run's network
//! evaluated on one role of a split of any sharded dataset (`train evaluate`), so cross-dataset results sit
//! in the run folder beside the in-domain ones and audit prints them with the run. Scores are over the
//! classes the run and the dataset share ([`Evaluation::classes`]): faces of other classes are dropped and
//! counted, and the prediction is the argmax among the shared classes.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub run: String,
    /// The model snapshot evaluated (`best`, `last`).
    pub snapshot: String,
    /// The snapshot's training epoch.
    pub epoch: u32,
    pub dataset: String,
    pub split: String,
    pub role: String,
    /// The shared classes, in the run's order: the rows and columns of `confusion`, the entries of `recall`.
    pub classes: Vec<String>,
    /// Faces scored.
    pub faces: usize,
    /// Faces dropped because their class is not one of the run's, by class name.
    pub dropped: Vec<(String, usize)>,
    /// Run classes the dataset does not have (the network may still predict them; they are left out of the
    /// argmax).
    pub not_in_dataset: Vec<String>,
    pub accuracy: f64,
    /// Mean recall over the shared classes that have faces.
    pub balanced_accuracy: f64,
    /// Accuracy of the fused levels, when the run has more than the semantic level.
    pub fused_accuracy: Option<f64>,
    /// Recall per shared class (`None`: no face of that class).
    pub recall: Vec<Option<f64>>,
    /// `confusion[true][predicted]` over the shared classes.
    pub confusion: Vec<Vec<u64>>,
    /// Expected calibration error of the classifier's confidence (15 equal-width bins).
    pub ece: f64,
    pub created_at: String,
}

impl Evaluation {
    pub fn read(path: &Path) -> crate::Result<Self> {
        crate::atomic::read_json(path)
    }

    pub fn write(&self, path: &Path) -> crate::Result<()> {
        crate::atomic::write_json(path, self)
    }

    /// Every evaluation recorded in a run folder, in file-name order (none when the folder has none), each
    /// file's own result: one unreadable file does not hide the others.
    pub fn read_all(run_dir: &Path) -> Vec<crate::Result<Self>> {
        let dir = crate::layout::run::evaluations(run_dir);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        let mut paths: Vec<_> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        paths.sort();
        paths.iter().map(|p| Self::read(p)).collect()
    }
}
