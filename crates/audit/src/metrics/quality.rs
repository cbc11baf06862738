//! Quantity (share selected at a threshold) and quality (accuracy of the selected), plain accuracy of the
//! argmax, the coverage/accuracy threshold sweep, and accuracy of the k most confident rows (the
//! "equal quantity" comparison of what-if).

use exchange::fusion::{selected, Threshold};
use rayon::prelude::*;
use serde::Serialize;

use super::{ratio, Decisions};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Selection {
    /// The threshold (the mean over classes for per-class thresholds).
    pub(crate) threshold: f32,
    pub(crate) selected: usize,
    pub(crate) quantity: f64,
    /// Accuracy of the selected rows; `None` when nothing is selected.
    pub(crate) quality: Option<f64>,
}

/// Rows the trainer's selection rule ([`exchange::fusion::selected`]) keeps.
pub(crate) fn selection(d: &Decisions, truth: &[u8], threshold: &Threshold) -> Selection {
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

pub(crate) fn accuracy(pred: &[u8], truth: &[u8]) -> f64 {
    ratio(pred.iter().zip(truth).filter(|(p, t)| p == t).count(), truth.len()).unwrap_or(0.0)
}

pub(crate) const SWEEP: [f32; 21] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995,
    0.999,
];

pub(crate) fn sweep(d: &Decisions, truth: &[u8]) -> Vec<Selection> {
    // One pass, no sort: each row adds to the count of every threshold it passes (the thresholds ascend, so
    // those are the first `j` of them); the pass is split over rayon's threads and the counts added.
    let zero = || ([0usize; SWEEP.len()], [0usize; SWEEP.len()]);
    let (count, ok) = d
        .conf
        .par_iter()
        .zip(d.pred.par_iter().zip(truth.par_iter()))
        .with_min_len(1 << 14)
        .fold(zero, |(mut count, mut ok), (c, (p, t))| {
            let j = SWEEP.partition_point(|&th| selected(*c, th));
            if j > 0 {
                // A histogram over "passes the first j thresholds"; cumulated below.
                count[j - 1] += 1;
                ok[j - 1] += usize::from(p == t);
            }
            (count, ok)
        })
        .reduce(zero, |(mut a, mut b), (c, o)| {
            for j in 0..SWEEP.len() {
                a[j] += c[j];
                b[j] += o[j];
            }
            (a, b)
        });
    // Threshold j selects every row that passes thresholds 0..=j.
    let (mut k, mut right) = (0usize, 0usize);
    let mut out: Vec<Selection> = (0..SWEEP.len())
        .rev()
        .map(|j| {
            k += count[j];
            right += ok[j];
            Selection {
                threshold: SWEEP[j],
                selected: k,
                quantity: ratio(k, truth.len()).unwrap_or(0.0),
                quality: ratio(right, k),
            }
        })
        .collect();
    out.reverse();
    out
}

/// Accuracy of the `k` most confident rows and the confidence of the k-th.
pub(crate) fn top_k_accuracy(d: &Decisions, truth: &[u8], k: usize) -> (Option<f64>, f32) {
    let correct: Vec<bool> = d.pred.iter().zip(truth).map(|(p, t)| p == t).collect();
    top_k(&d.conf, &correct, k)
}

