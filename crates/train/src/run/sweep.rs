//! The unlabeled sweep: at its epochs, the pseudo-label every unlabeled face would get from the live weights
//! (not the EMA), written for audit. Training never reads it, so its cost is pure bookkeeping: earlier sweeps
//! may read a fixed seeded subset (`run.sweep_subset`), the last epoch's sweep reads every face.

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
use crate::evaluate::{infer, pseudo_rows};

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
    pub(super) fn sweep(&self, spec: &RunSpec, data: &Data, epoch: u32) -> anyhow::Result<String> {
        let cfg = self.cfg;
        let unlabeled = &data.unlabeled;
        if !due(&cfg.run, epoch, cfg.schedule.epochs) || unlabeled.ids.is_empty() {
            return Ok(String::new());
        }
        let n = unlabeled.ids.len();
        let picked = (epoch < cfg.schedule.epochs).then(|| subset(n, cfg.run.sweep_subset, cfg.run.seed)).flatten();
        let fusion = self.fusion_at(epoch);
        let (raw, ids) = match &picked {
            Some(p) => {
                let images: Vec<&Img> = p.iter().map(|&i| &unlabeled.images[i]).collect();
                (self.raw_outputs(&images)?, p.iter().map(|&i| unlabeled.ids[i].clone()).collect())
            }
            None => (self.raw_outputs(&unlabeled.images)?, unlabeled.ids.clone()),
        };
        if !spec.writes() {
            return Ok(String::new());
        }
        let threshold = self.thresholds();
        let rows: Vec<PseudoLabelRow> = pseudo_rows(&infer(&raw, &fusion, self.taus), &ids, epoch, &threshold);
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
        write_table(dir.join(layout::run::pseudo_label_file(epoch)), &rows, &meta)?;
        let of = if picked.is_some() { format!(" of a {}-face subset", rows.len()) } else { String::new() };
        Ok(format!("  pseudo {:.1}% selected{of}", 100.0 * selected as f64 / rows.len().max(1) as f64))
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
