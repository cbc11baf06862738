//! Writes a dataset's records as `artifacts/shards/<dataset>/part-NNNNN.parquet` plus `manifest.json`.
//!
//! Images are decoded and encoded in parallel (rayon) one part at a time, so memory stays bounded by a part;
//! the whole folder is staged beside the destination and swapped in only when complete, so a failed or
//! interrupted run leaves the previous shards untouched. Unchanged inputs and config make it a no-op.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use exchange::atomic::StagingDir;
use exchange::manifest::{Freshness, InputRecord, Manifest, MANIFEST_FILE};
use exchange::parquet_io::TableWriter;
use exchange::schema::shard::ShardRow;
use exchange::Expression;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::encode::{process, ImageOptions};
use crate::issues::Issues;
use crate::sources::{RawRecord, Scan};

pub(crate) struct Job {
    pub(crate) dataset: String,
    pub(crate) out_dir: PathBuf,
    pub(crate) image: ImageOptions,
    pub(crate) rows_per_part: usize,
    pub(crate) row_group_rows: usize,
    pub(crate) force: bool,
    /// Everything that shapes the output, recorded in the manifest.
    pub(crate) config: serde_json::Value,
    pub(crate) quiet: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) dataset: String,
    pub(crate) out_dir: String,
    /// split -> class name -> rows
    pub(crate) rows: BTreeMap<String, BTreeMap<String, u64>>,
    /// split -> reason -> rows dropped by the protocol
    pub(crate) dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// reason -> bad rows skipped (--on-error skip)
    pub(crate) skipped: BTreeMap<String, u64>,
    pub(crate) total_rows: u64,
    pub(crate) parts: usize,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
}

pub(crate) enum Outcome {
    UpToDate(PathBuf),
    Written(Summary),
}

pub(crate) const STAGE: &str = "shard";

pub(crate) fn run(job: &Job, scan: Scan, issues: &mut Issues) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let inputs = scan.inputs.iter().map(InputRecord::of).collect::<Result<Vec<_>, _>>()?;
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), &job.config, inputs)?;
    let manifest_path = job.out_dir.join(MANIFEST_FILE);
    match Manifest::freshness(&manifest_path, &manifest) {
        Freshness::UpToDate if !job.force => return Ok(Outcome::UpToDate(job.out_dir.clone())),
        _ => {}
    }

    let staging = StagingDir::create(&job.out_dir, STAGE)?;
    let bar = progress_bar(job, scan.records.len());

    let mut rows_by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut part = 0usize;
    let mut total = 0u64;
    for chunk in scan.records.chunks(job.rows_per_part.max(1)) {
        let rows = encode_chunk(job, chunk, &bar, issues, &mut rows_by)?;
        if rows.is_empty() {
            continue;
        }
        let n = write_part(job, &staging, part, &rows, &mut manifest)?;
        total += n;
        part += 1;
    }
    bar.finish_and_clear();
    if total == 0 {
        anyhow::bail!("{}: no faces to write (every row was dropped or skipped)", job.dataset);
    }

    let seconds = started.elapsed().as_secs_f64();
    let bytes = manifest.outputs.iter().map(|o| o.size).sum();
    let summary = Summary {
        dataset: job.dataset.clone(),
        out_dir: job.out_dir.display().to_string(),
        rows: rows_by,
        dropped: scan.dropped.clone(),
        skipped: issues.skipped.clone(),
        total_rows: total,
        parts: part,
        bytes,
        seconds,
    };
    manifest.counts.insert("rows".into(), serde_json::to_value(&summary.rows)?);
    manifest.counts.insert("dropped".into(), serde_json::to_value(&summary.dropped)?);
    manifest.counts.insert("skipped".into(), serde_json::to_value(&summary.skipped)?);
    manifest.counts.insert("total_rows".into(), total.into());
    manifest.write(staging.path().join(MANIFEST_FILE))?;
    staging.commit().with_context(|| format!("replacing {}", job.out_dir.display()))?;
    Ok(Outcome::Written(summary))
}

/// The faces-per-second bar of the encoding (hidden with `--quiet`).
fn progress_bar(job: &Job, faces: usize) -> ProgressBar {
    let bar = if job.quiet { ProgressBar::hidden() } else { ProgressBar::new(faces as u64) };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} faces ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_prefix(format!("shard {}", job.dataset));
    bar
}

/// One part's records decoded and encoded in parallel, in their order; an unreadable image is an issue
/// (dropped or fatal, as `--on-error` says) and each kept row is counted per split and class in `rows_by`.
fn encode_chunk(
    job: &Job,
    chunk: &[RawRecord],
    bar: &ProgressBar,
    issues: &mut Issues,
    rows_by: &mut BTreeMap<String, BTreeMap<String, u64>>,
) -> anyhow::Result<Vec<ShardRow>> {
    let encoded: Vec<_> = chunk
        .par_iter()
        .map(|r| {
            let e = process(&r.image, &job.image);
            bar.inc(1);
            e
        })
        .collect();
    let mut rows = Vec::with_capacity(chunk.len());
    for (r, e) in chunk.iter().zip(encoded) {
        let e = match e {
            Ok(e) => e,
            Err(msg) => {
                issues.bad("unreadable image", format!("{}: {msg}", r.origin))?;
                continue;
            }
        };
        let class =
            r.label.and_then(Expression::from_id).map(|c| c.name().to_string()).unwrap_or_else(|| "(none)".into());
        *rows_by.entry(r.split.to_string()).or_default().entry(class).or_default() += 1;
        rows.push(ShardRow {
            id: r.id.clone(),
            dataset: job.dataset.clone(),
            split: r.split.to_string(),
            label: r.label,
            votes: r.votes.clone(),
            image: e.png,
            height: e.height,
            width: e.width,
            channels: e.channels,
            source_path: r.source_path.clone(),
        });
    }
    Ok(rows)
}

/// Writes one part into the staging folder and records it in the manifest; returns its row count.
fn write_part(
    job: &Job,
    staging: &StagingDir,
    part: usize,
    rows: &[ShardRow],
    manifest: &mut Manifest,
) -> anyhow::Result<u64> {
    let name = exchange::layout::shard_part(part);
    let path = staging.path().join(&name);
    let mut w =
        TableWriter::<ShardRow>::create(&path, &[(exchange::keys::DATASET, job.dataset.clone())], job.row_group_rows)?;
    w.write(rows)?;
    let n = w.finish()?;
    manifest.add_output(staging.path(), &name, Some(n))?;
    Ok(n)
}
