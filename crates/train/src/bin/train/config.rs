//! `train config`: print the resolved configuration of a preset (or one value of it), e.g. for the Makefile
//! to learn which text embeddings a preset needs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;

/// Which configuration: shared by `train run` and `train config`.
#[derive(ClapArgs)]
pub struct PresetArgs {
    /// Method preset: pipelines/train/<preset>.toml (supervised, fixmatch, sitfer, sitfer-official, …).
    #[arg(long, default_value = "sitfer")]
    pub preset: String,
    /// Scale preset: pipelines/train/scale/<scale>.toml (cpu, paper, demo, tiny).
    #[arg(long, default_value = "cpu")]
    pub scale: String,
    /// The run's seed (`run.seed`: the heads' initialisation and the sampling, not the split). Also names
    /// the run `<split>-<preset>-<scale>-s<seed>`, so each cell of a seed grid has its own folder.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a setting, e.g. --set method.selection.threshold=0.9 --set optim.lr=3e-4 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Folder of the presets.
    #[arg(long, default_value = exchange::layout::TRAIN_PRESETS)]
    pub presets: PathBuf,
}

impl PresetArgs {
    pub fn resolve(&self) -> anyhow::Result<train::config::Config> {
        let mut sets = self.sets.clone();
        // After the user's --set, so --seed has the last word on run.seed.
        sets.extend(self.seed.map(|s| format!("run.seed={s}")));
        train::config::resolve(&self.presets, &self.preset, &self.scale, &sets)
    }

    /// The run folder's name when `--run-id` is not given.
    pub fn default_run_id(&self, split_arg: &str) -> String {
        train::run::default_run_id(split_arg, &self.preset, &self.scale, self.seed)
    }
}

/// Which run: the split, the preset and the run folder, shared by `train run` and `train plan` so the two
/// name a run by one rule.
#[derive(ClapArgs)]
pub struct RunArgs {
    /// Split name (artifacts/splits/<name>.parquet) or a split file.
    #[arg(long, default_value = "synthetic_10pct")]
    pub split: String,
    #[command(flatten)]
    pub preset: PresetArgs,
    /// Run folder name under --runs-root (default: <split>-<preset>-<scale>, then -s<seed> with --seed).
    #[arg(long)]
    pub run_id: Option<String>,
    #[arg(long, default_value = exchange::layout::RUNS_ROOT)]
    pub runs_root: PathBuf,
}

impl RunArgs {
    /// The run's name (`--run-id`, else the default) and its folder; a name reaching outside the runs root is
    /// refused.
    pub fn run_folder(&self) -> anyhow::Result<(String, PathBuf)> {
        let id = self.run_id.clone().unwrap_or_else(|| self.preset.default_run_id(&self.split));
        let dir = exchange::layout::run_dir(&self.runs_root, exchange::layout::check_name("run id", &id)?);
        Ok((id, dir))
    }
}

#[derive(ClapArgs)]
pub struct Args {
    #[command(flatten)]
    preset: PresetArgs,
    /// Print only this value (e.g. text.encoder).
    #[arg(long)]
    get: Option<String>,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let cfg = a.preset.resolve()?;
    let value = toml::Value::try_from(&cfg)?;
    match &a.get {
        None => print!("{}", toml::to_string_pretty(&cfg)?),
        Some(key) => {
            let mut v = &value;
            for part in key.split('.') {
                v = v.get(part).with_context(|| match train::config::new_name(key) {
                    Some(new) => format!("no setting `{key}`: it has moved to `{new}`"),
                    None => format!("no setting `{key}`"),
                })?;
            }
            match v {
                toml::Value::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
        }
    }
    Ok(())
}
