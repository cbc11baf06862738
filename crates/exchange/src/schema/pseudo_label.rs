//! Pseudo-label rows: `artifacts/runs/<run>/pseudo_labels/epoch-NNNN.parquet`, one row per unlabeled
//! sample, from a sweep of the whole unlabeled set without augmentation at the end of an epoch.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | utf8 | a shard row's `id` (role `unlabeled` in the run's split) |
//! | `epoch` | int32 | the epoch whose weights produced the row (1-based) |
//! | `p_sem` | list\<float32\> | semantic level: classifier softmax |
//! | `p_text` | list\<float32\>, nullable | text level: softmax of text similarities / τ_t (null when the level is off) |
//! | `p_ins` | list\<float32\>, nullable | instance level: softmax of memory-bank similarities / τ_i (null when off) |
//! | `p_fused` | list\<float32\> | the fused distribution the run used at that epoch |
//! | `pseudo_label` | int32 | argmax of `p_fused`, as an index into the run's class list |
//! | `confidence` | float32 | max of `p_fused` |
//! | `selected` | bool | `confidence > threshold` at the run's threshold |
//!
//! Vectors are indexed by the run's class list (metadata `sitfer.classes`); file metadata also records
//! `sitfer.threshold`, `sitfer.fusion` and `sitfer.run`. **No ground truth is ever stored here**: audit joins
//! the shards' labels itself.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type};
use arrow::error::ArrowError;

use super::{col, f32_list_at, f32_lists, field, list_of, Table};

/// Column names, for readers that address columns themselves (polars scans, SQL).
pub mod column {
    pub const ID: &str = "id";
    pub const EPOCH: &str = "epoch";
    pub const P_SEM: &str = "p_sem";
    pub const P_TEXT: &str = "p_text";
    pub const P_INS: &str = "p_ins";
    pub const P_FUSED: &str = "p_fused";
    pub const PSEUDO_LABEL: &str = "pseudo_label";
    pub const CONFIDENCE: &str = "confidence";
    pub const SELECTED: &str = "selected";
}

#[derive(Clone, Debug, PartialEq)]
pub struct PseudoLabelRow {
    pub id: String,
    pub epoch: u32,
    pub p_sem: Vec<f32>,
    pub p_text: Option<Vec<f32>>,
    pub p_ins: Option<Vec<f32>>,
    pub p_fused: Vec<f32>,
    pub pseudo_label: u32,
    pub confidence: f32,
    pub selected: bool,
}

impl Table for PseudoLabelRow {
    const NAME: &'static str = "pseudo_label";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field(column::ID, DataType::Utf8, false),
            field(column::EPOCH, DataType::Int32, false),
            field(column::P_SEM, list_of(DataType::Float32), false),
            field(column::P_TEXT, list_of(DataType::Float32), true),
            field(column::P_INS, list_of(DataType::Float32), true),
            field(column::P_FUSED, list_of(DataType::Float32), false),
            field(column::PSEUDO_LABEL, DataType::Int32, false),
            field(column::CONFIDENCE, DataType::Float32, false),
            field(column::SELECTED, DataType::Boolean, false),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.epoch as i32))),
            f32_lists(rows.iter().map(|r| Some(r.p_sem.as_slice()))),
            f32_lists(rows.iter().map(|r| r.p_text.as_deref())),
            f32_lists(rows.iter().map(|r| r.p_ins.as_deref())),
            f32_lists(rows.iter().map(|r| Some(r.p_fused.as_slice()))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.pseudo_label as i32))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.confidence))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.selected)))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let id = col(b, 0).as_string::<i32>();
        let epoch = col(b, 1).as_primitive::<Int32Type>();
        let p_sem = col(b, 2).as_list::<i32>();
        let p_text = col(b, 3).as_list::<i32>();
        let p_ins = col(b, 4).as_list::<i32>();
        let p_fused = col(b, 5).as_list::<i32>();
        let label = col(b, 6).as_primitive::<Int32Type>();
        let conf = col(b, 7).as_primitive::<Float32Type>();
        let selected = col(b, 8).as_boolean();
        (0..b.num_rows())
            .map(|i| {
                let p_fused = f32_list_at(p_fused, i).unwrap_or_default();
                let l = label.value(i);
                if l < 0 || l as usize >= p_fused.len() {
                    return Err((i, format!("pseudo_label {l} outside the {}-class vector", p_fused.len())));
                }
                Ok(PseudoLabelRow {
                    id: id.value(i).to_string(),
                    epoch: epoch.value(i).max(0) as u32,
                    p_sem: f32_list_at(p_sem, i).unwrap_or_default(),
                    p_text: f32_list_at(p_text, i),
                    p_ins: f32_list_at(p_ins, i),
                    p_fused,
                    pseudo_label: l as u32,
                    confidence: conf.value(i),
                    selected: selected.is_valid(i) && selected.value(i),
                })
            })
            .collect()
    }
}
