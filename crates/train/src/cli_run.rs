//! `train run`: resolve the configuration, load the data, train, and say where everything went.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::parquet_io::file_metadata;

use train::config;
use train::run::{load_data, train, write_run_info, RunSpec, INTERRUPT};

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
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "artifacts/runs")]
    runs_root: PathBuf,
    /// Shard folder (default: artifacts/shards/<dataset named in the split file>).
    #[arg(long)]
    shards: Option<PathBuf>,
    #[arg(long, default_value = "artifacts/text")]
    text_root: PathBuf,
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let cfg = a.preset.resolve()?;
    let split = if a.split.ends_with(".parquet") {
        PathBuf::from(&a.split)
    } else {
        PathBuf::from(format!("artifacts/splits/{}.parquet", a.split))
    };
    if !split.is_file() {
        bail!("split file {} not found (run `make split SPLIT={}`)", split.display(), a.split);
    }
    let meta = file_metadata(&split)?;
    let dataset = meta.get("sitfer.dataset").cloned().unwrap_or_else(|| "unknown".into());
    let shards = a.shards.clone().unwrap_or_else(|| PathBuf::from(format!("artifacts/shards/{dataset}")));
    let split_name = split.file_stem().and_then(|s| s.to_str()).unwrap_or("split").to_string();
    let run_dir = a
        .runs_root
        .join(a.run_id.clone().unwrap_or_else(|| format!("{split_name}-{}-{}", a.preset.preset, a.preset.scale)));
    let has_ckpt = run_dir.join("checkpoints/latest.json").is_file();
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    if has_ckpt {
        let saved: config::Config = toml::from_str(&std::fs::read_to_string(run_dir.join("config.toml"))?)
            .with_context(|| format!("{}: unreadable config.toml", run_dir.display()))?;
        let same = saved == cfg;
        let done = train::checkpoint::load_state(&run_dir).is_ok_and(|s| s.step >= total);
        if same && done {
            println!("train: {} is up to date (finished, same configuration)", run_dir.display());
            return Ok(());
        }
        if !a.resume {
            bail!("{} already holds a run: pass --resume to continue it, or --run-id for a new one", run_dir.display());
        }
        if !same {
            bail!(
                "--resume: the configuration differs from the one {} was started with (see its config.toml)",
                run_dir.display()
            );
        }
    } else if a.resume {
        bail!("--resume: {} has no checkpoint", run_dir.display());
    }
    std::fs::create_dir_all(&run_dir)?;
    let device = tch_common::device::parse(&a.device)?;
    let spec = RunSpec {
        split,
        shards,
        text_root: a.text_root.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        device,
        quiet: a.quiet,
        stop_after: None,
    };
    let data = load_data(&spec, &cfg)?;
    if !a.resume {
        write_run_info(&spec, &cfg, &data, &dataset)?;
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
