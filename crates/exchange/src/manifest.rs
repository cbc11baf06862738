//! Manifests: what every stage output records about how it was made, and the "is it up to date?" check.
//!
//! A stage writes `manifest.json` beside its outputs: the stage name, the tool version, the resolved config,
//! every input (path, size, file count, BLAKE3 content hash) and every output (path, rows, size). The
//! *fingerprint* hashes stage + tool version + config + inputs; a rerun computes the fingerprint it would
//! produce and skips the work when the recorded one matches and the outputs are still there, unchanged in size.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{Error, Result};

pub use crate::layout::MANIFEST_FILE;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    File,
    Dir,
}

/// One input of a stage: a file, or a folder hashed as a whole (relative paths, sizes and contents).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub path: String,
    pub kind: InputKind,
    /// Total bytes.
    pub size: u64,
    /// Number of files (1 for a file).
    pub files: u64,
    pub blake3: String,
}

/// One output file, relative to the manifest's folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub path: String,
    pub rows: Option<u64>,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub tool_version: String,
    pub created_at: String,
    pub fingerprint: String,
    pub config: serde_json::Value,
    pub inputs: Vec<InputRecord>,
    pub outputs: Vec<OutputRecord>,
    /// Stage-specific counts (rows per split × class, dropped rows by reason, …).
    #[serde(default)]
    pub counts: BTreeMap<String, serde_json::Value>,
}

/// The first difference between the inputs an output was made from and the inputs now, by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputChange {
    /// An input that was not one then.
    New(String),
    /// The same input with other contents.
    Changed(String),
    /// An input then that is not one now.
    Gone(String),
}

/// Compares input records by path (the first new or changed one, else the first gone one); `None` when they
/// describe the same inputs.
pub fn input_change(then: &[InputRecord], now: &[InputRecord]) -> Option<InputChange> {
    for i in now {
        match then.iter().find(|o| o.path == i.path) {
            None => return Some(InputChange::New(i.path.clone())),
            Some(o) if o != i => return Some(InputChange::Changed(i.path.clone())),
            Some(_) => {}
        }
    }
    then.iter().find(|o| !now.iter().any(|i| i.path == o.path)).map(|o| InputChange::Gone(o.path.clone()))
}

/// Whether an existing output can be reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness {
    UpToDate,
    /// Must be rebuilt; the reason is for the user ("config changed", "input … changed").
    Stale(String),
}

fn hash_file(path: &Path) -> Result<(u64, blake3::Hash)> {
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue; // hidden files (editor swap files, our own temp files) are not inputs
        }
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
        // Anything else (a pipe, socket or device; a dangling link) holds no content to hash, and reading a
        // pipe would block: the reader that meets it by name reports it.
    }
    Ok(())
}

impl InputRecord {
    /// Hashes a file or a whole folder (in parallel for folders of many small files, such as FERPlus).
    pub fn of(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() {
            let (size, h) = hash_file(path)?;
            return Ok(Self {
                path: path.display().to_string(),
                kind: InputKind::File,
                size,
                files: 1,
                blake3: h.to_hex().to_string(),
            });
        }
        let mut files = Vec::new();
        walk(path, &mut files)?;
        let hashes: Vec<(u64, blake3::Hash)> = files.par_iter().map(|f| hash_file(f)).collect::<Result<_>>()?;
        let mut h = blake3::Hasher::new();
        let mut size = 0;
        for (f, (n, fh)) in files.iter().zip(&hashes) {
            let rel = f.strip_prefix(path).unwrap_or(f).to_string_lossy().replace('\\', "/");
            h.update(rel.as_bytes());
            h.update(&[0]);
            h.update(&n.to_le_bytes());
            h.update(fh.as_bytes());
            size += n;
        }
        Ok(Self {
            path: path.display().to_string(),
            kind: InputKind::Dir,
            size,
            files: files.len() as u64,
            blake3: h.finalize().to_hex().to_string(),
        })
    }
}

