//! The training loop, reading like the method: sample → augment → forward → three levels → fuse → losses →
//! step → bank update; at each epoch end evaluate on val and test, sweep the unlabeled set into a
//! pseudo-label file, write metrics and a checkpoint. Everything else is called from here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::{RunInfo, FUSION_KEY, PSEUDO_LABEL_DIR, RUN_KEY, THRESHOLD_KEY};
use exchange::schema::text::PrototypeRow;
use exchange::schema::CLASSES_KEY;
use exchange::Expression;
use indicatif::{ProgressBar, ProgressStyle};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::amp::{to_f32, GradScaler};
use crate::checkpoint::{self, Parts, State};
use crate::config::{learning_rate, Config};
use crate::data::loader::{self, Data};
use crate::data::prefetch::{self, Plan};
use crate::data::sampler::Sampler;
use crate::ema::Ema;
use crate::evaluate::{infer, metric_rows, pseudo_rows, score};
use crate::model::heads::HeadOut;
use crate::model::init;
use crate::model::Net;
use crate::optim::Optimizer;
use crate::sitfer::fusion::{fuse, fusion_at};
use crate::sitfer::levels::{levels, text_scores};
use crate::sitfer::losses;
use crate::sitfer::memory_bank::MemoryBank;

pub struct RunSpec {
    pub split: PathBuf,
    pub shards: PathBuf,
    pub text_root: PathBuf,
    pub run_dir: PathBuf,
    pub resume: bool,
    pub device: Device,
    pub quiet: bool,
    /// Stop (with a checkpoint) once this many steps are done — an interruption at a known point.
    pub stop_after: Option<u64>,
}

/// Set by the binary's Ctrl-C handler: the loop writes a checkpoint after the current step and returns.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// How a call to [`train`] ended.
pub struct Outcome {
    /// Every step's total loss, in order (the resume test compares them).
    pub losses: Vec<f64>,
    pub state: State,
    /// Stopped early by Ctrl-C or `stop_after`, with a checkpoint to resume from.
    pub interrupted: bool,
}

/// The run's class prototypes `[C, D]` in the run's class order, from embed-text's prototypes file.
fn prototypes(text_root: &Path, cfg: &Config, classes: &[Expression], device: Device) -> anyhow::Result<Tensor> {
    let path = text_root.join(&cfg.text.encoder).join(&cfg.text.set).join("prototypes.parquet");
    let rows: Vec<PrototypeRow> = read_table(&path).with_context(|| {
        format!(
            "text prototypes not found at {} (run `make embed-text ENCODER={} TEXT_SET={}`)",
            path.display(),
            cfg.text.encoder,
            cfg.text.set
        )
    })?;
    let mut out = Vec::new();
    for c in classes {
        let r = rows
            .iter()
            .find(|r| r.class == c.id())
            .with_context(|| format!("{}: no prototype for class {c}", path.display()))?;
        out.push(Tensor::from_slice(&r.vector));
    }
    Ok(Tensor::stack(&out, 0).to_device(device))
}

#[derive(Default)]
struct Running {
    n: f64,
    loss: f64,
    loss_s: f64,
    loss_t: f64,
    loss_u: f64,
    loss_con: f64,
    mask: f64,
    /// Time the step waited for the prefetch queue, and the whole time of the epoch's steps.
    wait: Duration,
    busy: Duration,
}

impl Running {
    fn images_per_s(&self, images_per_step: f64) -> f64 {
        self.n * images_per_step / self.busy.as_secs_f64().max(1e-9)
    }

    fn wait_fraction(&self) -> f64 {
        self.wait.as_secs_f64() / self.busy.as_secs_f64().max(1e-9)
    }

    fn message(&self, images_per_step: f64) -> String {
        let n = self.n.max(1.0);
        format!(
            "loss {:.3} (s {:.3} t {:.3} u {:.3}) mask {:.2}  {:.0} img/s  wait {:.0}%",
            self.loss / n,
            self.loss_s / n,
            self.loss_t / n,
            self.loss_u / n,
            self.mask / n,
            self.images_per_s(images_per_step),
            100.0 * self.wait_fraction()
        )
    }
}

