//! Mixed precision on CUDA: the forward runs under libtorch's autocast (fp16), the loss is multiplied by a
//! dynamic scale so small fp16 gradients do not underflow, and the gradients are unscaled before clipping and
//! the optimiser step. A step whose gradients hold Inf/NaN is skipped and the scale halved; after `growth_every`
//! clean steps it doubles (PyTorch's `GradScaler` rule). On the CPU the scaler is off and costs nothing.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradScaler {
    pub enabled: bool,
    pub scale: f64,
    pub clean_steps: u64,
    pub growth_every: u64,
}

impl GradScaler {
    pub fn new(enabled: bool) -> Self {
        GradScaler { enabled, scale: 65536.0, clean_steps: 0, growth_every: 2000 }
    }

    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        if self.enabled {
            loss * self.scale
        } else {
            loss.shallow_clone()
        }
    }

    /// Divides the gradients by the scale; returns false (and backs off) when any of them is not finite, in
    /// which case the caller skips the optimiser step.
    pub fn unscale(&mut self, grads: &[Tensor]) -> bool {
        if !self.enabled {
            return true;
        }
        // One read back for all gradients (PyTorch's GradScaler also reads its found-inf flag once per step:
        // fp16's only host read outside log points; bf16 needs no scaler).
        let finite = tch::no_grad(|| {
            let flags: Vec<Tensor> = grads
                .iter()
                .filter(|g| g.defined())
                .map(|g| {
                    let _ = g.shallow_clone().g_div_scalar_(self.scale);
                    g.isfinite().all()
                })
                .collect();
            flags.is_empty() || crate::readback::values(&Tensor::stack(&flags, 0)).iter().all(|&f| f == 1.0)
        });
        if finite {
            self.clean_steps += 1;
            if self.clean_steps.is_multiple_of(self.growth_every) {
                self.scale *= 2.0;
            }
        } else {
            self.scale = (self.scale * 0.5).max(1.0);
            self.clean_steps = 0;
        }
        finite
    }
}

/// The forward outputs back in fp32, so losses, fusion and the memory bank never see fp16.
pub fn to_f32(t: &Tensor) -> Tensor {
    if t.kind() == Kind::Float {
        t.shallow_clone()
    } else {
        t.to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscale_skips_non_finite_steps_and_grows_after_clean_ones() {
        let mut s = GradScaler { enabled: true, scale: 8.0, clean_steps: 0, growth_every: 2 };
        let g = Tensor::from_slice(&[8.0f32, 16.0]);
        assert!(s.unscale(&[g.shallow_clone()]));
        assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0, 2.0]);
        assert!(s.unscale(&[Tensor::from_slice(&[1.0f32])]));
        assert_eq!(s.scale, 16.0);
        assert!(!s.unscale(&[Tensor::from_slice(&[f32::INFINITY])]));
        assert_eq!((s.scale, s.clean_steps), (8.0, 0));
        let off = GradScaler::new(false);
        let l = Tensor::from_slice(&[2.0f32]);
        assert_eq!(f64::try_from(&off.scale_loss(&l)).unwrap(), 2.0);
    }
}
