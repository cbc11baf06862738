//! `audit`: offline review of a SIT-FER run's pseudo-labels — per level (semantic, text, instance, fused),
//! per class and per epoch — joined with the shards' ground truth, which the trainer never sees.
//!
//! Rooms: [`load`] (run folder + shards, validated, via polars), [`fusion`] (replaying fusion rules),
//! [`metrics`] (pure functions over flat arrays), [`analysis`] (one epoch's report), [`what_if`]
//! (other fusions and weights at equal quantity), [`report`] (terminal, HTML, JSON/Parquet).
//! It needs no libtorch and never writes into a run folder.

pub mod analysis;
pub mod faces;
pub mod fusion;
pub mod load;
pub mod metrics;
pub mod model_scores;
pub mod paired;
pub mod report;
pub mod what_if;

use std::path::{Path, PathBuf};

use analysis::{analyse, Override};
use exchange::schema::run_info::RunInfo;
use report::RunReport;

pub struct Options {
    pub shards: Option<PathBuf>,
    pub split: Option<PathBuf>,
    pub over: Override,
    /// Epoch shown in detail and replayed by what-if (default: the last).
    pub epoch: Option<u32>,
    /// Weight-grid step of what-if; `None` skips it.
    pub what_if_step: Option<f32>,
    /// Faces per class in the gallery of the detail epoch (0: no gallery, and no image is read).
    pub faces: usize,
}

/// One run's report: every epoch's pseudo-labels joined with the truth and analysed (the next file read while
/// the current one is analysed), what-if at the detail epoch, and the run's evaluations.
pub fn audit_run(dir: &Path, opts: &Options) -> anyhow::Result<RunReport> {
    if !dir.join(exchange::layout::run::INFO_FILE).is_file() {
        anyhow::bail!("{}: not a run folder (no run.json; train writes it when a run starts)", dir.display());
    }
    let info = RunInfo::read(dir)?;
    let info_path = dir.join(exchange::layout::run::INFO_FILE);
    let class_ids = load::class_ids(&info, &info_path)?;
    let model = model_scores::read(dir)?;
    let mut warnings = Vec::new();
    let files = epoch_files(dir, model.is_some(), opts, &mut warnings)?;
    let shards = opts.shards.clone().unwrap_or_else(|| PathBuf::from(&info.shards));
    let split = opts.split.clone().unwrap_or_else(|| PathBuf::from(&info.split));
    let detail = detail_epoch(dir, &files, opts.epoch)?;
    let wanted: Vec<&(u32, PathBuf)> = files.iter().filter(|(e, _)| *e <= detail).collect();
    let read = |i: usize| wanted.get(i).map(|(e, p)| load::read_epoch_file(*e, p, &info, class_ids.len())).transpose();
    // Reads overlap the work that does not need them: the truth beside the first epoch file, each next file
    // beside the analysis of the current one. At most two epochs are in memory.
    let (truth, first) = rayon::join(|| load::read_truth(&shards), || read(0));
    let truth = truth?;
    let prior = load::labeled_prior(&split, &truth, &class_ids)?;
    let mut next = first?;
    let mut epochs = Vec::new();
    let mut what_if = None;
    let mut gallery = None;
    let mut i = 0;
    while let Some(file) = next {
        let data = load::join_truth(file, &class_ids, &truth, &mut warnings)?;
        let step = opts.what_if_step.filter(|_| data.epoch == detail);
        let ((report, replayed), following) = rayon::join(
            || {
                rayon::join(
                    || analyse(&data, &info.classes, &prior, &opts.over),
                    || step.map(|step| what_if::what_if(&data, &opts.over, step)),
                )
            },
            || read(i + 1),
        );
        epochs.push(report);
        if opts.faces > 0 && data.epoch == detail {
            gallery = Some(faces::pick(&data, opts.faces, 3));
        }
        // Two files of the detail epoch (epoch-3 and epoch-0003): the later one's, as its analysis is listed last.
        what_if = replayed.or(what_if);
        next = following?;
        i += 1;
    }
    if let Some(g) = gallery.as_mut() {
        match load::read_images(&shards, &g.rows()) {
            Ok(images) => g.images = images,
            // The faces illustrate the report; without their images it still stands.
            Err(e) => warnings.push(format!("the gallery's images could not be read: {e}")),
        }
    }
    let evaluations = evaluations(dir, &mut warnings);
    let setting = if opts.over.is_some() {
        let d = epochs.last().expect("an override needs pseudo-labels, so at least one epoch");
        format!("what-if: fusion {} at threshold {}", d.fusion, d.threshold)
    } else {
        "as trained".to_string()
    };
    Ok(RunReport {
        model,
        run: info.run.clone(),
        dir: dir.display().to_string(),
        preset: info.preset.clone(),
        seed: info.seed,
        dataset: info.dataset.clone(),
        classes: info.classes.clone(),
        setting,
        warnings,
        labeled_prior: prior,
        epochs,
        what_if,
        gallery,
        evaluations,
    })
}

/// The run's pseudo-label files by epoch; none (with a warning) for a run whose split left nothing unlabeled.
fn epoch_files(
    dir: &Path,
    has_model: bool,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    Ok(match load::epoch_files(dir) {
        Ok(files) => files,
        // A split with every face labeled (e.g. synthetic_full) leaves nothing to pseudo-label; such a run
        // still belongs in a comparison, by its classifier's accuracy alone.
        Err(_)
            if !dir.join(exchange::layout::run::PSEUDO_LABEL_DIR).exists()
                && has_model
                && opts.epoch.is_none()
                && !opts.over.is_some() =>
        {
            warnings.push(
                "no pseudo-labels in this run (its split has no unlabeled faces): only the classifier's accuracy is reported"
                    .to_string(),
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    })
}

/// The epoch shown in detail: the one asked for (it must have a file), else the last.
fn detail_epoch(dir: &Path, files: &[(u32, PathBuf)], epoch: Option<u32>) -> anyhow::Result<u32> {
    Ok(match epoch {
        Some(e) if !files.iter().any(|(n, _)| *n == e) => anyhow::bail!(
            "{}: no pseudo-labels for epoch {e} (epochs present: {})",
            dir.display(),
            files.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>().join(", ")
        ),
        Some(e) => e,
        None => files.last().map(|f| f.0).unwrap_or(0),
    })
}

/// The run's evaluation files; a damaged one is a warning, not fatal (the pseudo-labels are this report's
/// subject).
fn evaluations(dir: &Path, warnings: &mut Vec<String>) -> Vec<exchange::schema::evaluation::Evaluation> {
    let mut evaluations = Vec::new();
    for e in exchange::schema::evaluation::Evaluation::read_all(dir) {
        match e {
            Ok(e) => evaluations.push(e),
            Err(why) => warnings.push(format!("{why} (an evaluation file; left out of this report)")),
        }
    }
    evaluations
}
