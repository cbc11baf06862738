//! Dataset readers. Each turns one dataset *as users have it on disk* into [`RawRecord`]s: an id, a source
//! split, a canonical label (after the dataset's protocol), votes where the dataset has them, and where the
//! pixels are. Readers parse labels and check rows; they never decode images (that is [`crate::encode`],
//! in parallel) and never write anything.

pub(crate) mod affectnet;
pub(crate) mod ferplus;
pub(crate) mod folder;
pub(crate) mod rafdb;
pub(crate) mod synthetic;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::issues::Issues;

/// Where a record's pixels are.
#[derive(Clone, Debug)]
pub(crate) enum ImageSource {
    /// An image file (PNG/JPEG).
    File(PathBuf),
    /// An image file to crop to a box (AffectNet face boxes); the box is clamped to the image.
    FileCrop { path: PathBuf, x: i64, y: i64, w: i64, h: i64 },
    /// Grey pixels given inline (Kaggle `fer2013.csv`), row-major.
    Grey { width: u32, height: u32, pixels: Vec<u8> },
}

/// The file and 1-based line a record came from, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) file: PathBuf,
    pub(crate) line: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RawRecord {
    pub(crate) id: String,
    /// `train`, `valid` or `test`.
    pub(crate) split: &'static str,
    pub(crate) label: Option<u8>,
    pub(crate) votes: Option<Vec<i32>>,
    pub(crate) image: ImageSource,
    /// Relative to the dataset root (or `file:line` for inline pixels).
    pub(crate) source_path: String,
    pub(crate) origin: Origin,
}

/// What a reader found: records to encode, protocol drops by reason, bad rows skipped by reason.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) records: Vec<RawRecord>,
    /// `split -> reason -> count` of rows the dataset's protocol drops (not errors).
    pub(crate) dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// Input files and folders the output depends on (for the manifest).
    pub(crate) inputs: Vec<PathBuf>,
    /// What the user should look at although nothing is wrong with a row as such.
    pub(crate) warnings: Vec<String>,
}

impl Scan {
    pub(crate) fn drop_row(&mut self, split: &str, reason: impl Into<String>) {
        *self.dropped.entry(split.to_string()).or_default().entry(reason.into()).or_default() += 1;
    }
}

/// Rejects (or, under `--on-error skip`, drops) records whose id repeats an earlier one.
pub(crate) fn dedup_ids(scan: &mut Scan, issues: &mut Issues) -> anyhow::Result<()> {
    let mut seen: HashMap<String, Origin> = HashMap::with_capacity(scan.records.len());
    let mut keep = Vec::with_capacity(scan.records.len());
    for r in std::mem::take(&mut scan.records) {
        if let Some(first) = seen.get(&r.id) {
            issues
                .bad("duplicate id", format!("{}: duplicate sample id `{}` (first seen at {first})", r.origin, r.id))?;
            continue;
        }
        seen.insert(r.id.clone(), r.origin.clone());
        keep.push(r);
    }
    scan.records = keep;
    warn_names_in_several_splits(scan);
    Ok(())
}

/// The same image name in two source splits can be the same face twice: a leak between training and
/// evaluation. Legitimate in some folder datasets (`0001.png` in each split), so a warning, not an error.
fn warn_names_in_several_splits(scan: &mut Scan) {
    let mut first: HashMap<&str, &'static str> = HashMap::new();
    let (mut repeated, mut example) = (0usize, None);
    for r in &scan.records {
        let name = r.id.rsplit('/').next().unwrap_or(&r.id);
        match first.get(name) {
            Some(split) if *split != r.split => {
                repeated += 1;
                example.get_or_insert_with(|| format!("`{name}` in {split} and {}", r.split));
            }
            Some(_) => {}
            None => {
                first.insert(name, r.split);
            }
        }
    }
    if let Some(example) = example {
        scan.warnings.push(format!(
            "{repeated} image name(s) appear in more than one source split (first: {example}); if they are the \
             same faces, training and evaluation overlap"
        ));
    }
}

/// Requires a folder, naming the layout the user should have.
pub(crate) fn require_dir(path: &Path, layout: &str) -> anyhow::Result<()> {
    if !path.is_dir() {
        anyhow::bail!("{}: folder not found; expected {layout}", path.display());
    }
    Ok(())
}

/// Requires a file, naming the layout the user should have.
pub(crate) fn require_file(path: &Path, layout: &str) -> anyhow::Result<()> {
    if !path.is_file() {
        anyhow::bail!("{}: file not found; expected {layout}", path.display());
    }
    Ok(())
}

/// The file name without extension, used in sample ids.
pub(crate) fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base)
}
