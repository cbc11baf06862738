//! Reads a run folder: `run.json`, every `pseudo_labels/epoch-NNNN.parquet`, and the ground truth of the
//! run's shards (id, label, votes — never the image bytes), read with polars. It validates what it reads
//! (vector lengths, distributions summing to 1, ids known to the shards) and hands the metrics flat,
//! row-major `n × C` arrays. It computes no metric itself.

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use hashbrown::{DefaultHashBuilder, HashTable};

use exchange::fusion::{Fusion, Threshold};
use exchange::parquet_io::check_table;
use exchange::schema::pseudo_label::{column as pl, PseudoLabelRow};
use exchange::schema::run_info::RunInfo;
use exchange::schema::shard::{column as sh, ShardRow};
use exchange::schema::split::{column as sp, Role, SplitRow};
use exchange::Expression;
use exchange::{keys, layout};
use polars::prelude::*;
use rayon::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Polars { path: PathBuf, source: PolarsError },
    #[error(transparent)]
    Exchange(#[from] exchange::Error),
}

type Result<T> = std::result::Result<T, LoadError>;

fn pe(path: &Path) -> impl FnOnce(PolarsError) -> LoadError + '_ {
    move |source| LoadError::Polars { path: path.to_path_buf(), source }
}

/// A few unknown ids are tolerated with a warning (a shard rebuilt after a crash, a hand-edited file);
/// more than this share is an error, because the audit would then describe a different dataset.
pub const MAX_UNKNOWN_SHARE: f64 = 0.01;

/// Ground truth of the shards, by id: each row's canonical label and FERPlus-style vote vector. The ids sit once
/// in one buffer and a hash table maps an id to its row, so a million shard rows cost no allocation each.
/// A repeated id keeps its last row.
pub struct Truth {
    ids: String,
    /// End of each row's id in `ids`.
    ends: Vec<usize>,
    labels: Vec<Option<u8>>,
    /// The vote lists: offsets into the values, a validity flag per row, the values (`None`: no votes).
    votes: Option<(Vec<usize>, Vec<bool>, Vec<f32>)>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    pub(crate) has_votes: bool,
}

/// A shard row as the join sees it: its row number, label and votes.
type ShardFace<'a> = (u32, Option<u8>, Option<&'a [f32]>);

/// Row `i`'s id in a buffer of ids that end at `ends`.
fn id_at<'a>(ids: &'a str, ends: &[usize], i: usize) -> &'a str {
    &ids[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]
}

impl Truth {
    fn id(&self, i: usize) -> &str {
        id_at(&self.ids, &self.ends, i)
    }

    /// `id`'s label and votes; `None` when the shards do not have it.
    pub fn get(&self, id: &str) -> Option<(Option<u8>, Option<&[f32]>)> {
        self.row(id).map(|(_, label, votes)| (label, votes))
    }

    /// `id`'s row in the shards (parts in order), label and votes.
    fn row(&self, id: &str) -> Option<ShardFace<'_>> {
        let hash = self.hasher.hash_one(id);
        let &row = self.index.find(hash, |&i| self.id(i as usize) == id)?;
        let i = row as usize;
        let votes = self.votes.as_ref().filter(|(_, valid, _)| valid[i]).map(|(o, _, v)| &v[o[i]..o[i + 1]]);
        Some((row, self.labels[i], votes))
    }
}

