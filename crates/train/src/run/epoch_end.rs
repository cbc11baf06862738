//! The end of an epoch, in order: record the epoch's training averages, evaluate val and test (with the EMA
//! weights when there are any, as USB reports), keep the best val epoch, sweep the unlabeled set into a
//! pseudo-label file, write the metrics, and checkpoint. Model selection reads val only.

use std::time::Instant;

use exchange::parquet_io::write_table;
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::{keys, layout};

use super::inputs::run_name;
use super::spec::RunSpec;
use super::trainer::Trainer;
use crate::checkpoint::State;
use crate::data::loader::Data;
use crate::epoch_stats::Running;
use crate::evaluate::{infer, metric_rows, pseudo_rows, score};
use crate::optim::learning_rate;

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
        line += &self.evaluate(data, e.epoch, state, metrics);
        line += &self.sweep(spec, data, e.epoch)?;
        metrics.push(MetricRow::scalar(
            e.epoch,
            state.step,
            "train",
            "eval_seconds",
            eval_started.elapsed().as_secs_f64(),
        ));
        write_table(layout::run::metrics(&spec.run_dir), metrics, &[])?;
        self.save(&spec.run_dir, state)?;
        Ok(line)
    }

    /// val and test accuracies into `metrics`; the best val epoch into `state`.
    fn evaluate(&self, data: &Data, epoch: u32, state: &mut State, metrics: &mut Vec<MetricRow>) -> String {
        let c = data.classes.len();
        let mut line = String::new();
        for (split, set) in [("val", &data.val), ("test", &data.test)] {
            if set.ids.is_empty() {
                continue;
            }
            let evaluate =
                || infer(&self.net, &set.images, &self.bank, self.protos.as_ref(), self.cfg, epoch, self.device);
            let inf = match &self.ema {
                Some(e) => e.with_average(&self.vs, evaluate),
                None => evaluate(),
            };
            let s = score(&inf, &set.labels, c);
            line += &format!("  {split} {:.2}% (fused {:.2}%)", 100.0 * s.acc_cls, 100.0 * s.acc_fused);
            if split == "val" && s.acc_cls > state.best_val {
                state.best_val = s.acc_cls;
                state.best_epoch = epoch;
            }
            metrics.extend(metric_rows(&s, epoch, state.step, split));
        }
        line
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
        let inf = infer(&self.net, &data.unlabeled.images, &self.bank, self.protos.as_ref(), cfg, epoch, self.device);
        let rows: Vec<PseudoLabelRow> = pseudo_rows(&inf, &data.unlabeled.ids, epoch, cfg.threshold());
        let selected = rows.iter().filter(|r| r.selected).count();
        let dir = layout::run::pseudo_labels(&spec.run_dir);
        std::fs::create_dir_all(&dir)?;
        let fusion = cfg.fusion().in_force(epoch, cfg.method.instance_warmup_epochs);
        let meta = [
            (keys::CLASSES, data.classes.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")),
            (keys::THRESHOLD, cfg.method.threshold.to_string()),
            (keys::FUSION, serde_json::to_string(&fusion)?),
            (keys::RUN, run_name(spec)),
        ];
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
