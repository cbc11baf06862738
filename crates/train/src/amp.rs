//! Mixed precision: which dtype the training forward's autocast region lowers to (`run.precision` on this
//! device), and fp16's loss scaler: the loss is multiplied by a dynamic scale so small fp16 gradients do not
//! underflow, and the gradients are unscaled before clipping and the optimiser step. A step whose gradients
//! hold Inf/NaN is skipped and the scale halved; after `growth_every` clean steps it doubles (PyTorch's
//! `GradScaler` rule). bf16 and fp32 need no scaler: it is off and costs nothing.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::{Precision, Run};

/// The dtype the training forward's autocast lowers to under `run` on `device` (`None`: plain fp32).
pub(crate) fn autocast_kind(run: &Run, device: Device) -> anyhow::Result<Option<Kind>> {
    let precision = match (run.precision, run.amp) {
        (Precision::Auto, Some(false)) => Precision::Fp32,
        (p, _) => p,
    };
    Ok(match precision {
        Precision::Auto => device.is_cuda().then_some(Kind::BFloat16),
        Precision::Fp32 => None,
        Precision::Bf16 => Some(Kind::BFloat16),
        Precision::Fp16 if device.is_cuda() => Some(Kind::Half),
        Precision::Fp16 => bail!(
            "run.precision = \"fp16\" is for CUDA GPUs without bf16; on the CPU use \"bf16\" (native on CPUs with \
             AVX-512 BF16 or AMX) or \"fp32\""
        ),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct GradScaler {
    pub(crate) enabled: bool,
    pub(crate) scale: f64,
    pub(crate) clean_steps: u64,
    pub(crate) growth_every: u64,
}

impl GradScaler {
    pub(crate) fn new(enabled: bool) -> Self {
        GradScaler { enabled, scale: 65536.0, clean_steps: 0, growth_every: 2000 }
    }

    pub(crate) fn scale_loss(&self, loss: &Tensor) -> Tensor {
        if self.enabled {
            loss * self.scale
        } else {
            loss.shallow_clone()
        }
    }

    /// Divides the gradients by the scale; returns false (and backs off) when any of them is not finite, in
    /// which case the caller skips the optimiser step.
    pub(crate) fn unscale(&mut self, grads: &[Tensor]) -> bool {
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
pub(crate) fn to_f32(t: &Tensor) -> Tensor {
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
    fn precision_resolves_per_device_and_old_amp_false_means_fp32() {
        let run = |precision, amp| Run { precision, amp, ..Run::default() };
        let cuda = Device::Cuda(0);
        assert_eq!(autocast_kind(&run(Precision::Auto, None), Device::Cpu).unwrap(), None);
        assert_eq!(autocast_kind(&run(Precision::Auto, None), cuda).unwrap(), Some(Kind::BFloat16));
        assert_eq!(autocast_kind(&run(Precision::Auto, Some(false)), cuda).unwrap(), None);
        assert_eq!(autocast_kind(&run(Precision::Bf16, Some(false)), Device::Cpu).unwrap(), Some(Kind::BFloat16));
        assert_eq!(autocast_kind(&run(Precision::Fp16, None), cuda).unwrap(), Some(Kind::Half));
        let e = autocast_kind(&run(Precision::Fp16, None), Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("run.precision") && e.contains("bf16"), "{e}");
    }

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
