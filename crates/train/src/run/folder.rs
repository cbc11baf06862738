//! A run folder's guards. One process trains a run at a time: an advisory lock on `<run>/.lock`, held for the
//! process's life and released by the OS when it dies. And a run remembers the content hashes of what it was
//! started from (split, shards, prototypes, `model.init` weights) in its `manifest.json`, so "up to date"
//! and `--resume` notice a rebuilt input instead of silently mixing two datasets into one run.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context};
use exchange::layout;
use exchange::manifest::{input_change, InputChange, InputKind, InputRecord, Manifest, MANIFEST_FILE};

use super::spec::RunSpec;
use crate::config::Config;
use crate::model::Init;

/// The stage name in a run folder's manifest (and the mark that the folder is train's).
pub(crate) const STAGE: &str = "train";

/// Held while this process trains the run; dropping it (or the process ending) releases the folder.
pub struct Lock {
    _file: File,
}

/// Locks the (existing) `run_dir` for this process, or says which process holds it.
pub fn lock(run_dir: &Path) -> anyhow::Result<Lock> {
    let path = run_dir.join(layout::run::LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "{} is being trained by another process (pid {}); wait for it to finish, or train a new run with \
                 --run-id",
                run_dir.display(),
                holder.trim()
            );
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Lock { _file: file })
}

/// The pid of the process training `run_dir` now (it holds the run's lock), `None` when nobody does.
pub fn being_trained(run_dir: &Path) -> Option<String> {
    let path = run_dir.join(layout::run::LOCK_FILE);
    let mut file = OpenOptions::new().read(true).open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Some(holder.trim().to_string())
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// What the run reads, by role and content: the split file, the shards, the prototypes (text level on) and
/// the `model.init` weights (when not scratch). Records are keyed by role, so spelling a path another way
/// (`./artifacts/…`, absolute, a trailing `/`) changes nothing. The shards count by their manifest's
/// fingerprint (what they were built from and how), which is cheap and ignores a forced identical rebuild;
/// shards without a manifest are hashed whole. A missing input is reported with the command that makes it.
pub fn inputs(spec: &RunSpec, cfg: &Config) -> anyhow::Result<Vec<InputRecord>> {
    let mut out = vec![file_record("split", &spec.split, "make split SPLIT=<split>")?, shards_record(&spec.shards)?];
    if cfg.method.levels.text {
        let protos = layout::prototypes_file(&spec.text_root, &cfg.text.encoder, &cfg.text.set);
        let hint = format!("make embed-text ENCODER={} TEXT_SET={}", cfg.text.encoder, cfg.text.set);
        out.push(file_record("prototypes", &protos, &hint)?);
    }
    match &cfg.model.init {
        Init::Scratch => {}
        Init::Dlib => {
            let dat = crate::model::dlib::convert::dat_path()?;
            out.push(file_record("init weights", &dat, "run make setup")?);
        }
        Init::File(path) => out.push(file_record("init weights", path, "check model.init")?),
    }
    Ok(out)
}

fn file_record(role: &str, path: &Path, hint: &str) -> anyhow::Result<InputRecord> {
    if !path.is_file() {
        bail!("{role} not found at {} ({hint})", path.display());
    }
    let r = InputRecord::of(path).with_context(|| format!("hashing the run's {role} {}", path.display()))?;
    Ok(InputRecord { path: role.to_string(), ..r })
}

fn shards_record(dir: &Path) -> anyhow::Result<InputRecord> {
    if !dir.is_dir() {
        bail!("shards not found at {} (make shard DATASET=<dataset>)", dir.display());
    }
    let r = match Manifest::read(dir.join(MANIFEST_FILE)) {
        Ok(m) => InputRecord {
            path: String::new(),
            kind: InputKind::Dir,
            size: m.outputs.iter().map(|o| o.size).sum(),
            files: m.outputs.len() as u64,
            blake3: m.fingerprint,
        },
        Err(_) => InputRecord::of(dir).with_context(|| format!("hashing the run's shards {}", dir.display()))?,
    };
    Ok(InputRecord { path: "shards".into(), ..r })
}

/// Records the run's inputs (when it starts).
pub fn write_manifest(run_dir: &Path, cfg: &Config, inputs: Vec<InputRecord>) -> anyhow::Result<()> {
    let m = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), cfg, inputs)?;
    m.write(run_dir.join(MANIFEST_FILE))?;
    Ok(())
}

/// The first input whose content differs from what the run started with, in words; `None` when all match.
/// A run from before inputs were recorded has nothing to compare and passes.
pub fn changed_input(run_dir: &Path, now: &[InputRecord]) -> anyhow::Result<Option<String>> {
    let path = run_dir.join(MANIFEST_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let m = Manifest::read(&path)?;
    Ok(input_change(&m.inputs, now).map(|c| match c {
        InputChange::New(p) => format!("{p} was not an input when the run started"),
        InputChange::Changed(p) => format!("{p} changed since the run started (rebuilt?)"),
        InputChange::Gone(p) => format!("{p} is no longer an input"),
    }))
}

/// The first setting whose value differs between two configs, as `key: old -> new`.
pub fn config_difference(saved: &Config, now: &Config) -> Option<String> {
    fn walk(a: &toml::Value, b: &toml::Value, key: &str) -> Option<String> {
        match (a, b) {
            (toml::Value::Table(x), toml::Value::Table(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter().find_map(|k| {
                    let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => walk(p, q, &sub),
                        (p, q) => Some(format!("{sub}: {} -> {}", show(p), show(q))),
                    }
                })
            }
            _ if a == b => None,
            _ => Some(format!("{key}: {a} -> {b}")),
        }
    }
    fn show(v: Option<&toml::Value>) -> String {
        v.map_or("(absent)".into(), ToString::to_string)
    }
    let (a, b) = (toml::Value::try_from(saved).ok()?, toml::Value::try_from(now).ok()?);
    walk(&a, &b, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_difference_names_the_key() {
        let a = Config::default();
        let mut b = Config::default();
        assert_eq!(config_difference(&a, &b), None);
        b.optim.lr = 0.5;
        assert_eq!(config_difference(&a, &b).unwrap(), "optim.lr: 0.001 -> 0.5");
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let e = lock(dir.path()).err().expect("second lock refused").to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
