//! The end of an epoch, in order: record the epoch's training averages, evaluate val and test (with the EMA
//! weights when there are any, as USB reports), keep the best val epoch, sweep the unlabeled set into a
//! pseudo-label file, write the metrics, and checkpoint. Model selection reads val only.

use std::time::Instant;

use tch::Tensor;

use exchange::fusion::Threshold;
use exchange::parquet_io::write_table;
use exchange::schema::metrics::{names, MetricRow};
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::{keys, layout};

use super::inputs::run_name;
use super::spec::RunSpec;
use super::trainer::Trainer;
use crate::checkpoint::State;
use crate::data::augment::Img;
use crate::data::loader::{Data, LabeledSet};
use crate::epoch_stats::Running;
use crate::evaluate::{forward_set, infer, metric_rows, pseudo_rows, score, Raw};
use crate::optim::learning_rate;
use crate::sitfer::temperature;

/// What the epoch end needs to know about the epoch just trained.
pub struct EpochSummary<'r> {
    pub epoch: u32,
    pub running: &'r Running,
    pub images_per_step: f64,
    pub total_steps: u64,
}

impl Trainer<'_> {
    /// Runs the epoch end; returns the epoch's one-line report.
    pub fn epoch_end(
        &mut self,
        spec: &RunSpec,
        data: &Data,
        e: &EpochSummary,
        state: &mut State,
        metrics: &mut Vec<MetricRow>,
    ) -> anyhow::Result<String> {
        self.check_finite(&spec.run_dir, state.step)?;
        state.epoch = e.epoch;
        record_training(metrics, e, state.step, &self.cfg.optim);
        let mut line = format!("epoch {:>3}  {}", e.epoch, e.running.message(e.images_per_step));
        let eval_started = Instant::now();
        // Data-parallel: every rank forwards its share of each set and receives the others', so all hold the same
        // numbers (and the same fitted temperatures for the next epoch); only the writing rank writes.
        let best_before = (state.best_epoch, state.best_val);
        let (eval_line, val_acc) = self.evaluate(data, e.epoch, state, metrics)?;
        line += &eval_line;
        line += &self.sweep(spec, data, e.epoch)?;
        if !spec.writes() {
            return Ok(line);
        }

        metrics.push(MetricRow::scalar(
            e.epoch,
            state.step,
            "train",
            "eval_seconds",
            eval_started.elapsed().as_secs_f64(),
        ));
        write_table(layout::run::metrics(&spec.run_dir), metrics, &[])?;
        self.save(&spec.run_dir, state)?;
        // The usable network: the val-chosen epoch's as soon as val improves, the final one after the last step.
        // Written after the checkpoint, so a crash in between replays nothing that a snapshot already holds.
        if (state.best_epoch, state.best_val) != best_before {
            self.write_snapshot(spec, data, state, "best", val_acc)?;
        }
        if state.step >= e.total_steps {
            self.write_snapshot(spec, data, state, "last", val_acc)?;
        }
        Ok(line)
    }

    /// val and test accuracies into `metrics`; the best val epoch into `state`. With
    /// `method.fit_temperatures`, τ_t and τ_i are refitted on val first, so this epoch's fused accuracies, its
    /// sweep and the next epoch's pseudo-labels use them.
    fn evaluate(
        &mut self,
        data: &Data,
        epoch: u32,
        state: &mut State,
        metrics: &mut Vec<MetricRow>,
    ) -> anyhow::Result<(String, Option<f64>)> {
        let c = data.classes.len();
        let mut line = String::new();
        let mut val_acc = None;
        let val = (!data.val.ids.is_empty()).then(|| self.evaluated_raw(&data.val)).transpose()?;
        if let (true, Some(raw)) = (self.cfg.method.fit_temperatures, &val) {
            line += &self.fit_temperatures(raw, &data.val.labels, epoch, state, metrics);
        }
        let test = (!data.test.ids.is_empty()).then(|| self.evaluated_raw(&data.test)).transpose()?;
        let fusion = self.eval_fusion_at(epoch);
        for (split, set, raw) in [(names::VAL, &data.val, val), (names::TEST, &data.test, test)] {
            let Some(raw) = raw else { continue };
            let s = score(&infer(&raw, &fusion, self.taus), &set.labels, c);
            line += &format!("  {split} {:.2}% (fused {:.2}%)", 100.0 * s.acc_cls, 100.0 * s.acc_fused);
            if split == names::VAL {
                val_acc = Some(s.acc_cls);
            }
            if split == names::VAL && s.acc_cls > state.best_val {
                state.best_val = s.acc_cls;
                state.best_epoch = epoch;
            }
            metrics.extend(metric_rows(&s, epoch, state.step, split));
        }
        if let Threshold::PerClass(per_class) = self.thresholds() {
            for (k, t) in per_class.into_iter().enumerate() {
                let row = MetricRow::scalar(epoch, state.step, "train", "class_threshold", f64::from(t));
                metrics.push(MetricRow { class: Some(k as u32), ..row });
            }
        }
        Ok((line, val_acc))
    }

    /// Writes the network as evaluation used it at this epoch (the EMA average when there is one), the bank
    /// and the prototypes, with the card that says how to use them ([`crate::snapshot`]).
    pub(crate) fn write_snapshot(
        &self,
        spec: &RunSpec,
        data: &Data,
        state: &State,
        snapshot: &str,
        val_accuracy: Option<f64>,
    ) -> anyhow::Result<()> {
        use exchange::schema::model_card::{tensor, ModelCard, Preprocessing, FORMAT};
        let copy = || -> Vec<(String, Tensor)> {
            let mut v: Vec<(String, Tensor)> = self
                .vs
                .variables()
                .into_iter()
                .map(|(k, t)| (format!("{}{k}", tensor::NET_PREFIX), t.detach().copy()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let mut tensors = match &self.ema {
            Some(e) => e.with_average(&self.vs, copy),
            None => copy(),
        };
        if self.cfg.method.instance {
            tensors.push((tensor::BANK_FEATS.into(), self.bank.feats.shallow_clone()));
            tensors.push((tensor::BANK_LABELS.into(), self.bank.labels.shallow_clone()));
            tensors.push((tensor::BANK_WRITTEN.into(), self.bank.written.to_kind(tch::Kind::Uint8)));
        }
        if let Some(p) = &self.protos {
            tensors.push((tensor::PROTOTYPES.into(), p.shallow_clone()));
        }
        let tensors: Vec<(String, Tensor)> =
            tensors.into_iter().map(|(k, t)| (k, t.to_device(tch::Device::Cpu))).collect();
        let card = ModelCard {
            format: FORMAT,
            run: run_name(spec),
            snapshot: snapshot.to_string(),
            epoch: state.epoch,
            step: state.step,
            val_accuracy,
            classes: data.classes.iter().map(|c| c.name().to_string()).collect(),
            input: Preprocessing {
                image_size: self.cfg.model.image_size as u32,
                grey: data.channels == 1,
                mean: crate::data::batch::MEAN,
                std: crate::data::batch::STD,
            },
            fusion: self.eval_fusion_at(state.epoch),
            taus: self.taus,
            levels: [true, self.cfg.method.text, self.cfg.method.instance],
            config: serde_json::to_value(self.cfg)?,
            tensors: format!("{snapshot}-{:08}.safetensors", state.step),
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        crate::snapshot::write(&spec.run_dir, &card, &tensors)
    }

    /// A labeled set's raw outputs with the weights evaluation reads (the EMA when there is one).
    fn evaluated_raw(&self, set: &LabeledSet) -> anyhow::Result<Raw> {
        let pass = || self.raw_outputs(&set.images);
        match &self.ema {
            Some(e) => e.with_average(&self.vs, pass),
            None => pass(),
        }
    }

    /// The eval-mode outputs for `images`; data-parallel, each rank forwards its share and gathers the rest.
    fn raw_outputs(&self, images: &[Img]) -> anyhow::Result<Raw> {
        let forward =
            |imgs: &[Img]| forward_set(&self.net, imgs, &self.bank, self.protos.as_ref(), self.cfg, self.device);
        let Some(d) = &self.dist else { return Ok(forward(images)) };
        let n = images.len();
        let share = d.share(n);
        // A rank with nothing to evaluate (more ranks than faces) still takes part in the exchange.
        let mine = if share.is_empty() {
            let one = forward(&images[..1]);
            let none = |t: &Tensor| t.narrow(0, 0, 0);
            Raw { z: none(&one.z), s_text: one.s_text.as_ref().map(none), s_ins: one.s_ins.as_ref().map(none) }
        } else {
            forward(&images[share])
        };
        let gather = |t: &Tensor| d.gather_shares(t, n);
        Ok(Raw {
            z: gather(&mine.z)?,
            s_text: mine.s_text.as_ref().map(gather).transpose()?,
            s_ins: mine.s_ins.as_ref().map(gather).transpose()?,
        })
    }

    /// Refits the levels' temperatures on val's raw scores; a level whose scores carry no information keeps
    /// its τ. Records both in `metrics` and in the checkpoint state.
    fn fit_temperatures(
        &mut self,
        raw: &Raw,
        labels: &[i64],
        epoch: u32,
        state: &mut State,
        metrics: &mut Vec<MetricRow>,
    ) -> String {
        let y = Tensor::from_slice(labels);
        for (k, scores) in [(0, &raw.s_text), (1, &raw.s_ins)] {
            if let Some(tau) = scores.as_ref().and_then(|s| temperature::fit(s, &y)) {
                self.taus[k] = tau;
            }
        }
        state.taus = Some(self.taus);
        metrics.push(MetricRow::scalar(epoch, state.step, names::VAL, "tau_text", self.taus[0]));
        metrics.push(MetricRow::scalar(epoch, state.step, names::VAL, "tau_ins", self.taus[1]));
        format!("  τ_t {:.3} τ_i {:.4}", self.taus[0], self.taus[1])
    }

    /// The unlabeled set's pseudo-labels at this epoch (live weights, not the EMA), when due.
    fn sweep(&self, spec: &RunSpec, data: &Data, epoch: u32) -> anyhow::Result<String> {
        let cfg = self.cfg;
        if cfg.run.pseudo_labels_every == 0
            || !epoch.is_multiple_of(cfg.run.pseudo_labels_every)
            || data.unlabeled.ids.is_empty()
        {
            return Ok(String::new());
        }
        let fusion = self.fusion_at(epoch);
        let raw = self.raw_outputs(&data.unlabeled.images)?;
        if !spec.writes() {
            return Ok(String::new());
        }
        let threshold = self.thresholds();
        let rows: Vec<PseudoLabelRow> =
            pseudo_rows(&infer(&raw, &fusion, self.taus), &data.unlabeled.ids, epoch, &threshold);
        let selected = rows.iter().filter(|r| r.selected).count();
        let dir = layout::run::pseudo_labels(&spec.run_dir);
        std::fs::create_dir_all(&dir)?;
        let mut meta = vec![
            (keys::CLASSES, data.classes.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")),
            (keys::THRESHOLD, cfg.method.threshold.to_string()),
            (keys::FUSION, serde_json::to_string(&fusion)?),
            (keys::RUN, run_name(spec)),
        ];
        if let Threshold::PerClass(per_class) = &threshold {
            let list: Vec<String> = per_class.iter().map(f32::to_string).collect();
            meta.push((keys::CLASS_THRESHOLDS, list.join(",")));
        }
        write_table(dir.join(layout::run::pseudo_label_file(epoch)), &rows, &meta)?;
        Ok(format!("  pseudo {:.1}% selected", 100.0 * selected as f64 / rows.len().max(1) as f64))
    }
}

/// The epoch's training averages, learning rate and throughput.
fn record_training(metrics: &mut Vec<MetricRow>, e: &EpochSummary, step: u64, optim: &crate::optim::Optim) {
    for (name, v) in e.running.means() {
        metrics.push(MetricRow::scalar(e.epoch, step, "train", name, v));
    }
    let lr = learning_rate(optim, step.saturating_sub(1), e.total_steps);
    metrics.push(MetricRow::scalar(e.epoch, step, "train", "lr", lr));
    metrics.push(MetricRow::scalar(e.epoch, step, "train", "images_per_s", e.running.images_per_s(e.images_per_step)));
    metrics.push(MetricRow::scalar(e.epoch, step, "train", "input_wait_fraction", e.running.wait_fraction()));
}
