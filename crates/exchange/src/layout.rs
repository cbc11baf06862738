//! Where every exchange file lives. The stages find each other's outputs only through these names; no
//! stage's code spells an artifact path of another stage. (The shell scripts that drive the stages, and the
//! tests that check the contract as users see it, spell the default `artifacts/` paths in the open.)
//!
//! ```text
//! artifacts/
//!   shards/<dataset>/part-NNNNN.parquet, manifest.json      shard
//!   splits/<split>.parquet, <split>.manifest.json            shard split
//!   text/<encoder>/<set>/{embeddings,prototypes}.parquet     embed-text
//!   runs/<run>/{run.json, config.toml, manifest.json, init.json, metrics.parquet, .lock,
//!               pseudo_labels/epoch-NNNN.parquet, checkpoints/latest.json}   train
//!   reports/<report>/{index.html, summary.json, summary.parquet}            audit
//! ```
//!
//! The roots are the defaults of every stage's `--*-root` flag; a stage given another root keeps the same
//! layout below it. Every name that becomes a folder or file below a root (dataset, split, encoder,
//! description set, run, report) passes [`check_name`] first, so none can reach outside its root. This module
//! must not touch the file system.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The longest name accepted (most file systems allow 255 bytes per component).
pub(crate) const MAX_NAME_LEN: usize = 200;

/// Refuses a `what` name (dataset, split, run id, …) that is not one plain path component: empty, `.` or
/// `..`, hidden (a leading `.`, where stages keep their staging folders), holding a path separator or a
/// control character, or longer than [`MAX_NAME_LEN`].
pub fn check_name<'a>(what: &str, name: &'a str) -> Result<&'a str> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name no folder of their own")
    } else if name.starts_with('.') {
        Some("it starts with `.` (hidden names are the stages' own staging folders)")
    } else if name.contains(['/', '\\']) {
        Some("it holds a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is too long")
    } else {
        None
    };
    match problem {
        None => Ok(name),
        Some(why) => Err(Error::Name {
            what: what.to_string(),
            name: name.to_string(),
            message: format!(
                "{why}; a {what} name becomes one folder or file under artifacts/, so it must be a single plain \
                 name such as `ferplus_10pct`"
            ),
        }),
    }
}

/// Every stage output folder's record of how it was made, and the mark that the stage owns the folder
/// ([`crate::manifest`]).
pub const MANIFEST_FILE: &str = "manifest.json";

/// Image files the stages read from folders (`shard folder`, `train predict`): the formats the workspace's
/// `image` build decodes (PNG and JPEG). Hidden files (a leading dot) never count.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether a file name is an image the stages read, by [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(name: &str) -> bool {
    !name.starts_with('.')
        && name.rsplit_once('.').is_some_and(|(_, e)| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Default roots, relative to the directory a stage runs in (the repository root for `make`).
pub const SHARDS_ROOT: &str = "artifacts/shards";
pub const SPLITS_ROOT: &str = "artifacts/splits";
pub const TEXT_ROOT: &str = "artifacts/text";
pub const RUNS_ROOT: &str = "artifacts/runs";
pub const REPORTS_ROOT: &str = "artifacts/reports";

/// Where split configs (`<split>.toml`) ship: the split file names its dataset there, once.
pub const SPLIT_CONFIGS: &str = "pipelines/splits";
/// Method presets (`<preset>.toml`) and scale presets (`scale/<scale>.toml`) of train.
pub const TRAIN_PRESETS: &str = "pipelines/train";
/// The expression descriptions embed-text encodes.
pub const DESCRIPTIONS: &str = "pipelines/text/descriptions.toml";

/// A dataset's shard folder.
pub fn shard_dir(shards_root: &Path, dataset: &str) -> PathBuf {
    shards_root.join(dataset)
}

const PART_PREFIX: &str = "part-";
const PARQUET: &str = ".parquet";

/// The `i`-th shard file's name.
pub fn shard_part(i: usize) -> String {
    format!("{PART_PREFIX}{i:05}{PARQUET}")
}

/// Whether a file name is a shard part (`part-*.parquet`).
pub fn is_shard_part(name: &str) -> bool {
    name.starts_with(PART_PREFIX) && name.ends_with(PARQUET)
}

/// A shard folder's parts (`part-*.parquet`), in name order: the order every reader takes them in.
pub fn shard_parts(shard_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(shard_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_shard_part))
        .collect();
    parts.sort();
    Ok(parts)
}

/// A split's file: `--split` accepts either a name or a path to a `.parquet` file.
pub fn split_file(splits_root: &Path, split: &str) -> PathBuf {
    if split.ends_with(PARQUET) {
        PathBuf::from(split)
    } else {
        splits_root.join(format!("{split}{PARQUET}"))
    }
}

/// A split file's manifest, beside it.
pub fn split_manifest(splits_root: &Path, split: &str) -> PathBuf {
    splits_root.join(format!("{split}.manifest.json"))
}

/// A shipped split config.
pub fn split_config(configs: &Path, split: &str) -> PathBuf {
    configs.join(format!("{split}.toml"))
}

/// A method preset of train.
pub fn train_preset(presets: &Path, preset: &str) -> PathBuf {
    presets.join(format!("{preset}.toml"))
}

/// A scale preset of train.
pub fn scale_preset(presets: &Path, scale: &str) -> PathBuf {
    presets.join("scale").join(format!("{scale}.toml"))
}

/// One description set's text embeddings and prototypes.
pub fn text_dir(text_root: &Path, encoder: &str, set: &str) -> PathBuf {
    text_root.join(encoder).join(set)
}

pub const EMBEDDINGS_FILE: &str = "embeddings.parquet";
pub const PROTOTYPES_FILE: &str = "prototypes.parquet";

