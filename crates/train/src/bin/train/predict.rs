//! `train predict`: a trained run's network on images — files, folders, or a role of a sharded split — into a
//! Parquet or CSV table of predictions (exchange's prediction table), with the same decoding and
//! preprocessing as the run's evaluation. Unreadable files are named and skipped.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::parquet_io::write_table;
use exchange::schema::prediction::PredictionRow;
use exchange::schema::Table;
use tch::Tensor;
use train::data::augment::Img;
use train::data::loader::decode;
use train::evaluate::{most_probable, rows as prob_rows, Inference};

use crate::model::{faces, open, FaceArgs, ModelArgs};

#[derive(ClapArgs)]
#[command(after_help = "Examples:
  train predict --run demo-sitfer-s0 photos/ --out predictions.csv
  train predict --run demo-sitfer-s0 --split synthetic_scarce --role test --out test.parquet --levels")]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files and folders (searched recursively for .png/.jpg/.jpeg).
    inputs: Vec<PathBuf>,
    /// Instead of files: faces from shards.
    #[command(flatten)]
    faces: FaceArgs,
    /// Output table: .parquet or .csv (one probability column per class in CSV).
    #[arg(long)]
    out: PathBuf,
    /// Also write each SIT-FER level's probabilities and their fusion.
    #[arg(long)]
    levels: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let format = match a.out.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Format::Parquet,
        Some("csv") => Format::Csv,
        _ => bail!("--out {}: expected a .parquet or .csv file", a.out.display()),
    };
    check_output(&a.out, &format)?;
    if a.faces.given() && !a.inputs.is_empty() {
        bail!("give image files and folders, or --split/--dataset, not both");
    }
    let model = open(&a.model)?;
    let (ids, images, labels, skipped) = match a.faces.given() {
        true => {
            let set = faces(&a.faces, &model)?.set;
            let labels = set.labels.iter().map(|l| l.map(|e| e.name().to_string())).collect();
            (set.ids, set.images, labels, set.skipped.len())
        }
        false => {
            if a.inputs.is_empty() {
                bail!("nothing to predict: give image files or folders, or --split/--dataset");
            }
            let (paths, images, skipped) = read_files(&a.inputs, model.card.input.image_size, model.card.input.grey)?;
            let n = paths.len();
            (paths, images, vec![None; n], skipped)
        }
    };
    if images.is_empty() {
        bail!("no readable image among the inputs");
    }
    let inf = model.infer(&images);
    let rows = prediction_rows(&inf, &ids, &labels, &model.card.classes, a.levels);
    match format {
        Format::Parquet => {
            let classes = model.card.classes.join(",");
            write_table(&a.out, &rows, &[(exchange::keys::CLASSES, classes)])?;
        }
        Format::Csv => write_csv(&a.out, &rows, &model.card.classes)?,
    }
    let score = Score::of(&rows, &model.card.classes);
    let summary = serde_json::json!({
        "run": model.card.run, "snapshot": model.card.snapshot, "epoch": model.card.epoch,
        "images": rows.len(), "skipped": skipped, "out": a.out.display().to_string(), "accuracy": score.accuracy,
        "scored": score.scored, "other_classes": score.other_classes,
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "predict: {} images ({} skipped) with {} ({} snapshot, epoch {}) -> {}{}",
            rows.len(),
            skipped,
            model.card.run,
            model.card.snapshot,
            model.card.epoch,
            a.out.display(),
            score.line()
        );
    }
    Ok(())
}

/// The classifier's accuracy over the labelled faces whose class the run knows: a face of another class
/// (a 2-class run on an 8-class split) can never be predicted right, so it is counted apart, as `evaluate`
/// leaves it out.
struct Score {
    accuracy: Option<f64>,
    scored: usize,
    /// Labelled faces of classes the run does not have, by class name.
    other_classes: std::collections::BTreeMap<String, usize>,
}

