//! Split rows: `artifacts/splits/<split>.parquet`, which sample plays which role in a run.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | utf8 | a shard row's `id` |
//! | `role` | utf8 | `labeled`, `unlabeled`, `val` or `test` |
//!
//! File metadata: `sitfer.classes` (the split's class list, canonical names, comma-separated) and
//! `sitfer.dataset`. Samples of a class outside the split's list are not in the file. The trainer reads a
//! label only for `labeled`, `val` and `test` ids: an `unlabeled` id's label never leaves the shard reader.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

use super::{col, field, Table};

/// Column names, for readers that address columns themselves (polars scans, SQL).
pub mod column {
    pub const ID: &str = "id";
    pub const ROLE: &str = "role";
}

/// What a sample is used for in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Labeled,
    Unlabeled,
    Val,
    Test,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Labeled, Role::Unlabeled, Role::Val, Role::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Labeled => "labeled",
            Role::Unlabeled => "unlabeled",
            Role::Val => "val",
            Role::Test => "test",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (expected labeled, unlabeled, val or test)"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitRow {
    pub id: String,
    pub role: Role,
}

impl Table for SplitRow {
    const NAME: &'static str = "split";
    const VERSION: u32 = 1;

    fn fields() -> Vec<Field> {
        vec![field(column::ID, DataType::Utf8, false), field(column::ROLE, DataType::Utf8, false)]
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.role.as_str()))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(b: &RecordBatch) -> Result<Vec<Self>, (usize, String)> {
        let id = col(b, 0).as_string::<i32>();
        let role = col(b, 1).as_string::<i32>();
        (0..b.num_rows())
            .map(|i| Ok(SplitRow { id: id.value(i).to_string(), role: role.value(i).parse().map_err(|e| (i, e))? }))
            .collect()
    }
}
