//! Everything the audit shows: the report data (serialisable as it is to JSON), its tables (one model for
//! the terminal and the page), the terminal's rendering, the HTML page with its charts, and the flat Parquet
//! summary for notebooks.

pub mod charts;
pub mod html;
pub mod summary;
pub mod tables;
pub mod terminal;

use serde::Serialize;

use crate::analysis::EpochReport;
use crate::what_if::WhatIf;

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run: String,
    pub(crate) dir: String,
    pub preset: String,
    /// The run's seed (run.json), which pairs runs of different presets in a seed-paired comparison.
    pub(crate) seed: Option<u64>,
    pub(crate) dataset: String,
    pub(crate) classes: Vec<String>,
    /// "as trained", or the what-if setting that replaced the run's fusion/threshold.
    pub(crate) setting: String,
    pub(crate) warnings: Vec<String>,
    pub(crate) labeled_prior: Vec<f64>,
    pub(crate) epochs: Vec<EpochReport>,
    pub(crate) what_if: Option<WhatIf>,
    /// The faces behind the detail epoch's numbers (`--faces`).
    pub(crate) gallery: Option<crate::faces::Gallery>,
    /// The classifier's val/test accuracy at its best-val epoch, from the run's metrics.parquet.
    pub model: Option<crate::model_scores::ModelScores>,
    /// The run's network scored on other splits and datasets (`train evaluate`), from its evaluations folder.
    pub(crate) evaluations: Vec<exchange::schema::evaluation::Evaluation>,
}

impl RunReport {
    /// The epoch shown in detail (the last one audited); `None` for a run without pseudo-labels (a split
    /// with every face labeled), whose report holds only the classifier's accuracy.
    pub fn detail(&self) -> Option<&EpochReport> {
        self.epochs.last()
    }

    /// One line on the classifier's accuracy from the run's metrics, if it has any.
    pub fn classifier_line(&self) -> Option<String> {
        self.model.as_ref().map(|m| {
            format!(
                "classifier: best val epoch {}/{}: val {}, test {} (fused {}); test at the last epoch {}",
                m.best_epoch,
                m.epochs,
                pct(Some(m.val_acc)),
                pct(m.test_acc),
                pct(m.test_fused),
                pct(m.test_last)
            )
        })
    }
}

/// One line per evaluation of the run's network on another split or dataset (`train evaluate`).
pub fn evaluation_line(e: &exchange::schema::evaluation::Evaluation) -> String {
    format!(
        "evaluated on {} / {} / {} ({} snapshot, epoch {}, {} faces, {} classes): accuracy {}, balanced {}, ECE {}",
        e.dataset,
        e.split,
        e.role,
        e.snapshot,
        e.epoch,
        e.faces,
        e.classes.len(),
        pct(Some(e.accuracy)),
        pct(Some(e.balanced_accuracy)),
        pct(Some(e.ece))
    )
}

/// Text made safe for HTML (the page and the charts' legends).
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "—".into())
}

pub fn delta_pts(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.1}", v * 100.0)).unwrap_or_else(|| "—".into())
}
