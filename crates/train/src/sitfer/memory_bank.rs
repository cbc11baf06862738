//! The instance memory buffer: one slot per labeled sample holding its latest L2-normalised feature and its
//! label. Each step overwrites (or momentum-updates) the slots of the labeled batch, detached. The
//! instance score of a face for class `c` is the best similarity to any written slot of class `c`, floored at
//! 0 (the reference rule), or the mean of the top-k similarities. Vectorised: one matrix product and a
//! per-class masked max; no loop over samples or slots.

use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceRule {
    /// `max(0, max_{j: y_j = c} <h, m_j>)`
    Max,
    /// Mean of the k largest similarities among class `c`'s slots (fewer if the class has fewer), floored at 0.
    TopKMean(i64),
}

pub struct MemoryBank {
    /// `[N, D]` slot features (zeros until written).
    pub feats: Tensor,
    /// `[N]` int64 slot labels (class indices of the run).
    pub labels: Tensor,
    /// `[N]` bool: slot written at least once.
    pub written: Tensor,
    /// `[C, N]` bool: slot j belongs to class c (fixed: labels never change).
    class_of: Tensor,
    pub momentum: f64,
}

impl MemoryBank {
    pub fn new(labels: &[i64], dim: i64, classes: i64, momentum: f64, device: Device) -> Self {
        let n = labels.len() as i64;
        let labels = Tensor::from_slice(labels).to_device(device);
        let class_of = Tensor::arange(classes, (Kind::Int64, device)).unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
        Self {
            feats: Tensor::zeros([n, dim], (Kind::Float, device)),
            labels,
            written: Tensor::zeros([n], (Kind::Bool, device)),
            class_of,
            momentum,
        }
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the (already normalised) features of the labeled samples `idx` (`[B]` slot indices).
    /// With momentum μ > 0, written slots become `normalize(μ m + (1-μ) h)`; first writes take `h`.
    pub fn update(&mut self, idx: &Tensor, h: &Tensor) {
        tch::no_grad(|| {
            let h = h.detach().to_kind(Kind::Float);
            let new = if self.momentum > 0.0 {
                let old = self.feats.index_select(0, idx);
                let was = self.written.index_select(0, idx).unsqueeze(1);
                let mixed = &old * self.momentum + &h * (1.0 - self.momentum);
                let mixed = &mixed / mixed.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
                mixed.where_self(&was, &h)
            } else {
                h
            };
            let _ = self.feats.index_copy_(0, idx, &new);
            let _ = self.written.index_fill_(0, idx, 1);
        });
    }

    /// `[B, C]` instance scores of features `h` (`[B, D]`, normalised). Classes with no written slot score 0.
    pub fn scores(&self, h: &Tensor, rule: InstanceRule) -> Tensor {
        let sims = h.matmul(&self.feats.tr()); // [B, N]
        let allowed = self.class_of.logical_and(&self.written.unsqueeze(0)); // [C, N]
        let masked = sims.unsqueeze(1).masked_fill(&allowed.logical_not().unsqueeze(0), f64::NEG_INFINITY); // [B, C, N]
        let best = match rule {
            InstanceRule::Max => masked.amax([-1i64].as_slice(), false),
            InstanceRule::TopKMean(k) => {
                let k = k.clamp(1, self.len().max(1));
                let (top, _) = masked.topk(k, -1, true, true);
                // Slots beyond a class's count are -inf: average only the finite ones.
                let finite = top.isfinite();
                let count = finite.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float).clamp_min(1.0);
                top.masked_fill(&finite.logical_not(), 0.0).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
                    / count
            }
        };
        // -inf (no slot of the class) and negative similarities both floor at 0.
        best.clamp_min(0.0).nan_to_num(0.0, 0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    fn close(a: &Tensor, want: &[f32]) {
        let got: Vec<f32> = Vec::try_from(&a.flatten(0, -1)).unwrap();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn max_rule_by_hand() {
        // Slots: 0 (class 0) = e1, 1 (class 1) = e2, 2 (class 1) = (e1+e2)/√2, 3 (class 2) never written.
        let mut bank = MemoryBank::new(&[0, 1, 1, 2], 2, 3, 0.0, Device::Cpu);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        bank.update(&Tensor::from_slice(&[0i64, 1, 2]), &t(&[1.0, 0.0, 0.0, 1.0, s, s], &[3, 2]));
        // h = e1: class 0 -> 1, class 1 -> max(0, 0.707) = 0.707, class 2 -> 0 (empty).
        // h = -e1: class 0 -> max(0, -1) = 0, class 1 -> max(0, -0.707, 0) = 0.
        let scores = bank.scores(&t(&[1.0, 0.0, -1.0, 0.0], &[2, 2]), InstanceRule::Max);
        close(&scores, &[1.0, s, 0.0, 0.0, 0.0, 0.0]);
        let top2 = bank.scores(&t(&[1.0, 0.0], &[1, 2]), InstanceRule::TopKMean(2));
        close(&top2, &[1.0, s / 2.0, 0.0]);
    }

    #[test]
    fn overwrite_and_momentum() {
        let mut bank = MemoryBank::new(&[0, 1], 2, 2, 0.0, Device::Cpu);
        bank.update(&Tensor::from_slice(&[0i64]), &t(&[1.0, 0.0], &[1, 2]));
        bank.update(&Tensor::from_slice(&[0i64]), &t(&[0.0, 1.0], &[1, 2]));
        close(&bank.feats, &[0.0, 1.0, 0.0, 0.0]);
        let mut bank = MemoryBank::new(&[0], 2, 1, 0.5, Device::Cpu);
        bank.update(&Tensor::from_slice(&[0i64]), &t(&[1.0, 0.0], &[1, 2])); // first write: h itself
        bank.update(&Tensor::from_slice(&[0i64]), &t(&[0.0, 1.0], &[1, 2])); // normalize(0.5 e1 + 0.5 e2)
        let s = std::f32::consts::FRAC_1_SQRT_2;
        close(&bank.feats, &[s, s]);
    }
}
