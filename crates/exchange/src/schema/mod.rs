//! One typed row struct and Arrow schema per exchange file.
//!
//! | file | written by | read by | module |
//! |---|---|---|---|
//! | `artifacts/shards/<dataset>/part-NNNNN.parquet` | shard | train, audit | [`shard`] |
//! | `artifacts/splits/<split>.parquet` | shard split | train, audit | [`split`] |
//! | `artifacts/text/<encoder>/<set>/embeddings.parquet`, `prototypes.parquet` | embed-text | train | [`text`] |
//! | `artifacts/runs/<run>/pseudo_labels/epoch-NNNN.parquet` | train | audit | [`pseudo_label`] |
//! | `artifacts/runs/<run>/metrics.parquet` | train | audit, users | [`metrics`] |
//! | `artifacts/runs/<run>/run.json` (JSON) | train | audit | [`run_info`] |
//! | `artifacts/runs/<run>/model/<snapshot>.json` + `.safetensors` | train | train predict/evaluate/export, users | [`model_card`] |
//! | `artifacts/runs/<run>/evaluations/*.json` (JSON) | train evaluate | audit | [`evaluation`] |
//! | predictions (`train predict --out`) | train predict | users | [`prediction`] |
//!
//! Every file carries its table name and schema version in the Parquet key-value metadata
//! ([`crate::keys::TABLE`], [`crate::keys::SCHEMA_VERSION`]); readers refuse another table or version, and accept files
//! without those keys (written by a notebook) when their columns fit. Class columns hold **canonical ids**
//! ([`crate::labels`]), probability vectors are indexed by the *run's* class list, recorded in the run's
//! config and in the file metadata key [`crate::keys::CLASSES`]. Paths are [`crate::layout`]'s.

pub mod evaluation;
pub mod metrics;
pub mod model_card;
pub mod prediction;
pub mod pseudo_label;
pub mod run_info;
pub mod shard;
pub mod split;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, ListBuilder, PrimitiveBuilder, RecordBatch};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Float32Type, Int32Type, Schema, SchemaRef};
use arrow::error::ArrowError;

/// An exchange table: its name, version, columns and row conversion.
pub trait Table: Sized + Send {
    /// Table name written to `sitfer.table`.
    const NAME: &'static str;
    /// Bumped on any incompatible column change.
    const VERSION: u32;

    /// Columns in file order.
    fn fields() -> Vec<Field>;

    /// The Arrow schema with table name and version in its metadata.
    fn schema() -> SchemaRef {
        let meta = HashMap::from([
            (crate::keys::TABLE.to_string(), Self::NAME.to_string()),
            (crate::keys::SCHEMA_VERSION.to_string(), Self::VERSION.to_string()),
        ]);
        Arc::new(Schema::new_with_metadata(Self::fields(), meta))
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;

    /// Decodes a batch already normalised to [`Table::schema`]; errors carry the row index in the batch.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, (usize, String)>;
}

pub(crate) fn field(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

pub(crate) fn list_of(dt: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", dt, true)))
}

/// A list column of `T` values, one list per item (`None`: a null list).
fn lists<'a, T: ArrowPrimitiveType>(items: impl Iterator<Item = Option<&'a [T::Native]>>) -> ArrayRef {
    let mut b = ListBuilder::new(PrimitiveBuilder::<T>::new());
    for item in items {
        match item {
            Some(v) => {
                b.values().append_slice(v);
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// Row `i` of a list column of `T` values; `None` where the list is null.
fn list_at<T: ArrowPrimitiveType>(col: &ListArray, i: usize) -> Option<Vec<T::Native>> {
    col.is_valid(i).then(|| col.value(i).as_primitive::<T>().values().to_vec())
}

pub(crate) fn f32_lists<'a>(items: impl Iterator<Item = Option<&'a [f32]>>) -> ArrayRef {
    lists::<Float32Type>(items)
}

pub(crate) fn i32_lists<'a>(items: impl Iterator<Item = Option<&'a [i32]>>) -> ArrayRef {
    lists::<Int32Type>(items)
}

pub(crate) fn f32_list_at(col: &ListArray, i: usize) -> Option<Vec<f32>> {
    list_at::<Float32Type>(col, i)
}

pub(crate) fn i32_list_at(col: &ListArray, i: usize) -> Option<Vec<i32>> {
    list_at::<Int32Type>(col, i)
}

/// A column of a normalised batch by position, as the concrete array type.
pub(crate) fn col(batch: &RecordBatch, i: usize) -> &ArrayRef {
    batch.column(i)
}
