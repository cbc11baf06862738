//! Tensors saved by name (`model.*`, `optim.*`, `ema.*`, `bank.*` in a checkpoint; a snapshot's weights):
//! the one way checkpoints and snapshots write them, and the one rule the model, the optimiser and the EMA
//! share when they read their state back.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use tch::Tensor;

/// Writes named tensors to a safetensors file atomically (fsynced, then renamed into place). safetensors
/// stores dense row-major data: channels-last tensors are written in the standard layout, and restoring copies
/// them back into whatever layout is live.
pub(crate) fn write(path: &Path, named: &[(String, Tensor)]) -> anyhow::Result<()> {
    let dense: Vec<(String, Tensor)> = named.iter().map(|(k, v)| (k.clone(), v.contiguous())).collect();
    exchange::atomic::write_by_path(path, |tmp| Tensor::write_safetensors(&dense, tmp))
        .with_context(|| format!("writing {}", path.display()))
}

/// Copies the checkpoint tensor `key` into `dst` (same shape required): the one restore rule the model,
/// optimiser and EMA share.
pub(crate) fn load_into(named: &HashMap<String, Tensor>, key: &str, dst: &mut Tensor) -> anyhow::Result<()> {
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
