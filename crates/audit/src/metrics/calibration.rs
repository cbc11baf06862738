//! Calibration: expected calibration error over equal-width confidence bins, and the reliability
//! diagram's bins (mean confidence against accuracy).

use serde::Serialize;

use exchange::calibration::Bins;

use super::Decisions;

pub use exchange::calibration::BINS;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Bin {
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    pub(crate) count: usize,
    pub(crate) mean_confidence: Option<f64>,
    pub(crate) accuracy: Option<f64>,
}

/// (ECE, bins), with exchange's binning and definition ([`exchange::calibration`]).
pub(crate) fn calibration(d: &Decisions, truth: &[u8]) -> (f64, Vec<Bin>) {
    let sums = Bins::from_rows(d.conf.iter().zip(d.pred.iter().zip(truth)).map(|(c, (p, t))| (*c, p == t)));
    let ece = sums.ece();
    let (count, conf, ok) = (sums.count, sums.confidence, sums.right);
    let bins = (0..BINS)
        .map(|b| {
            let (mc, acc) = if count[b] > 0 {
                (Some(conf[b] / count[b] as f64), Some(ok[b] as f64 / count[b] as f64))
            } else {
                (None, None)
            };
            Bin {
                lo: b as f32 / BINS as f32,
                hi: (b + 1) as f32 / BINS as f32,
                count: count[b],
                mean_confidence: mc,
                accuracy: acc,
            }
        })
        .collect();
    (ece, bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ece() {
        // Two rows at 0.9 (one right) and two at 0.3 (both right): |0.5-0.9|*0.5 + |1-0.3|*0.5 = 0.55.
        let d = Decisions { pred: vec![0, 1, 0, 0], conf: vec![0.9, 0.9, 0.3, 0.3] };
        let (ece, bins) = calibration(&d, &[0, 0, 0, 0]);
        assert!((ece - 0.55).abs() < 1e-6, "{ece}");
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 4);
        assert_eq!(bins[13].count, 2); // 0.9 lies in (13/15, 14/15]
    }
}
