//! `train`: the SIT-FER trainer (`run`), its configuration (`config`), the checks a user runs first when something
//! is wrong (`doctor`, `augment-preview`), and the trained network's uses (`predict`, `evaluate`, `export`).

mod cli_config;
mod cli_evaluate;
mod cli_export;
mod cli_model;
mod cli_plan;
mod cli_predict;
mod cli_run;
mod doctor;
mod launcher;
mod preview;

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
    Run(cli_run::Args),
    /// Say what a run needs and what it is called, before training it: run id and folder, text prototypes.
    Plan(cli_plan::Args),
    /// Print a preset's resolved configuration, or one value of it (--get text.encoder).
    Config(cli_config::Args),
    /// Write a PNG grid of weak and strong augmented views of labeled faces, for eyeballing.
    AugmentPreview(preview::Args),
    /// Predict the expressions of images (files, folders, or a split's faces) with a trained run's network.
    Predict(cli_predict::Args),
    /// Score a trained run's network on a split of any sharded dataset (classes matched by name); the report
    /// goes into the run folder, where audit shows it.
    Evaluate(cli_evaluate::Args),
    /// Write a trained run's network for serving: safetensors + its card (classes, preprocessing) + TorchScript.
    Export(cli_export::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Run(args) => cli_run::run(&args),
        Command::Plan(args) => cli_plan::run(&args),
        Command::Config(args) => cli_config::run(&args),
        Command::AugmentPreview(args) => preview::run(&args),
        Command::Predict(args) => cli_predict::run(&args),
        Command::Evaluate(args) => cli_evaluate::run(&args),
        Command::Export(args) => cli_export::run(&args),
    }
}
