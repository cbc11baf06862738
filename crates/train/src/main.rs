//! `train`: the SIT-FER trainer. For now it carries `doctor` and `augment-preview`, the command a user runs first when something
//! is wrong with libtorch, CUDA, the text model or the data roots.

mod cli_config;
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
    /// Print a preset's resolved configuration, or one value of it (--get text.encoder).
    Config(cli_config::Args),
    /// Write a PNG grid of weak and strong augmented views of labeled faces, for eyeballing.
    AugmentPreview(preview::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Run(args) => cli_run::run(&args),
        Command::Config(args) => cli_config::run(&args),
        Command::AugmentPreview(args) => preview::run(&args),
    }
}
