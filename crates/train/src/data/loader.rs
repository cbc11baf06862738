//! Loads a run's data into memory: the split's ids by role, their images decoded from the shards' PNG bytes
//! (in parallel, resized to the model's input size, grey kept grey), and labels for the labeled, val and test
//! roles only. **Unlabeled samples never carry a label here**: their shard label is dropped as the row is read,
//! so nothing downstream can use it (the label-leak test scrambles them in the shards and expects an identical
//! run).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use exchange::keys::CLASSES as CLASSES_KEY;
use exchange::parquet_io::{file_metadata, read_table, TableReader};
use exchange::schema::shard::ShardRow;
use exchange::schema::split::{Role, SplitRow};
use exchange::Expression;
use image::imageops::FilterType;
use rayon::prelude::*;

use super::augment::Img;

/// Labeled, val and test data: images with their class index in the run's class list.
pub struct LabeledSet {
    pub ids: Vec<String>,
    pub images: Vec<Img>,
    pub(crate) labels: Vec<i64>,
    /// Annotator vote shares over the run's classes (summing to 1), where the dataset has votes (FER+) and
    /// some vote falls in the run's classes; `None` elsewhere.
    pub(crate) votes: Vec<Option<Vec<f32>>>,
}

/// Unlabeled data: ids and images, by construction nothing else.
pub struct UnlabeledSet {
    pub ids: Vec<String>,
    pub(crate) images: Vec<Img>,
}

pub struct Data {
    pub classes: Vec<Expression>,
    pub labeled: LabeledSet,
    pub unlabeled: UnlabeledSet,
    pub val: LabeledSet,
    pub test: LabeledSet,
    pub(crate) channels: usize,
}

/// (role, id, label — None for unlabeled rows —, PNG bytes, is grey, votes) of one split row.
type RawRow = (Role, String, Option<u8>, Vec<u8>, bool, Option<Vec<i32>>);

/// A shard's raw vote counts (indexed by canonical class id) as shares over `classes`, in their order.
fn vote_shares(votes: Option<&[i32]>, classes: &[Expression]) -> Option<Vec<f32>> {
    let counts: Vec<f32> = classes
        .iter()
        .map(|c| votes.and_then(|v| v.get(c.id() as usize)).copied().unwrap_or(0).max(0) as f32)
        .collect();
    let total: f32 = counts.iter().sum();
    (total > 0.0).then(|| counts.iter().map(|v| v / total).collect())
}

/// PNG/JPEG bytes → a `size × size` image (grey or RGB), resized with a triangle (bilinear) filter: what
/// every sample goes through once when a run loads its data.
pub fn decode(bytes: &[u8], size: u32, grey: bool) -> Result<Img, String> {
    exchange::image_bytes::check_whole(bytes)?;
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let (w, h, c, data) = if grey {
        let g = image::imageops::resize(&img.to_luma8(), size, size, FilterType::Triangle);
        (g.width(), g.height(), 1, g.into_raw())
    } else {
        let g = image::imageops::resize(&img.to_rgb8(), size, size, FilterType::Triangle);
        (g.width(), g.height(), 3, g.into_raw())
    };
    Ok(Img { w: w as usize, h: h as usize, c, data })
}

/// Reads the split, then every shard part, keeping only the split's rows.
pub fn load(shards: &Path, split: &Path, image_size: u32) -> anyhow::Result<Data> {
    let roles: HashMap<String, Role> = read_table::<SplitRow>(split)
        .with_context(|| format!("reading the split {} (run `make split`)", split.display()))?
        .into_iter()
        .map(|r| (r.id, r.role))
        .collect();
    let meta = file_metadata(split)?;
    let classes: Vec<Expression> = match meta.get(CLASSES_KEY) {
        Some(list) => list
            .split(',')
            .map(|n| {
                Expression::parse(n.trim())
                    .with_context(|| format!("{}: unknown class {n:?} in {CLASSES_KEY}", split.display()))
            })
            .collect::<anyhow::Result<_>>()?,
        None => exchange::labels::ALL.to_vec(),
    };
    let parts = exchange::layout::shard_parts(shards)
        .with_context(|| format!("shards not found at {} (run `make shard`)", shards.display()))?;
    if parts.is_empty() {
        bail!("{}: no part-NNNNN.parquet shard files", shards.display());
    }

    let mut rows: Vec<RawRow> = Vec::new();
    for part in &parts {
        for batch in TableReader::<ShardRow>::open(part)? {
            for r in batch? {
                let Some(&role) = roles.get(&r.id) else { continue };
                let label = if role == Role::Unlabeled { None } else { r.label };
                let votes = if role == Role::Unlabeled { None } else { r.votes };
                rows.push((role, r.id, label, r.image, r.channels == 1, votes));
            }
        }
    }
    let grey = rows.iter().all(|r| r.4);
    let decoded: Vec<Result<Img, String>> = rows.par_iter().map(|r| decode(&r.3, image_size, grey)).collect();

    let empty = || LabeledSet { ids: vec![], images: vec![], labels: vec![], votes: vec![] };
    let (mut labeled, mut val, mut test) = (empty(), empty(), empty());
    let mut unlabeled = UnlabeledSet { ids: vec![], images: vec![] };
    for ((role, id, label, _, _, votes), img) in rows.into_iter().zip(decoded) {
        let img = img.map_err(|e| anyhow::anyhow!("{}: sample {id}: undecodable image: {e}", shards.display()))?;
        if role == Role::Unlabeled {
            unlabeled.ids.push(id);
            unlabeled.images.push(img);
            continue;
        }
        let Some(k) = label.and_then(|l| classes.iter().position(|c| c.id() == l)) else {
            bail!("{}: {} sample {id} has no label in the split's classes", shards.display(), role.as_str());
        };
        let set = match role {
            Role::Labeled => &mut labeled,
            Role::Val => &mut val,
            _ => &mut test,
        };
        set.ids.push(id);
        set.images.push(img);
        set.labels.push(k as i64);
        set.votes.push(vote_shares(votes.as_deref(), &classes));
    }
    let missing = roles.len() - labeled.ids.len() - val.ids.len() - test.ids.len() - unlabeled.ids.len();
    if missing > 0 {
        bail!(
            "{}: {missing} ids of the split are not in the shards at {} (rebuild the split)",
            split.display(),
            shards.display()
        );
    }
    if labeled.ids.is_empty() {
        bail!("{}: no labeled samples", split.display());
    }
    Ok(Data { classes, labeled, unlabeled, val, test, channels: if grey { 1 } else { 3 } })
}

