//! Checkpoints: `checkpoints/ckpt-<step>.safetensors` (model variables, optimiser state, memory bank) plus
//! `checkpoints/latest.json` (step, epoch, samplers, best-so-far), written in that order and each atomically,
//! so a crash leaves the previous pair intact: `latest.json` only ever names a complete tensor file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use crate::data::sampler::SamplerState;
use crate::optim::Optimizer;
use crate::sitfer::memory_bank::MemoryBank;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub step: u64,
    pub epoch: u32,
    pub labeled: SamplerState,
    pub unlabeled: SamplerState,
    pub best_val: f64,
    pub best_epoch: u32,
    pub tensors: String,
}

pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

pub fn save(run_dir: &Path, vs: &VarStore, opt: &Optimizer, bank: &MemoryBank, state: &State) -> anyhow::Result<()> {
    let d = dir(run_dir);
    std::fs::create_dir_all(&d)?;
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (format!("model.{k}"), v)).collect();
    named.extend(opt.state());
    named.push(("bank.feats".into(), bank.feats.shallow_clone()));
    named.push(("bank.written".into(), bank.written.to_kind(tch::Kind::Uint8)));
    let name = format!("ckpt-{:08}.safetensors", state.step);
    let tmp = d.join(format!(".{name}.tmp"));
    Tensor::write_safetensors(&named, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, d.join(&name))?;
    let previous = load_state(run_dir).ok().map(|s| s.tensors);
    exchange::atomic::write_json(d.join("latest.json"), &State { tensors: name.clone(), ..state.clone() })?;
    if let Some(old) = previous.filter(|o| *o != name) {
        let _ = std::fs::remove_file(d.join(old));
    }
    Ok(())
}

pub fn load_state(run_dir: &Path) -> anyhow::Result<State> {
    let p = dir(run_dir).join("latest.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("no checkpoint at {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a checkpoint state", p.display()))
}

/// Restores model, optimiser and bank from the latest checkpoint; returns its state.
pub fn restore(run_dir: &Path, vs: &mut VarStore, opt: &mut Optimizer, bank: &mut MemoryBank) -> anyhow::Result<State> {
    let state = load_state(run_dir)?;
    let path = dir(run_dir).join(&state.tensors);
    let named: HashMap<String, Tensor> =
        Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect();
    tch::no_grad(|| -> anyhow::Result<()> {
        for (k, mut v) in vs.variables() {
            let src = named.get(&format!("model.{k}")).with_context(|| format!("{}: no model.{k}", path.display()))?;
            if src.size() != v.size() {
                bail!(
                    "{}: model.{k} has shape {:?}, the model {:?} (config changed since?)",
                    path.display(),
                    src.size(),
                    v.size()
                );
            }
            v.copy_(src);
        }
        let feats = named.get("bank.feats").context("checkpoint has no bank.feats")?;
        let written = named.get("bank.written").context("checkpoint has no bank.written")?;
        bank.feats.copy_(feats);
        bank.written.copy_(&written.to_kind(tch::Kind::Bool));
        Ok(())
    })?;
    opt.load_state(&named)?;
    Ok(state)
}
