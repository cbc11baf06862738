//! The backbones' batch norm, and the one switch for which statistics it normalises with ([`Norm`]): the
//! running ones (evaluation, and training with `model.freeze_bn`), this process's batch (training), or the
//! batch of every data-parallel rank together (training with `model.sync_bn`, PyTorch's `SyncBatchNorm`).
//! The backbones only pass the switch down; [`super::Net::forward`] decides it.

use std::ops::Deref;

use tch::nn;
use tch::Tensor;
use torch_ext::dist::ProcessGroup;

/// PyTorch's default running-statistics momentum, which tch's `BatchNormConfig` also uses.
const MOMENTUM: f64 = 0.1;

/// Which statistics a batch norm normalises with.
#[derive(Clone, Copy)]
pub(crate) enum Norm<'a> {
    /// The running statistics; nothing is updated.
    Running,
    /// This process's batch; the running statistics follow it.
    Batch,
    /// The batch of every rank in `group` together (each rank's share concatenated); the running statistics
    /// follow that, identically on every rank.
    AllRanks(&'a ProcessGroup),
}

impl Norm<'_> {
    /// [`Norm::Running`] or [`Norm::Batch`]: a one-process `train` flag.
    pub(crate) fn local(train: bool) -> Norm<'static> {
        if train {
            Norm::Batch
        } else {
            Norm::Running
        }
    }
}

/// A 2-d batch norm (tch's, whose variables it keeps under the same names) that knows its `eps`, which the
/// synchronised path needs and tch keeps private.
#[derive(Debug)]
pub(crate) struct BatchNorm2d {
    inner: nn::BatchNorm,
    eps: f64,
}

pub(crate) fn batch_norm2d(p: nn::Path, channels: i64, eps: f64) -> BatchNorm2d {
    let cfg = nn::BatchNormConfig { eps, momentum: MOMENTUM, ..Default::default() };
    BatchNorm2d { inner: nn::batch_norm2d(p, channels, cfg), eps }
}

impl BatchNorm2d {
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    /// # Panics
    /// In [`Norm::AllRanks`], when the collective fails (a rank died or timed out): the process then stops,
    /// and the launcher names it and stops the others, as for any failed rank.
    pub(crate) fn forward(&self, x: &Tensor, norm: Norm) -> Tensor {
        match norm {
            Norm::Running => x.apply_t(&self.inner, false),
            Norm::Batch => x.apply_t(&self.inner, true),
            Norm::AllRanks(group) => {
                let (Some(w), Some(b)) = (&self.inner.ws, &self.inner.bs) else {
                    unreachable!("batch_norm2d always builds the affine weight and bias")
                };
                let bn = &self.inner;
                group
                    .sync_batch_norm(x, w, b, &bn.running_mean, &bn.running_var, MOMENTUM, self.eps)
                    .unwrap_or_else(|e| panic!("synchronised batch norm: {e}"))
            }
        }
    }
}

impl Deref for BatchNorm2d {
    type Target = nn::BatchNorm;

    fn deref(&self) -> &nn::BatchNorm {
        &self.inner
    }
}
