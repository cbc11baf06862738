//! Restoring tensors saved by name (`model.*`, `optim.*`, `ema.*`, `bank.*` in a checkpoint): the one rule
//! the model, the optimiser and the EMA share when they read their state back.

use std::collections::HashMap;

use anyhow::{bail, Context};
use tch::Tensor;

/// Copies the checkpoint tensor `key` into `dst` (same shape required): the one restore rule the model,
/// optimiser and EMA share.
pub fn load_into(named: &HashMap<String, Tensor>, key: &str, dst: &mut Tensor) -> anyhow::Result<()> {
    let src = named.get(key).with_context(|| format!("checkpoint has no {key}"))?;
    if src.size() != dst.size() {
        bail!(
            "{key}: shape {:?} in the checkpoint, the model has {:?} (config changed since?)",
            src.size(),
            dst.size()
        );
    }
    tch::no_grad(|| dst.copy_(&src.to_device(dst.device())));
    Ok(())
}
