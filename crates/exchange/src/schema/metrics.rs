//! Run metrics: `artifacts/runs/<run>/metrics.parquet`, long format, one row per number.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `epoch` | int32 | 1-based epoch the number belongs to |
//! | `step` | int64 | global optimiser step at the time |
//! | `split` | utf8 | `train`, `val`, `test` or `unlabeled` |
//! | `metric` | utf8 | e.g. `loss`, `loss_s`, `loss_t`, `loss_u`, `loss_con`, `mask_rate`, `acc_cls`, `acc_fused`, `balanced_acc_cls`, `class_acc_cls`, `confusion_cls`, `lr`, `images_per_s`, `input_wait_fraction` (share of step time spent waiting for the prefetch queue), `train_seconds`, `eval_seconds` (val, and test where scored), `sweep_seconds` |
//! | `class` | int32, nullable | for per-class metrics: index into the run's class list (true class for confusion) |
//! | `pred` | int32, nullable | for confusion counts: predicted class index |
//! | `value` | float64 | the number |
//!
//! Long format keeps the schema fixed as metrics are added, and is one `pivot` away from a wide table in
//! polars or pandas.

use std::sync::Arc;

/// The names train writes and audit reads by name: the contract, so neither spells them itself.
pub mod names {
    /// The split an evaluation's rows are recorded under: the one model selection reads.
    pub const VAL: &str = "val";
    /// The split of the reported accuracy, read at the epoch chosen on [`VAL`].
    pub const TEST: &str = "test";
    /// Accuracy of the classifier's argmax.
    pub const ACC_CLS: &str = "acc_cls";
    /// Accuracy of the fused prediction (the levels in force).
    pub const ACC_FUSED: &str = "acc_fused";
    /// Mean of the per-class recalls of the classifier.
    pub const BALANCED_ACC_CLS: &str = "balanced_acc_cls";
    /// An epoch's wall seconds in its steps (input waits included), under split `train`.
    pub const TRAIN_SECONDS: &str = "train_seconds";
    /// An epoch's wall seconds evaluating val, and test where it was scored.
    pub const EVAL_SECONDS: &str = "eval_seconds";
    /// An epoch's wall seconds in the unlabeled sweep (0 at an epoch without one).
    pub const SWEEP_SECONDS: &str = "sweep_seconds";
}

use arrow::array::{ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type};
use arrow::error::ArrowError;

use super::{col, field, Table};

#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    pub epoch: u32,
    pub step: u64,
    pub split: String,
    pub metric: String,
    pub class: Option<u32>,
    pub pred: Option<u32>,
    pub value: f64,
}

impl MetricRow {
    /// A scalar metric (no class).
    pub fn scalar(epoch: u32, step: u64, split: &str, metric: &str, value: f64) -> Self {
        Self { epoch, step, split: split.into(), metric: metric.into(), class: None, pred: None, value }
    }
}

impl Table for MetricRow {
    const NAME: &'static str = "metrics";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field("epoch", DataType::Int32, false),
            field("step", DataType::Int64, false),
            field("split", DataType::Utf8, false),
            field("metric", DataType::Utf8, false),
            field("class", DataType::Int32, true),
            field("pred", DataType::Int32, true),
            field("value", DataType::Float64, false),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.epoch as i32))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step as i64))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.split))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.metric))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.class.map(|c| c as i32)))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.pred.map(|c| c as i32)))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        use arrow::array::Array;
        let epoch = col(b, 0).as_primitive::<Int32Type>();
        let step = col(b, 1).as_primitive::<Int64Type>();
        let split = col(b, 2).as_string::<i32>();
        let metric = col(b, 3).as_string::<i32>();
        let class = col(b, 4).as_primitive::<Int32Type>();
        let pred = col(b, 5).as_primitive::<Int32Type>();
        let value = col(b, 6).as_primitive::<Float64Type>();
        let opt =
            |a: &arrow::array::PrimitiveArray<Int32Type>, i: usize| a.is_valid(i).then(|| a.value(i).max(0) as u32);
        Ok((0..b.num_rows())
            .map(|i| MetricRow {
                epoch: epoch.value(i).max(0) as u32,
                step: step.value(i).max(0) as u64,
                split: split.value(i).to_string(),
                metric: metric.value(i).to_string(),
                class: opt(class, i),
                pred: opt(pred, i),
                value: value.value(i),
            })
            .collect())
    }
}
