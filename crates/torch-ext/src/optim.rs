//! libtorch's fused Adam/AdamW update (`torch.optim.Adam(fused=True)`'s kernel): parameters and both moments
//! updated in place in one pass, instead of the dozen elementwise operators (and their temporaries) the same
//! rule costs when written with tensor ops. The optimiser's state and its schedule stay with the caller.

use std::ffi::c_int;

use tch::Tensor;

use crate::ffi::{check, tx_clear_grads, tx_fused_adam};
use crate::{Result, TorchExtError};

/// The update's hyper-parameters for one call (one learning rate for every tensor passed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW's decoupled decay (the parameter shrinks by `lr · weight_decay`) instead of Adam's L2 term.
    pub decoupled: bool,
}

/// One Adam step over `params` with their `grads` and moments `exp_avgs` / `exp_avg_sqs` (all of one
/// device and floating type, each list in the same order), at update number `step` (1 for the first
/// update: the bias corrections read it). The kernel wants every tensor dense in the default layout; a
/// channels-last parameter must take the unfused path.
pub fn fused_adam(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    step: i64,
    h: Adam,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(TorchExtError {
            call: "tx_fused_adam",
            message: format!(
                "expected as many gradients and moments as parameters ({n}), got {}, {} and {}",
                grads.len(),
                exp_avgs.len(),
                exp_avg_sqs.len()
            ),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let ptrs = |ts: &[Tensor]| ts.iter().map(|t| t.as_ptr()).collect::<Vec<_>>();
    let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    let step = Tensor::from(step as f32).to_device(params[0].device());
    // SAFETY: every pointer is a live tensor borrowed for the duration of this blocking call; the kernel
    // mutates parameters and moments in place through their shared storage, as their owners expect.
    check("tx_fused_adam", unsafe {
        tx_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            n as c_int,
            step.as_ptr(),
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
            h.decoupled,
        )
    })
}

/// Drops the gradients of `params` (PyTorch's `zero_grad(set_to_none=True)`, its default): the next
/// backward stores its gradient instead of adding it into zeros, and a parameter it does not reach keeps
/// no gradient at all (an optimiser then leaves it alone).
pub fn clear_grads(params: &[Tensor]) -> Result<()> {
    let p = params.iter().map(|t| t.as_ptr()).collect::<Vec<_>>();
    // SAFETY: live tensors for the duration of the call; only their autograd metadata changes.
    check("tx_clear_grads", unsafe { tx_clear_grads(p.as_ptr(), p.len() as c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Two steps of Adam and AdamW on one 3-element parameter, against the rule written out by hand.
    #[test]
    fn matches_the_adam_rule_by_hand() {
        for decoupled in [false, true] {
            let h = Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled };
            let p0 = [1.0f64, -2.0, 0.5];
            let grads = [[0.3f64, -0.1, 2.0], [0.1, 0.2, -1.0]];
            let p = Tensor::from_slice(&p0.map(|x| x as f32));
            let (m, v) = (p.zeros_like(), p.zeros_like());
            let (mut pe, mut me, mut ve) = (p0, [0.0f64; 3], [0.0f64; 3]);
            for (t, g) in grads.iter().enumerate() {
                let step = t as i64 + 1;
                let gt = Tensor::from_slice(&g.map(|x| x as f32));
                fused_adam(&[p.shallow_clone()], &[gt], &[m.shallow_clone()], &[v.shallow_clone()], step, h).unwrap();
                for i in 0..3 {
                    let mut gi = g[i];
                    if decoupled {
                        pe[i] *= 1.0 - h.lr * h.weight_decay;
                    } else {
                        gi += h.weight_decay * pe[i];
                    }
                    me[i] = h.beta1 * me[i] + (1.0 - h.beta1) * gi;
                    ve[i] = h.beta2 * ve[i] + (1.0 - h.beta2) * gi * gi;
                    let mhat = me[i] / (1.0 - h.beta1.powi(step as i32));
                    let vhat = ve[i] / (1.0 - h.beta2.powi(step as i32));
                    pe[i] -= h.lr * mhat / (vhat.sqrt() + h.eps);
                }
            }
            let got = Vec::<f32>::try_from(&p).unwrap();
            for (a, b) in got.iter().zip(&pe) {
                assert!((*a as f64 - b).abs() < 1e-5, "decoupled {decoupled}: {got:?} vs {pe:?}");
            }
            let mv = Vec::<f32>::try_from(&m).unwrap();
            assert!((mv[0] as f64 - me[0]).abs() < 1e-6, "{mv:?} vs {me:?}");
        }
    }

    #[test]
    fn mismatched_lists_are_refused() {
        let p = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let h = Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false };
        let e = fused_adam(&[p.shallow_clone()], &[], &[p.zeros_like()], &[p.zeros_like()], 1, h).unwrap_err();
        assert!(e.to_string().contains("as many gradients"), "{e}");
    }

    #[test]
    fn cleared_gradients_are_undefined_until_the_next_backward() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        (&w * 2.0).sum(Kind::Float).backward();
        assert!(w.grad().defined());
        clear_grads(&[w.shallow_clone()]).unwrap();
        assert!(!w.grad().defined());
        (&w * 3.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&w.grad()).unwrap(), vec![3.0; 3]);
    }
}
