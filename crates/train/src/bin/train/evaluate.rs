//! `train evaluate`: a trained run's network on one role of a split of any sharded dataset, scored over the
//! classes the run and the dataset share (matched by name; faces of other classes dropped and counted), into
//! `evaluations/<dataset>--<split>--<role>--<snapshot>.json` in the run folder, which audit prints beside the
//! run's own numbers.

use clap::Args as ClapArgs;
use exchange::calibration::Bins;
use exchange::layout;
use exchange::schema::evaluation::Evaluation;
use exchange::Expression;
use tch::Tensor;

use crate::model::{faces, open, FaceArgs, ModelArgs};

#[derive(ClapArgs)]
#[command(after_help = "Examples:
  train evaluate --run ferplus_10pct-sitfer-cpu --split synthetic_scarce --role test
  train evaluate --run demo-sitfer-s0 --dataset sfew --partition valid   (after `shard folder --name sfew`)")]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    faces: FaceArgs,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let model = open(&a.model)?;
    let run_dir = a.model.run_dir()?;
    let chosen = faces(&a.faces, &model)?;
    crate::model::warn_training_overlap(&run_dir, &chosen);
    let set = &chosen.set;
    let run_classes: Vec<Expression> = exchange::labels::parse_class_list(&model.card.classes)
        .map_err(|e| anyhow::anyhow!("the model card's classes: {e}"))?;
    let (keep, dropped) = known_faces(&set.labels, &run_classes);
    if set.labels.iter().all(Option::is_none) {
        anyhow::bail!(
            "{} / {} / {}: these faces carry no labels: nothing to score",
            chosen.dataset,
            chosen.split,
            chosen.role
        );
    }
    if keep.is_empty() {
        anyhow::bail!(
            "{} / {} / {}: no face has one of the run's classes ({})",
            chosen.dataset,
            chosen.split,
            chosen.role,
            model.card.classes.join(", ")
        );
    }
    // The argmax runs over the classes the run and the dataset share, whether or not this role has faces of
    // each: the dataset's class list, not the labels that happen to occur.
    let present: Vec<bool> = run_classes.iter().map(|c| set.classes.contains(c)).collect();
    let images: Vec<_> = keep.iter().map(|(i, _)| set.images[*i].clone()).collect();
    let truth: Vec<usize> = keep.iter().map(|(_, k)| *k).collect();
    let inf = model.infer(&images);
    let sem = shared_scores(&inf.p_sem, &present);
    let report = score(&sem, &truth, &present);
    let fused_accuracy = (model.card.levels[1] || model.card.levels[2]).then(|| {
        let fused = shared_scores(&inf.p_fused, &present);
        let pred = argmaxes(&fused, &present);
        pred.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
    });
    let shared: Vec<usize> = (0..present.len()).filter(|&k| present[k]).collect();
    let eval = Evaluation {
        run: model.card.run.clone(),
        snapshot: model.card.snapshot.clone(),
        epoch: model.card.epoch,
        dataset: chosen.dataset.clone(),
        split: chosen.split.clone(),
        role: chosen.role.clone(),
        classes: shared.iter().map(|&k| model.card.classes[k].clone()).collect(),
        faces: truth.len(),
        dropped,
        not_in_dataset: (0..present.len()).filter(|&k| !present[k]).map(|k| model.card.classes[k].clone()).collect(),
        accuracy: report.accuracy,
        balanced_accuracy: report.balanced,
        fused_accuracy,
        recall: shared.iter().map(|&k| report.recall[k]).collect(),
        confusion: shared.iter().map(|&t| shared.iter().map(|&p| report.confusion[t][p]).collect()).collect(),
        ece: report.ece,
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    let path = layout::run::evaluation_file(&run_dir, &eval.dataset, &eval.split, &eval.role, &eval.snapshot);
    std::fs::create_dir_all(layout::run::evaluations(&run_dir))?;
    eval.write(&path)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&eval)?);
        return Ok(());
    }
    print_summary(&eval, &path);
    Ok(())
}

/// How many faces had each label (or `no label`), in the order first seen.
type LabelCounts = Vec<(String, usize)>;

/// The faces whose class the run knows, as (face index, the class's index in the run's list), and the count
/// of the others by label.
fn known_faces(labels: &[Option<Expression>], run_classes: &[Expression]) -> (Vec<(usize, usize)>, LabelCounts) {
    let mut keep = Vec::new();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        match label.and_then(|l| run_classes.iter().position(|c| *c == l)) {
            Some(k) => keep.push((i, k)),
            None => {
                let name = label.map_or("no label", |l| l.name()).to_string();
                match dropped.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => dropped.push((name, 1)),
                }
            }
        }
    }
    (keep, dropped)
}

