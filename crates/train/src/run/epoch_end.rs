//! The end of an epoch, in order: record the epoch's training averages, evaluate val (with the EMA weights
//! when there are any, as USB reports) and keep the best val epoch, evaluate test where a report reads it (an
//! epoch val chose so far, and the last), sweep the unlabeled set ([`super::sweep`]), record the three
//! phases' seconds, write the metrics, and checkpoint. Model selection reads val only.

use std::borrow::Borrow;
use std::time::Instant;

use tch::Tensor;

use exchange::fusion::Threshold;
use exchange::layout;
use exchange::parquet_io::write_table;
use exchange::schema::metrics::{names, MetricRow};

use super::inputs::run_name;
use super::spec::RunSpec;
use super::trainer::Trainer;
use crate::checkpoint::State;
use crate::data::augment::Img;
use crate::data::loader::{Data, LabeledSet};
use crate::epoch_stats::Running;
use crate::evaluate::{forward_set, infer, metric_rows, score, Raw};
use crate::optim::learning_rate;
use crate::sitfer::temperature;

/// What the epoch end needs to know about the epoch just trained.
pub(crate) struct EpochSummary<'r> {
    pub(crate) epoch: u32,
    pub(crate) running: &'r Running,
    pub(crate) images_per_step: f64,
    pub(crate) total_steps: u64,
    /// Wall seconds of the epoch's steps (input waits included; after a resume, the rest of the epoch).
    pub(crate) train_seconds: f64,
}

impl Trainer<'_> {
    /// Runs the epoch end; returns the epoch's one-line report.
    pub(crate) fn epoch_end(
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
        let last = state.step >= e.total_steps;
        let (eval_line, val_acc) = self.evaluate(data, e.epoch, last, state, metrics)?;
        line += &eval_line;
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let sweep_started = Instant::now();
        line += &self.sweep(spec, data, e.epoch)?;
        let sweep_seconds = sweep_started.elapsed().as_secs_f64();
        if !spec.writes() {
            return Ok(line);
        }
        for (name, seconds) in [
            (names::TRAIN_SECONDS, e.train_seconds),
            (names::EVAL_SECONDS, eval_seconds),
            (names::SWEEP_SECONDS, sweep_seconds),
        ] {
            metrics.push(MetricRow::scalar(e.epoch, state.step, "train", name, seconds));
        }
        write_table(layout::run::metrics(&spec.run_dir), metrics, &[])?;
        self.save(&spec.run_dir, state)?;
        // The usable network: the val-chosen epoch's as soon as val improves, the final one after the last step.
        // Written after the checkpoint, so a crash in between replays nothing that a snapshot already holds.
        if (state.best_epoch, state.best_val) != best_before {
            self.write_snapshot(spec, data, state, "best", val_acc)?;
        }
        if last {
            self.write_snapshot(spec, data, state, "last", val_acc)?;
        }
        Ok(line)
    }

    /// val accuracies into `metrics` and the best val epoch into `state`; test's where [`test_is_read`] says a
    /// report reads them. With `method.levels.fit_temperatures`, τ_t and τ_i are refitted on val first, so this epoch's
    /// fused accuracies, its sweep and the next epoch's pseudo-labels use them.
    fn evaluate(
        &mut self,
        data: &Data,
        epoch: u32,
        last: bool,
        state: &mut State,
        metrics: &mut Vec<MetricRow>,
    ) -> anyhow::Result<(String, Option<f64>)> {
        let c = data.classes.len();
        let fusion = self.eval_fusion_at(epoch);
        let mut line = String::new();
        let mut val_acc = None;
        if !data.val.ids.is_empty() {
            let raw = self.evaluated_raw(&data.val)?;
            if self.cfg.method.levels.fit_temperatures {
                line += &self.fit_temperatures(&raw, &data.val.labels, epoch, state, metrics);
            }
            let s = score(&infer(&raw, &fusion, self.taus), &data.val.labels, c);
            line += &format!("  {} {:.2}% (fused {:.2}%)", names::VAL, 100.0 * s.acc_cls, 100.0 * s.acc_fused);
            val_acc = Some(s.acc_cls);
            if s.acc_cls > state.best_val {
                state.best_val = s.acc_cls;
                state.best_epoch = epoch;
            }
            metrics.extend(metric_rows(&s, epoch, state.step, names::VAL));
        }
        if !data.test.ids.is_empty() && test_is_read(val_acc.is_some(), state.best_epoch == epoch, last) {
            let raw = self.evaluated_raw(&data.test)?;
            let s = score(&infer(&raw, &fusion, self.taus), &data.test.labels, c);
            line += &format!("  {} {:.2}% (fused {:.2}%)", names::TEST, 100.0 * s.acc_cls, 100.0 * s.acc_fused);
            metrics.extend(metric_rows(&s, epoch, state.step, names::TEST));
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
        if self.cfg.method.levels.instance {
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
            levels: [true, self.cfg.method.levels.text, self.cfg.method.levels.instance],
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
    pub(super) fn raw_outputs<I: Borrow<Img> + Sync>(&self, images: &[I]) -> anyhow::Result<Raw> {
        let forward =
            |imgs: &[I]| forward_set(&self.net, imgs, &self.bank, self.protos.as_ref(), self.cfg, self.device);
        let Some(d) = &self.dist else { return Ok(forward(images)) };
        let n = images.len();
        let share = d.share(n);
        // A rank with nothing to evaluate (more ranks than faces) still takes part in the exchange.
        let mine = if share.is_empty() {
            let one = forward(&images[..1]);
            let none = |t: &Tensor| t.narrow(0, 0, 0);
            Raw {
                h: none(&one.h),
                z: none(&one.z),
                s_text: one.s_text.as_ref().map(none),
                s_ins: one.s_ins.as_ref().map(none),
            }
        } else {
            forward(&images[share])
        };
        let gather = |t: &Tensor| d.gather_shares(t, n);
        Ok(Raw {
            h: gather(&mine.h)?,
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
}

/// Whether an epoch's test accuracy is ever read: reports give test at the val-chosen epoch and at the last
/// one, and an epoch that improves val may turn out to be the chosen one. Without a val set nothing is chosen,
/// so every epoch is scored as before.
fn test_is_read(has_val: bool, val_improved: bool, last: bool) -> bool {
    !has_val || val_improved || last
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

#[cfg(test)]
mod tests {
    use super::test_is_read;

    #[test]
    fn test_is_scored_where_a_report_can_read_it() {
        // val falls after epoch 2: epochs 1 and 2 improve it, 3 does not, 4 is the last.
        let improved = [true, true, false, false];
        let scored: Vec<usize> = (0..4).filter(|&e| test_is_read(true, improved[e], e == 3)).map(|e| e + 1).collect();
        assert_eq!(scored, vec![1, 2, 4]);
        assert!(test_is_read(false, false, false));
    }
}