/// The prototypes file of a description set.
pub fn prototypes_file(text_root: &Path, encoder: &str, set: &str) -> PathBuf {
    text_dir(text_root, encoder, set).join(PROTOTYPES_FILE)
}

/// A run's folder.
pub fn run_dir(runs_root: &Path, run: &str) -> PathBuf {
    runs_root.join(run)
}

/// The files of a run folder.
pub mod run {
    use std::path::{Path, PathBuf};

    /// What other stages need to know about the run ([`crate::schema::run_info`]).
    pub const INFO_FILE: &str = "run.json";
    /// The full resolved training configuration (train's own business; humans read it).
    pub const CONFIG_FILE: &str = "config.toml";
    /// What `model.init` loaded, and what it did not.
    pub const INIT_REPORT: &str = "init.json";
    pub const METRICS_FILE: &str = "metrics.parquet";
    pub const PSEUDO_LABEL_DIR: &str = "pseudo_labels";
    pub const CHECKPOINT_DIR: &str = "checkpoints";
    /// Names the newest complete checkpoint; its presence means "this run can be resumed".
    pub const LATEST_CHECKPOINT: &str = "latest.json";
    /// Held (an advisory lock) by the process that trains the run.
    pub const LOCK_FILE: &str = ".lock";
    /// The trained network's snapshots ([`crate::schema::model_card`]).
    pub const MODEL_DIR: &str = "model";
    /// `train evaluate`'s reports ([`crate::schema::evaluation`]).
    pub const EVALUATION_DIR: &str = "evaluations";

    pub fn model(run_dir: &Path) -> PathBuf {
        run_dir.join(MODEL_DIR)
    }

    /// A snapshot's card, `model/<snapshot>.json`; it names its tensors file in the same folder.
    pub fn snapshot_card(run_dir: &Path, snapshot: &str) -> PathBuf {
        model(run_dir).join(format!("{snapshot}.json"))
    }

    pub fn evaluations(run_dir: &Path) -> PathBuf {
        run_dir.join(EVALUATION_DIR)
    }

    /// `evaluations/<dataset>--<split>--<role>--<snapshot>.json`.
    pub fn evaluation_file(run_dir: &Path, dataset: &str, split: &str, role: &str, snapshot: &str) -> PathBuf {
        evaluations(run_dir).join(format!("{dataset}--{split}--{role}--{snapshot}.json"))
    }

    pub fn metrics(run_dir: &Path) -> PathBuf {
        run_dir.join(METRICS_FILE)
    }

    pub fn checkpoints(run_dir: &Path) -> PathBuf {
        run_dir.join(CHECKPOINT_DIR)
    }

    pub fn latest_checkpoint(run_dir: &Path) -> PathBuf {
        checkpoints(run_dir).join(LATEST_CHECKPOINT)
    }

    pub fn pseudo_labels(run_dir: &Path) -> PathBuf {
        run_dir.join(PSEUDO_LABEL_DIR)
    }

    /// `epoch-NNNN.parquet`.
    pub fn pseudo_label_file(epoch: u32) -> String {
        format!("epoch-{epoch:04}.parquet")
    }

    /// The epoch of a pseudo-label file name, `None` for any other name.
    pub fn pseudo_label_epoch(name: &str) -> Option<u32> {
        name.strip_prefix("epoch-")?.strip_suffix(".parquet")?.parse().ok()
    }
}

/// A report's folder.
pub fn report_dir(reports_root: &Path, report: &str) -> PathBuf {
    reports_root.join(report)
}

/// The files of a report folder.
pub mod report {
    pub const HTML_FILE: &str = "index.html";
    pub const SUMMARY_JSON: &str = "summary.json";
    pub const SUMMARY_PARQUET: &str = "summary.parquet";
    /// A comparison of presets repeated over seeds: the seed-paired table.
    pub const PAIRED_JSON: &str = "paired.json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_files_by_extension() {
        for yes in ["a.png", "b.JPG", "c.d.jpeg"] {
            assert!(is_image_file(yes), "{yes}");
        }
        for no in [".hidden.png", "a.bmp", "a.tiff", "png", "a.png.txt", "noext"] {
            assert!(!is_image_file(no), "{no}");
        }
    }

    #[test]
    fn names_that_leave_their_root_are_refused() {
        for bad in ["", ".", "..", "../../etc", "a/b/c", "/abs", "..\\x", ".hidden", "tab\tname"] {
            let e = check_name("run id", bad).unwrap_err().to_string();
            assert!(e.contains("run id") && e.contains("single plain"), "{bad:?}: {e}");
        }
        assert!(check_name("run id", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
        for good in ["ferplus_10pct", "ferplus_10pct-sitfer-cpu", "a-run--what-if-weighted-logit-0.3-0.2-0.5-t0.6"] {
            assert_eq!(check_name("run id", good).unwrap(), good);
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(shard_part(7), "part-00007.parquet");
        assert!(is_shard_part(&shard_part(12)) && !is_shard_part("manifest.json"));
        assert_eq!(run::pseudo_label_file(3), "epoch-0003.parquet");
        assert_eq!(run::pseudo_label_epoch(&run::pseudo_label_file(12)), Some(12));
        assert_eq!(run::pseudo_label_epoch("epoch-x.parquet"), None);
        assert_eq!(split_file(Path::new(SPLITS_ROOT), "a_10pct"), Path::new("artifacts/splits/a_10pct.parquet"));
        assert_eq!(split_file(Path::new(SPLITS_ROOT), "elsewhere/s.parquet"), Path::new("elsewhere/s.parquet"));
        assert_eq!(
            run::latest_checkpoint(&run_dir(Path::new(RUNS_ROOT), "r")),
            Path::new("artifacts/runs/r/checkpoints/latest.json")
        );
    }
}
