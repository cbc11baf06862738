//! The training loop. A reader follows the method top-down from [`train`]: build the [`Trainer`]
//! ([`trainer`]), then per epoch the steps ([`step`]: forward → levels → fusion → loss → update) fed by the
//! prefetch queue, and the epoch end ([`epoch_end`]: evaluate, sweep, record, checkpoint). What happens
//! between steps (log, read back, save) is [`cadence`]'s answer; what a user sees is in [`progress`]; what
//! the run reads and records about itself in [`inputs`].

pub(crate) mod cadence;
pub(crate) mod epoch_end;
pub mod folder;
pub mod inputs;
pub(crate) mod progress;
pub(crate) mod spec;
pub(crate) mod step;
pub(crate) mod sweep;
pub(crate) mod trainer;

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use anyhow::bail;
use exchange::layout;
use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;

use crate::checkpoint::{self, State};
use crate::config::Config;
use crate::data::loader::Data;
use crate::data::prefetch::{self, Batch, Plan, Shard};
use crate::epoch_stats::{NonFinite, Pending, Running};
use cadence::Cadence;
use epoch_end::EpochSummary;
pub use inputs::{load_data, write_run_info};
pub use spec::{default_run_id, Outcome, RunSpec, INTERRUPT};
use trainer::Trainer;

