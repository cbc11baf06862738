//! Which pseudo-labels count. Three rules, all selecting with exchange's comparison (confidence strictly above
//! the threshold of the pseudo-label's class, [`exchange::fusion::selected`]):
//! - `fixed` (FixMatch, the paper): one threshold for every class and every step (`method.selection.threshold`);
//! - `self-adaptive` (FreeMatch, Wang et al. 2023): a global threshold that follows the model's own mean
//!   confidence on the unlabeled batches, times a per-class factor that follows its mean predicted
//!   distribution, so a class the model is still unsure of gets a lower bar instead of no pseudo-labels.
//!   Both start at 1/C and are exponential moving averages over steps (`method.selection.sat_momentum`);
//! - `flex` (FlexMatch's curriculum pseudo-labelling, Zhang et al. 2021): class c's bar is
//!   `τ · β_c / (2 − β_c)` (the convex mapping), where the learning effect `β_c = σ_c / max(max_k σ_k, σ_∅)`
//!   and σ_c counts the unlabeled faces whose latest prediction above the fixed τ was c (σ_∅: faces never
//!   above it; the "threshold warm-up", so every bar starts near 0 and rises as the model learns). A class
//!   the model rarely predicts confidently keeps a low bar instead of being vetoed. Without the warm-up
//!   (`method.selection.flex_warmup = false`, FlexMatch's other variant) `β_c = σ_c / max_k σ_k`: the
//!   best-learned class is held to τ from the first counted face on.
//!
//! Owns the self-adaptive and curriculum states and their updates; the fused distribution they read comes
//! from [`super::fusion`].

use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ThresholdRule {
    #[default]
    Fixed,
    SelfAdaptive,
    Flex,
}

/// FreeMatch's self-adaptive threshold state.
pub(crate) struct SelfAdaptive {
    /// `[]` τ_t: EMA of the batches' mean maximum probability.
    pub(crate) global: Tensor,
    /// `[C]` p̃_t: EMA of the batches' mean probability per class.
    pub(crate) class: Tensor,
    pub(crate) momentum: f64,
}

impl SelfAdaptive {
    pub(crate) fn new(classes: i64, momentum: f64, device: Device) -> Self {
        let c = classes.max(1);
        SelfAdaptive {
            global: Tensor::full([] as [i64; 0], 1.0 / c as f64, (Kind::Float, device)),
            class: Tensor::full([c], 1.0 / c as f64, (Kind::Float, device)),
            momentum,
        }
    }

    /// One step's update from the fused distribution `p` (`[B, C]`) of the unlabeled batch:
    /// `τ ← m τ + (1−m) mean_b max_c p`, `p̃ ← m p̃ + (1−m) mean_b p`.
    pub(crate) fn update(&mut self, p: &Tensor) {
        if p.size()[0] == 0 {
            return;
        }
        let m = self.momentum;
        tch::no_grad(|| {
            let p = p.detach().to_kind(Kind::Float);
            let max_mean = p.amax([-1i64].as_slice(), false).mean(Kind::Float);
            let class_mean = p.mean_dim([0i64].as_slice(), false, Kind::Float);
            let _ = self.global.g_mul_scalar_(m).g_add_(&(max_mean * (1.0 - m)));
            let _ = self.class.g_mul_scalar_(m).g_add_(&(class_mean * (1.0 - m)));
        });
    }

    /// `[C]` thresholds in force: `τ · p̃_c / max_c p̃_c`.
    pub(crate) fn thresholds(&self) -> Tensor {
        &self.global * (&self.class / self.class.max().clamp_min(1e-12))
    }

    /// `[B]` float mask: confidence above the threshold of the pseudo-label's class.
    pub(crate) fn select(&self, confidence: &Tensor, label: &Tensor) -> Tensor {
        confidence.gt_tensor(&self.thresholds().index_select(0, label)).to_kind(Kind::Float)
    }
}

/// FlexMatch's curriculum state: for each unlabeled face (by its index in the run's unlabeled set), the class
/// of its latest prediction above the fixed threshold, −1 while it has never been above it.
pub(crate) struct Flex {
    /// `[N_u]` int64.
    pub(crate) latest: Tensor,
    classes: i64,
    /// σ_∅ in the denominator (FlexMatch's threshold warm-up).
    warmup: bool,
}

impl Flex {
    pub(crate) fn new(unlabeled: i64, classes: i64, warmup: bool, device: Device) -> Self {
        Flex { latest: Tensor::full([unlabeled.max(0)], -1, (Kind::Int64, device)), classes: classes.max(1), warmup }
    }

    /// `[C]` learning effects `β_c = σ_c / max(max_k σ_k, σ_∅)`, or `σ_c / max_k σ_k` without the warm-up (0 for
    /// every class while no face is counted).
    pub(crate) fn learning_effect(&self) -> Tensor {
        let counts = (&self.latest + 1).bincount::<Tensor>(None, self.classes + 1).to_kind(Kind::Float);
        let unused = counts.get(0);
        let sigma = counts.narrow(0, 1, self.classes);
        let top = if self.warmup { sigma.max().maximum(&unused) } else { sigma.max() };
        &sigma / top.clamp_min(1.0)
    }

    /// `[C]` thresholds in force under the fixed threshold `tau`: `τ β_c / (2 − β_c)`.
    pub(crate) fn thresholds(&self, tau: f64) -> Tensor {
        let beta = self.learning_effect();
        (&beta / (2.0 - &beta)) * tau
    }

