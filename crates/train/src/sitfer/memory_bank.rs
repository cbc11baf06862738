//! The instance memory buffer: one slot per labeled sample holding its latest L2-normalised feature and its
//! label. Each step overwrites (or momentum-updates) the slots of the labeled batch, detached. The
//! instance score of a face for class `c` is, by [`InstanceRule`]: the best similarity to any written slot of
//! class `c`, floored at 0 (the reference rule); the mean of the class's top-k similarities; or a soft
//! k-nearest-neighbour vote (SimMatch-style): the class's share of the `exp(cos / τ_v)` mass of the k most
//! similar labeled faces of any class. Vectorised: one matrix product and a per-class masked reduction or one
//! top-k and a scatter; no loop over samples or slots.

use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InstanceRule {
    /// `max(0, max_{j: y_j = c} <h, m_j>)`
    Max,
    /// Mean of the k largest similarities among class `c`'s slots (fewer if the class has fewer), floored at 0.
    TopKMean(i64),
    /// Soft vote of the k nearest written slots: `s_c = τ_v ln Σ_{j ∈ kNN, y_j = c} exp(<h, m_j> / τ_v)`, so
    /// that `softmax(s / τ_v)` is exactly each class's share of the neighbours' `exp(cos / τ_v)` mass. A class
    /// with no neighbour among the k scores [`NO_NEIGHBOUR`].
    Knn(i64),
}

/// τ_v of the kNN vote (SimMatch's similarity temperature). The level's own τ_i, fitted or set, applies on top.
pub(crate) const VOTE_TEMPERATURE: f64 = 0.1;

/// kNN score of a class without a neighbour among the k: far below any cosine, so its probability vanishes
/// (below e⁻²⁰ at τ_i ≤ 0.5) without an infinity reaching the fusion or the stored files.
pub(crate) const NO_NEIGHBOUR: f64 = -10.0;

pub(crate) struct MemoryBank {
    /// `[N, D]` slot features (zeros until written).
    pub(crate) feats: Tensor,
    /// `[N]` int64 slot labels (class indices of the run).
    pub(crate) labels: Tensor,
    /// `[N]` bool: slot written at least once.
    pub(crate) written: Tensor,
    /// `[C, N]` bool: slot j belongs to class c (fixed: labels never change).
    class_of: Tensor,
    pub(crate) momentum: f64,
}

impl MemoryBank {
    pub(crate) fn new(labels: &[i64], dim: i64, classes: i64, momentum: f64, device: Device) -> Self {
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

    pub(crate) fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// Writes the (already normalised) features of the labeled samples `idx` (`[B]` slot indices).
    /// With momentum μ > 0, written slots become `normalize(μ m + (1-μ) h)`; first writes take `h`.
    pub(crate) fn update(&mut self, idx: &Tensor, h: &Tensor) {
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
    pub(crate) fn scores(&self, h: &Tensor, rule: InstanceRule) -> Tensor {
        let sims = h.matmul(&self.feats.tr()); // [B, N]
        if let InstanceRule::Knn(k) = rule {
            return self.knn_vote(&sims, k);
        }
        let allowed = self.class_of.logical_and(&self.written.unsqueeze(0)); // [C, N]
        let masked = sims.unsqueeze(1).masked_fill(&allowed.logical_not().unsqueeze(0), f64::NEG_INFINITY); // [B, C, N]
        let best = match rule {
            InstanceRule::Max => masked.amax([-1i64].as_slice(), false),
            InstanceRule::Knn(_) => unreachable!("handled above"),
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

    /// [`InstanceRule::Knn`] on the `[B, N]` similarities.
    fn knn_vote(&self, sims: &Tensor, k: i64) -> Tensor {
        let (b, c) = (sims.size()[0], self.class_of.size()[0]);
        let k = k.clamp(1, self.len().max(1));
        let open = sims.masked_fill(&self.written.logical_not().unsqueeze(0), f64::NEG_INFINITY);
        let (top, idx) = open.topk(k, -1, true, true); // [B, k]; unwritten slots are -inf, weight 0
        let weight = (top / VOTE_TEMPERATURE).exp();
        let label = self.labels.index_select(0, &idx.flatten(0, -1)).view([b, k]);
        let mass = Tensor::zeros([b, c], (Kind::Float, sims.device())).scatter_add(1, &label, &weight);
        let score = mass.log() * VOTE_TEMPERATURE;
        score.masked_fill(&mass.le(0.0), NO_NEIGHBOUR)
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
    fn knn_vote_by_hand() {
        // Slots: 0 (class 0) = e1, 1 (class 1) = e2, 2 (class 1) = (e1+e2)/√2, 3 (class 0) never written.
        let mut bank = MemoryBank::new(&[0, 1, 1, 0], 2, 3, 0.0, Device::Cpu);
        let r = std::f32::consts::FRAC_1_SQRT_2;
        bank.update(&Tensor::from_slice(&[0i64, 1, 2]), &t(&[1.0, 0.0, 0.0, 1.0, r, r], &[3, 2]));
        // h = e1, k = 2: the neighbours are slot 0 (cos 1, class 0) and slot 2 (cos 0.707, class 1);
        // class 2 has none. Shares: e^10 / (e^10 + e^7.07) = 0.9494 and 0.0506.
        let s = bank.scores(&t(&[1.0, 0.0], &[1, 2]), InstanceRule::Knn(2));
        close(&s, &[1.0, r, NO_NEIGHBOUR as f32]);
        let p: Vec<f32> = Vec::try_from(&(s / VOTE_TEMPERATURE).softmax(-1, Kind::Float).flatten(0, -1)).unwrap();
        let e = (10.0f32 * (1.0 - r)).exp();
        assert!((p[0] - e / (e + 1.0)).abs() < 1e-5 && p[2] < 1e-30, "{p:?}");
        // k = 3 takes slot 1 (cos 0) too: class 1's mass is e^7.07 + e^0, so s_1 = 0.1 ln(e^7.07 + 1).
        let s = bank.scores(&t(&[1.0, 0.0], &[1, 2]), InstanceRule::Knn(3));
        close(&s, &[1.0, 0.1 * ((10.0 * r).exp() + 1.0).ln(), NO_NEIGHBOUR as f32]);
        // k larger than the written slots: the unwritten one (slot 3, class 0) adds nothing.
        let s4 = bank.scores(&t(&[1.0, 0.0], &[1, 2]), InstanceRule::Knn(4));
        close(&s4, &[1.0, 0.1 * ((10.0 * r).exp() + 1.0).ln(), NO_NEIGHBOUR as f32]);
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
