//! `train export`: a run's snapshot as files a serving stack reads without this project: the tensors
//! (safetensors) and the card (class order, preprocessing, fusion) as they are, plus the classifier traced
//! to TorchScript (`classifier.pt`: a `[B, 3, S, S]` preprocessed batch in, `[B, C]` logits out), which
//! `torch.jit.load` and libtorch's `torch::jit::load` run.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;
use exchange::layout;

use crate::model::{open, ModelArgs};

/// The files of an export folder.
pub const CARD: &str = "model.json";
pub const TENSORS: &str = "model.safetensors";
pub const TORCHSCRIPT: &str = "classifier.pt";

#[derive(ClapArgs)]
#[command(after_help = "Example:
  train export --run demo-sitfer-s0 --out exported/demo-sitfer")]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder to write model.json, model.safetensors and classifier.pt into (created; files replaced).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    // Traced on the CPU: a module traced on a GPU keeps its device in the graph.
    let model = open(&ModelArgs { device: "cpu".into(), ..a.model.clone() })?;
    exchange::atomic::check_outside_stage_output(&a.out.join(CARD)).context("--out")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // The traced module first: if tracing fails, nothing of the folder has been replaced. Every file goes
    // through the atomic writer: a full disk is an error naming the file, and no temp file stays behind.
    let traced = train::export::trace_classifier(&model)?;
    let archive = train::export::torchscript_bytes(&traced)?;
    exchange::atomic::write_bytes(a.out.join(TORCHSCRIPT), &archive)?;
    let run_dir = a.model.run_dir()?;
    let src = layout::run::model(&run_dir).join(&model.card.tensors);
    let tensors = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
    exchange::atomic::write_bytes(a.out.join(TENSORS), &tensors)?;
    let card = exchange::schema::model_card::ModelCard { tensors: TENSORS.into(), ..model.card.clone() };
    card.write(&a.out.join(CARD))?;
    println!(
        "export: {} ({} snapshot, epoch {}) -> {}/{{{CARD}, {TENSORS}, {TORCHSCRIPT}}}; input [B, 3, {s}, {s}] \
         preprocessed as {CARD} says, output [B, {c}] logits over {}",
        model.card.run,
        model.card.snapshot,
        model.card.epoch,
        a.out.display(),
        model.card.classes.join(", "),
        s = model.card.input.image_size,
        c = model.card.classes.len(),
    );
    Ok(())
}
