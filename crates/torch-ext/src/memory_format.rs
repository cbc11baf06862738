//! The channels-last memory format (NHWC strides under the NCHW shape), which oneDNN's and cuDNN's fastest
//! convolutions want: for the input batch and for a model's 4-d weights, as PyTorch's
//! `.to(memory_format=torch.channels_last)` does. Elementwise results are the same; only the strides change.

use tch::Tensor;

use crate::ffi::{check, tx_channels_last};
use crate::Result;

/// `t` laid out channels-last (a copy unless it already is). Needs a 4-d tensor.
pub fn channels_last(t: &Tensor) -> Result<Tensor> {
    let mut out = std::ptr::null_mut();
    // SAFETY: `t` is a live tensor; on success the shim hands us a new heap tensor that tch then owns.
    check("tx_channels_last", unsafe { tx_channels_last(t.as_ptr(), &mut out) })?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

#[cfg(test)]
pub(crate) fn is_channels_last(t: &Tensor) -> Result<bool> {
    let mut yes = false;
    // SAFETY: `t` is a live tensor; the out-pointer is a valid local.
    check("tx_is_channels_last", unsafe { crate::ffi::tx_is_channels_last(t.as_ptr(), &mut yes) })?;
    Ok(yes)
}

/// Re-lays every 4-d tensor of `vars` (a model's convolution weights) channels-last in place, keeping each
/// variable's identity (optimisers and checkpoints hold the same tensors).
pub fn params_channels_last<'a>(vars: impl IntoIterator<Item = &'a mut Tensor>) -> Result<()> {
    tch::no_grad(|| {
        for v in vars {
            if v.dim() == 4 {
                let cl = channels_last(v)?;
                v.set_data(&cl);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn channels_last_keeps_values_and_shape_and_changes_strides() {
        let t = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, Device::Cpu)).reshape([2, 3, 2, 2]);
        assert!(!is_channels_last(&t).unwrap());
        let c = channels_last(&t).unwrap();
        assert!(is_channels_last(&c).unwrap());
        assert_eq!(c.size(), vec![2, 3, 2, 2]);
        // NHWC strides for N=2, C=3, H=2, W=2: (H*W*C, 1, W*C, C).
        assert_eq!(c.stride(), vec![12, 1, 6, 3]);
        assert!(c.equal(&t));
    }

    #[test]
    fn params_are_relaid_in_place_and_others_left_alone() {
        let mut w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut b = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        let before = w.detach().copy();
        params_channels_last([&mut w, &mut b]).unwrap();
        assert!(is_channels_last(&w).unwrap() && w.requires_grad());
        assert!(w.detach().equal(&before));
        assert_eq!(b.stride(), vec![1]);
        let e = channels_last(&b).unwrap_err();
        assert!(e.to_string().contains("tx_channels_last"), "{e}");
    }
}
