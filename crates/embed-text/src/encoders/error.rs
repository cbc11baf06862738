//! Errors an encoder reports; the CLI turns them into messages, tests branch on them.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("{what} not found at {path}: {hint}")]
    Missing { what: &'static str, path: PathBuf, hint: String },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("{path}: the weights do not fit the model described by its config:\n{problems}")]
    Shapes { path: PathBuf, problems: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, EncoderError>;

pub fn missing(what: &'static str, path: PathBuf, hint: impl Into<String>) -> EncoderError {
    EncoderError::Missing { what, path, hint: hint.into() }
}

pub fn bad(path: impl Into<PathBuf>, message: impl Into<String>) -> EncoderError {
    EncoderError::BadFile { path: path.into(), message: message.into() }
}
