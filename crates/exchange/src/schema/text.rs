//! Text embeddings: `artifacts/text/<encoder>/<set>/embeddings.parquet` (one row per description) and
//! `prototypes.parquet` (one row per class: the mean of its normalised description vectors, renormalised).
//!
//! `embeddings.parquet`:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `class` | int32 | canonical class id |
//! | `class_name` | utf8 | canonical class name |
//! | `description` | utf8 | the sentence that was encoded |
//! | `vector` | list\<float32\> | its L2-normalised embedding (384-d for MiniLM) |
//!
//! `prototypes.parquet`:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `class`, `class_name` | int32, utf8 | as above |
//! | `n_descriptions` | int32 | how many descriptions were averaged |
//! | `vector` | list\<float32\> | the unit-norm class prototype `t_c` |
//!
//! File metadata: `sitfer.encoder`, `sitfer.description_set`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type};
use arrow::error::ArrowError;

use super::{col, f32_list_at, f32_lists, field, list_of, Table};

#[derive(Clone, Debug, PartialEq)]
pub struct TextEmbeddingRow {
    pub class: u8,
    pub class_name: String,
    pub description: String,
    pub vector: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrototypeRow {
    pub class: u8,
    pub class_name: String,
    pub n_descriptions: u32,
    pub vector: Vec<f32>,
}

fn class_at(class: &arrow::array::PrimitiveArray<Int32Type>, i: usize) -> Result<u8, (usize, String)> {
    let v = class.value(i);
    u8::try_from(v)
        .ok()
        .filter(|v| (*v as usize) < crate::labels::NUM_CLASSES)
        .ok_or((i, format!("class {v} is not a canonical class id (0..=7)")))
}

impl Table for TextEmbeddingRow {
    const NAME: &'static str = "text_embedding";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field("class", DataType::Int32, false),
            field("class_name", DataType::Utf8, false),
            field("description", DataType::Utf8, false),
            field("vector", list_of(DataType::Float32), false),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.class as i32))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.class_name))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.description))),
            f32_lists(rows.iter().map(|r| Some(r.vector.as_slice()))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let class = col(b, 0).as_primitive::<Int32Type>();
        let name = col(b, 1).as_string::<i32>();
        let desc = col(b, 2).as_string::<i32>();
        let vector = col(b, 3).as_list::<i32>();
        (0..b.num_rows())
            .map(|i| {
                Ok(TextEmbeddingRow {
                    class: class_at(class, i)?,
                    class_name: name.value(i).to_string(),
                    description: desc.value(i).to_string(),
                    vector: f32_list_at(vector, i).unwrap_or_default(),
                })
            })
            .collect()
    }
}

impl Table for PrototypeRow {
    const NAME: &'static str = "text_prototype";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field("class", DataType::Int32, false),
            field("class_name", DataType::Utf8, false),
            field("n_descriptions", DataType::Int32, false),
            field("vector", list_of(DataType::Float32), false),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.class as i32))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.class_name))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.n_descriptions as i32))),
            f32_lists(rows.iter().map(|r| Some(r.vector.as_slice()))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let class = col(b, 0).as_primitive::<Int32Type>();
        let name = col(b, 1).as_string::<i32>();
        let n = col(b, 2).as_primitive::<Int32Type>();
        let vector = col(b, 3).as_list::<i32>();
        (0..b.num_rows())
            .map(|i| {
                Ok(PrototypeRow {
                    class: class_at(class, i)?,
                    class_name: name.value(i).to_string(),
                    n_descriptions: n.value(i).max(0) as u32,
                    vector: f32_list_at(vector, i).unwrap_or_default(),
                })
            })
            .collect()
    }
}