/// One epoch's pseudo-labels joined with the truth, restricted to rows whose true class is in the run's
/// class list. Probability arrays are `n × classes`, row-major.
pub struct EpochData {
    pub(crate) epoch: u32,
    pub path: PathBuf,
    pub(crate) classes: usize,
    pub(crate) n: usize,
    /// semantic, text, instance (None when the level is off).
    pub(crate) levels: [Option<Vec<f32>>; 3],
    pub(crate) fused: Vec<f32>,
    pub(crate) truth: Vec<u8>,
    /// Each row's row in the shards (parts in order), where its image is.
    pub(crate) shard_rows: Vec<u32>,
    /// Annotator votes over the run's classes, when the dataset has them.
    pub(crate) votes: Option<Vec<f32>>,
    pub(crate) threshold: Threshold,
    pub(crate) fusion: Fusion,
    /// The run's distribution-alignment factors per class ([`keys::ALIGNMENT_FACTORS`]): `fused` is the
    /// aligned fusion, and a recomputed fusion is aligned by them too.
    pub(crate) alignment: Option<Vec<f32>>,
    pub(crate) dropped: Dropped,
    /// The run's unlabeled faces when this epoch's sweep read a subset of them (the file's rows are fewer);
    /// `None` when the file does not say (files written before sweeps could be subsets read every face).
    pub(crate) subset_of: Option<usize>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct Dropped {
    /// Pseudo-label ids the shards do not have.
    pub(crate) unknown_ids: usize,
    /// Rows whose shard row has no label (unlabeled-only data): not auditable.
    pub(crate) no_label: usize,
    /// Rows whose true class is outside the run's class list.
    pub(crate) outside_classes: usize,
}

/// The run's classes as canonical ids.
pub fn class_ids(info: &RunInfo, path: &Path) -> Result<Vec<u8>> {
    let mut ids: Vec<u8> = Vec::with_capacity(info.classes.len());
    for n in &info.classes {
        let id = Expression::parse(n).map(|e| e.id()).ok_or_else(|| {
            LoadError::Input(format!("{}: class `{n}` in `classes` is not a known expression", path.display()))
        })?;
        // So a run has at most one column per expression (what-if scores at most eight classes a row).
        if ids.contains(&id) {
            return Err(LoadError::Input(format!(
                "{}: class `{n}` in `classes` names an expression listed before it",
                path.display()
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Epoch files of a run, in epoch order.
pub fn epoch_files(run_dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let dir = layout::run::pseudo_labels(run_dir);
    let entries = std::fs::read_dir(&dir).map_err(|_| {
        LoadError::Input(format!(
            "{}: no pseudo-label folder; a run writes pseudo_labels/epoch-NNNN.parquet at each epoch end \
             (is this a run folder, and did it finish an epoch?)",
            dir.display()
        ))
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(epoch) = layout::run::pseudo_label_epoch(&name) {
            out.push((epoch, e.path()));
        }
    }
    if out.is_empty() {
        return Err(LoadError::Input(format!("{}: no epoch-NNNN.parquet pseudo-label files in it", dir.display())));
    }
    out.sort();
    Ok(out)
}

/// The shard part files under `shards`, each checked to be a shard table with the columns read below.
fn shard_parts(shards: &Path) -> Result<Vec<PathBuf>> {
    if !shards.is_dir() {
        return Err(LoadError::Input(format!(
            "shards not found at {} (the run's run.json names it; rerun `make shard`, or pass --shards <dir>)",
            shards.display()
        )));
    }
    let parts = layout::shard_parts(shards).map_err(|e| LoadError::Input(format!("{}: {e}", shards.display())))?;
    for p in &parts {
        // Each part's footer says it is a shard table of this schema version, with the columns read below.
        check_table::<ShardRow>(p, &[sh::ID, sh::LABEL, sh::VOTES])?;
    }
    if parts.is_empty() {
        return Err(LoadError::Input(format!("{}: no part-NNNNN.parquet shard files", shards.display())));
    }
    Ok(parts)
}

/// The named columns of one Parquet file; nothing else in it is decoded.
fn read_columns(path: &Path, columns: &[&str]) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(|e| LoadError::Input(format!("{}: {e}", path.display())))?;
    ParquetReader::new(file)
        .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
        .finish()
        .map_err(pe(path))
}

/// Reads id, label and votes of every shard row (projection: the image column is never read).
pub fn read_truth(shards: &Path) -> Result<Truth> {
    let parts = shard_parts(shards)?;
    let columns = [sh::ID, sh::LABEL, sh::VOTES];
    let mut df = read_columns(&parts[0], &columns)?;
    for p in &parts[1..] {
        df.vstack_mut_owned(read_columns(p, &columns)?).map_err(pe(p))?;
    }
    let ids = df.column(sh::ID).and_then(|c| c.as_materialized_series().str().cloned()).map_err(pe(shards))?;
    let labels =
        df.column(sh::LABEL).and_then(|c| c.as_materialized_series().cast(&DataType::Int32)).map_err(pe(shards))?;
    let labels = labels.i32().map_err(pe(shards))?;
    let votes_col = df.column(sh::VOTES).map_err(pe(shards))?.as_materialized_series().clone();
    let has_votes = votes_col.null_count() < votes_col.len();
    // Votes straight from the list column's offsets and values: no per-row Series.
    let votes = if has_votes {
        let ca = votes_col.list().map_err(pe(shards))?.rechunk();
        let offsets: Vec<usize> = ca.downcast_as_array().offsets().as_slice().iter().map(|o| *o as usize).collect();
        let valid: Vec<bool> = ca.is_not_null().iter().map(|v| v.unwrap_or(false)).collect();
        let inner = ca.get_inner().cast(&DataType::Float32).map_err(pe(shards))?;
        let values: Vec<f32> = inner.f32().map_err(pe(shards))?.iter().map(|v| v.unwrap_or(0.0)).collect();
        Some((offsets, valid, values))
    } else {
        None
    };
    let mut truth = Truth {
        ids: String::new(),
        ends: Vec::with_capacity(df.height()),
        labels: Vec::with_capacity(df.height()),
        votes,
        index: HashTable::with_capacity(df.height()),
        hasher: DefaultHashBuilder::default(),
        has_votes,
    };
    for (i, id) in ids.iter().enumerate() {
        // A row without an id cannot be joined: it keeps its place (so row numbers stay the frame's) with an
        // empty id that no pseudo-label file names.
        truth.ids.push_str(id.unwrap_or(""));
        truth.ends.push(truth.ids.len());
        truth.labels.push(labels.get(i).and_then(|l| u8::try_from(l).ok()));
        if id.is_none() {
            continue;
        }
        let (hasher, ids, ends) = (&truth.hasher, &truth.ids, &truth.ends);
        let id_of = |j: usize| id_at(ids, ends, j);
        let key = id_of(i);
        let hash = hasher.hash_one(key);
        match truth.index.entry(hash, |&j| id_of(j as usize) == key, |&j| hasher.hash_one(id_of(j as usize))) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = i as u32,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(i as u32);
            }
        }
    }
    Ok(truth)
}

/// The encoded images (as the shards hold them) of the given shard rows (parts in order); only the image
/// column is read, and only from the parts that hold one of the rows (a part's size comes from its footer).
pub fn read_images(shards: &Path, rows: &[u32]) -> Result<std::collections::HashMap<u32, Vec<u8>>> {
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(out);
    }
    let mut start = 0u32;
    for part in shard_parts(shards)? {
        let n = exchange::parquet_io::row_count(&part)? as u32;
        let wanted = |r: &&u32| (start..start + n).contains(*r);
        if !rows.iter().any(|r| wanted(&r)) {
            start += n;
            continue;
        }
        let df = read_columns(&part, &[sh::IMAGE])?;
        let images =
            df.column(sh::IMAGE).and_then(|c| c.as_materialized_series().binary().cloned()).map_err(pe(&part))?;
        for &r in rows.iter().filter(wanted) {
            if let Some(bytes) = images.get((r - start) as usize) {
                out.insert(r, bytes.to_vec());
            }
        }
        start += n;
    }
    Ok(out)
}

/// Share of labeled samples per run class (the prior the pseudo-label histogram is compared with).
pub fn labeled_prior(split: &Path, truth: &Truth, class_ids: &[u8]) -> Result<Vec<f64>> {
    if !split.is_file() {
        return Err(LoadError::Input(format!(
            "split file not found at {} (run.json names it; rerun `make split`, or pass --split <file>)",
            split.display()
        )));
    }
    check_table::<SplitRow>(split, &[sp::ID, sp::ROLE])?;
    let df = read_columns(split, &[sp::ID, sp::ROLE])?;
    let ids = df.column(sp::ID).and_then(|c| c.as_materialized_series().str().cloned()).map_err(pe(split))?;
    let roles = df.column(sp::ROLE).and_then(|c| c.as_materialized_series().str().cloned()).map_err(pe(split))?;
    let mut counts = vec![0f64; class_ids.len()];
    let labeled = ids.iter().zip(roles.iter()).filter(|(_, r)| *r == Some(Role::Labeled.as_str()));
    for id in labeled.filter_map(|(id, _)| id) {
        if let Some((Some(l), _)) = truth.get(id) {
            if let Some(k) = class_ids.iter().position(|&c| c == l) {
                counts[k] += 1.0;
            }
        }
    }
    let total: f64 = counts.iter().sum();
    Ok(counts.iter().map(|c| if total > 0.0 { c / total } else { 0.0 }).collect())
}

/// A list column as a flat `n × c` array; `None` when the whole column is null (level switched off).
fn flat_probs(df: &DataFrame, name: &str, c: usize, path: &Path, ids: &StringChunked) -> Result<Option<Vec<f32>>> {
    let s = df.column(name).map_err(pe(path))?.as_materialized_series().clone();
    if s.null_count() == s.len() {
        return Ok(None);
    }
    let ca = s
        .list()
        .map_err(|_| LoadError::Input(format!("{}: column `{name}` is not a list of floats", path.display())))?;
    let ca = ca.rechunk();
    let arr = ca.downcast_as_array();
    let offsets = arr.offsets().as_slice();
    let inner = ca.get_inner().cast(&DataType::Float32).map_err(pe(path))?;
    let inner = inner.f32().map_err(pe(path))?.rechunk();
    let values = inner.cont_slice().map_err(|_| {
        LoadError::Input(format!("{}: column `{name}` has null entries inside probability vectors", path.display()))
    })?;
    if ca.null_count() > 0 {
        let i = ca.is_null().iter().position(|v| v == Some(true)).unwrap_or(0);
        let id = ids.get(i).unwrap_or("?");
        return Err(LoadError::Input(format!("{}: row {i} (id {id}): `{name}` is null", path.display())));
    }
    let mut out = Vec::with_capacity(df.height() * c);
    for i in 0..df.height() {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        let id = ids.get(i).unwrap_or("?");
        if b - a != c {
            return Err(LoadError::Input(format!(
                "{}: row {i} (id {id}): `{name}` has {} values, the run has {c} classes",
                path.display(),
                b - a
            )));
        }
        let row = &values[a..b];
        if let Some((k, p)) = row.iter().enumerate().find(|(_, p)| !(0.0..=1.0 + 1e-6).contains(*p)) {
            return Err(LoadError::Input(format!(
                "{}: row {i} (id {id}): `{name}` is not a probability distribution: entry {k} is {p}, outside [0, 1]",
                path.display()
            )));
        }
        let sum: f32 = row.iter().sum();
        if !(sum - 1.0).abs().le(&1e-3) {
            return Err(LoadError::Input(format!(
                "{}: row {i} (id {id}): `{name}` is not a probability distribution (sums to {sum})",
                path.display()
            )));
        }
        out.extend_from_slice(row);
    }
    Ok(Some(out))
}

/// One epoch file as read, before the join with the truth: its setting and every row's id and levels.
pub struct EpochFile {
    pub(crate) epoch: u32,
    pub(crate) path: PathBuf,
    ids: StringChunked,
    /// The semantic level, always there; text and instance (None when off); all `rows × classes`.
    sem: Vec<f32>,
    text: Option<Vec<f32>>,
    ins: Option<Vec<f32>>,
    fused: Vec<f32>,
    threshold: Threshold,
    fusion: Fusion,
    alignment: Option<Vec<f32>>,
    swept_of: Option<usize>,
}

/// Reads and validates one epoch file of a run with `c` classes; needs no truth, so it can run beside
/// [`read_truth`].
pub fn read_epoch_file(epoch: u32, path: &Path, info: &RunInfo, c: usize) -> Result<EpochFile> {
    let meta = check_table::<PseudoLabelRow>(path, &[pl::ID, pl::P_SEM, pl::P_FUSED])?;
    let fusion: Fusion = match meta.get(keys::FUSION) {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| LoadError::Input(format!("{}: metadata {}: {e}", path.display(), keys::FUSION)))?,
        None => info.fusion,
    };
    let threshold = Threshold::from_metadata(
        meta.get(keys::THRESHOLD).map(String::as_str),
        meta.get(keys::CLASS_THRESHOLDS).map(String::as_str),
        c,
        info.threshold,
    )
    .map_err(|e| LoadError::Input(format!("{}: metadata threshold {e}", path.display())))?;
    let swept_of = meta
        .get(keys::SWEPT_OF)
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                LoadError::Input(format!(
                    "{}: metadata {} is `{v}`, expected the run's count of unlabeled faces",
                    path.display(),
                    keys::SWEPT_OF
                ))
            })
        })
        .transpose()?;
    let alignment = meta.get(keys::ALIGNMENT_FACTORS).map(|v| alignment_factors(v, c, path)).transpose()?;

    // The four columns validated and flattened side by side.
    let names = [pl::P_SEM, pl::P_TEXT, pl::P_INS, pl::P_FUSED];
    // Only the id and the probability columns are decoded (the stored label, confidence and selection are the
    // trainer's; audit recomputes them).
    let file = std::fs::File::open(path).map_err(|e| LoadError::Input(format!("{}: {e}", path.display())))?;
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().map_err(pe(path))?;
    let wanted: Vec<&str> = std::iter::once(pl::ID).chain(names).filter(|n| schema.contains(n)).collect();
    let df = read_columns(path, &wanted)?;
    let ids = df.column(pl::ID).and_then(|c| c.as_materialized_series().str().cloned()).map_err(pe(path))?;
    let read: Vec<Result<Option<Vec<f32>>>> = names
        .par_iter()
        .map(|name| if df.column(name).is_err() { Ok(None) } else { flat_probs(&df, name, c, path, &ids) })
        .collect();
    // The first failing column in the order above is the one reported, whichever thread finished first.
    let mut columns = read.into_iter().collect::<Result<Vec<_>>>()?;
    let entirely_null = |name: &str| LoadError::Input(format!("{}: `{name}` is entirely null", path.display()));
    let sem = columns[0].take().ok_or_else(|| entirely_null(pl::P_SEM))?;
    let fused = columns[3].take().ok_or_else(|| entirely_null(pl::P_FUSED))?;
    Ok(EpochFile {
        epoch,
        path: path.to_path_buf(),
        ids,
        sem,
        text: columns[1].take(),
        ins: columns[2].take(),
        fused,
        threshold,
        fusion,
        alignment,
        swept_of,
    })
}

