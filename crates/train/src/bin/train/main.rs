//! `train`: the SIT-FER trainer (`run`), its configuration (`config`), the checks a user runs first when something
//! is wrong (`doctor`, `augment-preview`), and the trained network's uses (`predict`, `evaluate`, `export`).

mod config;
mod doctor;
mod evaluate;
mod export;
mod launcher;
mod model;
mod plan;
mod predict;
mod preview;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "train", version, about = "SIT-FER training on CPU or CUDA via libtorch", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the toolchain: libtorch version, CUDA/cuDNN, threads, text model and data roots.
    Doctor(doctor::Args),
    /// Train a preset on a split (resolves pipelines/train/<preset>.toml + scale/<scale>.toml + --set).
    Run(run::Args),
    /// Say what a run needs and what it is called, before training it: run id and folder, text prototypes.
    Plan(plan::Args),
    /// Print a preset's resolved configuration, or one value of it (--get text.encoder).
    Config(config::Args),
    /// Write a PNG grid of weak and strong augmented views of labeled faces, for eyeballing.
    AugmentPreview(preview::Args),
    /// Predict the expressions of images (files, folders, or a split's faces) with a trained run's network.
    Predict(predict::Args),
    /// Score a trained run's network on a split of any sharded dataset (classes matched by name); the report
    /// goes into the run folder, where audit shows it.
    Evaluate(evaluate::Args),
    /// Write a trained run's network for serving: safetensors + its card (classes, preprocessing) + TorchScript.
    Export(export::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Config(args) => config::run(&args),
        Command::AugmentPreview(args) => preview::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Export(args) => export::run(&args),
    }
}
