//! What the workspace's tests share. Stage crates use it as a dev-dependency; its own `tests/` hold the tests
//! that cross stages (the end-to-end pipeline test, exchange files read by other libraries).
//!
//! * fixture writers: [`tiny`] (a tiny labeled face dataset in the artifacts layout, for trainings) and
//!   [`audit_run`] (synthetic run folders with known ground truth, for audit and its benchmark);
//! * where the repo, the real FERPlus data, the text model and the reference Python are, and how to run a
//!   stage binary. Tests drive stages only through their CLIs and exchange files, as users do.

pub mod audit_run;
pub mod tiny;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// Where CI's machines keep the real FERPlus files, relative to the checkout.
const CI_FERPLUS_DIR: &str = "../shared/data/ferplus";

/// The real FERPlus folder (`$SITFER_FERPLUS_DIR`, else where CI keeps it, beside the checkout), or `None`
/// after saying loudly that the test is skipped.
pub fn ferplus_dir(test: &str) -> Option<PathBuf> {
    let dir =
        std::env::var_os("SITFER_FERPLUS_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join(CI_FERPLUS_DIR));
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

/// A stage binary of this workspace, built beside the running test (`cargo test --workspace` builds every
/// package's binaries for its integration tests). Panics with the command to run when it is missing.
pub fn stage_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("test executable under target/<profile>/deps");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build --workspace` (or `cargo test --workspace`) first",
        bin.display()
    );
    bin
}