/// The same over confidences and whether each row is right, in O(n) without sorting or moving rows (what-if
/// calls it once per candidate setting on a million rows): a radix select over the confidence's order-
/// preserving bit pattern, its high 16 bits first, then the low 16 bits of the rows in the k-th's bucket.
/// Rows tied with the k-th confidence are taken in row order.
pub(crate) fn top_k(conf: &[f32], correct: &[bool], k: usize) -> (Option<f64>, f32) {
    if k == 0 || conf.is_empty() {
        return (None, 1.0);
    }
    let k = k.min(conf.len());
    // Counts and right counts per bucket of `key >> shift` among rows whose key has `prefix` above it.
    let histogram = |shift: u32, prefix: Option<u32>| -> (Vec<u32>, Vec<u32>) {
        let (mut n, mut right) = (vec![0u32; 1 << 16], vec![0u32; 1 << 16]);
        for (c, ok) in conf.iter().zip(correct) {
            let key = order_key(*c);
            if prefix.is_none_or(|p| key >> 16 == p) {
                let b = ((key >> shift) & 0xFFFF) as usize;
                n[b] += 1;
                right[b] += u32::from(*ok);
            }
        }
        (n, right)
    };
    // From the top bucket down until `need` rows are covered: (the bucket, rows above it, right above it).
    let descend = |n: &[u32], right: &[u32], need: usize| -> (u32, usize, usize) {
        let (mut above, mut right_above) = (0usize, 0usize);
        for b in (0..n.len()).rev() {
            if above + n[b] as usize >= need {
                return (b as u32, above, right_above);
            }
            above += n[b] as usize;
            right_above += right[b] as usize;
        }
        unreachable!("the histogram holds at least `need` rows")
    };
    let (n, right) = histogram(16, None);
    let (high, above, right_above) = descend(&n, &right, k);
    let (n, right) = histogram(0, Some(high));
    let (low, above2, right_above2) = descend(&n, &right, k - above);
    let kth = (high << 16) | low;
    // The k-th value itself may be shared: take the first `rest` of its rows in row order.
    let rest = k - above - above2;
    let tied_right =
        conf.iter().zip(correct).filter(|(c, _)| order_key(**c) == kth).take(rest).filter(|(_, ok)| **ok).count();
    let kth_value = conf.iter().copied().find(|c| order_key(*c) == kth).unwrap_or(1.0);
    (ratio(right_above + right_above2 + tied_right, k), kth_value)
}

/// f32 → u32 with the same order as [`f32::total_cmp`].
pub(crate) fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The inverse of [`order_key`].
pub(crate) fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7FFF_FFFF } else { !k })
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

    /// The sort-based definitions the O(n) versions replace.
    fn sorted(conf: &[f32], correct: &[bool]) -> Vec<(f32, bool)> {
        let mut rows: Vec<(f32, bool)> = conf.iter().copied().zip(correct.iter().copied()).collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0)); // stable: ties keep row order
        rows
    }

    #[test]
    fn radix_top_k_and_counting_sweep_equal_sorting() {
        // Pseudo-random rows with many ties (confidences on a coarse grid, some exactly at sweep thresholds).
        let mut x = 12345u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u32
        };
        let n = 5000;
        let conf: Vec<f32> =
            (0..n).map(|_| [0.75f32, 0.5, 1.0, 0.0][next() as usize % 4].min((next() % 41) as f32 / 40.0)).collect();
        let pred: Vec<u8> = (0..n).map(|_| (next() % 3) as u8).collect();
        let truth: Vec<u8> = (0..n).map(|_| (next() % 3) as u8).collect();
        let correct: Vec<bool> = pred.iter().zip(&truth).map(|(p, t)| p == t).collect();
        let rows = sorted(&conf, &correct);
        for k in [1, 2, 17, 999, 2500, 4999, 5000, 7000] {
            let kk = k.min(n);
            let want = rows[..kk].iter().filter(|r| r.1).count() as f64 / kk as f64;
            assert_eq!(top_k(&conf, &correct, k), (Some(want), rows[kk - 1].0), "k = {k}");
        }
        assert_eq!(top_k(&conf, &correct, 0), (None, 1.0));
        let dec = Decisions { pred, conf: conf.clone() };
        for s in sweep(&dec, &truth) {
            let k = rows.partition_point(|(c, _)| *c > s.threshold);
            let right = rows[..k].iter().filter(|r| r.1).count();
            assert_eq!((s.selected, s.quality), (k, ratio(right, k)), "threshold {}", s.threshold);
        }
    }
}
