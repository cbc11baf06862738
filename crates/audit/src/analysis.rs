//! One epoch's full audit: every metric of every level, from the loaded data and the setting in force
//! (the run's own fusion and threshold, or a what-if override from the command line).

use exchange::fusion::{Fusion, Threshold};
use serde::Serialize;

use crate::fusion::{describe, fuse};
use crate::load::{Dropped, EpochData};
use crate::metrics::agreement::{agreement, Agreement};
use crate::metrics::calibration::{calibration, Bin};
use crate::metrics::per_class::{argmax_recall, confusion, per_class, second_choice, ClassRow, VotesReport};
use crate::metrics::quality::{accuracy, selection, sweep, Selection};
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
pub struct LevelReport {
    pub level: String,
    /// Accuracy of the argmax over every unlabeled row.
    pub accuracy: f64,
    /// Quantity and quality at the threshold in force.
    pub selection: Selection,
    pub ece: f64,
    pub reliability: Vec<Bin>,
    pub sweep: Vec<Selection>,
    /// Per class (the run's order): recall of this level's argmax over every row.
    pub class_recall: Vec<Option<f64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    pub epoch: u32,
    pub rows: usize,
    pub threshold: Threshold,
    pub fusion: String,
    pub levels: Vec<LevelReport>,
    pub agreement: Agreement,
    pub per_class: Vec<ClassRow>,
    /// Fused argmax, `confusion[true][pred]`.
    pub confusion: Vec<Vec<u64>>,
    pub votes: Option<VotesReport>,
    /// max |p_fused as stored − p_fused recomputed from the levels with the file's fusion|: a consistency
    /// check of the run (large values mean run.json / metadata do not describe what the trainer did).
    pub stored_fusion_max_diff: Option<f32>,
    pub dropped: Dropped,
    /// The run's unlabeled faces when this epoch's sweep read a seeded subset of them (`rows` is the subset's
    /// auditable part).
    pub subset_of: Option<usize>,
}

impl EpochReport {
    pub fn level(&self, name: &str) -> Option<&LevelReport> {
        self.levels.iter().find(|l| l.level == name)
    }
}

fn level_report(name: &str, d: &Decisions, truth: &[u8], threshold: &Threshold, classes: usize) -> LevelReport {
    let (ece, reliability) = calibration(d, truth);
    LevelReport {
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
pub fn fused_in_force<'a>(e: &'a EpochData, over: &Override) -> (std::borrow::Cow<'a, [f32]>, Fusion) {
    match over.fusion {
        Some(f) => (fuse(levels_of(e), e.classes, &f).into(), f),
        None => (e.fused.as_slice().into(), e.fusion),
    }
}

pub fn levels_of(e: &EpochData) -> [Option<&[f32]>; 3] {
    [e.levels[0].as_deref(), e.levels[1].as_deref(), e.levels[2].as_deref()]
}

pub fn analyse(e: &EpochData, names: &[String], prior: &[f64], over: &Override) -> EpochReport {
    let c = e.classes;
    let threshold = over.threshold.map_or_else(|| e.threshold.clone(), Threshold::Global);
    let (fused_p, fusion) = fused_in_force(e, over);
    let level_dec: [Option<Decisions>; 3] = std::array::from_fn(|l| e.levels[l].as_deref().map(|p| decide(p, c)));
    let fused = decide(&fused_p, c);
    let mut levels = Vec::new();
    for (l, d) in level_dec.iter().enumerate() {
        if let Some(d) = d {
            levels.push(level_report(LEVELS[l], d, &e.truth, &threshold, c));
        }
    }
    levels.push(level_report(LEVELS[3], &fused, &e.truth, &threshold, c));
    let stored_fusion_max_diff = over.fusion.is_none().then(|| {
        let again = fuse(levels_of(e), c, &e.fusion);
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
