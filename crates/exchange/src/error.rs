//! Typed errors of the contracts crate. Every variant names the file it concerns, because a user reading
//! "schema mismatch" without a path cannot fix anything.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{path}: expected a `{expected}` exchange file, found a `{found}` file")]
    WrongTable { path: PathBuf, expected: String, found: String },
    #[error(
        "{path} holds a `{found}` table; refusing to replace it with a `{writing}` table (choose another output path)"
    )]
    WouldReplace { path: PathBuf, found: String, writing: String },
    #[error("{path}: `{table}` schema version {found} is not supported (this build reads version {supported}); rerun the stage that wrote it")]
    SchemaVersion { path: PathBuf, table: String, found: String, supported: u32 },
    #[error("{path}: missing column `{column}` (expected {expected})")]
    MissingColumn { path: PathBuf, column: String, expected: String },
    #[error("{path}: column `{column}` has type {found}, expected {expected}")]
    ColumnType { path: PathBuf, column: String, found: String, expected: String },
    #[error("{path}: row {row}: {message}")]
    Row { path: PathBuf, row: usize, message: String },
    #[error("{path}: invalid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{what} {name:?}: {message}")]
    Name { what: String, name: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