/// Trains from scratch (or `model.init`), or from the latest checkpoint with `spec.resume`.
pub fn train(spec: &RunSpec, cfg: &Config, data: &Data) -> anyhow::Result<Outcome> {
    let (mut trainer, start) = Trainer::new(spec, cfg, data)?;
    let mut state = start.state;
    let semi = cfg.semi_supervised() && !data.unlabeled.ids.is_empty();
    let (bl, bu) = (cfg.schedule.batch_labeled as usize, cfg.schedule.batch_unlabeled as usize);
    let steps_per_epoch = cfg.schedule.steps_per_epoch;
    let total = steps_per_epoch * u64::from(cfg.schedule.epochs);
    let images_per_step = (bl + if semi { 2 * bu } else { 0 }) as f64;
    let metrics_path = layout::run::metrics(&spec.run_dir);
    let mut metrics: Vec<MetricRow> =
        if spec.resume && metrics_path.is_file() { read_table(&metrics_path)? } else { Vec::new() };
    if spec.resume && spec.writes() {
        drop_records_past(spec, &mut metrics, state.step, steps_per_epoch)?;
    }
    let mut losses_seen = Vec::new();
    let plan = Plan {
        labeled: &data.labeled.images,
        unlabeled: &data.unlabeled.images,
        batch_labeled: bl,
        batch_unlabeled: if semi { bu } else { 0 },
        pad: (cfg.model.image_size as usize / 16).max(1),
        seed: cfg.run.seed,
        threads: cfg.run.loader_threads,
        shard: spec.dist.as_ref().map_or(Shard::WHOLE, |d| Shard { rank: d.rank(), world: d.world() }),
        replay: cfg.run.replay_batches,
    };
    let stop_at = spec.stop_after.map_or(total, |s| s.min(total));
    let cadence = Cadence {
        steps_per_epoch,
        bar_visible: false,
        log_lines: !spec.quiet && !std::io::stderr().is_terminal(),
        checkpoint_every: cfg.run.checkpoint_every,
    };

    let lp = Loop { spec, steps_per_epoch, total, images_per_step, cadence, metrics_path: &metrics_path };
    let interrupted = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let queue =
            prefetch::spawn(scope, plan, start.labeled, start.unlabeled, state.step..stop_at, cfg.run.prefetch)?;
        while state.step < total {
            let epoch = (state.step / steps_per_epoch) as u32 + 1;
            let epoch_started = Instant::now();
            let Some(running) = lp.epoch_steps(&mut trainer, &queue, &mut state, &mut metrics, &mut losses_seen)?
            else {
                return Ok(true);
            };
            let summary = EpochSummary {
                epoch,
                running: &running,
                images_per_step,
                total_steps: total,
                train_seconds: epoch_started.elapsed().as_secs_f64(),
            };
            let line = trainer.epoch_end(spec, data, &summary, &mut state, &mut metrics)?;
            if !spec.quiet {
                eprintln!("{line}");
            }
            if (state.step >= stop_at || INTERRUPT.load(Ordering::SeqCst)) && state.step < total {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    Ok(Outcome { losses: losses_seen, state, interrupted })
}

/// What every step of a run shares: the run, its schedule, and when to log, read back and save.
struct Loop<'r> {
    spec: &'r RunSpec,
    steps_per_epoch: u64,
    total: u64,
    images_per_step: f64,
    cadence: Cadence,
    metrics_path: &'r std::path::Path,
}

impl Loop<'_> {
    /// The rest of the current epoch's steps. Their averages, or `None` where the run was asked to stop
    /// before the epoch's end (after a checkpoint; the metrics so far written).
    fn epoch_steps(
        &self,
        trainer: &mut Trainer,
        queue: &Receiver<Batch>,
        state: &mut State,
        metrics: &mut [MetricRow],
        losses_seen: &mut Vec<f64>,
    ) -> anyhow::Result<Option<Running>> {
        let spe = self.steps_per_epoch;
        let epoch = (state.step / spe) as u32 + 1;
        let epoch_start = u64::from(epoch - 1) * spe;
        let epoch_end = epoch_start + spe;
        let pb = progress::bar(self.spec.quiet, epoch, trainer.cfg.schedule.epochs, spe, state.step - epoch_start);
        let cadence = Cadence { bar_visible: !pb.is_hidden(), ..self.cadence };
        // A mid-epoch checkpoint carries the epoch's sums so far.
        let mut running = state.running.take().filter(|_| state.step > epoch_start).unwrap_or_default();
        let mut pending = Pending::default();
        while state.step < epoch_end {
            let step = state.step;
            let t0 = Instant::now();
            let Ok(batch) = queue.recv() else {
                bail!("the input pipeline stopped before step {step} (a panic in augmentation? see above)");
            };
            let waited = t0.elapsed();
            debug_assert_eq!(batch.step, step);
            let forward = trainer.forward(&batch, step, epoch)?;
            trainer.update(&forward, step, self.total)?;
            pending.push(step, forward.losses);
            running.add_time(waited, t0.elapsed());
            state.step += 1;
            state.labeled = batch.labeled_state;
            state.unlabeled = batch.unlabeled_state;
            state.scaler = trainer.scaler.enabled.then_some(trainer.scaler);
            pb.inc(1);
            let stop = self.asked_to_stop(state.step)?;
            let after = cadence.after(state.step, stop);
            if after.read_back {
                if let Err(e) = self.read_back(&mut pending, &mut running, losses_seen) {
                    pb.abandon();
                    return Err(e);
                }
            }
            if after.bar {
                pb.set_message(running.message(self.images_per_step));
            }
            if after.log {
                let in_epoch = state.step - epoch_start;
                eprintln!("epoch {epoch:>3}  step {in_epoch}/{spe}  {}", running.message(self.images_per_step));
            }
            if after.save && self.spec.writes() {
                state.running = Some(running.clone());
                trainer.save(&self.spec.run_dir, state)?;
                state.running = None;
            }
            if stop && state.step < epoch_end {
                pb.abandon();
                if self.spec.writes() {
                    write_table(self.metrics_path, metrics, &[])?;
                }
                return Ok(None);
            }
        }
        pb.finish_and_clear();
        Ok(Some(running))
    }

    /// Ctrl-C or `--stop-after`; data-parallel ranks stop together, at the step where any of them was asked to.
    fn asked_to_stop(&self, done: u64) -> anyhow::Result<bool> {
        let stop = INTERRUPT.load(Ordering::SeqCst) || self.spec.stop_after == Some(done);
        match &self.spec.dist {
            Some(d) => d.any(stop),
            None => Ok(stop),
        }
    }

    /// Reads the steps' terms back (one host read) at a log point; a non-finite loss stops the run here,
    /// before anything is saved.
    fn read_back(&self, pending: &mut Pending, running: &mut Running, seen: &mut Vec<f64>) -> anyhow::Result<()> {
        match pending.flush(running) {
            Ok(losses) => {
                seen.extend(losses);
                Ok(())
            }
            Err(NonFinite { step, loss }) => bail!(
                "loss became {loss} at step {step} (epoch {}); stopping. The last good checkpoint is kept in {} \
                 (lower optim.lr, or set optim.clip_grad_norm)",
                step / self.steps_per_epoch + 1,
                checkpoint::dir(&self.spec.run_dir).display()
            ),
        }
    }
}

