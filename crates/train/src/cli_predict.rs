//! `train predict`: a trained run's network on images — files, folders, or a role of a sharded split — into a
//! Parquet or CSV table of predictions (exchange's prediction table), with the same decoding and
//! preprocessing as the run's evaluation. Unreadable files are named and skipped.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::parquet_io::write_table;
use exchange::schema::prediction::PredictionRow;
use tch::Tensor;
use train::data::augment::Img;
use train::data::loader::decode;
use train::evaluate::{most_probable, rows as prob_rows, Inference};

use crate::cli_model::{faces, open, FaceArgs, ModelArgs};

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
    let scored: Vec<&PredictionRow> = rows.iter().filter(|r| r.label.is_some()).collect();
    let accuracy = (!scored.is_empty()).then(|| {
        scored.iter().filter(|r| r.label.as_deref() == Some(&r.predicted)).count() as f64 / scored.len() as f64
    });
    let summary = serde_json::json!({
        "run": model.card.run, "snapshot": model.card.snapshot, "epoch": model.card.epoch,
        "images": rows.len(), "skipped": skipped, "out": a.out.display().to_string(), "accuracy": accuracy,
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
            accuracy.map_or(String::new(), |acc| format!("; classifier accuracy {:.2}%", 100.0 * acc))
        );
    }
    Ok(())
}

enum Format {
    Parquet,
    Csv,
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
    for input in inputs {
        if input.is_dir() {
            collect_images(input, &mut files)?;
        } else if input.is_file() {
            files.push(input.clone());
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

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
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
            collect_images(&p, out)?;
        } else if p.file_name().is_some_and(|n| exchange::layout::is_image_file(&n.to_string_lossy())) {
            out.push(p);
        }
    }
    Ok(())
}

/// CSV: id, predicted, confidence, label, then `p_<class>` (and `text_`, `ins_`, `fused_` with --levels).
fn write_csv(path: &Path, rows: &[PredictionRow], classes: &[String]) -> anyhow::Result<()> {
    let mut header: Vec<String> = ["id", "predicted", "confidence", "label"].map(String::from).to_vec();
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