/// Hash of everything that determines a stage's output.
pub fn fingerprint(stage: &str, tool_version: &str, config: &serde_json::Value, inputs: &[InputRecord]) -> String {
    let doc = serde_json::json!({ "stage": stage, "tool_version": tool_version, "config": config, "inputs": inputs });
    blake3::hash(doc.to_string().as_bytes()).to_hex().to_string()
}

impl Manifest {
    /// A manifest for a run about to happen; outputs and counts are added as they are written.
    pub fn new(stage: &str, tool_version: &str, config: &impl Serialize, inputs: Vec<InputRecord>) -> Result<Self> {
        let config = serde_json::to_value(config).map_err(|e| Error::Manifest {
            path: PathBuf::from(stage),
            message: format!("config is not serialisable: {e}"),
        })?;
        Ok(Self {
            stage: stage.into(),
            tool_version: tool_version.into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            fingerprint: fingerprint(stage, tool_version, &config, &inputs),
            config,
            inputs,
            outputs: Vec::new(),
            counts: BTreeMap::new(),
        })
    }

    /// Records an output file that already exists at `dir/rel`.
    pub fn add_output(&mut self, dir: &Path, rel: &str, rows: Option<u64>) -> Result<()> {
        let p = dir.join(rel);
        let size = fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
        self.outputs.push(OutputRecord { path: rel.into(), rows, size });
        Ok(())
    }

    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        atomic::write_json(path, self)
    }

    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Manifest { path: path.into(), message: e.to_string() })
    }

    /// Compares the manifest at `path` (with outputs relative to its folder) against the manifest this run
    /// would write.
    pub fn freshness(path: impl AsRef<Path>, planned: &Manifest) -> Freshness {
        let path = path.as_ref();
        let old = match Self::read(path) {
            Ok(m) => m,
            Err(Error::Io { .. }) => return Freshness::Stale("no previous output".into()),
            Err(e) => return Freshness::Stale(format!("previous manifest unreadable ({e})")),
        };
        if old.fingerprint == planned.fingerprint {
            let dir = path.parent().unwrap_or(Path::new("."));
            for o in &old.outputs {
                match fs::metadata(dir.join(&o.path)) {
                    Ok(m) if m.len() == o.size => {}
                    Ok(_) => return Freshness::Stale(format!("output {} was modified", o.path)),
                    Err(_) => return Freshness::Stale(format!("output {} is missing", o.path)),
                }
            }
            return Freshness::UpToDate;
        }
        Freshness::Stale(old.why_different(planned))
    }

    fn why_different(&self, new: &Manifest) -> String {
        if self.stage != new.stage {
            return format!("written by stage `{}`", self.stage);
        }
        if self.tool_version != new.tool_version {
            return format!("tool version changed ({} -> {})", self.tool_version, new.tool_version);
        }
        if self.config != new.config {
            return "config changed".into();
        }
        match input_change(&self.inputs, &new.inputs) {
            Some(InputChange::New(p)) => format!("new input {p}"),
            Some(InputChange::Changed(p)) => format!("input {p} changed"),
            Some(InputChange::Gone(p)) => format!("input {p} no longer used"),
            None => "manifest fingerprint differs".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        _dir: tempfile::TempDir,
        input_file: PathBuf,
        input_dir: PathBuf,
        out_dir: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let input_file = dir.path().join("labels.csv");
        fs::write(&input_file, "a,1\nb,2\n").unwrap();
        let input_dir = dir.path().join("images");
        fs::create_dir_all(input_dir.join("sub")).unwrap();
        fs::write(input_dir.join("x.png"), [1u8, 2, 3]).unwrap();
        fs::write(input_dir.join("sub/y.png"), [4u8, 5]).unwrap();
        let out_dir = dir.path().join("out");
        fs::create_dir_all(&out_dir).unwrap();
        Fixture { _dir: dir, input_file, input_dir, out_dir }
    }

    fn plan(f: &Fixture, config: serde_json::Value, version: &str) -> Manifest {
        let inputs = vec![InputRecord::of(&f.input_file).unwrap(), InputRecord::of(&f.input_dir).unwrap()];
        Manifest::new("shard", version, &config, inputs).unwrap()
    }

    fn run(f: &Fixture, m: &Manifest) {
        fs::write(f.out_dir.join("part-00000.parquet"), b"rows").unwrap();
        let mut m = m.clone();
        m.add_output(&f.out_dir, "part-00000.parquet", Some(2)).unwrap();
        m.write(f.out_dir.join(MANIFEST_FILE)).unwrap();
    }

    #[test]
    fn up_to_date_until_input_config_or_version_changes() {
        let f = fixture();
        let mpath = f.out_dir.join(MANIFEST_FILE);
        let m = plan(&f, json!({"seed": 1}), "0.1.0");
        assert_eq!(Manifest::freshness(&mpath, &m), Freshness::Stale("no previous output".into()));
        run(&f, &m);
        assert_eq!(Manifest::freshness(&mpath, &plan(&f, json!({"seed": 1}), "0.1.0")), Freshness::UpToDate);

        // config
        let s = Manifest::freshness(&mpath, &plan(&f, json!({"seed": 2}), "0.1.0"));
        assert_eq!(s, Freshness::Stale("config changed".into()));
        // tool version
        let s = Manifest::freshness(&mpath, &plan(&f, json!({"seed": 1}), "0.2.0"));
        assert!(matches!(&s, Freshness::Stale(r) if r.contains("tool version")), "{s:?}");
        // one input byte in a file inside the folder, same size
        fs::write(f.input_dir.join("sub/y.png"), [4u8, 6]).unwrap();
        let s = Manifest::freshness(&mpath, &plan(&f, json!({"seed": 1}), "0.1.0"));
        assert!(matches!(&s, Freshness::Stale(r) if r.contains("images") && r.contains("changed")), "{s:?}");
        fs::write(f.input_dir.join("sub/y.png"), [4u8, 5]).unwrap();
        assert_eq!(Manifest::freshness(&mpath, &plan(&f, json!({"seed": 1}), "0.1.0")), Freshness::UpToDate);
        // one byte of the input file
        fs::write(&f.input_file, "a,1\nb,3\n").unwrap();
        let s = Manifest::freshness(&mpath, &plan(&f, json!({"seed": 1}), "0.1.0"));
        assert!(matches!(&s, Freshness::Stale(r) if r.contains("labels.csv")), "{s:?}");
    }

    #[test]
    fn missing_or_modified_output_is_stale() {
        let f = fixture();
        let mpath = f.out_dir.join(MANIFEST_FILE);
        let m = plan(&f, json!({}), "1");
        run(&f, &m);
        fs::write(f.out_dir.join("part-00000.parquet"), b"rows+more").unwrap();
        assert!(matches!(Manifest::freshness(&mpath, &m), Freshness::Stale(r) if r.contains("modified")));
        fs::remove_file(f.out_dir.join("part-00000.parquet")).unwrap();
        assert!(matches!(Manifest::freshness(&mpath, &m), Freshness::Stale(r) if r.contains("missing")));
    }

    #[test]
    fn folder_hash_sees_renames_and_ignores_hidden_files() {
        let f = fixture();
        let a = InputRecord::of(&f.input_dir).unwrap();
        assert_eq!((a.files, a.size), (2, 5));
        fs::write(f.input_dir.join(".swp"), b"junk").unwrap();
        assert_eq!(InputRecord::of(&f.input_dir).unwrap(), a);
        fs::rename(f.input_dir.join("x.png"), f.input_dir.join("z.png")).unwrap();
        assert_ne!(InputRecord::of(&f.input_dir).unwrap().blake3, a.blake3);
    }
}
