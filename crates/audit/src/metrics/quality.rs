//! Quantity (share selected at a threshold) and quality (accuracy of the selected), plain accuracy of the
//! argmax, the coverage/accuracy threshold sweep, and accuracy of the k most confident rows (the
//! "equal quantity" comparison of what-if).

use exchange::fusion::Threshold;
use serde::Serialize;

use super::{ratio, Decisions};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Selection {
    /// The threshold (the mean over classes for per-class thresholds).
    pub threshold: f32,
    pub selected: usize,
    pub quantity: f64,
    /// Accuracy of the selected rows; `None` when nothing is selected.
    pub quality: Option<f64>,
}

/// Rows the trainer's selection rule ([`exchange::fusion::selected`]) keeps.
pub fn selection(d: &Decisions, truth: &[u8], threshold: &Threshold) -> Selection {
    let (mut sel, mut ok) = (0usize, 0usize);
    for ((p, c), t) in d.pred.iter().zip(&d.conf).zip(truth) {
        if threshold.selects(*c, usize::from(*p)) {
            sel += 1;
            ok += usize::from(p == t);
        }
    }
    Selection {
        threshold: threshold.summary(),
        selected: sel,
        quantity: ratio(sel, truth.len()).unwrap_or(0.0),
        quality: ratio(ok, sel),
    }
}

pub fn accuracy(pred: &[u8], truth: &[u8]) -> f64 {
    ratio(pred.iter().zip(truth).filter(|(p, t)| p == t).count(), truth.len()).unwrap_or(0.0)
}

pub const SWEEP: [f32; 21] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995,
    0.999,
];

pub fn sweep(d: &Decisions, truth: &[u8]) -> Vec<Selection> {
    // One pass: sort by confidence once, then read every threshold off cumulative counts.
    let mut order: Vec<(f32, bool)> =
        d.conf.iter().zip(d.pred.iter().zip(truth)).map(|(c, (p, t))| (*c, p == t)).collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut cum = Vec::with_capacity(order.len() + 1);
    cum.push(0usize);
    for (_, ok) in &order {
        cum.push(cum.last().unwrap() + usize::from(*ok));
    }
    SWEEP
        .iter()
        .map(|&t| {
            let k = order.partition_point(|(c, _)| *c > t);
            Selection {
                threshold: t,
                selected: k,
                quantity: ratio(k, truth.len()).unwrap_or(0.0),
                quality: ratio(cum[k], k),
            }
        })
        .collect()
}

/// Accuracy of the `k` most confident rows (ties broken arbitrarily) and the confidence of the k-th.
pub fn top_k_accuracy(d: &Decisions, truth: &[u8], k: usize) -> (Option<f64>, f32) {
    top_k(d.conf.iter().zip(d.pred.iter().zip(truth)).map(|(c, (p, t))| (*c, p == t)).collect(), k)
}

/// The same over (confidence, correct) pairs: a selection in O(n), no sort.
pub fn top_k(mut rows: Vec<(f32, bool)>, k: usize) -> (Option<f64>, f32) {
    if k == 0 || rows.is_empty() {
        return (None, 1.0);
    }
    let k = k.min(rows.len());
    rows.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    (ratio(rows[..k].iter().filter(|r| r.1).count(), k), rows[k - 1].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pred: &[u8], conf: &[f32]) -> Decisions {
        Decisions { pred: pred.to_vec(), conf: conf.to_vec() }
    }

    #[test]
    fn hand_computed_selection_sweep_and_top_k() {
        let dec = d(&[0, 1, 1, 2], &[0.9, 0.8, 0.6, 0.95]);
        let truth = [0, 1, 0, 1];
        let s = selection(&dec, &truth, &Threshold::Global(0.75));
        assert_eq!((s.selected, s.quantity, s.quality), (3, 0.75, Some(2.0 / 3.0)));
        assert_eq!(accuracy(&dec.pred, &truth), 0.5);
        let sw = sweep(&dec, &truth);
        let at = |t: f32| sw.iter().find(|s| s.threshold == t).unwrap().clone();
        assert_eq!(at(0.75), s);
        assert_eq!(at(0.0).quality, Some(0.5));
        assert_eq!(at(0.999).quality, None);
        assert_eq!(top_k_accuracy(&dec, &truth, 2), (Some(0.5), 0.9));
        assert_eq!(top_k_accuracy(&dec, &truth, 3).0, Some(2.0 / 3.0));
        // Per-class thresholds [0.95, 0.5, 0.9]: row 0 (class 0 at 0.9) drops, row 2 (class 1 at 0.6) stays,
        // row 3 (class 2 at 0.95) stays: rows 1, 2, 3 selected, only row 1 right (row 2: truth 0; row 3: truth 1).
        let s = selection(&dec, &truth, &Threshold::PerClass(vec![0.95, 0.5, 0.9]));
        assert_eq!((s.selected, s.quality), (3, Some(1.0 / 3.0)));
        assert!((s.threshold - (0.95 + 0.5 + 0.9) / 3.0).abs() < 1e-6);
    }
}
