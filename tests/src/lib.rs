//! Helpers for the end-to-end tests in `tests/tests/`: where the repo, the real FERPlus data and the
//! reference Python are, and how to run a stage binary. Stage crates use it as a dev-dependency for their
//! CLI tests (which get their binary from Cargo as `CARGO_BIN_EXE_<name>`). The tests drive stages only through their CLIs and
//! exchange files, as users do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// The real FERPlus folder (`$SITFER_FERPLUS_DIR`, else `../shared/data/ferplus` beside the repo), or `None`
/// after saying loudly that the test is skipped.
pub fn ferplus_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SITFER_FERPLUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/ferplus"));
    if dir.join("FER2013Train").join("label.csv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "\n!!! SKIPPED {test}: real FERPlus data not found at {} (set SITFER_FERPLUS_DIR) !!!\n",
            dir.display()
        );
        None
    }
}

/// The reference-Python interpreter that `make setup` installs (with pyarrow and pandas).
pub fn reference_python() -> Option<PathBuf> {
    let p = repo_root().join(".venv-torch/bin/python");
    p.exists().then_some(p)
}

/// Runs a binary in `cwd` and returns its output (never panics on a non-zero exit).
pub fn run(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin).current_dir(cwd).args(args).output().expect("starting stage binary")
}

/// `stdout + stderr` of an output, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The MiniLM folder `make setup` links as `.text-model` (or `$SITFER_TEXT_MODEL`), or `None` after saying
/// loudly that the test is skipped.
pub fn text_model_dir(test: &str) -> Option<PathBuf> {
    let dir =
        std::env::var_os("SITFER_TEXT_MODEL").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".text-model"));
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("\n!!! SKIPPED {test}: text model not found at {} (run `make setup`) !!!\n", dir.display());
        None
    }
}
