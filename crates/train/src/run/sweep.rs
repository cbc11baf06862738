//! The unlabeled sweep: at its epochs, the pseudo-label every unlabeled face would get from the live weights
//! (not the EMA), written for audit. Training never reads it, so its cost is pure bookkeeping: earlier sweeps
//! may read a fixed seeded subset (`run.sweep_subset`), the last epoch's sweep reads every face. A run whose
//! instance level is label propagation reads every face at every sweep and propagates there: the graph
//! needs all of them, and the training steps until the next sweep read the result.

use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use exchange::fusion::Threshold;
use exchange::parquet_io::write_table;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::{keys, layout};

use super::inputs::run_name;
use super::spec::RunSpec;
use super::trainer::Trainer;
use crate::config::Run;
use crate::data::augment::Img;
use crate::data::loader::Data;
use crate::evaluate::{infer, pseudo_rows, Raw};
use crate::sitfer::propagation::{self, InstanceSource};
use tch::Tensor;

/// A stream of its own, so the subset does not move when a sampler's draws change.
const SUBSET_STREAM: u64 = 0x5EED_5B5E_7000_0001;

/// Whether epoch `epoch` of `epochs` sweeps: every `pseudo_labels_every`-th epoch, and always the last one
/// (so audit always sees the final pseudo-labels); never with `pseudo_labels_every = 0`.
pub(crate) fn due(run: &Run, epoch: u32, epochs: u32) -> bool {
    run.pseudo_labels_every > 0 && (epoch.is_multiple_of(run.pseudo_labels_every) || epoch == epochs)
}

/// The unlabeled faces (indices, ascending) an earlier sweep reads: `subset` of `n` drawn once from `seed`,
/// the same at every epoch so audit's epochs compare like with like; `None` when the sweep reads all of them
/// (`subset` 0 or not smaller than `n`).
pub(crate) fn subset(n: usize, subset: usize, seed: u64) -> Option<Vec<usize>> {
    if subset == 0 || subset >= n {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SUBSET_STREAM);
    let mut picked = index::sample(&mut rng, n, subset).into_vec();
    picked.sort_unstable();
    Some(picked)
}

