//! SIT-FER's heads on the backbone feature (512-d at torchvision's width): L2 normalisation (the feature `h`
//! the memory bank, the instance queries and the text level use, never dropped out: a cosine between two
//! dropped-out features carries two independent masks), dropout on the classifier's input only, the linear
//! classifier `fc` (torchvision's name, so a
//! checkpoint's classifier is recognised — and reported as a shape mismatch when its class count differs), and
//! the projection `g` into the text space (`text_proj`; the identity when the text space has the feature's
//! size, as docs/method.md says).

use tch::nn::{self, Module};
use tch::Tensor;

pub(crate) struct Heads {
    pub(crate) fc: nn::Linear,
    pub(crate) text_proj: Option<nn::Linear>,
    pub(crate) dropout: f64,
    /// The classifier sees `scale · h` (1 = the paper's `z = W h + b`).
    pub(crate) scale: f64,
}

/// What the heads give for a batch.
pub struct HeadOut {
    /// `[B, feature]`, unit norm.
    pub(crate) h: Tensor,
    /// `[B, C]` classifier logits.
    pub z: Tensor,
    /// `[B, D]` projection into text space (not normalised; the text level normalises).
    pub(crate) g: Tensor,
}

impl Heads {
    pub(crate) fn new(
        root: &nn::Path,
        feature_dim: i64,
        classes: i64,
        text_dim: i64,
        dropout: f64,
        scale: f64,
    ) -> Self {
        let text_proj = (text_dim != feature_dim)
            .then(|| nn::linear(root / "text_proj", feature_dim, text_dim, Default::default()));
        Heads { fc: nn::linear(root / "fc", feature_dim, classes, Default::default()), text_proj, dropout, scale }
    }

    pub(crate) fn forward(&self, feature: &Tensor, train: bool) -> HeadOut {
        let h = feature / feature.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
        let z = self.logits(&h.dropout(self.dropout, train));
        let g = match &self.text_proj {
            Some(p) => p.forward(&h),
            None => h.shallow_clone(),
        };
        HeadOut { h, z, g }
    }

    /// The classifier on unit features `h` without dropout: the logits a pseudo-label is made from.
    pub(crate) fn logits(&self, h: &Tensor) -> Tensor {
        if self.scale == 1.0 {
            self.fc.forward(h)
        } else {
            self.fc.forward(&(h * self.scale))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn unit_features_and_identity_projection_at_512() {
        let vs = nn::VarStore::new(Device::Cpu);
        let heads = Heads::new(&vs.root(), 512, 8, 512, 0.5, 1.0);
        assert!(heads.text_proj.is_none());
        let out = heads.forward(&Tensor::randn([4, 512], (Kind::Float, Device::Cpu)), false);
        let norms: Vec<f32> = Vec::try_from(&out.h.norm_scalaropt_dim(2, [1i64], false)).unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
        assert_eq!(out.z.size(), vec![4, 8]);
        let heads = Heads::new(&(vs.root() / "b"), 512, 7, 384, 0.5, 1.0);
        assert_eq!(heads.forward(&Tensor::ones([2, 512], (Kind::Float, Device::Cpu)), true).g.size(), vec![2, 384]);
        // classifier_scale multiplies what the classifier sees, not the feature the bank and text level use.
        let plain = Heads::new(&(vs.root() / "c"), 512, 8, 512, 0.5, 1.0);
        let fc = nn::Linear { ws: plain.fc.ws.shallow_clone(), bs: plain.fc.bs.as_ref().map(Tensor::shallow_clone) };
        let scaled = Heads { fc, text_proj: None, dropout: 0.5, scale: 4.0 };
        let x = Tensor::randn([3, 512], (Kind::Float, Device::Cpu));
        let (a, b) = (plain.forward(&x, false), scaled.forward(&x, false));
        let bias = plain.fc.bs.as_ref().unwrap();
        assert!((b.z - bias).allclose(&((a.z - bias) * 4.0), 1e-5, 1e-5, false));
        assert!(b.h.allclose(&a.h, 1e-6, 1e-6, false));
        // In train mode dropout reaches the logits only: h and g are those of eval mode.
        let (tr, ev) = (plain.forward(&x, true), plain.forward(&x, false));
        assert!(tr.h.allclose(&ev.h, 1e-6, 1e-6, false) && tr.g.allclose(&ev.g, 1e-6, 1e-6, false));
        assert!(!tr.z.allclose(&ev.z, 1e-3, 1e-3, false));
        assert!(plain.logits(&ev.h).allclose(&ev.z, 1e-6, 1e-6, false));
    }
}
