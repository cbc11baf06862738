//! Checkpoints: `checkpoints/ckpt-<step>.safetensors` (model variables, optimiser state, memory bank, the
//! self-adaptive threshold's averages, the curriculum threshold's record, the alignment's average) plus `checkpoints/latest.json` (step, epoch, samplers, best-so-far, the
//! fitted temperatures), written in that order and each atomically,
//! so a crash leaves the previous pair intact: `latest.json` only ever names a complete tensor file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use exchange::layout;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use crate::amp::GradScaler;
use crate::data::sampler::SamplerState;
use crate::ema::Ema;
use crate::epoch_stats::Running;
use crate::named_tensors::load_into;
use crate::optim::Optimizer;
use crate::sitfer::alignment::Alignment;
use crate::sitfer::memory_bank::MemoryBank;
use crate::sitfer::threshold::{Flex, SelfAdaptive};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub step: u64,
    pub(crate) epoch: u32,
    pub(crate) labeled: SamplerState,
    pub(crate) unlabeled: SamplerState,
    pub best_val: f64,
    pub best_epoch: u32,
    pub(crate) tensors: String,
    /// Mixed-precision loss scale (absent in CPU runs' checkpoints).
    #[serde(default)]
    pub(crate) scaler: Option<GradScaler>,
    /// The sums of the epoch so far, in a checkpoint taken mid-epoch.
    #[serde(default)]
    pub(crate) running: Option<Running>,
    /// τ_t, τ_i fitted on val at the last epoch end (`method.levels.fit_temperatures`).
    #[serde(default)]
    pub(crate) taus: Option<[f64; 2]>,
}

/// Everything a checkpoint holds besides [`State`].
pub(crate) struct Parts<'a> {
    pub(crate) vs: &'a mut VarStore,
    pub(crate) opt: &'a mut Optimizer,
    pub(crate) bank: &'a mut MemoryBank,
    pub(crate) ema: Option<&'a mut Ema>,
    pub(crate) sat: &'a mut SelfAdaptive,
    pub(crate) flex: &'a mut Flex,
    pub(crate) align: Option<&'a mut Alignment>,
    pub(crate) propagated: &'a mut Option<Tensor>,
}

pub fn dir(run_dir: &Path) -> PathBuf {
    layout::run::checkpoints(run_dir)
}

pub(crate) fn save(run_dir: &Path, p: &Parts, state: &State) -> anyhow::Result<()> {
    let (vs, opt, bank) = (&*p.vs, &*p.opt, &*p.bank);
    let d = dir(run_dir);
    std::fs::create_dir_all(&d)?;
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (format!("model.{k}"), v)).collect();
    named.extend(opt.state());
    if let Some(e) = &p.ema {
        named.extend(e.state());
    }
    named.push(("bank.feats".into(), bank.feats.shallow_clone()));
    named.push(("bank.written".into(), bank.written.to_kind(tch::Kind::Uint8)));
    named.push((SAT_GLOBAL.into(), p.sat.global.shallow_clone()));
    named.push((SAT_CLASS.into(), p.sat.class.shallow_clone()));
    named.push((FLEX_LATEST.into(), p.flex.latest.shallow_clone()));
    if let Some(a) = &p.align {
        named.push((ALIGN_MODEL.into(), a.model.shallow_clone()));
    }
    if let Some(z) = &*p.propagated {
        named.push((PROPAGATED.into(), z.shallow_clone()));
    }
    let name = format!("ckpt-{:08}.safetensors", state.step);
    crate::named_tensors::write(&d.join(&name), &named)?;
    let previous = load_state(run_dir).ok().map(|s| s.tensors);
    exchange::atomic::write_json(
        d.join(layout::run::LATEST_CHECKPOINT),
        &State { tensors: name.clone(), ..state.clone() },
    )?;
    // The previous file's name comes from latest.json: only a plain name inside the folder is removed.
    if let Some(old) = previous.filter(|o| *o != name && layout::check_name("checkpoint", o).is_ok()) {
        let _ = std::fs::remove_file(d.join(old));
    }
    Ok(())
}

const SAT_GLOBAL: &str = "threshold.global";
const SAT_CLASS: &str = "threshold.class";
const FLEX_LATEST: &str = "threshold.flex_latest";
const ALIGN_MODEL: &str = "alignment.model";
const PROPAGATED: &str = "propagation.p";

pub fn load_state(run_dir: &Path) -> anyhow::Result<State> {
    let p = layout::run::latest_checkpoint(run_dir);
    let text = std::fs::read_to_string(&p).with_context(|| format!("no checkpoint at {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a checkpoint state", p.display()))
}

/// Restores model, optimiser, bank and EMA from the latest checkpoint; returns its state.
pub(crate) fn restore(run_dir: &Path, p: &mut Parts) -> anyhow::Result<State> {
    let (vs, bank) = (&mut *p.vs, &mut *p.bank);
    let state = load_state(run_dir)?;
    let path = dir(run_dir).join(&state.tensors);
    let named: HashMap<String, Tensor> =
        Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect();
    for (k, mut v) in vs.variables() {
        load_into(&named, &format!("model.{k}"), &mut v).with_context(|| path.display().to_string())?;
    }
    load_into(&named, "bank.feats", &mut bank.feats)?;
    let written = named.get("bank.written").context("checkpoint has no bank.written")?;
    tch::no_grad(|| bank.written.copy_(&written.to_kind(tch::Kind::Bool)));
    // Checkpoints from before the self-adaptive threshold have none: it then restarts from 1/C.
    if named.contains_key(SAT_GLOBAL) {
        load_into(&named, SAT_GLOBAL, &mut p.sat.global)?;
        load_into(&named, SAT_CLASS, &mut p.sat.class)?;
    }
    // Likewise the curriculum record (restarts uncounted) and the alignment's average (restarts at its target).
    if named.contains_key(FLEX_LATEST) {
        load_into(&named, FLEX_LATEST, &mut p.flex.latest)?;
    }
    if let (Some(a), true) = (p.align.as_deref_mut(), named.contains_key(ALIGN_MODEL)) {
        load_into(&named, ALIGN_MODEL, &mut a.model)?;
    }
    // The propagated distributions exist from the first sweep of a run that propagates.
    *p.propagated = named.get(PROPAGATED).map(|z| z.to_device(p.bank.feats.device()));
    p.opt.load_state(&named)?;
    if let Some(e) = p.ema.as_deref_mut() {
        e.load_state(&named)?;
    }
    Ok(state)
}
