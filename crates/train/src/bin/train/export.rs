//! `train export`: a run's snapshot as files a serving stack reads without this project: the tensors
//! (safetensors) and the card (class order, preprocessing, fusion) as they are, plus the classifier — a
//! `[B, 3, S, S]` preprocessed batch in, `[B, C]` logits out — in each format asked for: TorchScript
//! (`classifier.pt`, for `torch.jit.load` and libtorch) and ONNX (`classifier.onnx`, for ONNX Runtime,
//! OpenVINO, TensorRT).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};
use exchange::layout;

use crate::model::{open, ModelArgs};

/// The files of an export folder.
pub const CARD: &str = "model.json";
pub const TENSORS: &str = "model.safetensors";
pub const TORCHSCRIPT: &str = "classifier.pt";
pub const ONNX: &str = "classifier.onnx";

/// A serving format of the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// classifier.pt: traced TorchScript (PyTorch, libtorch).
    Torchscript,
    /// classifier.onnx: ONNX opset 17, batch norms folded (ONNX Runtime, OpenVINO, TensorRT).
    Onnx,
}

impl Format {
    fn file(self) -> &'static str {
        match self {
            Format::Torchscript => TORCHSCRIPT,
            Format::Onnx => ONNX,
        }
    }
}

#[derive(ClapArgs)]
#[command(after_help = "Examples:
  train export --run demo-sitfer-s0 --out exported/demo-sitfer
  train export --run demo-sitfer-s0 --out exported/onnx-only --format onnx

Both formats read the input model.json describes (input.image_size, mean, std; grey faces replicated to three
channels) and give logits in model.json's class order; the ONNX file carries the same facts as metadata.")]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder to write model.json, model.safetensors and the classifier files into (created; files replaced,
    /// an earlier export's classifier in a format not asked for removed).
    #[arg(long)]
    out: PathBuf,
    /// The classifier's formats, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "torchscript,onnx")]
    format: Vec<Format>,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    // Traced on the CPU: a module traced on a GPU keeps its device in the graph.
    let model = open(&ModelArgs { device: "cpu".into(), ..a.model.clone() })?;
    exchange::atomic::check_outside_stage_output(&a.out.join(CARD)).context("--out")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // Every classifier file is made before any is written: if one fails, nothing of the folder has been
    // replaced. Each goes through the atomic writer: a full disk is an error naming the file, and no temp
    // file stays behind.
    let mut classifiers = Vec::new();
    for format in Format::value_variants().iter().copied().filter(|f| a.format.contains(f)) {
        let bytes = match format {
            Format::Torchscript => train::export::torchscript_bytes(&train::export::trace_classifier(&model)?)?,
            Format::Onnx => train::export::onnx::onnx_bytes(&model).context("serialising the ONNX model")?,
        };
        classifiers.push((format.file(), bytes));
    }
    for (file, bytes) in &classifiers {
        exchange::atomic::write_bytes(a.out.join(file), bytes)?;
    }
    // A classifier of an earlier export in another format would no longer match the card written below.
    for format in Format::value_variants().iter().filter(|f| !a.format.contains(f)) {
        let stale = a.out.join(format.file());
        if stale.is_file() {
            std::fs::remove_file(&stale).with_context(|| format!("removing the earlier {}", stale.display()))?;
        }
    }
    let run_dir = a.model.run_dir()?;
    let src = layout::run::model(&run_dir).join(&model.card.tensors);
    let tensors = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
    exchange::atomic::write_bytes(a.out.join(TENSORS), &tensors)?;
    let card = exchange::schema::model_card::ModelCard { tensors: TENSORS.into(), ..model.card.clone() };
    card.write(&a.out.join(CARD))?;
    let files: Vec<&str> = [CARD, TENSORS].into_iter().chain(classifiers.iter().map(|(f, _)| *f)).collect();
    println!(
        "export: {} ({} snapshot, epoch {}) -> {}/{{{}}}; input [B, 3, {s}, {s}] \
         preprocessed as {CARD} says, output [B, {c}] logits over {}",
        model.card.run,
        model.card.snapshot,
        model.card.epoch,
        a.out.display(),
        files.join(", "),
        model.card.classes.join(", "),
        s = model.card.input.image_size,
        c = model.card.classes.len(),
    );
    Ok(())
}
