//! Expected calibration error, the one definition audit (pseudo-labels) and train (`train evaluate`) report:
//! equal-width confidence bins, bin `b` holding confidences in `(b/B, (b+1)/B]` (the first also holds 0), as
//! in Guo et al. 2017.

pub const BINS: usize = 15;

/// The bin of a confidence in [0, 1].
pub(crate) fn bin_of(confidence: f32) -> usize {
    ((f64::from(confidence) * BINS as f64).ceil() as usize).clamp(1, BINS) - 1
}

/// Per bin: faces, summed confidence, right predictions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bins {
    pub count: [usize; BINS],
    pub confidence: [f64; BINS],
    pub right: [usize; BINS],
}

impl Bins {
    pub fn from_rows(rows: impl Iterator<Item = (f32, bool)>) -> Self {
        let mut b = Bins::default();
        for (c, ok) in rows {
            let i = bin_of(c);
            b.count[i] += 1;
            b.confidence[i] += f64::from(c);
            b.right[i] += usize::from(ok);
        }
        b
    }

    /// Σ_b n_b / n · |accuracy_b − mean confidence_b|.
    pub fn ece(&self) -> f64 {
        let n = self.count.iter().sum::<usize>().max(1) as f64;
        (0..BINS)
            .filter(|&b| self.count[b] > 0)
            .map(|b| {
                let k = self.count[b] as f64;
                k / n * (self.right[b] as f64 / k - self.confidence[b] / k).abs()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ece() {
        // 0.95 right, 0.95 wrong (bin 14: acc 0.5, conf 0.95); 0.1 right (bin 1: acc 1, conf 0.1).
        let b = Bins::from_rows([(0.95, true), (0.95, false), (0.1, true)].into_iter());
        assert_eq!((bin_of(0.95), bin_of(0.1), bin_of(0.0), bin_of(1.0)), (14, 1, 0, 14));
        let want = 2.0 / 3.0 * 0.45 + 1.0 / 3.0 * 0.9;
        assert!((b.ece() - want).abs() < 1e-6, "{}", b.ece());
    }
}
