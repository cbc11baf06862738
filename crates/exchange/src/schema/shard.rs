//! Shard rows: `artifacts/shards/<dataset>/part-NNNNN.parquet`, one row per kept face.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | utf8 | stable sample id, `<dataset>/<source split>/<file stem or row>`; unique across the dataset |
//! | `dataset` | utf8 | dataset name (`ferplus`, `rafdb`, `affectnet`, `synthetic`, or the folder dataset's name) |
//! | `split` | utf8 | source split: `train`, `valid` or `test` (FERPlus: FER2013Train/Valid/Test) |
//! | `label` | int32, nullable | canonical class id ([`crate::labels`]) under the shard's protocol; null where the protocol keeps the face without a hard label |
//! | `votes` | list\<int32\>, nullable | the raw annotator vote counts where the dataset has them (FER+: 8 classes, unknown, NF) |
//! | `image` | binary | PNG-encoded image |
//! | `height`, `width`, `channels` | int32 | of the stored image (channels 1 = grey, 3 = RGB) |
//! | `source_path` | utf8 | where the image came from (file, or `csv:line`) relative to the dataset root |
//!
//! Rows the protocol drops are not written: they are counted by reason in the shard manifest.

use std::sync::Arc;

use arrow::array::{Array as _, ArrayRef, AsArray, BinaryArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type};
use arrow::error::ArrowError;

use super::{col, field, i32_list_at, i32_lists, list_of, Table};

/// Column names, for readers that address columns themselves (polars scans, SQL).
pub mod column {
    pub const ID: &str = "id";
    pub const DATASET: &str = "dataset";
    pub const SPLIT: &str = "split";
    pub const LABEL: &str = "label";
    pub const VOTES: &str = "votes";
    pub const IMAGE: &str = "image";
    pub const HEIGHT: &str = "height";
    pub const WIDTH: &str = "width";
    pub const CHANNELS: &str = "channels";
    pub const SOURCE_PATH: &str = "source_path";
}

#[derive(Clone, Debug, PartialEq)]
pub struct ShardRow {
    pub id: String,
    pub dataset: String,
    pub split: String,
    pub label: Option<u8>,
    pub votes: Option<Vec<i32>>,
    pub image: Vec<u8>,
    pub height: u32,
    pub width: u32,
    pub channels: u8,
    pub source_path: String,
}

impl Table for ShardRow {
    const NAME: &'static str = "shard";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![
            field(column::ID, DataType::Utf8, false),
            field(column::DATASET, DataType::Utf8, false),
            field(column::SPLIT, DataType::Utf8, false),
            field(column::LABEL, DataType::Int32, true),
            field(column::VOTES, list_of(DataType::Int32), true),
            field(column::IMAGE, DataType::Binary, false),
            field(column::HEIGHT, DataType::Int32, false),
            field(column::WIDTH, DataType::Int32, false),
            field(column::CHANNELS, DataType::Int32, false),
            field(column::SOURCE_PATH, DataType::Utf8, false),
        ]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.dataset))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.split))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.label.map(i32::from)))),
            i32_lists(rows.iter().map(|r| r.votes.as_deref())),
            Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| &r.image))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.height as i32))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.width as i32))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.channels as i32))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.source_path))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let id = col(b, 0).as_string::<i32>();
        let dataset = col(b, 1).as_string::<i32>();
        let split = col(b, 2).as_string::<i32>();
        let label = col(b, 3).as_primitive::<Int32Type>();
        let votes = col(b, 4).as_list::<i32>();
        let image = col(b, 5).as_binary::<i32>();
        let height = col(b, 6).as_primitive::<Int32Type>();
        let width = col(b, 7).as_primitive::<Int32Type>();
        let channels = col(b, 8).as_primitive::<Int32Type>();
        let source = col(b, 9).as_string::<i32>();
        (0..b.num_rows())
            .map(|i| {
                let label = match label.is_valid(i) {
                    true => Some(checked_label(label.value(i)).map_err(|m| (i, m))?),
                    false => None,
                };
                let (h, w, c) = (height.value(i), width.value(i), channels.value(i));
                if h <= 0 || w <= 0 || !(c == 1 || c == 3) {
                    return Err((i, format!("bad image shape {h}x{w}x{c} (need positive size, 1 or 3 channels)")));
                }
                Ok(ShardRow {
                    id: id.value(i).to_string(),
                    dataset: dataset.value(i).to_string(),
                    split: split.value(i).to_string(),
                    label,
                    votes: i32_list_at(votes, i),
                    image: image.value(i).to_vec(),
                    height: h as u32,
                    width: w as u32,
                    channels: c as u8,
                    source_path: source.value(i).to_string(),
                })
            })
            .collect()
    }
}

/// The light columns of a shard row (no image): what split-making and label lookups need. Reading with
/// this table only decodes these columns.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardIndexRow {
    pub id: String,
    pub split: String,
    pub label: Option<u8>,
    pub votes: Option<Vec<i32>>,
}

impl Table for ShardIndexRow {
    const NAME: &'static str = "shard";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        let all = ShardRow::fields();
        ["id", "split", "label", "votes"]
            .iter()
            .map(|n| all.iter().find(|f| f.name() == n).expect("shard field").clone())
            .collect()
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.split))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.label.map(i32::from)))),
            i32_lists(rows.iter().map(|r| r.votes.as_deref())),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let id = col(b, 0).as_string::<i32>();
        let split = col(b, 1).as_string::<i32>();
        let label = col(b, 2).as_primitive::<Int32Type>();
        let votes = col(b, 3).as_list::<i32>();
        (0..b.num_rows())
            .map(|i| {
                let label = match label.is_valid(i) {
                    true => Some(checked_label(label.value(i)).map_err(|m| (i, m))?),
                    false => None,
                };
                Ok(ShardIndexRow {
                    id: id.value(i).to_string(),
                    split: split.value(i).to_string(),
                    label,
                    votes: i32_list_at(votes, i),
                })
            })
            .collect()
    }
}

fn checked_label(v: i32) -> Result<u8, String> {
    if (0..crate::labels::NUM_CLASSES as i32).contains(&v) {
        Ok(v as u8)
    } else {
        Err(format!("label {v} is not a canonical class id (0..=7)"))
    }
}