/// The faces of one role of a split, for using a trained model on them: ids, images decoded as a model's
/// preprocessing asks (`grey`, `size`), and each face's true class (`None` for unlabeled rows, and for labels
/// that are not an expression). Undecodable images are skipped and returned by id with the decoder's message,
/// so one bad file does not stop an evaluation of thousands.
pub struct RoleSet {
    pub ids: Vec<String>,
    pub images: Vec<Img>,
    pub labels: Vec<Option<Expression>>,
    pub skipped: Vec<(String, String)>,
    /// The dataset's classes, in canonical order: the split's class list (its metadata) for a split's role;
    /// for a partition, every class any row of the shards is labeled with. A class of the dataset may have no
    /// face among these.
    pub classes: Vec<Expression>,
}

/// Which faces of a dataset's shards to use a trained model on.
pub enum Faces<'a> {
    /// The rows a split file gives this role.
    SplitRole(&'a Path, Role),
    /// The rows of the dataset's own partition (the shard column `split`: `train`, `valid`, `test`), no split
    /// file needed: how another dataset's test set is evaluated.
    Partition(&'a str),
}

pub fn load_faces(shards: &Path, faces: &Faces, size: u32, grey: bool) -> anyhow::Result<RoleSet> {
    let mut classes: Option<Vec<Expression>> = None;
    let (ids, what): (Option<std::collections::HashSet<String>>, String) = match faces {
        Faces::SplitRole(split, role) => {
            if let Some(list) = file_metadata(split)?.get(CLASSES_KEY) {
                let parsed: Option<Vec<Expression>> = list.split(',').map(|n| Expression::parse(n.trim())).collect();
                classes =
                    Some(parsed.with_context(|| format!("{}: {CLASSES_KEY} holds an unknown class", split.display()))?);
            }
            let ids: std::collections::HashSet<String> = read_table::<SplitRow>(split)
                .with_context(|| format!("reading the split {}", split.display()))?
                .into_iter()
                .filter(|r| r.role == *role)
                .map(|r| r.id)
                .collect();
            if ids.is_empty() {
                bail!("{}: no rows with role {}", split.display(), role.as_str());
            }
            (Some(ids), format!("role {} of {}", role.as_str(), split.display()))
        }
        Faces::Partition(p) => (None, format!("partition {p}")),
    };
    let wanted = |r: &ShardRow| match (&ids, faces) {
        (Some(ids), _) => ids.contains(&r.id),
        (None, Faces::Partition(p)) => r.split == *p,
        (None, _) => false,
    };
    let parts = exchange::layout::shard_parts(shards)
        .with_context(|| format!("shards not found at {} (run `make shard`)", shards.display()))?;
    let mut rows: Vec<(String, Option<u8>, Vec<u8>)> = Vec::new();
    let mut seen = [false; 256];
    for part in &parts {
        for batch in TableReader::<ShardRow>::open(part)? {
            for r in batch? {
                if let Some(l) = r.label {
                    seen[l as usize] = true;
                }
                if wanted(&r) {
                    rows.push((r.id, r.label, r.image));
                }
            }
        }
    }
    match &ids {
        Some(ids) if rows.len() < ids.len() => {
            bail!("{what}: {} ids are not in the shards at {}", ids.len() - rows.len(), shards.display())
        }
        None if rows.is_empty() => bail!("{}: no rows in {what}", shards.display()),
        _ => {}
    }
    let decoded: Vec<Result<Img, String>> = rows.par_iter().map(|r| decode(&r.2, size, grey)).collect();
    let classes = classes
        .unwrap_or_else(|| (0..=u8::MAX).filter(|&l| seen[l as usize]).filter_map(Expression::from_id).collect());
    let mut out = RoleSet { ids: vec![], images: vec![], labels: vec![], skipped: vec![], classes };
    for ((id, label, _), img) in rows.into_iter().zip(decoded) {
        match img {
            Ok(img) => {
                out.ids.push(id);
                out.images.push(img);
                out.labels.push(label.and_then(Expression::from_id));
            }
            Err(e) => out.skipped.push((id, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_shares_follow_the_run_classes() {
        use exchange::Expression as E;
        // FER+ counts indexed by class id: neutral 6, happiness 3, surprise 1, …, unknown 0, NF 0.
        let votes = [6, 3, 1, 0, 0, 0, 0, 0, 0, 0];
        let all = vote_shares(Some(&votes), &exchange::labels::ALL).unwrap();
        assert_eq!(&all[..3], &[0.6, 0.3, 0.1]);
        // A run without neutral renormalises over its own classes, in its own order.
        let some = vote_shares(Some(&votes), &[E::Surprise, E::Happiness]).unwrap();
        assert_eq!(some, vec![0.25, 0.75]);
        assert_eq!(vote_shares(Some(&votes), &[E::Fear]), None);
        assert_eq!(vote_shares(None, &exchange::labels::ALL), None);
    }
}
