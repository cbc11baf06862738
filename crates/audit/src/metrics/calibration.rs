//! Calibration: expected calibration error over equal-width confidence bins, and the reliability
//! diagram's bins (mean confidence against accuracy).

use serde::Serialize;

use super::Decisions;

pub const BINS: usize = 15;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Bin {
    pub lo: f32,
    pub hi: f32,
    pub count: usize,
    pub mean_confidence: Option<f64>,
    pub accuracy: Option<f64>,
}

/// (ECE, bins). Bin `b` holds confidences in `(b/B, (b+1)/B]` (the first also holds 0), as in Guo et al. 2017.
pub fn calibration(d: &Decisions, truth: &[u8]) -> (f64, Vec<Bin>) {
    let mut count = [0usize; BINS];
    let mut conf = [0f64; BINS];
    let mut ok = [0usize; BINS];
    for ((p, c), t) in d.pred.iter().zip(&d.conf).zip(truth) {
        let b = ((f64::from(*c) * BINS as f64).ceil() as usize).clamp(1, BINS) - 1;
        count[b] += 1;
        conf[b] += f64::from(*c);
        ok[b] += usize::from(p == t);
    }
    let n = truth.len().max(1) as f64;
    let mut ece = 0.0;
    let bins = (0..BINS)
        .map(|b| {
            let (mc, acc) = if count[b] > 0 {
                let (mc, acc) = (conf[b] / count[b] as f64, ok[b] as f64 / count[b] as f64);
                ece += count[b] as f64 / n * (acc - mc).abs();
                (Some(mc), Some(acc))
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