/// On resume, forgets what the run recorded after its checkpoint (metrics rows, pseudo-label files of later
/// epochs): a run stopped between writing an epoch's records and its checkpoint (a full disk, a SIGKILL)
/// retrains that epoch, which must be recorded once, not twice.
fn drop_records_past(
    spec: &RunSpec,
    metrics: &mut Vec<MetricRow>,
    step: u64,
    steps_per_epoch: u64,
) -> anyhow::Result<()> {
    let before = metrics.len();
    metrics.retain(|r| r.step <= step);
    if metrics.len() < before {
        write_table(layout::run::metrics(&spec.run_dir), metrics, &[])?;
    }
    let epochs_done = step / steps_per_epoch.max(1);
    let dir = layout::run::pseudo_labels(&spec.run_dir);
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let later = entry
            .file_name()
            .to_str()
            .and_then(layout::run::pseudo_label_epoch)
            .is_some_and(|e| u64::from(e) > epochs_done);
        if later {
            std::fs::remove_file(entry.path()).map_err(|e| {
                anyhow::anyhow!("{}: removing a record past the checkpoint: {e}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

/// Writes the `last` snapshot of a run trained before runs wrote snapshots, from its latest checkpoint (the
/// weights, EMA, bank and temperatures the checkpoint holds; the run's config, split and text prototypes),
/// under the run's lock, on the CPU in fp32. Refuses a run whose inputs changed since it trained (the bank's
/// labels come from the split). Returns the checkpoint's epoch and whether the run had finished.
pub fn snapshot_from_checkpoint(run_dir: &std::path::Path, text_root: &std::path::Path) -> anyhow::Result<(u32, bool)> {
    use anyhow::Context;
    use exchange::schema::run_info::RunInfo;
    let _lock = folder::lock(run_dir)?;
    let config_path = run_dir.join(layout::run::CONFIG_FILE);
    let mut cfg = Config::from_saved_toml(
        &std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| format!("{}: not a config this build reads", config_path.display()))?;
    // The conversion computes nothing: a run trained in fp16 on a GPU converts on this CPU too.
    cfg.run.precision = crate::config::Precision::Fp32;
    cfg.run.channels_last = false;
    let info = RunInfo::read(run_dir)?;
    let spec = RunSpec {
        split: info.split.into(),
        shards: info.shards.into(),
        text_root: text_root.to_path_buf(),
        run_dir: run_dir.to_path_buf(),
        resume: true,
        device: tch::Device::Cpu,
        quiet: true,
        stop_after: None,
        dist: None,
    };
    if let Some(change) = folder::changed_input(run_dir, &folder::inputs(&spec, &cfg)?)? {
        bail!(
            "{}: the run's {change} since it trained; its memory bank no longer matches the split",
            run_dir.display()
        );
    }
    let data = load_data(&spec, &cfg)?;
    let (trainer, start) = Trainer::new(&spec, &cfg, &data)?;
    trainer.write_snapshot(&spec, &data, &start.state, "last", None)?;
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    Ok((start.state.epoch, start.state.step >= total))
}
