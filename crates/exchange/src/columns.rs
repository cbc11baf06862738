//! Brings a record batch read from any writer (arrow-rs, polars, pyarrow, DuckDB) to a table's canonical
//! Arrow types, so each schema's row decoding only ever sees one type per column.
//!
//! polars writes `Utf8View`/`BinaryView` and `LargeList`, pyarrow may write `LargeBinary` or 64-bit ints,
//! DuckDB writes `Int64` for integers: all of these are accepted by casting within a type *family*. A column
//! of another family (a string where a number belongs) is an error naming the column, never a silent cast.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Schema, SchemaRef};

use crate::error::{Error, Result};

#[derive(Debug, PartialEq, Eq)]
enum Family {
    Str,
    Bin,
    Int,
    Float,
    Bool,
    List(Box<Family>),
}

fn family(dt: &DataType) -> Option<Family> {
    use DataType::*;
    Some(match dt {
        Utf8 | LargeUtf8 | Utf8View => Family::Str,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Family::Bin,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Family::Int,
        Float16 | Float32 | Float64 => Family::Float,
        Boolean => Family::Bool,
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            Family::List(Box::new(family(f.data_type())?))
        }
        Dictionary(_, v) => family(v)?,
        _ => return None,
    })
}

/// Returns `batch` with exactly `schema`'s columns, in its order and types; extra columns are ignored.
pub(crate) fn normalize(batch: &RecordBatch, schema: &SchemaRef, path: &Path) -> Result<RecordBatch> {
    let opts = CastOptions { safe: false, ..Default::default() };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let Some(col) = batch.column_by_name(field.name()) else {
            return Err(Error::MissingColumn {
                path: path.into(),
                column: field.name().clone(),
                expected: field.data_type().to_string(),
            });
        };
        let type_error = || Error::ColumnType {
            path: path.into(),
            column: field.name().clone(),
            found: col.data_type().to_string(),
            expected: field.data_type().to_string(),
        };
        let col = if col.data_type() == field.data_type() {
            col.clone()
        } else {
            match (family(col.data_type()), family(field.data_type())) {
                (Some(a), Some(b)) if a == b => {}
                _ => return Err(type_error()),
            }
            cast_with_options(col, field.data_type(), &opts).map_err(|_| type_error())?
        };
        if !field.is_nullable() && col.null_count() > 0 {
            let row = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            return Err(Error::Row {
                path: path.into(),
                row,
                message: format!("column `{}` is null but is required", field.name()),
            });
        }
        columns.push(col);
    }
    let plain = Schema::new(schema.fields().clone());
    RecordBatch::try_new(plain.into(), columns).map_err(|source| Error::Arrow { path: path.into(), source })
}