impl Trainer<'_> {
    /// The unlabeled set's pseudo-labels at this epoch, when due; returns the report's fragment.
    pub(super) fn sweep(&mut self, spec: &RunSpec, data: &Data, epoch: u32) -> anyhow::Result<String> {
        let cfg = self.cfg;
        let unlabeled = &data.unlabeled;
        if !due(&cfg.run, epoch, cfg.schedule.epochs) || unlabeled.ids.is_empty() {
            return Ok(String::new());
        }
        let n = unlabeled.ids.len();
        let propagates = cfg.method.levels.instance_source == InstanceSource::Propagation;
        let picked = (epoch < cfg.schedule.epochs && !propagates)
            .then(|| subset(n, cfg.run.sweep_subset, cfg.run.seed))
            .flatten();
        let fusion = self.fusion_at(epoch);
        let (mut raw, ids) = match &picked {
            Some(p) => {
                let images: Vec<&Img> = p.iter().map(|&i| &unlabeled.images[i]).collect();
                (self.raw_outputs(&images)?, p.iter().map(|&i| unlabeled.ids[i].clone()).collect())
            }
            None => (self.raw_outputs(&unlabeled.images)?, unlabeled.ids.clone()),
        };
        let mut line = String::new();
        if propagates {
            line = self.propagate(data, &raw)?;
            let p = self.propagated.as_ref().expect("just propagated").to_device(tch::Device::Cpu);
            raw.s_ins = Some(propagation::as_scores(&p, self.taus[1]));
        }
        if !spec.writes() {
            return Ok(String::new());
        }
        let threshold = self.thresholds();
        let mut inferred = infer(&raw, &fusion, self.taus);
        if let Some(a) = &self.align {
            inferred.p_fused = a.align(&inferred.p_fused);
        }
        let rows: Vec<PseudoLabelRow> = pseudo_rows(&inferred, &ids, epoch, &threshold);
        let selected = rows.iter().filter(|r| r.selected).count();
        let dir = layout::run::pseudo_labels(&spec.run_dir);
        std::fs::create_dir_all(&dir)?;
        let mut meta = vec![
            (keys::CLASSES, data.classes.iter().map(|c| c.name()).collect::<Vec<_>>().join(",")),
            (keys::THRESHOLD, cfg.method.selection.threshold.to_string()),
            (keys::FUSION, serde_json::to_string(&fusion)?),
            (keys::RUN, run_name(spec)),
            (keys::SWEPT_OF, n.to_string()),
        ];
        if let Threshold::PerClass(per_class) = &threshold {
            let list: Vec<String> = per_class.iter().map(f32::to_string).collect();
            meta.push((keys::CLASS_THRESHOLDS, list.join(",")));
        }
        if let Some(a) = &self.align {
            let factors: Vec<f32> = Vec::try_from(&a.factors()).unwrap_or_default();
            meta.push((keys::ALIGNMENT_FACTORS, factors.iter().map(f32::to_string).collect::<Vec<_>>().join(",")));
        }
        write_table(dir.join(layout::run::pseudo_label_file(epoch)), &rows, &meta)?;
        let of = if picked.is_some() { format!(" of a {}-face subset", rows.len()) } else { String::new() };
        line = format!("  pseudo {:.1}% selected{of}", 100.0 * selected as f64 / rows.len().max(1) as f64) + &line;
        Ok(line)
    }

    /// Label propagation over the labeled faces' features and the unlabeled ones' in `unlabeled` (every face,
    /// in set order), kept in [`Trainer::propagated`] for the steps until the next sweep; returns the report's
    /// fragment (mean certainty, agreement with the classifier).
    fn propagate(&mut self, data: &Data, unlabeled: &Raw) -> anyhow::Result<String> {
        let levels = &self.cfg.method.levels;
        let labeled = self.raw_outputs(&data.labeled.images)?;
        let h = Tensor::cat(&[&labeled.h, &unlabeled.h], 0).to_kind(tch::Kind::Float);
        let h = &h / h.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
        let classes: Vec<Option<usize>> = data
            .labeled
            .labels
            .iter()
            .map(|&c| usize::try_from(c).ok())
            .chain(std::iter::repeat_n(None, data.unlabeled.ids.len()))
            .collect();
        let g = propagation::graph(&h, levels.propagation.k, levels.propagation.gamma);
        let out = propagation::propagate(&g, &classes, data.classes.len(), &levels.propagation);
        let nl = data.labeled.ids.len() as i64;
        let nu = data.unlabeled.ids.len() as i64;
        let p = out.p.narrow(0, nl, nu);
        let certainty = f64::try_from(out.certainty.narrow(0, nl, nu).mean(tch::Kind::Float))?;
        let agree = f64::try_from(
            p.argmax(-1, false)
                .eq_tensor(&unlabeled.z.argmax(-1, false))
                .to_kind(tch::Kind::Float)
                .mean(tch::Kind::Float),
        )?;
        self.propagated = Some(p.to_device(self.device));
        Ok(format!("  propagated (certainty {certainty:.2}, {:.1}% agree with the classifier)", 100.0 * agree))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_fall_on_the_cadence_and_the_last_epoch() {
        let run = |every| Run { pseudo_labels_every: every, ..Run::default() };
        let at = |every, epochs| (1..=epochs).filter(|&e| due(&run(every), e, epochs)).collect::<Vec<u32>>();
        assert_eq!(at(5, 15), vec![5, 10, 15]);
        assert_eq!(at(2, 5), vec![2, 4, 5]);
        assert_eq!(at(1, 3), vec![1, 2, 3]);
        assert!(at(0, 4).is_empty());
    }

    #[test]
    fn the_subset_is_fixed_by_the_seed_sorted_and_distinct() {
        assert_eq!(subset(10, 0, 1), None);
        assert_eq!(subset(10, 10, 1), None);
        assert_eq!(subset(10, 20, 1), None);
        let a = subset(1000, 100, 7).unwrap();
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 1000);
        assert_eq!(subset(1000, 100, 7).unwrap(), a);
        assert_ne!(subset(1000, 100, 8).unwrap(), a);
    }
}
