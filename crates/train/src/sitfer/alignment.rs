//! Distribution alignment (ReMixMatch, Berthelot et al. 2020; USB's `DistAlignEMAHook`): before selection,
//! each unlabeled face's fused distribution is multiplied by `target / model` and renormalised, where `model`
//! is a running average of the fused distributions the model has produced on unlabeled batches and `target`
//! the class distribution they should have (uniform, or the labeled set's). A class the model under-predicts
//! is lifted on every face, instead of a threshold vetoing it everywhere (`method.selection.alignment`).
//!
//! Owns the running average and the alignment; which faces then count is [`super::threshold`]'s.

use tch::{Device, Kind, Tensor};

/// The distribution unlabeled predictions are aligned to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AlignTarget {
    /// No alignment (FixMatch, the paper).
    #[default]
    Off,
    /// Every class equally likely (FlexMatch's and FreeMatch's choice under USB).
    Uniform,
    /// The labeled set's class shares (ReMixMatch's).
    Labeled,
}

/// USB's guard against dividing by a class the model never predicts.
const EPS: f64 = 1e-6;

pub(crate) struct Alignment {
    /// `[C]` running average of the unlabeled batches' mean fused distribution; starts at `target`.
    pub(crate) model: Tensor,
    /// `[C]` sums to 1.
    target: Tensor,
    momentum: f64,
}

impl Alignment {
    /// `labels`: the labeled set's class indices (for [`AlignTarget::Labeled`]); `None` with `Off`.
    pub(crate) fn new(
        target: AlignTarget,
        labels: &[i64],
        classes: i64,
        momentum: f64,
        device: Device,
    ) -> Option<Self> {
        let c = classes.max(1);
        let shares: Vec<f32> = match target {
            AlignTarget::Off => return None,
            AlignTarget::Uniform => vec![1.0 / c as f32; c as usize],
            AlignTarget::Labeled => class_shares(labels, c as usize),
        };
        let target = Tensor::from_slice(&shares).to_device(device);
        Some(Alignment { model: target.copy(), target, momentum })
    }

    /// One step's update from the unaligned fused distribution `p` (`[B, C]`): `model ← m model + (1−m) mean_b p`.
    pub(crate) fn update(&mut self, p: &Tensor) {
        if p.size()[0] == 0 {
            return;
        }
        let m = self.momentum;
        tch::no_grad(|| {
            let mean = p.detach().to_kind(Kind::Float).mean_dim([0i64].as_slice(), false, Kind::Float);
            let _ = self.model.g_mul_scalar_(m).g_add_(&(mean * (1.0 - m)));
        });
    }

    /// `[C]` the factors `(target + ε) / (model + ε)` in force.
    pub(crate) fn factors(&self) -> Tensor {
        (&self.target + EPS) / (&self.model + EPS)
    }

    /// `p · (target + ε) / (model + ε)`, each row renormalised to sum 1.
    pub(crate) fn align(&self, p: &Tensor) -> Tensor {
        let q = p.to_kind(Kind::Float) * self.factors().to_device(p.device()).unsqueeze(0);
        &q / q.sum_dim_intlist([-1i64].as_slice(), true, Kind::Float).clamp_min(1e-12)
    }
}

/// Each class's share of `labels` (uniform when there are none).
fn class_shares(labels: &[i64], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        if let Some(c) = usize::try_from(l).ok().and_then(|l| counts.get_mut(l)) {
            *c += 1;
        }
    }
    let n: usize = counts.iter().sum();
    if n == 0 {
        return vec![1.0 / classes as f32; classes];
    }
    counts.iter().map(|&k| k as f32 / n as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.flatten(0, -1)).unwrap()
    }

    fn close(got: &[f32], want: &[f32]) {
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?} vs {want:?}");
    }

    #[test]
    fn off_builds_nothing_and_labeled_targets_are_the_labeled_shares() {
        assert!(Alignment::new(AlignTarget::Off, &[0, 1], 2, 0.9, Device::Cpu).is_none());
        assert_eq!(class_shares(&[0, 0, 0, 2], 3), vec![0.75, 0.0, 0.25]);
        assert_eq!(class_shares(&[], 2), vec![0.5, 0.5]);
        let a = Alignment::new(AlignTarget::Labeled, &[0, 0, 0, 1], 2, 0.9, Device::Cpu).unwrap();
        close(&v(&a.model), &[0.75, 0.25]);
    }

    #[test]
    fn an_under_predicted_class_is_lifted_by_target_over_model() {
        let mut a = Alignment::new(AlignTarget::Uniform, &[], 2, 0.5, Device::Cpu).unwrap();
        // At the start model = target: alignment changes nothing.
        let p = Tensor::from_slice(&[0.6f32, 0.4]).view([1, 2]);
        close(&v(&a.align(&p)), &[0.6, 0.4]);
        // Batch mean [0.9, 0.1]: model = 0.5·[0.5, 0.5] + 0.5·[0.9, 0.1] = [0.7, 0.3].
        a.update(&Tensor::from_slice(&[0.9f32, 0.1, 0.9, 0.1]).view([2, 2]));
        close(&v(&a.model), &[0.7, 0.3]);
        // [0.6, 0.4] · [0.5/0.7, 0.5/0.3] = [0.428571, 0.666667], renormalised: [0.391304, 0.608696]: class 1
        // now wins the face the model had given to class 0.
        let q = v(&a.align(&p));
        close(&q, &[0.391_304, 0.608_696]);
        a.update(&Tensor::zeros([0, 2], (Kind::Float, Device::Cpu)));
        close(&v(&a.model), &[0.7, 0.3]);
    }
}
