//! `train run`: resolve the configuration, load the data, train, and say where everything went.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::layout;

use exchange::manifest::InputRecord;
use train::config::{self, Config};
use train::data::loader::Data;
use train::distributed::{Dist, Launch};
use train::run::folder::Lock;
use train::run::inputs::{resolve_split, SplitInputs};
use train::run::{folder, load_data, train, write_run_info, RunSpec, INTERRUPT};

use crate::launcher;

#[derive(ClapArgs)]
pub struct Args {
    #[command(flatten)]
    run: crate::config::RunArgs,
    /// Continue the run from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Continue the run if it has a checkpoint, else start it (what scripts want).
    #[arg(long, conflicts_with = "resume")]
    resume_if_any: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Shard folder (default: artifacts/shards/<dataset named in the split file>).
    #[arg(long)]
    shards: Option<PathBuf>,
    #[arg(long, default_value = layout::TEXT_ROOT)]
    text_root: PathBuf,
    #[arg(short, long)]
    quiet: bool,
    /// Data-parallel on this machine: start N processes (ranks) that each train on 1/N of every batch, with
    /// the cores split between them. Several machines: start one process per rank with torchrun's variables
    /// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) instead; see docs/distributed.md.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub nproc: u16,
    /// Seconds a rank waits for the others (at the rendezvous, and for each collective) before it stops with
    /// an error naming itself.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    dist_timeout: u64,
}

/// What rank 0 (or the only process) found in the run folder.
enum Prepared {
    Train { resume: bool, _lock: Lock },
    UpToDate,
}

/// Rank 0's decision about the run folder, which every rank follows (it crosses the group as one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Decision {
    Start = 0,
    Resume = 1,
    UpToDate = 2,
    /// Rank 0 could not prepare the folder; its own error says why.
    Failed = 3,
}

impl Decision {
    fn of(prepared: &anyhow::Result<Prepared>) -> Self {
        match prepared {
            Ok(Prepared::Train { resume: false, .. }) => Decision::Start,
            Ok(Prepared::Train { resume: true, .. }) => Decision::Resume,
            Ok(Prepared::UpToDate) => Decision::UpToDate,
            Err(_) => Decision::Failed,
        }
    }

    fn from_byte(b: u8) -> anyhow::Result<Self> {
        [Decision::Start, Decision::Resume, Decision::UpToDate, Decision::Failed]
            .into_iter()
            .find(|d| *d as u8 == b)
            .with_context(|| format!("rank 0 sent an unknown decision {b} (ranks of different builds?)"))
    }
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let launch = Launch::from_env(|k| std::env::var(k).ok())?;
    if a.nproc > 1 && launch.is_none() {
        return launcher::spawn_local(a.nproc);
    }
    install_interrupt_handler()?;
    let cfg = a.run.preset.resolve()?;
    let SplitInputs { split, dataset, shards, .. } = resolve_split(&a.run.split, a.shards.as_deref())?;
    let (_, run_dir) = a.run.run_folder()?;
    let device = tch_common::device::parse(&a.device)?;
    let device = launch.as_ref().map_or(device, |l| l.device(&a.device, device));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let on_cpu = matches!(device, tch::Device::Cpu);
    for w in train::resources::check(&cfg, on_cpu, cores, train::resources::available_memory())? {
        eprintln!("warning: {w}");
    }
    let dist = match &launch {
        Some(l) => Some(Rc::new(join(l, &cfg, Duration::from_secs(a.dist_timeout), device)?)),
        None => None,
    };
    let mut spec = RunSpec {
        split,
        shards,
        text_root: a.text_root.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        device,
        quiet: a.quiet || dist.as_ref().is_some_and(|d| d.rank() != 0),
        stop_after: None,
        dist: dist.clone(),
    };
    // What the run reads must exist before a run folder is made for it.
    let inputs = folder::inputs(&spec, &cfg)?;
    let (decision, _prepared) = agree_on_folder(a, &cfg, &spec, &inputs)?;
    if decision == Decision::UpToDate {
        if spec.writes() {
            println!("train: {} is up to date (finished, same configuration and inputs)", run_dir.display());
        }
        return Ok(());
    }
    let resume = decision == Decision::Resume;
    spec.resume = resume;
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    let data = load_data(&spec, &cfg)?;
    // A collective: every rank takes part, rank 0 records the answer.
    let devices = match &dist {
        Some(d) => d.gather_devices(device)?,
        None => vec![device],
    };
    if !resume && spec.writes() {
        write_run_info(&spec, &cfg, &data, &dataset, &devices)?;
        folder::write_manifest(&run_dir, &cfg, inputs)?;
    }
    if !spec.quiet {
        eprintln!("{}", announcement(&run_dir, &cfg, &data, dist.as_deref(), device));
    }
    let out = train(&spec, &cfg, &data)?;
    report_end(&spec, &out.state, out.interrupted, total);
    Ok(())
}

