//! The training loop, reading like the method: sample → augment → forward → three levels → fuse → losses →
//! step → bank update; at each epoch end evaluate on val and test, sweep the unlabeled set into a
//! pseudo-label file, write metrics and a checkpoint. Everything else is called from here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::{RunInfo, FUSION_KEY, PSEUDO_LABEL_DIR, RUN_KEY, THRESHOLD_KEY};
use exchange::schema::text::PrototypeRow;
use exchange::schema::CLASSES_KEY;
use exchange::Expression;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, State};
use crate::config::{learning_rate, Config};
use crate::data::augment::{strong, weak, Img};
use crate::data::batch::to_tensor;
use crate::data::loader::{self, Data};
use crate::data::sampler::Sampler;
use crate::evaluate::{infer, metric_rows, pseudo_rows, score};
use crate::model::resnet::FEATURE_DIM;
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

/// Deterministic per-sample augmentation RNG: the same (seed, step, stream, slot) gives the same view,
/// whichever thread computes it and whether or not the run was resumed.
fn rng(seed: u64, step: u64, stream: u64, i: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ stream.wrapping_mul(0xBF58_476D_1CE4_E5B9)
            ^ (i as u64).wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

fn views(images: &[Img], idx: &[usize], pad: usize, seed: u64, step: u64, stream: u64, strong_view: bool) -> Vec<Img> {
    idx.par_iter()
        .enumerate()
        .map(|(i, &j)| {
            let mut r = rng(seed, step, stream, i);
            if strong_view {
                strong(&images[j], pad, &mut r)
            } else {
                weak(&images[j], pad, &mut r)
            }
        })
        .collect()
}

#[derive(Default)]
struct Running {
    n: f64,
    loss: f64,
    loss_s: f64,
    loss_t: f64,
    loss_u: f64,
    mask: f64,
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

/// Trains; returns the per-step losses (for the resume test) and the final state.
pub fn train(spec: &RunSpec, cfg: &Config, data: &Data) -> anyhow::Result<(Vec<f64>, State)> {
    let device = spec.device;
    let c = data.classes.len() as i64;
    let protos = if cfg.method.text { Some(prototypes(&spec.text_root, cfg, &data.classes, device)?) } else { None };
    let text_dim = protos.as_ref().map(|p| p.size()[1]).unwrap_or(FEATURE_DIM);
    tch::manual_seed(cfg.run.seed as i64);
    let mut vs = VarStore::new(device);
    let net = Net::new(&vs.root(), cfg.model.stem, c, text_dim, cfg.model.dropout);
    let mut opt = Optimizer::new(&vs, cfg.optim_kind()?, cfg.optim.weight_decay);
    let mut bank = MemoryBank::new(&data.labeled.labels, FEATURE_DIM, c, cfg.method.bank_momentum, device);
    let mut lab = Sampler::new(data.labeled.ids.len(), cfg.run.seed, 1);
    let mut unl = Sampler::new(data.unlabeled.ids.len(), cfg.run.seed, 2);
    let mut state = State {
        step: 0,
        epoch: 0,
        labeled: lab.state(),
        unlabeled: unl.state(),
        best_val: -1.0,
        best_epoch: 0,
        tensors: String::new(),
    };
    if spec.resume {
        state = checkpoint::restore(&spec.run_dir, &mut vs, &mut opt, &mut bank)?;
        lab.restore(state.labeled);
        unl.restore(state.unlabeled);
    }
    let semi = cfg.semi_supervised() && !data.unlabeled.ids.is_empty();
    let (bl, bu) = (cfg.schedule.batch_labeled as usize, cfg.schedule.batch_unlabeled as usize);
    let total = cfg.schedule.steps_per_epoch * u64::from(cfg.schedule.epochs);
    let pad = (cfg.model.image_size as usize / 16).max(1);
    let metrics_path = spec.run_dir.join("metrics.parquet");
    let mut metrics: Vec<MetricRow> =
        if spec.resume && metrics_path.is_file() { read_table(&metrics_path)? } else { Vec::new() };
    let mut losses_seen = Vec::new();
    let labels_all = Tensor::from_slice(&data.labeled.labels).to_device(device);

    while state.step < total {
        let epoch = (state.step / cfg.schedule.steps_per_epoch) as u32 + 1;
        let fusion = fusion_at(&cfg.fusion(), epoch, cfg.method.instance_warmup_epochs);
        let started = Instant::now();
        let mut run = Running::default();
        let epoch_end = u64::from(epoch) * cfg.schedule.steps_per_epoch;
        while state.step < epoch_end {
            let step = state.step;
            tch::manual_seed((cfg.run.seed as i64).wrapping_mul(1_000_003).wrapping_add(step as i64));
            // sample → augment
            let li = lab.next_batch(bl);
            let xl = views(&data.labeled.images, &li, pad, cfg.run.seed, step, 1, false);
            let (ui, uw, us) = if semi {
                let ui = unl.next_batch(bu);
                let uw = views(&data.unlabeled.images, &ui, pad, cfg.run.seed, step, 2, false);
                let us = views(&data.unlabeled.images, &ui, pad, cfg.run.seed, step, 3, true);
                (ui, uw, us)
            } else {
                (Vec::new(), Vec::new(), Vec::new())
            };
            let mut all = xl;
            all.extend(uw);
            all.extend(us);
            // forward (one batch, as FixMatch does, so batch norm sees labeled and unlabeled together)
            let out = net.forward(&to_tensor(&all, device), true);
            let nl = li.len() as i64;
            let nu = ui.len() as i64;
            // Labeled slots: they index the labels and, after the step, the memory bank.
            let slots = Tensor::from_slice(&li.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
            let y = labels_all.index_select(0, &slots);
            let z_l = out.z.narrow(0, 0, nl);
            // losses
            let l_s = losses::supervised(&z_l, &y);
            let mut loss = l_s.shallow_clone();
            let l_t = protos
                .as_ref()
                .map(|p| losses::text(&text_scores(&out.g.narrow(0, 0, nl), p), &y, cfg.method.tau_text));
            if let Some(l_t) = &l_t {
                loss += l_t * cfg.method.lambda_text;
            }
            let mut l_u_val = 0.0;
            let mut mask_rate = 0.0;
            if semi && nu > 0 {
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
            if cfg.method.lambda_contrastive > 0.0 {
                loss += losses::supcon(&out.h.narrow(0, 0, nl), &y, cfg.method.supcon_temperature)
                    * cfg.method.lambda_contrastive;
            }
            let loss = loss * cfg.method.loss_scale;
            let loss_val = f64::try_from(&loss).unwrap_or(f64::NAN);
            if !loss_val.is_finite() {
                bail!(
                    "loss became {loss_val} at step {step} (epoch {epoch}); stopping. The last good checkpoint is kept in {} \
                     (lower optim.lr, or set optim.clip_grad_norm)",
                    checkpoint::dir(&spec.run_dir).display()
                );
            }
            // step
            opt.zero_grad();
            loss.backward();
            if cfg.optim.clip_grad_norm > 0.0 {
                opt.clip_grad_norm(cfg.optim.clip_grad_norm);
            }
            opt.step(learning_rate(&cfg.optim, step, total));
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
            run.mask += mask_rate;
            state.step += 1;
            state.labeled = lab.state();
            state.unlabeled = unl.state();
            if cfg.run.checkpoint_every > 0
                && state.step.is_multiple_of(cfg.run.checkpoint_every)
                && state.step < epoch_end
            {
                checkpoint::save(&spec.run_dir, &vs, &opt, &bank, &state)?;
            }
            if spec.stop_after == Some(state.step) && state.step < epoch_end {
                checkpoint::save(&spec.run_dir, &vs, &opt, &bank, &state)?;
                write_table(&metrics_path, &metrics, &[])?;
                return Ok((losses_seen, state));
            }
        }
        // epoch end: evaluate, sweep, record, checkpoint
        state.epoch = epoch;
        let secs = started.elapsed().as_secs_f64();
        let n = run.n.max(1.0);
        let images = n * (bl + if semi { 2 * bu } else { 0 }) as f64;
        for (name, v) in [
            ("loss", run.loss),
            ("loss_s", run.loss_s),
            ("loss_t", run.loss_t),
            ("loss_u", run.loss_u),
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
        metrics.push(MetricRow::scalar(epoch, state.step, "train", "images_per_s", images / secs.max(1e-9)));
        let mut line = format!(
            "epoch {epoch:>3}  loss {:.4}  mask {:.2}  {:.0} img/s",
            run.loss / n,
            run.mask / n,
            images / secs.max(1e-9)
        );
        for (split, set) in [("val", &data.val), ("test", &data.test)] {
            if set.ids.is_empty() {
                continue;
            }
            let s =
                score(&infer(&net, &set.images, &bank, protos.as_ref(), cfg, epoch, device), &set.labels, c as usize);
            line += &format!("  {split} acc {:.2}% fused {:.2}%", 100.0 * s.acc_cls, 100.0 * s.acc_fused);
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
        write_table(&metrics_path, &metrics, &[])?;
        checkpoint::save(&spec.run_dir, &vs, &opt, &bank, &state)?;
        if !spec.quiet {
            eprintln!("{line}");
        }
        if spec.stop_after.is_some_and(|s| s <= state.step) {
            break;
        }
    }
    Ok((losses_seen, state))
}

/// Loads the data for a spec.
pub fn load_data(spec: &RunSpec, cfg: &Config) -> anyhow::Result<Data> {
    loader::load(&spec.shards, &spec.split, cfg.model.image_size as u32)
}
