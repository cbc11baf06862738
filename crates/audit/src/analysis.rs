//! One epoch's full audit: every metric of every level, from the loaded data and the setting in force
//! (the run's own fusion and threshold, or a what-if override from the command line).

use exchange::fusion::{Fusion, Threshold};
use serde::Serialize;

use crate::fusion::{align, describe, fuse};
use crate::load::{Dropped, EpochData};
use crate::metrics::agreement::{agreement, Agreement};
use crate::metrics::calibration::{calibration, Bin};
use crate::metrics::per_class::{argmax_recall, confusion, per_class, second_choice, ClassRow, VotesReport};
use crate::metrics::quality::{accuracy, selection, sweep, top_k_accuracy, Selection};
use crate::metrics::{decide, Decisions, LEVELS};

/// What-if settings from the command line; `None` fields keep the run's own.
#[derive(Clone, Debug, Default)]
pub struct Override {
    pub fusion: Option<Fusion>,
    pub threshold: Option<f32>,
}

impl Override {
    pub fn is_some(&self) -> bool {
        self.fusion.is_some() || self.threshold.is_some()
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LevelReport {
    pub(crate) level: String,
    /// Accuracy of the argmax over every unlabeled row.
    pub(crate) accuracy: f64,
    /// Quantity and quality at the threshold in force.
    pub(crate) selection: Selection,
    pub(crate) ece: f64,
    pub(crate) reliability: Vec<Bin>,
    pub(crate) sweep: Vec<Selection>,
    /// Per class (the run's order): recall of this level's argmax over every row.
    pub(crate) class_recall: Vec<Option<f64>>,
    /// Accuracy of this level's k most confident rows, k the rows the classifier (the semantic level) selects
    /// at the threshold in force: "would this level, trusted as much as the classifier is, pick better faces?"
    /// `None` when the classifier selects nothing.
    pub(crate) at_classifier_quantity: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    pub(crate) epoch: u32,
    pub(crate) rows: usize,
    pub(crate) threshold: Threshold,
    pub(crate) fusion: String,
    pub(crate) levels: Vec<LevelReport>,
    pub(crate) agreement: Agreement,
    pub(crate) per_class: Vec<ClassRow>,
    /// Fused argmax, `confusion[true][pred]`.
    pub(crate) confusion: Vec<Vec<u64>>,
    pub(crate) votes: Option<VotesReport>,
    /// max |p_fused as stored − p_fused recomputed from the levels with the file's fusion|: a consistency
    /// check of the run (large values mean run.json / metadata do not describe what the trainer did).
    pub(crate) stored_fusion_max_diff: Option<f32>,
    pub(crate) dropped: Dropped,
    /// The run's unlabeled faces when this epoch's sweep read a seeded subset of them (`rows` is the subset's
    /// auditable part).
    pub(crate) subset_of: Option<usize>,
}

impl EpochReport {
    pub(crate) fn level(&self, name: &str) -> Option<&LevelReport> {
        self.levels.iter().find(|l| l.level == name)
    }

    /// Does fusing the levels pick better pseudo-labels than the classifier alone, at the classifier's own
    /// quantity? The fused level's accuracy there minus the classifier's (points as a fraction); `None` when
    /// the classifier selects nothing.
    pub(crate) fn fused_gain_at_classifier_quantity(&self) -> Option<f64> {
        let at = |l: &str| self.level(l).and_then(|x| x.at_classifier_quantity);
        Some(at(LEVELS[3])? - at(LEVELS[0])?)
    }
}

fn level_report(
    name: &str,
    d: &Decisions,
    truth: &[u8],
    threshold: &Threshold,
    classes: usize,
    classifier_k: usize,
) -> LevelReport {
    let (ece, reliability) = calibration(d, truth);
    LevelReport {
        at_classifier_quantity: top_k_accuracy(d, truth, classifier_k).0,
        level: name.to_string(),
        accuracy: accuracy(&d.pred, truth),
        selection: selection(d, truth, threshold),
        ece,
        reliability,
        sweep: sweep(d, truth),
        class_recall: argmax_recall(&d.pred, truth, classes),
    }
}

/// The fused distribution in force and its description.
pub(crate) fn fused_in_force<'a>(e: &'a EpochData, over: &Override) -> (std::borrow::Cow<'a, [f32]>, Fusion) {
    match over.fusion {
        Some(f) => (refuse(e, &f).into(), f),
        None => (e.fused.as_slice().into(), e.fusion),
    }
}

/// The levels of `e` fused with `f`, aligned as the run aligned its own (the stored `p_fused` is aligned).
fn refuse(e: &EpochData, f: &Fusion) -> Vec<f32> {
    let mut p = fuse(levels_of(e), e.classes, f);
    if let Some(factors) = &e.alignment {
        align(&mut p, e.classes, factors);
    }
    p
}

pub(crate) fn levels_of(e: &EpochData) -> [Option<&[f32]>; 3] {
    [e.levels[0].as_deref(), e.levels[1].as_deref(), e.levels[2].as_deref()]
}

pub(crate) fn analyse(e: &EpochData, names: &[String], prior: &[f64], over: &Override) -> EpochReport {
    let c = e.classes;
    let threshold = over.threshold.map_or_else(|| e.threshold.clone(), Threshold::Global);
    let (fused_p, fusion) = fused_in_force(e, over);
    let level_dec: [Option<Decisions>; 3] = std::array::from_fn(|l| e.levels[l].as_deref().map(|p| decide(p, c)));
    let fused = decide(&fused_p, c);
    let classifier_k = level_dec[0].as_ref().map_or(0, |d| selection(d, &e.truth, &threshold).selected);
    let mut levels = Vec::new();
    for (l, d) in level_dec.iter().enumerate() {
        if let Some(d) = d {
            levels.push(level_report(LEVELS[l], d, &e.truth, &threshold, c, classifier_k));
        }
    }
    levels.push(level_report(LEVELS[3], &fused, &e.truth, &threshold, c, classifier_k));
    let stored_fusion_max_diff = over.fusion.is_none().then(|| {
        let again = refuse(e, &e.fusion);
        again.iter().zip(&e.fused).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
    });
    EpochReport {
        epoch: e.epoch,
        rows: e.n,
        fusion: describe(&fusion),
        agreement: agreement(&level_dec, &fused, &e.truth),
        per_class: per_class(&fused, &e.truth, &threshold, names, prior),
        confusion: confusion(&fused.pred, &e.truth, c),
        votes: e.votes.as_ref().map(|v| second_choice(&fused, &e.truth, v, c, &threshold)),
        threshold,
        levels,
        stored_fusion_max_diff,
        dropped: e.dropped.clone(),
        subset_of: e.subset_of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exchange::fusion::FusionMode;

    /// Four faces, two classes, truth 0, 0, 1, 1. The classifier passes 0.75 on two faces (rows 0 and 1), so
    /// k = 2. Its two most confident: row 0 (right, 0.9) and row 1 (wrong, 0.8 for class 1): 50 %. The text
    /// level's two most confident are rows 2 (0.95 → 1, right) and 0 (0.85 → 0, right): 100 %. Fused (the
    /// mean of the two): row 0 (0.875 → 0, right) and row 2 (0.775 → 1, right): 100 %, +50 points.
    #[test]
    fn quality_at_the_classifiers_own_quantity_by_hand() {
        let sem = vec![0.9, 0.1, 0.2, 0.8, 0.4, 0.6, 0.7, 0.3];
        let text = vec![0.85, 0.15, 0.6, 0.4, 0.05, 0.95, 0.5, 0.5];
        let fused: Vec<f32> = sem.iter().zip(&text).map(|(a, b)| (a + b) / 2.0).collect();
        let e = EpochData {
            epoch: 1,
            path: "fixture".into(),
            classes: 2,
            n: 4,
            levels: [Some(sem), Some(text), None],
            fused,
            truth: vec![0, 0, 1, 1],
            shard_rows: vec![0, 1, 2, 3],
            votes: None,
            threshold: Threshold::Global(0.75),
            fusion: Fusion { mode: FusionMode::MeanProb, weights: [1.0, 1.0, 0.0], tau_text: 1.0, tau_ins: 1.0 },
            dropped: Default::default(),
            alignment: None,
            subset_of: None,
        };
        let names = vec!["a".to_string(), "b".to_string()];
        let r = analyse(&e, &names, &[0.5, 0.5], &Override::default());
        let at = |l: &str| r.level(l).unwrap().at_classifier_quantity;
        assert_eq!(r.level("semantic").unwrap().selection.selected, 2);
        assert_eq!(at("semantic"), Some(0.5));
        assert_eq!(at("text"), Some(1.0));
        assert_eq!(at("fused"), Some(1.0));
        assert_eq!(r.fused_gain_at_classifier_quantity(), Some(0.5));
    }
}