/// `c` positive finite factors, comma-separated, or an error naming the file and the key.
fn alignment_factors(v: &str, c: usize, path: &Path) -> Result<Vec<f32>> {
    let factors: Option<Vec<f32>> =
        v.split(',').map(|f| f.trim().parse::<f32>().ok().filter(|f| f.is_finite() && *f > 0.0)).collect();
    match factors {
        Some(f) if f.len() == c => Ok(f),
        _ => Err(LoadError::Input(format!(
            "{}: metadata {} is `{v}`, expected {c} positive numbers separated by commas (one per class)",
            path.display(),
            keys::ALIGNMENT_FACTORS
        ))),
    }
}

/// Joins an epoch's rows with the truth by id and keeps the auditable ones (a known id, a true label in the
/// run's classes); what was left out is counted, and too many unknown ids is an error.
pub fn join_truth(file: EpochFile, class_ids: &[u8], truth: &Truth, warnings: &mut Vec<String>) -> Result<EpochData> {
    let EpochFile { epoch, path, ids, sem, text, ins, fused, threshold, fusion, alignment, swept_of } = file;
    let path = path.as_path();
    let c = class_ids.len();
    // Join with the truth and keep auditable rows.
    let mut dropped = Dropped::default();
    let rows = ids.len();
    let mut keep = Vec::with_capacity(rows);
    let mut truth_idx = Vec::with_capacity(rows);
    let mut shard_rows = Vec::with_capacity(rows);
    let mut votes = truth.has_votes.then(Vec::new);
    let mut first_unknown = None;
    for (i, id) in ids.iter().enumerate() {
        let id = id.unwrap_or("");
        match truth.row(id) {
            None => {
                dropped.unknown_ids += 1;
                first_unknown.get_or_insert_with(|| id.to_string());
            }
            Some((_, None, _)) => dropped.no_label += 1,
            Some((row, Some(l), v)) => match class_ids.iter().position(|&k| k == l) {
                None => dropped.outside_classes += 1,
                Some(k) => {
                    keep.push(i);
                    truth_idx.push(k as u8);
                    shard_rows.push(row);
                    if let Some(out) = votes.as_mut() {
                        let v = v.unwrap_or(&[]);
                        out.extend(class_ids.iter().map(|&cid| v.get(cid as usize).copied().unwrap_or(0.0)));
                    }
                }
            },
        }
    }
    if dropped.unknown_ids > 0 {
        let share = dropped.unknown_ids as f64 / rows.max(1) as f64;
        let msg = format!(
            "{}: {} of {rows} pseudo-label ids are not in the shards (first: {:?})",
            path.display(),
            dropped.unknown_ids,
            first_unknown.unwrap_or_default()
        );
        if share > MAX_UNKNOWN_SHARE {
            return Err(LoadError::Input(format!("{msg}; the run and the shards do not belong together (--shards?)")));
        }
        warnings.push(format!("{msg}; they are left out"));
    }
    if keep.is_empty() {
        return Err(LoadError::Input(format!("{}: no row has a true label in the run's classes", path.display())));
    }
    let pick = |v: Vec<f32>| -> Vec<f32> {
        if keep.len() == rows {
            return v;
        }
        keep.iter().flat_map(|&i| v[i * c..(i + 1) * c].iter().copied()).collect()
    };
    Ok(EpochData {
        epoch,
        path: path.to_path_buf(),
        classes: c,
        n: keep.len(),
        levels: [Some(pick(sem)), text.map(pick), ins.map(pick)],
        fused: pick(fused),
        truth: truth_idx,
        shard_rows,
        votes,
        threshold,
        fusion,
        alignment,
        dropped,
        subset_of: swept_of.filter(|&of| of > rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, image: Vec<u8>) -> ShardRow {
        ShardRow {
            id: id.into(),
            dataset: "d".into(),
            split: "train".into(),
            label: Some(0),
            votes: None,
            image,
            height: 1,
            width: 1,
            channels: 1,
            source_path: String::new(),
        }
    }

    /// Shard rows are numbered across the parts in order: rows 3 and 4 are the second part's first two,
    /// whether or not the first part is read.
    #[test]
    fn images_come_from_the_parts_that_hold_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |k: u8, n: u8| (0..n).map(|i| shard(&format!("p{k}r{i}"), vec![k, i])).collect::<Vec<_>>();
        exchange::parquet_io::write_table(dir.path().join(layout::shard_part(0)), &rows(0, 3), &[]).unwrap();
        exchange::parquet_io::write_table(dir.path().join(layout::shard_part(1)), &rows(1, 2), &[]).unwrap();
        let got = read_images(dir.path(), &[4, 3, 1]).unwrap();
        assert_eq!((got[&1].clone(), got[&3].clone(), got[&4].clone()), (vec![0, 1], vec![1, 0], vec![1, 1]));
        assert_eq!(got.len(), 3);
        assert_eq!(read_images(dir.path(), &[0]).unwrap().keys().collect::<Vec<_>>(), [&0]);
        // Only the second part's rows: the first part is skipped, the numbering still counts its 3 rows.
        assert_eq!(read_images(dir.path(), &[3]).unwrap()[&3], vec![1, 0]);
        assert!(read_images(dir.path(), &[]).unwrap().is_empty());
    }
}