fn progress(quiet: bool, epoch: u32, epochs: u32, len: u64, done: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len).with_position(done);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {msg} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("epoch {epoch}/{epochs}"));
    pb
}

pub fn write_run_info(spec: &RunSpec, cfg: &Config, data: &Data, dataset: &str) -> anyhow::Result<()> {
    let info = RunInfo {
        run: spec.run_dir.file_name().and_then(|s| s.to_str()).unwrap_or("run").to_string(),
        preset: cfg.preset.clone(),
        dataset: dataset.to_string(),
        shards: spec.shards.display().to_string(),
        split: spec.split.display().to_string(),
        classes: data.classes.iter().map(|c| c.name().to_string()).collect(),
        threshold: cfg.method.threshold as f32,
        fusion: cfg.fusion(),
        levels: [true, cfg.method.text, cfg.method.instance],
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    info.write(&spec.run_dir)?;
    exchange::atomic::write_bytes(spec.run_dir.join("config.toml"), toml::to_string_pretty(cfg)?.as_bytes())?;
    Ok(())
}

/// Trains from scratch (or `model.init`), or from the latest checkpoint with `spec.resume`.
pub fn train(spec: &RunSpec, cfg: &Config, data: &Data) -> anyhow::Result<Outcome> {
    let device = spec.device;
    let c = data.classes.len() as i64;
    let protos = if cfg.method.text { Some(prototypes(&spec.text_root, cfg, &data.classes, device)?) } else { None };
    let feature = cfg.model.feature_dim();
    let text_dim = protos.as_ref().map(|p| p.size()[1]).unwrap_or(feature);
    tch::manual_seed(cfg.run.seed as i64);
    let mut vs = VarStore::new(device);
    let net = Net::new(&vs.root(), &cfg.model, c, text_dim);
    if !spec.resume && cfg.model.init != "scratch" {
        let r = init::load(&vs, Path::new(&cfg.model.init))?;
        exchange::atomic::write_json(spec.run_dir.join("init.json"), &r)?;
        if !spec.quiet {
            eprintln!("{}", r.summary());
        }
    }
    let mut opt = Optimizer::new(&vs, cfg.optim_kind()?, cfg.optim.weight_decay);
    let mut bank = MemoryBank::new(&data.labeled.labels, feature, c, cfg.method.bank_momentum, device);
    let mut ema = (cfg.optim.ema > 0.0).then(|| Ema::new(&vs, cfg.optim.ema));
    let mut lab = Sampler::new(data.labeled.ids.len(), cfg.run.seed, 1);
    let mut unl = Sampler::new(data.unlabeled.ids.len(), cfg.run.seed, 2);
    let amp = cfg.run.amp && device.is_cuda();
    let mut state = State {
        step: 0,
        epoch: 0,
        labeled: lab.state(),
        unlabeled: unl.state(),
        best_val: -1.0,
        best_epoch: 0,
        tensors: String::new(),
        scaler: None,
    };
    if spec.resume {
        let mut parts = Parts { vs: &mut vs, opt: &mut opt, bank: &mut bank, ema: ema.as_mut() };
        state = checkpoint::restore(&spec.run_dir, &mut parts)?;
        lab.restore(state.labeled);
        unl.restore(state.unlabeled);
    }
    let mut scaler = state.scaler.unwrap_or(GradScaler::new(amp));
    let semi = cfg.semi_supervised() && !data.unlabeled.ids.is_empty();
    let (bl, bu) = (cfg.schedule.batch_labeled as usize, cfg.schedule.batch_unlabeled as usize);
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    let images_per_step = (bl + if semi { 2 * bu } else { 0 }) as f64;
    let metrics_path = spec.run_dir.join("metrics.parquet");
    let mut metrics: Vec<MetricRow> =
        if spec.resume && metrics_path.is_file() { read_table(&metrics_path)? } else { Vec::new() };
    let mut losses_seen = Vec::new();
    let labels_all = Tensor::from_slice(&data.labeled.labels).to_device(device);
    let plan = Plan {
        labeled: &data.labeled.images,
        unlabeled: &data.unlabeled.images,
        batch_labeled: bl,
        batch_unlabeled: if semi { bu } else { 0 },
        pad: (cfg.model.image_size as usize / 16).max(1),
        seed: cfg.run.seed,
        threads: cfg.run.loader_threads,
    };
    let stop_at = spec.stop_after.map_or(total, |s| s.min(total));
    let log_lines = !spec.quiet && !std::io::stderr().is_terminal();
    let log_every = (cfg.schedule.steps_per_epoch / 5).max(1);

    let interrupted = std::thread::scope(|scope| -> anyhow::Result<bool> {
        let queue = prefetch::spawn(scope, plan, lab, unl, state.step..stop_at, cfg.run.prefetch)?;
        while state.step < total {
            let epoch = (state.step / cfg.schedule.steps_per_epoch) as u32 + 1;
            let fusion = fusion_at(&cfg.fusion(), epoch, cfg.method.instance_warmup_epochs);
            let epoch_start = u64::from(epoch - 1) * cfg.schedule.steps_per_epoch;
            let epoch_end = epoch_start + cfg.schedule.steps_per_epoch;
            let pb =
                progress(spec.quiet, epoch, cfg.schedule.epochs, epoch_end - epoch_start, state.step - epoch_start);
            let mut run = Running::default();
            while state.step < epoch_end {
                let step = state.step;
                let t0 = Instant::now();
                let Ok(batch) = queue.recv() else {
                    bail!("the input pipeline stopped before step {step} (a panic in augmentation? see above)");
                };
                run.wait += t0.elapsed();
                debug_assert_eq!(batch.step, step);
                tch::manual_seed((cfg.run.seed as i64).wrapping_mul(1_000_003).wrapping_add(step as i64));
                // forward (one batch, as FixMatch does, so batch norm sees labeled and unlabeled together)
                let x = batch.x.to_device(device);
                let out = tch::autocast(amp, || net.forward(&x, true));
                let out = HeadOut { h: to_f32(&out.h), z: to_f32(&out.z), g: to_f32(&out.g) };
                let nl = batch.labeled.len() as i64;
                let nu = batch.unlabeled.len() as i64;
                // Labeled slots: they index the labels and, after the step, the memory bank.
                let slots =
                    Tensor::from_slice(&batch.labeled.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
                let y = labels_all.index_select(0, &slots);
                let z_l = out.z.narrow(0, 0, nl);
                // losses
                let l_s = losses::supervised(&z_l, &y);
                // A new tensor, not a shallow clone: `+=` below would otherwise add into l_s and misreport it.
                let mut loss = &l_s * 1.0;
                let l_t = protos
                    .as_ref()
                    .map(|p| losses::text(&text_scores(&out.g.narrow(0, 0, nl), p), &y, cfg.method.tau_text));
                if let Some(l_t) = &l_t {
                    loss += l_t * cfg.method.lambda_text;
                }
                let mut l_u_val = 0.0;
                let mut mask_rate = 0.0;
                if nu > 0 {
                    // three levels on the weak view, without gradient → fuse → pseudo-labels for the strong view
                    let (label, mask) = tch::no_grad(|| {
                        let h_w = out.h.narrow(0, nl, nu).detach();
                        let s_text = protos.as_ref().map(|p| text_scores(&out.g.narrow(0, nl, nu).detach(), p));
                        let s_ins = cfg.method.instance.then(|| bank.scores(&h_w, cfg.method.instance_rule));
                        let l = levels(
                            &out.z.narrow(0, nl, nu).detach(),
                            s_text,
                            s_ins,
                            cfg.method.tau_text,
                            cfg.method.tau_ins,
                        );
                        let q = fuse(&l, &fusion, cfg.method.threshold);
                        (q.label, q.mask)
                    });
                    mask_rate = f64::try_from(&mask.mean(Kind::Float)).unwrap_or(0.0);
                    if epoch > cfg.method.unlabeled_warmup_epochs {
                        let l_u = losses::unlabeled(&out.z.narrow(0, nl + nu, nu), &label, &mask);
                        l_u_val = f64::try_from(&l_u).unwrap_or(f64::NAN);
                        loss += l_u * cfg.method.lambda_unlabeled;
                    }
                }
                let mut l_con_val = 0.0;
                if cfg.method.lambda_contrastive > 0.0 {
                    let l_con = losses::supcon(&out.h.narrow(0, 0, nl), &y, cfg.method.supcon_temperature);
                    l_con_val = f64::try_from(&l_con).unwrap_or(f64::NAN);
                    loss += l_con * cfg.method.lambda_contrastive;
                }
                let loss = loss * cfg.method.loss_scale;
                let loss_val = f64::try_from(&loss).unwrap_or(f64::NAN);
                if !loss_val.is_finite() {
                    pb.abandon();
                    bail!(
                        "loss became {loss_val} at step {step} (epoch {epoch}); stopping. The last good checkpoint is kept \
                         in {} (lower optim.lr, or set optim.clip_grad_norm)",
                        checkpoint::dir(&spec.run_dir).display()
                    );
                }
                // step (a mixed-precision step whose gradients overflowed is skipped, as GradScaler does)
                opt.zero_grad();
                scaler.scale_loss(&loss).backward();
                if !scaler.enabled || scaler.unscale(&opt.gradients()) {
                    if cfg.optim.clip_grad_norm > 0.0 {
                        opt.clip_grad_norm(cfg.optim.clip_grad_norm);
                    }
                    opt.step(learning_rate(&cfg.optim, step, total));
                    if let Some(e) = ema.as_mut() {
                        e.update(&vs);
                    }
                }
                // bank update with the labeled features of this step
                if cfg.method.instance {
                    bank.update(&slots, &out.h.narrow(0, 0, nl));
                }
                losses_seen.push(loss_val);
                run.n += 1.0;
                run.loss += loss_val;
                run.loss_s += f64::try_from(&l_s).unwrap_or(0.0);
                run.loss_t += l_t.as_ref().and_then(|t| f64::try_from(t).ok()).unwrap_or(0.0);
                run.loss_u += l_u_val;
                run.loss_con += l_con_val;
                run.mask += mask_rate;
                run.busy += t0.elapsed();
                state.step += 1;
                state.labeled = batch.labeled_state;
                state.unlabeled = batch.unlabeled_state;
                state.scaler = amp.then_some(scaler);
                pb.inc(1);
                if state.step.is_multiple_of(5) || state.step == epoch_end {
                    pb.set_message(run.message(images_per_step));
                }
                // Logs (stderr not a terminal, where the bar draws nothing) get a plain line five times an epoch.
                if log_lines && (state.step - epoch_start).is_multiple_of(log_every) && state.step < epoch_end {
                    eprintln!(
                        "epoch {epoch:>3}  step {}/{}  {}",
                        state.step - epoch_start,
                        epoch_end - epoch_start,
                        run.message(images_per_step)
                    );
                }
                let stop = INTERRUPT.load(Ordering::SeqCst) || spec.stop_after == Some(state.step);
                let periodic = cfg.run.checkpoint_every > 0 && state.step.is_multiple_of(cfg.run.checkpoint_every);
                if (stop || periodic) && state.step < epoch_end {
                    let parts = Parts { vs: &mut vs, opt: &mut opt, bank: &mut bank, ema: ema.as_mut() };
                    checkpoint::save(&spec.run_dir, &parts, &state)?;
                }
                if stop && state.step < epoch_end {
                    pb.abandon();
                    write_table(&metrics_path, &metrics, &[])?;
                    return Ok(true);
                }
            }
            pb.finish_and_clear();
            // epoch end: evaluate, sweep, record, checkpoint
            state.epoch = epoch;
            let n = run.n.max(1.0);
            for (name, v) in [
                ("loss", run.loss),
                ("loss_s", run.loss_s),
                ("loss_t", run.loss_t),
                ("loss_u", run.loss_u),
                ("loss_con", run.loss_con),
                ("mask_rate", run.mask),
            ] {
                metrics.push(MetricRow::scalar(epoch, state.step, "train", name, v / n));
            }
            metrics.push(MetricRow::scalar(
                epoch,
                state.step,
                "train",
                "lr",
                learning_rate(&cfg.optim, state.step.saturating_sub(1), total),
            ));
            metrics.push(MetricRow::scalar(
                epoch,
                state.step,
                "train",
                "images_per_s",
                run.images_per_s(images_per_step),
            ));
            metrics.push(MetricRow::scalar(epoch, state.step, "train", "input_wait_fraction", run.wait_fraction()));
            let mut line = format!("epoch {epoch:>3}  {}", run.message(images_per_step));
            let eval_started = Instant::now();
            for (split, set) in [("val", &data.val), ("test", &data.test)] {
                if set.ids.is_empty() {
                    continue;
                }
                // val/test use the EMA weights when there are any (what USB reports); the sweep below does not
                let evaluate = || infer(&net, &set.images, &bank, protos.as_ref(), cfg, epoch, device);
                let inf = match &ema {
                    Some(e) => e.with_average(&vs, evaluate),
                    None => evaluate(),
                };
                let s = score(&inf, &set.labels, c as usize);
                line += &format!("  {split} {:.2}% (fused {:.2}%)", 100.0 * s.acc_cls, 100.0 * s.acc_fused);
                if split == "val" && s.acc_cls > state.best_val {
                    state.best_val = s.acc_cls;
                    state.best_epoch = epoch;
                }
                metrics.extend(metric_rows(&s, epoch, state.step, split));
            }
            if cfg.run.pseudo_labels_every > 0
                && epoch.is_multiple_of(cfg.run.pseudo_labels_every)
                && !data.unlabeled.ids.is_empty()
            {
                let inf = infer(&net, &data.unlabeled.images, &bank, protos.as_ref(), cfg, epoch, device);
                let rows: Vec<PseudoLabelRow> = pseudo_rows(&inf, &data.unlabeled.ids, epoch, cfg.method.threshold);
                let selected = rows.iter().filter(|r| r.selected).count();
                line += &format!("  pseudo {:.1}% selected", 100.0 * selected as f64 / rows.len().max(1) as f64);
                let dir = spec.run_dir.join(PSEUDO_LABEL_DIR);
                std::fs::create_dir_all(&dir)?;
                let meta = [
                    (CLASSES_KEY, data.classes.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")),
                    (THRESHOLD_KEY, cfg.method.threshold.to_string()),
                    (FUSION_KEY, serde_json::to_string(&fusion)?),
                    (RUN_KEY, spec.run_dir.file_name().and_then(|s| s.to_str()).unwrap_or("run").to_string()),
                ];
                write_table(dir.join(format!("epoch-{epoch:04}.parquet")), &rows, &meta)?;
            }
            metrics.push(MetricRow::scalar(
                epoch,
                state.step,
                "train",
                "eval_seconds",
                eval_started.elapsed().as_secs_f64(),
            ));
            write_table(&metrics_path, &metrics, &[])?;
            let parts = Parts { vs: &mut vs, opt: &mut opt, bank: &mut bank, ema: ema.as_mut() };
            checkpoint::save(&spec.run_dir, &parts, &state)?;
            if !spec.quiet {
                eprintln!("{line}");
            }
            if state.step >= stop_at && state.step < total {
                return Ok(true);
            }
            if INTERRUPT.load(Ordering::SeqCst) && state.step < total {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    Ok(Outcome { losses: losses_seen, state, interrupted })
}

/// Loads the data for a spec.
pub fn load_data(spec: &RunSpec, cfg: &Config) -> anyhow::Result<Data> {
    loader::load(&spec.shards, &spec.split, cfg.model.image_size as u32)
}
