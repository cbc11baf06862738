//! Predictions of a trained network (`train predict --out FILE.parquet`), one row per image.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | utf8 | the shard row's id, or the image file's path as given |
//! | `predicted` | utf8 | canonical class name of the classifier's argmax |
//! | `confidence` | float32 | the classifier's probability of `predicted` |
//! | `p_sem` | list\<float32\> | classifier softmax over the model's classes (metadata `sitfer.classes`) |
//! | `p_text` | list\<float32\>, nullable | text level (with `--levels`, when the run has it) |
//! | `p_ins` | list\<float32\>, nullable | instance level (with `--levels`, when the run has it) |
//! | `p_fused` | list\<float32\>, nullable | the run's fusion of its levels (with `--levels`) |
//! | `label` | utf8, nullable | the true class name, when the images come from a labeled split role |

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type};
use arrow::error::ArrowError;

use super::{col, f32_list_at, f32_lists, field, list_of, Table};

pub mod column {
    pub const ID: &str = "id";
    pub const PREDICTED: &str = "predicted";
    pub const CONFIDENCE: &str = "confidence";
    pub const P_SEM: &str = "p_sem";
    pub const P_TEXT: &str = "p_text";
    pub const P_INS: &str = "p_ins";
    pub const P_FUSED: &str = "p_fused";
    pub const LABEL: &str = "label";
}

#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRow {
    pub id: String,
    pub predicted: String,
    pub confidence: f32,
    pub p_sem: Vec<f32>,
    pub p_text: Option<Vec<f32>>,
    pub p_ins: Option<Vec<f32>>,
    pub p_fused: Option<Vec<f32>>,
    pub label: Option<String>,
}

impl Table for PredictionRow {
    const NAME: &'static str = "prediction";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field(column::ID, DataType::Utf8, false),
            field(column::PREDICTED, DataType::Utf8, false),
            field(column::CONFIDENCE, DataType::Float32, false),
            field(column::P_SEM, list_of(DataType::Float32), false),
            field(column::P_TEXT, list_of(DataType::Float32), true),
            field(column::P_INS, list_of(DataType::Float32), true),
            field(column::P_FUSED, list_of(DataType::Float32), true),
            field(column::LABEL, DataType::Utf8, true),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.predicted))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.confidence))),
            f32_lists(rows.iter().map(|r| Some(r.p_sem.as_slice()))),
            f32_lists(rows.iter().map(|r| r.p_text.as_deref())),
            f32_lists(rows.iter().map(|r| r.p_ins.as_deref())),
            f32_lists(rows.iter().map(|r| r.p_fused.as_deref())),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.label.as_deref()))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let id = col(b, 0).as_string::<i32>();
        let predicted = col(b, 1).as_string::<i32>();
        let conf = col(b, 2).as_primitive::<Float32Type>();
        let (p_sem, p_text, p_ins, p_fused) = (
            col(b, 3).as_list::<i32>(),
            col(b, 4).as_list::<i32>(),
            col(b, 5).as_list::<i32>(),
            col(b, 6).as_list::<i32>(),
        );
        let label = col(b, 7).as_string::<i32>();
        Ok((0..b.num_rows())
            .map(|i| PredictionRow {
                id: id.value(i).to_string(),
                predicted: predicted.value(i).to_string(),
                confidence: conf.value(i),
                p_sem: f32_list_at(p_sem, i).unwrap_or_default(),
                p_text: f32_list_at(p_text, i),
                p_ins: f32_list_at(p_ins, i),
                p_fused: f32_list_at(p_fused, i),
                label: label.is_valid(i).then(|| label.value(i).to_string()),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_and_without_levels() {
        let rows = vec![
            PredictionRow {
                id: "a.png".into(),
                predicted: "happiness".into(),
                confidence: 0.75,
                p_sem: vec![0.25, 0.75],
                p_text: Some(vec![0.5, 0.5]),
                p_ins: None,
                p_fused: Some(vec![0.4, 0.6]),
                label: Some("neutral".into()),
            },
            PredictionRow {
                id: "b".into(),
                predicted: "neutral".into(),
                confidence: 0.5,
                p_sem: vec![0.5, 0.5],
                p_text: None,
                p_ins: None,
                p_fused: None,
                label: None,
            },
        ];
        let batch = PredictionRow::to_batch(&rows).unwrap();
        assert_eq!(PredictionRow::from_batch(&batch).unwrap(), rows);
    }
}