/// The probabilities restricted to the classes the dataset has (the others' columns zeroed), as rows.
fn shared_scores(p: &Tensor, present: &[bool]) -> Vec<Vec<f32>> {
    train::evaluate::rows(p)
        .into_iter()
        .map(|r| {
            let kept: Vec<f32> = r.iter().zip(present).map(|(v, &on)| if on { *v } else { 0.0 }).collect();
            let sum: f32 = kept.iter().sum::<f32>().max(f32::MIN_POSITIVE);
            kept.iter().map(|v| v / sum).collect()
        })
        .collect()
}

/// Each row's most probable class among the `present` ones (so a row whose shared probabilities all
/// underflow still gets a shared class).
fn argmaxes(rows: &[Vec<f32>], present: &[bool]) -> Vec<usize> {
    rows.iter()
        .map(|r| {
            let mut best: Option<(usize, f32)> = None;
            for (k, v) in r.iter().enumerate().filter(|(k, _)| present[*k]) {
                if best.is_none_or(|(_, b)| *v > b) {
                    best = Some((k, *v));
                }
            }
            best.map_or(0, |b| b.0)
        })
        .collect()
}

struct Report {
    accuracy: f64,
    balanced: f64,
    recall: Vec<Option<f64>>,
    confusion: Vec<Vec<u64>>,
    ece: f64,
}

/// Accuracy, per-class recall (over `present` classes), their mean, the confusion matrix and the ECE of
/// the renormalised probabilities `p` against `truth`.
fn score(p: &[Vec<f32>], truth: &[usize], present: &[bool]) -> Report {
    let pred = argmaxes(p, present);
    let counts = train::evaluate::per_class(truth.iter().copied().zip(pred.iter().copied()), present.len());
    let right = pred.iter().zip(truth).filter(|(q, t)| q == t).count();
    let bins = Bins::from_rows(pred.iter().zip(truth).zip(p).map(|((q, t), row)| (row[*q], q == t)));
    Report {
        accuracy: right as f64 / truth.len().max(1) as f64,
        balanced: counts.balanced,
        recall: counts.recall,
        confusion: counts.confusion,
        ece: bins.ece(),
    }
}

fn print_summary(e: &Evaluation, path: &std::path::Path) {
    println!(
        "evaluate: {} ({} snapshot, epoch {}) on {} / {} / {}: {} faces",
        e.run, e.snapshot, e.epoch, e.dataset, e.split, e.role, e.faces
    );
    println!(
        "  accuracy {:.2}%  balanced {:.2}%{}  ECE {:.2}%",
        100.0 * e.accuracy,
        100.0 * e.balanced_accuracy,
        e.fused_accuracy.map_or(String::new(), |f| format!("  fused {:.2}%", 100.0 * f)),
        100.0 * e.ece
    );
    let recall: Vec<String> = e
        .classes
        .iter()
        .zip(&e.recall)
        .map(|(c, r)| format!("{c} {}", r.map_or("-".into(), |r| format!("{:.1}%", 100.0 * r))))
        .collect();
    println!("  recall: {}", recall.join(", "));
    if !e.dropped.is_empty() {
        let d: Vec<String> = e.dropped.iter().map(|(c, n)| format!("{n} {c}")).collect();
        println!("  dropped (class not in the run's): {}", d.join(", "));
    }
    if !e.not_in_dataset.is_empty() {
        println!("  run classes the dataset lacks (left out of the argmax): {}", e.not_in_dataset.join(", "));
    }
    println!("  report: {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scores_over_shared_classes() {
        // Three classes, the third absent from the data: its column is zeroed and the rest renormalised.
        let p = Tensor::from_slice(&[0.5f32, 0.1, 0.4, 0.2, 0.2, 0.6, 0.1, 0.6, 0.3]).view([3, 3]);
        let rows = shared_scores(&p, &[true, true, false]);
        assert!((rows[0][0] - 0.5 / 0.6).abs() < 1e-6 && rows[0][2] == 0.0);
        // Row 1: 0.2 vs 0.2 → the first wins; row 2 → class 1.
        let r = score(&rows, &[0, 1, 1], &[true, true, false]);
        assert_eq!(r.confusion, vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 0, 0]]);
        assert!((r.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.recall, vec![Some(1.0), Some(0.5), None]);
        assert!((r.balanced - 0.75).abs() < 1e-12);
    }
}
