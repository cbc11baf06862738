//! `train run`: resolve the configuration, load the data, train, and say where everything went.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::layout;

use train::config;
use train::run::inputs::{resolve_split, SplitInputs};
use train::run::{folder, load_data, train, write_run_info, RunSpec, INTERRUPT};

#[derive(ClapArgs)]
pub struct Args {
    /// Split name (artifacts/splits/<name>.parquet) or a split file.
    #[arg(long, default_value = "synthetic_10pct")]
    split: String,
    #[command(flatten)]
    preset: crate::cli_config::PresetArgs,
    /// Run folder name under --runs-root (default: <split>-<preset>-<scale>).
    #[arg(long)]
    run_id: Option<String>,
    /// Continue the run from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Continue the run if it has a checkpoint, else start it (what scripts want).
    #[arg(long, conflicts_with = "resume")]
    resume_if_any: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = layout::RUNS_ROOT)]
    runs_root: PathBuf,
    /// Shard folder (default: artifacts/shards/<dataset named in the split file>).
    #[arg(long)]
    shards: Option<PathBuf>,
    #[arg(long, default_value = layout::TEXT_ROOT)]
    text_root: PathBuf,
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let cfg = a.preset.resolve()?;
    let SplitInputs { split, name: split_name, dataset, shards } = resolve_split(&a.split, a.shards.as_deref())?;
    let run_id = a.run_id.clone().unwrap_or_else(|| format!("{split_name}-{}-{}", a.preset.preset, a.preset.scale));
    let run_dir = layout::run_dir(&a.runs_root, layout::check_name("run id", &run_id)?);
    let device = tch_common::device::parse(&a.device)?;
    let mut spec = RunSpec {
        split,
        shards,
        text_root: a.text_root.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        device,
        quiet: a.quiet,
        stop_after: None,
    };
    // What the run reads must exist before a run folder is made for it.
    let inputs = folder::inputs(&spec, &cfg)?;
    if !run_dir.is_dir() {
        if a.resume {
            bail!("--resume: {} has no checkpoint", run_dir.display());
        }
        std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    }
    // One process per run folder, from here until this process ends.
    let _lock = folder::lock(&run_dir)?;
    let has_ckpt = layout::run::latest_checkpoint(&run_dir).is_file();
    let resume = a.resume || (a.resume_if_any && has_ckpt);
    spec.resume = resume;
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    let start_over = format!("delete {} to start over, or train a new run with --run-id", run_dir.display());
    if has_ckpt {
        let config_path = run_dir.join(layout::run::CONFIG_FILE);
        let saved: config::Config = toml::from_str(&std::fs::read_to_string(&config_path)?)
            .with_context(|| format!("{}: unreadable ({start_over})", config_path.display()))?;
        let config_change = folder::config_difference(&saved, &cfg);
        let input_change = folder::changed_input(&run_dir, &inputs)?;
        let state = train::checkpoint::load_state(&run_dir);
        let done = state.as_ref().is_ok_and(|s| s.step >= total);
        if config_change.is_none() && input_change.is_none() && done {
            println!("train: {} is up to date (finished, same configuration and inputs)", run_dir.display());
            return Ok(());
        }
        let dir = run_dir.display();
        if !resume {
            if let Some(change) = &config_change {
                bail!("{dir} holds a run with another configuration ({change}): {start_over}");
            }
            if let Some(change) = &input_change {
                bail!("{dir}: the run's {change}; its results belong to the old input ({start_over})");
            }
            bail!("{dir} already holds a run: pass --resume to continue it, or --run-id for a new one");
        }
        if let Some(change) = config_change {
            bail!("--resume: the configuration differs from the one {dir} was started with ({change}; see its config.toml)");
        }
        if let Some(change) = &input_change {
            bail!("--resume: the run's {change}; its results belong to the old input ({start_over})");
        }
        if let Err(e) = state {
            bail!("--resume: {e:#} ({start_over})");
        }
    } else if resume {
        bail!("--resume: {} has no checkpoint", run_dir.display());
    }
    let data = load_data(&spec, &cfg)?;
    if !resume {
        write_run_info(&spec, &cfg, &data, &dataset)?;
        folder::write_manifest(&run_dir, &cfg, inputs)?;
    }
    // First Ctrl-C: finish the step, write a checkpoint, exit 130. A second one quits at once.
    ctrlc::set_handler(|| {
        if INTERRUPT.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: writing a checkpoint after this step (Ctrl-C again to quit without one)");
    })
    .context("installing the Ctrl-C handler")?;
    if !a.quiet {
        eprintln!(
            "train {}: {} preset, {} scale, {} labeled / {} unlabeled / {} val / {} test, {} classes, init {}, device {device:?}",
            run_dir.display(),
            cfg.preset,
            cfg.scale,
            data.labeled.ids.len(),
            data.unlabeled.ids.len(),
            data.val.ids.len(),
            data.test.ids.len(),
            data.classes.len(),
            cfg.model.init
        );
    }
    let out = train(&spec, &cfg, &data)?;
    let state = &out.state;
    if out.interrupted {
        eprintln!(
            "train: stopped at step {} of {}; checkpoint in {} — continue with the same command plus --resume",
            state.step,
            total,
            train::checkpoint::dir(&run_dir).display()
        );
        std::process::exit(130);
    }
    println!(
        "train: {} done at step {} — best val accuracy {:.2}% at epoch {}",
        run_dir.display(),
        state.step,
        100.0 * state.best_val,
        state.best_epoch
    );
    Ok(())
}
