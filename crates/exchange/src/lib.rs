//! The contracts between the SIT-FER pipeline stages.
//!
//! Stages (`shard`, `embed-text`, `train`, `audit`) never import each other: they meet only at the files
//! described here. This crate owns
//!
//! * [`layout`]: where every exchange file lives under `artifacts/` (and the names of the files in a run
//!   or report folder);
//! * [`keys`]: every Parquet metadata key;
//! * [`labels`]: the canonical expression label space and every dataset's id map into it;
//! * [`schema`]: one typed row struct and Arrow schema per exchange file — **this is the column reference
//!   users read** (see each module: [`schema::shard`], [`schema::split`], [`schema::text`],
//!   [`schema::pseudo_label`], [`schema::metrics`]);
//! * [`parquet_io`]: atomic Parquet writing and tolerant reading (Binary/LargeBinary/BinaryView, Utf8View,
//!   LargeList … as written by polars, pyarrow or DuckDB);
//! * [`manifest`]: what every stage output records about its inputs and config, and the "is this output up to
//!   date?" check that lets stages skip work;
//! * [`atomic`]: temp-file-and-rename helpers so a failed or interrupted run never corrupts earlier output;
//! * [`image_bytes`]: what counts as a whole image file (a JPEG cut short is refused, not read as grey);
//! * [`fusion`]: the fusion rules' parameters, the fusion in force at an epoch, the selection rule, and the
//!   expected values both train and audit test their fusion arithmetic against.
//!
//! It must not depend on libtorch, polars or any stage.

pub mod atomic;
pub mod calibration;
mod columns;
pub mod error;
pub mod fusion;
pub mod image_bytes;
pub mod keys;
pub mod labels;
pub mod layout;
pub mod manifest;
pub mod parquet_io;
pub mod schema;

pub use error::{Error, Result};
pub use labels::Expression;
pub use schema::Table;