impl Score {
    fn of(rows: &[PredictionRow], classes: &[String]) -> Self {
        let mut other_classes = std::collections::BTreeMap::new();
        let (mut scored, mut right) = (0, 0);
        for r in rows {
            let Some(label) = r.label.as_deref() else { continue };
            if classes.iter().any(|c| c == label) {
                scored += 1;
                right += usize::from(label == r.predicted);
            } else {
                *other_classes.entry(label.to_string()).or_insert(0) += 1;
            }
        }
        let accuracy = (scored > 0).then(|| right as f64 / scored as f64);
        Score { accuracy, scored, other_classes }
    }

    fn line(&self) -> String {
        let mut line = self.accuracy.map_or(String::new(), |acc| {
            format!(
                "; classifier accuracy {:.2}% over the {} labelled faces of the run's classes",
                100.0 * acc,
                self.scored
            )
        });
        if !self.other_classes.is_empty() {
            let list: Vec<String> = self.other_classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
            line += &format!(
                " ({} of classes the run lacks left out: {})",
                self.other_classes.values().sum::<usize>(),
                list.join(", ")
            );
        }
        line
    }
}

enum Format {
    Parquet,
    Csv,
}

/// The first columns of every CSV predict writes (how an earlier prediction file is recognised).
const CSV_HEAD: &str = "id,predicted,confidence,label";

/// `--out` replaces only an earlier prediction file: never a file in a stage's output folder (a run's
/// metrics, shards), nor an exchange table of another kind (a split), nor a file predict did not write.
fn check_output(out: &Path, format: &Format) -> anyhow::Result<()> {
    exchange::atomic::check_outside_stage_output(out).context("--out")?;
    if !out.exists() {
        return Ok(());
    }
    let ours = match format {
        Format::Parquet => {
            exchange::parquet_io::file_metadata(out).ok().and_then(|m| m.get(exchange::keys::TABLE).cloned())
                == Some(PredictionRow::NAME.to_string())
        }
        Format::Csv => std::fs::read(out).is_ok_and(|b| b.starts_with(CSV_HEAD.as_bytes())),
    };
    if !ours {
        bail!(
            "--out {}: exists and is not a prediction file of train predict; it is left alone (choose another \
             name, or remove it first)",
            out.display()
        );
    }
    Ok(())
}

fn prediction_rows(
    inf: &Inference,
    ids: &[String],
    labels: &[Option<String>],
    classes: &[String],
    levels: bool,
) -> Vec<PredictionRow> {
    let sem = prob_rows(&inf.p_sem);
    let opt = |t: Option<&Tensor>| t.filter(|_| levels).map(prob_rows);
    let (text, ins) = (opt(inf.p_text.as_ref()), opt(inf.p_ins.as_ref()));
    let fused = levels.then(|| prob_rows(&inf.p_fused));
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let (k, conf) = most_probable(&sem[i]);
            PredictionRow {
                id: id.clone(),
                predicted: classes[k].clone(),
                confidence: conf,
                p_sem: sem[i].clone(),
                p_text: text.as_ref().map(|t| t[i].clone()),
                p_ins: ins.as_ref().map(|t| t[i].clone()),
                p_fused: fused.as_ref().map(|t| t[i].clone()),
                label: labels[i].clone(),
            }
        })
        .collect()
}

/// Every image file under `inputs` (files as given, folders recursively, sorted), decoded; unreadable ones
/// are reported by path and skipped.
fn read_files(inputs: &[PathBuf], size: u32, grey: bool) -> anyhow::Result<(Vec<String>, Vec<Img>, usize)> {
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        if input.is_dir() {
            collect_images(input, &mut files, &mut seen)?;
        } else if input.is_file() {
            files.push(input.clone());
        } else if input.exists() {
            bail!("{}: not a regular file or folder (a pipe, socket or device)", input.display());
        } else {
            bail!("{}: no such file or folder", input.display());
        }
    }
    let decoded: Vec<Result<Img, String>> = {
        use rayon::prelude::*;
        files
            .par_iter()
            .map(|f| std::fs::read(f).map_err(|e| e.to_string()).and_then(|b| decode(&b, size, grey)))
            .collect()
    };
    let (mut ids, mut images, mut skipped) = (Vec::new(), Vec::new(), 0);
    for (f, img) in files.iter().zip(decoded) {
        match img {
            Ok(img) => {
                ids.push(f.display().to_string());
                images.push(img);
            }
            Err(e) => {
                eprintln!("warning: {}: skipped, not a readable image ({e})", f.display());
                skipped += 1;
            }
        }
    }
    Ok((ids, images, skipped))
}

