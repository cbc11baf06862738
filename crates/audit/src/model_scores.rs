//! The classifier's own numbers from the run's `metrics.parquet` (written by train each epoch), so a report
//! and a comparison show pseudo-label quality next to what it bought: the epoch chosen on val only, and the
//! val and test accuracies at that epoch. Reads nothing else and computes no new metric.

use std::path::Path;

use anyhow::Context;
use exchange::parquet_io::read_table;
use exchange::schema::metrics::{names, MetricRow};
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelScores {
    /// Epoch with the best val classifier accuracy (the first one on ties).
    pub(crate) best_epoch: u32,
    pub(crate) epochs: u32,
    pub(crate) val_acc: f64,
    pub(crate) test_acc: Option<f64>,
    pub(crate) test_fused: Option<f64>,
    pub(crate) test_balanced: Option<f64>,
    /// Test accuracy at the last epoch (the paper reports both).
    pub(crate) test_last: Option<f64>,
    /// Per-epoch values of the metrics the learning curves draw ([`CURVES`]), those the run recorded.
    pub(crate) curves: Vec<Curve>,
    /// The classifier's test confusion at the best val epoch, `[true][predicted]` over the run's classes.
    pub(crate) test_confusion: Option<Vec<Vec<u64>>>,
}

/// One metric over the epochs, e.g. `val` / `acc_cls`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Curve {
    pub(crate) split: String,
    pub(crate) metric: String,
    pub(crate) points: Vec<(u32, f64)>,
}

/// The (split, metric) pairs of the learning curves: the loss and its parts, the classifier's val and test
/// accuracy (and the fused test accuracy), the share of unlabeled faces selected, the learning rate.
pub(crate) const CURVES: [(&str, &str); 10] = [
    ("train", "loss"),
    ("train", "loss_s"),
    ("train", "loss_t"),
    ("train", "loss_u"),
    ("train", "loss_con"),
    ("val", "acc_cls"),
    ("test", "acc_cls"),
    ("test", "acc_fused"),
    ("train", "mask_rate"),
    ("train", "lr"),
];

impl ModelScores {
    /// The curve of `split` / `metric`, when the run recorded it.
    pub(crate) fn curve(&self, split: &str, metric: &str) -> Option<&Curve> {
        self.curves.iter().find(|c| c.split == split && c.metric == metric)
    }
}

/// Every [`CURVES`] pair the rows hold, points sorted by epoch.
fn curves(rows: &[MetricRow]) -> Vec<Curve> {
    CURVES
        .iter()
        .filter_map(|&(split, metric)| {
            let mut points: Vec<(u32, f64)> = rows
                .iter()
                .filter(|r| r.split == split && r.metric == metric && r.class.is_none())
                .map(|r| (r.epoch, r.value))
                .collect();
            points.sort_by_key(|p| p.0);
            (!points.is_empty()).then(|| Curve { split: split.into(), metric: metric.into(), points })
        })
        .collect()
}

/// `None` when the run has no metrics file or no val rows yet.
pub fn read(run_dir: &Path) -> anyhow::Result<Option<ModelScores>> {
    let path = exchange::layout::run::metrics(run_dir);
    if !path.is_file() {
        return Ok(None);
    }
    let rows: Vec<MetricRow> = read_table(&path).with_context(|| format!("{}: unreadable metrics", path.display()))?;
    Ok(pick(&rows))
}

pub(crate) fn pick(rows: &[MetricRow]) -> Option<ModelScores> {
    let get = |split: &str, metric: &str, epoch: u32| {
        rows.iter()
            .find(|r| r.split == split && r.metric == metric && r.epoch == epoch && r.class.is_none())
            .map(|r| r.value)
    };
    let mut best: Option<(u32, f64)> = None;
    for r in rows.iter().filter(|r| r.split == names::VAL && r.metric == names::ACC_CLS && r.class.is_none()) {
        if best.is_none_or(|(_, v)| r.value > v) {
            best = Some((r.epoch, r.value));
        }
    }
    let (e, val_acc) = best?;
    let last = rows.iter().filter(|r| r.split == names::VAL).map(|r| r.epoch).max().unwrap_or(e);
    Some(ModelScores {
        best_epoch: e,
        epochs: last,
        test_last: get(names::TEST, names::ACC_CLS, last),
        val_acc,
        test_acc: get(names::TEST, names::ACC_CLS, e),
        test_fused: get(names::TEST, names::ACC_FUSED, e),
        test_balanced: get(names::TEST, names::BALANCED_ACC_CLS, e),
        curves: curves(rows),
        test_confusion: confusion(rows, names::TEST, e),
    })
}

/// The `confusion_cls` cells of `split` at `epoch` as a square matrix; `None` when the run recorded none.
fn confusion(rows: &[MetricRow], split: &str, epoch: u32) -> Option<Vec<Vec<u64>>> {
    let cells: Vec<(usize, usize, u64)> = rows
        .iter()
        .filter(|r| r.split == split && r.metric == "confusion_cls" && r.epoch == epoch)
        .filter_map(|r| Some((r.class? as usize, r.pred? as usize, r.value.max(0.0).round() as u64)))
        .collect();
    let c = cells.iter().map(|&(t, p, _)| t.max(p) + 1).max()?;
    let mut m = vec![vec![0u64; c]; c];
    for (t, p, v) in cells {
        m[t][p] = v;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_epoch_is_chosen_on_val_only() {
        let m = |e: u32, split: &str, metric: &str, v: f64| MetricRow::scalar(e, 10 * u64::from(e), split, metric, v);
        let rows = vec![
            m(1, "val", "acc_cls", 0.50),
            m(1, "test", "acc_cls", 0.90), // test's best epoch must not be picked
            m(2, "val", "acc_cls", 0.60),
            m(2, "test", "acc_cls", 0.55),
            m(2, "test", "acc_fused", 0.57),
            m(3, "val", "acc_cls", 0.60),
            m(3, "test", "acc_cls", 0.58),
        ];
        let s = pick(&rows).unwrap();
        assert_eq!((s.best_epoch, s.epochs, s.val_acc), (2, 3, 0.60));
        assert_eq!((s.test_acc, s.test_fused, s.test_balanced), (Some(0.55), Some(0.57), None));
        assert_eq!(s.test_last, Some(0.58));
        let val = s.curve("val", "acc_cls").unwrap();
        assert_eq!(val.points, vec![(1, 0.50), (2, 0.60), (3, 0.60)]);
        assert_eq!(s.curve("test", "acc_fused").unwrap().points, vec![(2, 0.57)]);
        assert!(s.curve("train", "loss").is_none());
        assert_eq!(s.test_confusion, None);
        let cell = |e: u32, split: &str, t: u32, p: u32, v: f64| MetricRow {
            class: Some(t),
            pred: Some(p),
            ..MetricRow::scalar(e, 0, split, "confusion_cls", v)
        };
        let mut with = rows.clone();
        with.extend([
            cell(2, "test", 0, 0, 5.0),
            cell(2, "test", 1, 0, 2.0),
            cell(2, "val", 1, 1, 9.0),
            cell(3, "test", 1, 1, 7.0),
        ]);
        assert_eq!(
            pick(&with).unwrap().test_confusion,
            Some(vec![vec![5, 0], vec![2, 0]]),
            "test, best val epoch only"
        );
        assert!(pick(&rows[1..2]).is_none());
    }
}
