//! What a call to [`super::train`] is given and what it returns; the flag the Ctrl-C handler raises.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use tch::Device;

use crate::checkpoint::State;
use crate::distributed::Dist;

/// A run folder's name when none is given: `<split>-<preset>-<scale>`, and `-s<seed>` when the seed was
/// chosen (`--seed`), so a seed grid's cells do not share a folder. The one place this rule lives: `train run`
/// uses it, `train plan` prints it for the Makefile's grid.
pub fn default_run_id(split_arg: &str, preset: &str, scale: &str, seed: Option<u64>) -> String {
    let split = exchange::layout::split_file(std::path::Path::new(exchange::layout::SPLITS_ROOT), split_arg);
    let split = split.file_stem().and_then(|s| s.to_str()).unwrap_or("split");
    let seed = seed.map_or(String::new(), |s| format!("-s{s}"));
    format!("{split}-{preset}-{scale}{seed}")
}

pub struct RunSpec {
    pub split: PathBuf,
    pub shards: PathBuf,
    pub text_root: PathBuf,
    pub run_dir: PathBuf,
    pub resume: bool,
    pub device: Device,
    pub quiet: bool,
    /// Stop (with a checkpoint) once this many steps are done — an interruption at a known point.
    pub stop_after: Option<u64>,
    /// The process group of a data-parallel run (`None`: this process trains alone).
    pub dist: Option<Rc<Dist>>,
}

impl RunSpec {
    /// Whether this process writes the run's files (metrics, checkpoints, pseudo-labels): rank 0, or the only one.
    pub fn writes(&self) -> bool {
        self.dist.as_ref().is_none_or(|d| d.rank() == 0)
    }
}

/// Set by the binary's Ctrl-C handler: the loop writes a checkpoint after the current step and returns.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// How a call to [`train`] ended.
pub struct Outcome {
    /// Every step's total loss, in order (the resume test compares them).
    pub losses: Vec<f64>,
    pub state: State,
    /// Stopped early by Ctrl-C or `stop_after`, with a checkpoint to resume from.
    pub interrupted: bool,
}