/// First Ctrl-C (or SIGTERM, SIGHUP): finish the step, write a checkpoint, exit 130. A second one quits at
/// once. Installed before the rendezvous and the data load, so a signal then stops the run after its first
/// step instead of killing it without a word.
fn install_interrupt_handler() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if INTERRUPT.swap(true, Ordering::SeqCst) {
            // At once, without running exit handlers: libtorch's static destructors would tear down its
            // operator registry under the training thread, which is still calling into it.
            // SAFETY: _exit(2) ends the process; nothing after it runs.
            unsafe { libc::_exit(130) };
        }
        eprintln!("\ninterrupt: writing a checkpoint after this step (Ctrl-C again to quit without one)");
    })
    .context("installing the Ctrl-C handler")
}

/// Rank 0 alone inspects and prepares the run folder; every rank follows its decision. Rank 0 also gets what
/// it prepared, whose lock on the folder must be held until the run ends.
fn agree_on_folder(
    a: &Args,
    cfg: &Config,
    spec: &RunSpec,
    inputs: &[InputRecord],
) -> anyhow::Result<(Decision, Option<Prepared>)> {
    let run_dir = &spec.run_dir;
    let prepared = if spec.writes() { Some(prepare(a, cfg, run_dir, inputs)) } else { None };
    // Ranks other than 0 send a placeholder that the broadcast replaces with rank 0's decision.
    let mine = prepared.as_ref().map_or(Decision::Start, Decision::of);
    let decision = match &spec.dist {
        Some(d) => Decision::from_byte(d.broadcast_code(mine as u8)?)?,
        None => mine,
    };
    let prepared = match prepared {
        Some(p) => Some(p?),
        None if decision == Decision::Failed => {
            bail!("rank 0 could not prepare {} (its message says why)", run_dir.display())
        }
        None => None,
    };
    Ok((decision, prepared))
}

/// The line a run starts with: what it trains on, with what, where.
fn announcement(run_dir: &Path, cfg: &Config, data: &Data, dist: Option<&Dist>, device: tch::Device) -> String {
    format!(
        "train {}: {} preset, {} scale, {} labeled / {} unlabeled / {} val / {} test, {} classes, init {}, device {device:?}{}",
        run_dir.display(),
        cfg.preset,
        cfg.scale,
        data.labeled.ids.len(),
        data.unlabeled.ids.len(),
        data.val.ids.len(),
        data.test.ids.len(),
        data.classes.len(),
        cfg.model.init,
        dist.map_or(String::new(), |d| format!(", {} ranks", d.world()))
    )
}

/// The run's last line (rank 0), and exit 130 where it was interrupted, as a shell expects.
fn report_end(spec: &RunSpec, state: &train::checkpoint::State, interrupted: bool, total: u64) {
    if interrupted {
        if spec.writes() {
            eprintln!(
                "train: stopped at step {} of {}; checkpoint in {} — continue with the same command plus --resume",
                state.step,
                total,
                train::checkpoint::dir(&spec.run_dir).display()
            );
        }
        std::process::exit(130);
    }
    if spec.writes() {
        println!(
            "train: {} done at step {} — best val accuracy {:.2}% at epoch {}",
            spec.run_dir.display(),
            state.step,
            100.0 * state.best_val,
            state.best_epoch
        );
    }
}

/// Joins the data-parallel group after checking that the batches split evenly over it.
fn join(l: &Launch, cfg: &Config, timeout: Duration, device: tch::Device) -> anyhow::Result<Dist> {
    let s = &cfg.schedule;
    for (key, b) in [("schedule.batch_labeled", s.batch_labeled), ("schedule.batch_unlabeled", s.batch_unlabeled)] {
        if b % l.world as i64 != 0 {
            bail!(
                "{key} = {b} does not split over {} ranks: the batch is the whole step's, each rank takes an equal \
                 share (choose a multiple of {})",
                l.world,
                l.world
            );
        }
    }
    if let Ok(threads) = std::env::var("OMP_NUM_THREADS") {
        if let Ok(n) = threads.trim().parse::<i32>() {
            tch::set_num_threads(n.max(1));
        }
    }
    Dist::join(l, timeout, device)
}

/// The folder checks of a run (create, lock, compare with what is there), done by the one process that writes.
fn prepare(a: &Args, cfg: &Config, run_dir: &Path, inputs: &[InputRecord]) -> anyhow::Result<Prepared> {
    if !run_dir.is_dir() {
        if a.resume {
            bail!("--resume: {} has no checkpoint", run_dir.display());
        }
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    }
    // One run per folder, from here until this process ends.
    let lock = folder::lock(run_dir)?;
    let has_ckpt = layout::run::latest_checkpoint(run_dir).is_file();
    let resume = a.resume || (a.resume_if_any && has_ckpt);
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    let start_over = format!("delete {} to start over, or train a new run with --run-id", run_dir.display());
    if has_ckpt {
        let config_path = run_dir.join(layout::run::CONFIG_FILE);
        let saved = config::Config::from_saved_toml(&std::fs::read_to_string(&config_path)?)
            .with_context(|| format!("{}: unreadable ({start_over})", config_path.display()))?;
        let config_change = folder::config_difference(&saved, cfg);
        let input_change = folder::changed_input(run_dir, inputs)?;
        let state = train::checkpoint::load_state(run_dir);
        let done = state.as_ref().is_ok_and(|s| s.step >= total);
        if config_change.is_none() && input_change.is_none() && done {
            return Ok(Prepared::UpToDate);
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
    Ok(Prepared::Train { resume, _lock: lock })
}