    /// `[B]` float mask: confidence above the bar of the pseudo-label's class.
    pub(crate) fn select(&self, confidence: &Tensor, label: &Tensor, tau: f64) -> Tensor {
        confidence.gt_tensor(&self.thresholds(tau).index_select(0, label)).to_kind(Kind::Float)
    }

    /// Records the batch's faces `idx` (`[B]` int64, unlabeled indices) whose confidence is above `tau`
    /// with their pseudo-label; the others keep their earlier class.
    pub(crate) fn update(&mut self, idx: &Tensor, confidence: &Tensor, label: &Tensor, tau: f64) {
        tch::no_grad(|| {
            let above = confidence.gt(tau);
            let (idx, label) = (idx.masked_select(&above), label.masked_select(&above));
            if idx.size()[0] > 0 {
                let _ = self.latest.index_copy_(0, &idx, &label);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn starts_at_one_over_c_and_follows_the_batches() {
        let mut s = SelfAdaptive::new(2, 0.5, Device::Cpu);
        assert_eq!(v(&s.thresholds()), vec![0.5, 0.5]);
        // Batch: [0.9, 0.1] and [0.7, 0.3]: mean max 0.8, class means [0.8, 0.2].
        s.update(&Tensor::from_slice(&[0.9f32, 0.1, 0.7, 0.3]).view([2, 2]));
        // τ = 0.5·0.5 + 0.5·0.8 = 0.65; p̃ = 0.5·[0.5, 0.5] + 0.5·[0.8, 0.2] = [0.65, 0.35].
        let t = v(&s.thresholds());
        assert!((t[0] - 0.65).abs() < 1e-6 && (t[1] - 0.65 * 0.35 / 0.65).abs() < 1e-6, "{t:?}");
        // Class 1's bar is 0.35: a 0.4-confident class-1 label counts, a 0.6-confident class-0 label does not.
        let mask = s.select(&Tensor::from_slice(&[0.4f32, 0.6, 0.66]), &Tensor::from_slice(&[1i64, 0, 0]));
        assert_eq!(v(&mask), vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let mut s = SelfAdaptive::new(3, 0.9, Device::Cpu);
        s.update(&Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)));
        let t = v(&s.thresholds());
        assert!(t.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-6), "{t:?}");
    }

    #[test]
    fn flex_bars_rise_with_each_class_s_confident_faces() {
        let mut f = Flex::new(6, 3, true, Device::Cpu);
        // Nothing counted yet: β = 0, every bar 0, so every pseudo-label counts (FlexMatch's warm-up).
        assert_eq!(v(&f.thresholds(0.9)), vec![0.0, 0.0, 0.0]);
        // Faces 0, 1, 2 predicted 0, 0, 1 above 0.9; face 3 at 0.5 stays uncounted.
        let idx = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let conf = Tensor::from_slice(&[0.95f32, 0.99, 0.92, 0.5]);
        f.update(&idx, &conf, &Tensor::from_slice(&[0i64, 0, 1, 2]), 0.9);
        assert_eq!(Vec::<i64>::try_from(&f.latest).unwrap(), vec![0, 0, 1, -1, -1, -1]);
        // σ = (2, 1, 0), σ_∅ = 3: β = (2/3, 1/3, 0); bar = 0.9 β / (2 − β) = (0.45, 0.18, 0).
        let t = v(&f.thresholds(0.9));
        for (got, want) in t.iter().zip([0.45f32, 0.18, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
        // Face 0 changes its mind to class 2, face 4 joins class 0, face 5 joins class 0:
        // σ = (3, 1, 1), σ_∅ = 1: β = (1, 1/3, 1/3); bars (0.9, 0.18, 0.18).
        let idx = Tensor::from_slice(&[0i64, 4, 5]);
        f.update(&idx, &Tensor::from_slice(&[0.91f32, 0.93, 0.97]), &Tensor::from_slice(&[2i64, 0, 0]), 0.9);
        let t = v(&f.thresholds(0.9));
        for (got, want) in t.iter().zip([0.9f32, 0.18, 0.18]) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
        // A 0.5-confident class-2 label passes its 0.18 bar; a 0.85-confident class-0 one fails 0.9.
        let mask = f.select(&Tensor::from_slice(&[0.5f32, 0.85]), &Tensor::from_slice(&[2i64, 0]), 0.9);
        assert_eq!(v(&mask), vec![1.0, 0.0]);
    }

    #[test]
    fn without_the_warm_up_the_best_learned_class_is_held_to_tau_at_once() {
        let mut f = Flex::new(6, 3, false, Device::Cpu);
        assert_eq!(v(&f.thresholds(0.9)), vec![0.0, 0.0, 0.0]);
        let idx = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let conf = Tensor::from_slice(&[0.95f32, 0.99, 0.92, 0.5]);
        f.update(&idx, &conf, &Tensor::from_slice(&[0i64, 0, 1, 2]), 0.9);
        // σ = (2, 1, 0), the three uncounted faces no longer in the denominator: β = (1, 1/2, 0);
        // bars 0.9 · β / (2 − β) = (0.9, 0.3, 0).
        let t = v(&f.thresholds(0.9));
        for (got, want) in t.iter().zip([0.9f32, 0.3, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
    }
}