/// The image files under `dir`, recursively, following links to folders but entering each folder once
/// (`seen` holds the canonical paths entered): a link back up the tree is a loop, not more images. Entries
/// that are not regular files (pipes, sockets, devices) are named and skipped: reading one would block.
fn collect_images(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> anyhow::Result<()> {
    let canonical = dir.canonicalize().with_context(|| format!("reading {}", dir.display()))?;
    if !seen.insert(canonical) {
        eprintln!("warning: {}: a folder already searched (a link loop?); not searched again", dir.display());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        // Hidden files (editor backups, macOS `._` resource forks) are not images of the dataset.
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            collect_images(&p, out, seen)?;
        } else if p.file_name().is_some_and(|n| exchange::layout::is_image_file(&n.to_string_lossy())) {
            if p.is_file() {
                out.push(p);
            } else {
                eprintln!("warning: {}: skipped, not a regular file (a pipe, socket or device)", p.display());
            }
        }
    }
    Ok(())
}

/// CSV: id, predicted, confidence, label, then `p_<class>` (and `text_`, `ins_`, `fused_` with --levels).
fn write_csv(path: &Path, rows: &[PredictionRow], classes: &[String]) -> anyhow::Result<()> {
    let mut header: Vec<String> = CSV_HEAD.split(',').map(String::from).collect();
    let levels = rows.first().is_some_and(|r| r.p_fused.is_some());
    let prefixes: &[&str] = if levels { &["p", "text", "ins", "fused"] } else { &["p"] };
    for p in prefixes {
        header.extend(classes.iter().map(|c| format!("{p}_{c}")));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for r in rows {
        let mut rec =
            vec![r.id.clone(), r.predicted.clone(), r.confidence.to_string(), r.label.clone().unwrap_or_default()];
        let blank = vec![f32::NAN; classes.len()];
        let cols: Vec<&Vec<f32>> = if levels {
            vec![
                &r.p_sem,
                r.p_text.as_ref().unwrap_or(&blank),
                r.p_ins.as_ref().unwrap_or(&blank),
                r.p_fused.as_ref().unwrap_or(&blank),
            ]
        } else {
            vec![&r.p_sem]
        };
        for v in cols {
            rec.extend(v.iter().map(|x| if x.is_nan() { String::new() } else { x.to_string() }));
        }
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    exchange::atomic::write_bytes(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: Option<&str>, predicted: &str) -> PredictionRow {
        PredictionRow {
            id: "x".into(),
            predicted: predicted.into(),
            confidence: 0.9,
            p_sem: vec![0.9, 0.1],
            p_text: None,
            p_ins: None,
            p_fused: None,
            label: label.map(str::to_string),
        }
    }

    #[test]
    fn faces_of_classes_the_run_lacks_are_counted_apart() {
        let rows = [row(Some("a"), "a"), row(Some("a"), "b"), row(Some("c"), "a"), row(None, "b")];
        let s = Score::of(&rows, &["a".into(), "b".into()]);
        assert_eq!((s.accuracy, s.scored), (Some(0.5), 2));
        assert_eq!(s.other_classes.get("c"), Some(&1));
        assert!(s.line().contains("50.00% over the 2 labelled faces") && s.line().contains("c 1"), "{}", s.line());
    }
}
