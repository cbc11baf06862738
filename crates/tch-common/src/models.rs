//! Where the model files `make setup` installs are: an environment variable when set, else the value
//! `.cargo/config.toml` baked in at build time (a repo-local link setup maintains), else that link's name
//! relative to the working directory. One rule for every stage that reads them.

use std::path::PathBuf;

/// The offline MiniLM text model: `$SITFER_TEXT_MODEL`, else the `.text-model` link.
pub fn text_model_dir() -> PathBuf {
    installed("SITFER_TEXT_MODEL", option_env!("SITFER_TEXT_MODEL"), ".text-model")
}

/// dlib's face-recognition network: `$SITFER_FACE_MODEL`, else the `.face-model` link.
pub fn face_model_dir() -> PathBuf {
    installed("SITFER_FACE_MODEL", option_env!("SITFER_FACE_MODEL"), ".face-model")
}

fn installed(var: &str, baked: Option<&'static str>, link: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).or_else(|| baked.map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(link))
}
