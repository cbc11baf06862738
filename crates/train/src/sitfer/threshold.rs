//! Which pseudo-labels count. Two rules, both selecting with exchange's comparison (confidence strictly above
//! the threshold of the pseudo-label's class, [`exchange::fusion::selected`]):
//! - `fixed` (FixMatch, the paper): one threshold for every class and every step (`method.selection.threshold`);
//! - `self-adaptive` (FreeMatch, Wang et al. 2023): a global threshold that follows the model's own mean
//!   confidence on the unlabeled batches, times a per-class factor that follows its mean predicted
//!   distribution, so a class the model is still unsure of gets a lower bar instead of no pseudo-labels.
//!   Both start at 1/C and are exponential moving averages over steps (`method.selection.sat_momentum`).
//!
//! Owns the self-adaptive state and its update; the fused distribution it reads comes from [`super::fusion`].

use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ThresholdRule {
    #[default]
    Fixed,
    SelfAdaptive,
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
}
