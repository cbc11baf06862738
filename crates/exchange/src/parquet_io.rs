//! Atomic Parquet writing and tolerant, schema-checked reading of exchange tables.
//!
//! Writers go through [`crate::atomic::AtomicFile`], so an interrupted write never replaces a good file.
//! Readers check the table name and version in the file metadata and normalise column types (polars'
//! `BinaryView`/`Utf8View`/`LargeList`, pyarrow's `LargeBinary`, DuckDB's `Int64` …) before decoding rows,
//! and report bad rows by their row number in the file.

use std::collections::HashMap;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic::AtomicFile;
use crate::columns::normalize;
use crate::error::{Error, Result};
use crate::keys::{SCHEMA_VERSION as VERSION_KEY, TABLE as TABLE_KEY};
use crate::schema::Table;

/// Rows per row group unless a writer says otherwise: small enough to stream, large enough to compress.
pub(crate) const DEFAULT_ROW_GROUP_ROWS: usize = 8192;

/// Streams rows of one table into a Parquet file that appears atomically on [`TableWriter::finish`].
pub struct TableWriter<T: Table> {
    path: PathBuf,
    writer: ArrowWriter<AtomicFile>,
    rows: u64,
    _t: PhantomData<T>,
}

impl<T: Table> TableWriter<T> {
    /// `metadata` is extra file-level key-value metadata (e.g. `sitfer.classes`).
    /// Refuses to replace an exchange file of another table (a prediction written over a run's metrics, say).
    pub fn create(path: impl AsRef<Path>, metadata: &[(&str, String)], row_group_rows: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_replaceable::<T>(&path)?;
        let file = AtomicFile::create(&path)?;
        let mut kv = vec![
            KeyValue::new(TABLE_KEY.to_string(), T::NAME.to_string()),
            KeyValue::new(VERSION_KEY.to_string(), T::VERSION.to_string()),
        ];
        kv.extend(metadata.iter().map(|(k, v)| KeyValue::new(k.to_string(), v.clone())));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_key_value_metadata(Some(kv))
            .build();
        let writer = ArrowWriter::try_new(file, T::schema(), Some(props))
            .map_err(|source| Error::Parquet { path: path.clone(), source })?;
        Ok(Self { path, writer, rows: 0, _t: PhantomData })
    }

    pub fn write(&mut self, rows: &[T]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = T::to_batch(rows).map_err(|source| Error::Arrow { path: self.path.clone(), source })?;
        self.writer.write(&batch).map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Writes the footer and renames the file into place. Returns the number of rows written.
    pub fn finish(self) -> Result<u64> {
        let file = self.writer.into_inner().map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        file.commit()?;
        Ok(self.rows)
    }
}

/// An existing file at `path` may be replaced by table `T` unless it is an exchange file of another table.
/// A file that is not Parquet, or has no table key, is the caller's business (a stage rewriting its own
/// output, or a user's `--out` checked by that command).
fn check_replaceable<T: Table>(path: &Path) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    match file_metadata(path).ok().and_then(|m| m.get(TABLE_KEY).cloned()) {
        Some(found) if found != T::NAME => {
            Err(Error::WouldReplace { path: path.into(), found, writing: T::NAME.into() })
        }
        _ => Ok(()),
    }
}

/// Writes all `rows` to `path` atomically.
pub fn write_table<T: Table>(path: impl AsRef<Path>, rows: &[T], metadata: &[(&str, String)]) -> Result<u64> {
    let mut w = TableWriter::<T>::create(path, metadata, DEFAULT_ROW_GROUP_ROWS)?;
    for chunk in rows.chunks(DEFAULT_ROW_GROUP_ROWS) {
        w.write(chunk)?;
    }
    w.finish()
}

/// A Parquet file's footer, read; no page yet.
fn footer(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet { path: path.into(), source })
}

/// File-level key-value metadata of a Parquet file.
pub fn file_metadata(path: impl AsRef<Path>) -> Result<HashMap<String, String>> {
    Ok(kv_map(footer(path.as_ref())?.metadata().file_metadata().key_value_metadata()))
}

/// The number of rows a Parquet file's footer states (nothing else is read).
pub fn row_count(path: impl AsRef<Path>) -> Result<usize> {
    Ok(footer(path.as_ref())?.metadata().file_metadata().num_rows().max(0) as usize)
}

/// Refuses a file that says it holds another table or another schema version. Files without those keys
/// (written by a notebook) pass: their columns are checked where they are read.
fn check_identity<T: Table>(path: &Path, metadata: &HashMap<String, String>) -> Result<()> {
    let Some(found) = metadata.get(TABLE_KEY) else {
        return Ok(());
    };
    if found != T::NAME {
        return Err(Error::WrongTable { path: path.into(), expected: T::NAME.into(), found: found.clone() });
    }
    let version = metadata.get(VERSION_KEY).cloned().unwrap_or_default();
    if version != T::VERSION.to_string() {
        return Err(Error::SchemaVersion {
            path: path.into(),
            table: T::NAME.into(),
            found: version,
            supported: T::VERSION,
        });
    }
    Ok(())
}

/// The check a reader that does not decode rows through [`TableReader`] (audit's polars scans) makes
/// before it reads `columns` of a file: the file holds table `T` at this build's schema version, and has
/// every named column (each must be one of `T`'s). Returns the file's key-value metadata.
pub fn check_table<T: Table>(path: impl AsRef<Path>, columns: &[&str]) -> Result<HashMap<String, String>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|source| Error::Parquet { path: path.into(), source })?;
    let metadata = kv_map(builder.metadata().file_metadata().key_value_metadata());
    check_identity::<T>(path, &metadata)?;
    let fields = T::fields();
    for name in columns {
        let Some(want) = fields.iter().find(|f| f.name() == name) else {
            return Err(Error::Invalid {
                path: path.into(),
                message: format!("`{name}` is not a column of the `{}` table", T::NAME),
            });
        };
        if builder.schema().field_with_name(name).is_err() {
            return Err(Error::MissingColumn {
                path: path.into(),
                column: name.to_string(),
                expected: want.data_type().to_string(),
            });
        }
    }
    Ok(metadata)
}

fn kv_map(kv: Option<&Vec<KeyValue>>) -> HashMap<String, String> {
    kv.map(|kv| kv.iter().filter_map(|e| Some((e.key.clone(), e.value.clone()?))).collect()).unwrap_or_default()
}

/// Streams a table's rows batch by batch, with file-level row numbers in errors.
pub struct TableReader<T: Table> {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    metadata: HashMap<String, String>,
    rows_before: usize,
    total_rows: usize,
    _t: PhantomData<T>,
}

impl<T: Table> TableReader<T> {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_batch_size(path, 4096)
    }

    pub(crate) fn open_with_batch_size(path: impl AsRef<Path>, batch_size: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| Error::Parquet { path: path.clone(), source })?;
        let metadata = kv_map(builder.metadata().file_metadata().key_value_metadata());
        check_identity::<T>(&path, &metadata)?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
        // Decode only the table's columns (a shard index never touches the image bytes). Missing columns
        // are reported by `normalize` with the file name.
        let wanted: Vec<usize> = T::fields()
            .iter()
            .filter_map(|f| builder.schema().fields().iter().position(|g| g.name() == f.name()))
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|source| Error::Parquet { path: path.clone(), source })?;
        Ok(Self { path, reader, metadata, rows_before: 0, total_rows, _t: PhantomData })
    }

    /// The file's key-value metadata.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Rows in the file according to its footer.
    pub fn total_rows(&self) -> usize {
        self.total_rows
    }

    fn decode(&mut self, batch: RecordBatch) -> Result<Vec<T>> {
        let batch = normalize(&batch, &T::schema(), &self.path).map_err(|e| self.offset(e))?;
        let rows = T::from_batch(&batch).map_err(|(row, message)| Error::Row {
            path: self.path.clone(),
            row: self.rows_before + row,
            message,
        })?;
        self.rows_before += batch.num_rows();
        Ok(rows)
    }

    fn offset(&self, e: Error) -> Error {
        match e {
            Error::Row { path, row, message } => Error::Row { path, row: row + self.rows_before, message },
            other => other,
        }
    }
}

impl<T: Table> Iterator for TableReader<T> {
    type Item = Result<Vec<T>>;
    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.reader.next()?;
        Some(match batch {
            Ok(b) => self.decode(b),
            Err(source) => Err(Error::Arrow { path: self.path.clone(), source }),
        })
    }
}

/// Reads every row of a table file.
pub fn read_table<T: Table>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for rows in TableReader::<T>::open(path)? {
        out.extend(rows?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::metrics::MetricRow;
    use crate::schema::pseudo_label::PseudoLabelRow;
    use crate::schema::shard::ShardRow;
    use crate::schema::split::{Role, SplitRow};
    use crate::schema::text::{PrototypeRow, TextEmbeddingRow};

    fn round_trip<T: Table + PartialEq + std::fmt::Debug + Clone>(rows: Vec<T>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let n = write_table(&p, &rows, &[("sitfer.classes", "a,b".into())]).unwrap();
        assert_eq!(n as usize, rows.len());
        assert_eq!(read_table::<T>(&p).unwrap(), rows);
        let meta = file_metadata(&p).unwrap();
        assert_eq!(meta[TABLE_KEY], T::NAME);
        assert_eq!(meta["sitfer.classes"], "a,b");
    }

    pub(crate) fn shard_rows() -> Vec<ShardRow> {
        (0..5)
            .map(|i| ShardRow {
                id: format!("ds/train/{i}"),
                dataset: "ds".into(),
                split: "train".into(),
                label: (i != 3).then_some(i as u8),
                votes: (i % 2 == 0).then(|| vec![i, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
                image: vec![i as u8; 7 + i as usize],
                height: 48,
                width: 48,
                channels: 1,
                source_path: format!("FER2013Train/fer{i:07}.png"),
            })
            .collect()
    }

    #[test]
    fn every_table_round_trips() {
        round_trip(shard_rows());
        round_trip(vec![
            SplitRow { id: "a".into(), role: Role::Labeled },
            SplitRow { id: "b".into(), role: Role::Unlabeled },
            SplitRow { id: "c".into(), role: Role::Val },
            SplitRow { id: "d".into(), role: Role::Test },
        ]);
        round_trip(vec![TextEmbeddingRow {
            class: 2,
            class_name: "surprise".into(),
            description: "brows raised".into(),
            vector: vec![0.6, 0.8],
        }]);
        round_trip(vec![PrototypeRow {
            class: 7,
            class_name: "contempt".into(),
            n_descriptions: 3,
            vector: vec![1.0, 0.0],
        }]);
        round_trip(vec![
            PseudoLabelRow {
                id: "x".into(),
                epoch: 3,
                p_sem: vec![0.25, 0.75],
                p_text: Some(vec![0.5, 0.5]),
                p_ins: None,
                p_fused: vec![0.1, 0.9],
                pseudo_label: 1,
                confidence: 0.9,
                selected: true,
            },
            PseudoLabelRow {
                id: "y".into(),
                epoch: 3,
                p_sem: vec![0.9, 0.1],
                p_text: None,
                p_ins: Some(vec![0.5, 0.5]),
                p_fused: vec![0.6, 0.4],
                pseudo_label: 0,
                confidence: 0.6,
                selected: false,
            },
        ]);
        round_trip(vec![
            MetricRow::scalar(1, 800, "val", "acc_cls", 0.5),
            MetricRow {
                epoch: 1,
                step: 800,
                split: "test".into(),
                metric: "confusion_cls".into(),
                class: Some(2),
                pred: Some(3),
                value: 7.0,
            },
        ]);
    }

    #[test]
    fn wrong_table_and_version_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.parquet");
        write_table(&p, &[SplitRow { id: "a".into(), role: Role::Test }], &[]).unwrap();
        let e = read_table::<ShardRow>(&p).unwrap_err();
        assert!(matches!(e, Error::WrongTable { .. }), "{e}");
        assert!(e.to_string().contains("s.parquet"));

        // A future version of the same table.
        let mut w = TableWriter::<SplitRow>::create(&p, &[], 10).unwrap();
        w.write(&[SplitRow { id: "a".into(), role: Role::Test }]).unwrap();
        w.finish().unwrap();
        let bumped = dir.path().join("v2.parquet");
        let batch = SplitRow::to_batch(&[SplitRow { id: "a".into(), role: Role::Test }]).unwrap();
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![
                KeyValue::new(TABLE_KEY.into(), "split".to_string()),
                KeyValue::new(VERSION_KEY.into(), "99".to_string()),
            ]))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&bumped).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = read_table::<SplitRow>(&bumped).unwrap_err();
        assert!(matches!(e, Error::SchemaVersion { .. }), "{e}");
        // The same checks for readers that scan columns themselves.
        let e = check_table::<SplitRow>(&bumped, &["id"]).unwrap_err();
        assert!(matches!(e, Error::SchemaVersion { .. }), "{e}");
        let e = check_table::<ShardRow>(&p, &["id"]).unwrap_err();
        assert!(matches!(e, Error::WrongTable { .. }), "{e}");
        assert!(check_table::<SplitRow>(&p, &["id", "role"]).is_ok());
        let e = check_table::<SplitRow>(&p, &["teacher"]).unwrap_err();
        assert!(e.to_string().contains("`teacher` is not a column of the `split` table"), "{e}");
    }

    #[test]
    fn a_file_of_another_table_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("split.parquet");
        let split = [SplitRow { id: "a".into(), role: Role::Test }];
        write_table(&p, &split, &[]).unwrap();
        let e = write_table(&p, &shard_rows(), &[]).unwrap_err();
        assert!(matches!(e, Error::WouldReplace { .. }), "{e}");
        assert!(e.to_string().contains("holds a `split` table"), "{e}");
        assert_eq!(read_table::<SplitRow>(&p).unwrap(), split, "the split is as it was");
        // The same table is rewritten, and a file that is no exchange table is the caller's to judge.
        write_table(&p, &split, &[]).unwrap();
        let other = dir.path().join("notes.parquet");
        std::fs::write(&other, b"not parquet").unwrap();
        write_table(&other, &split, &[]).unwrap();
    }

    #[test]
    fn check_table_names_a_missing_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notebook.parquet");
        // A notebook's file: no table keys, and no `role` column.
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "id",
            arrow::datatypes::DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(arrow::array::StringArray::from(vec!["a"])) as arrow::array::ArrayRef],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert!(check_table::<SplitRow>(&p, &["id"]).is_ok());
        let e = check_table::<SplitRow>(&p, &["id", "role"]).unwrap_err();
        assert!(matches!(e, Error::MissingColumn { .. }) && e.to_string().contains("notebook.parquet"), "{e}");
    }

    #[test]
    fn bad_rows_are_reported_with_file_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("split.parquet");
        let mut rows: Vec<SplitRow> = (0..10).map(|i| SplitRow { id: i.to_string(), role: Role::Labeled }).collect();
        write_table(&p, &rows, &[]).unwrap();
        // Rewrite with an invalid role at row 7 by hand (arrow-level), read in batches of 4.
        use arrow::array::StringArray;
        use std::sync::Arc;
        rows.truncate(10);
        let ids = StringArray::from_iter_values(rows.iter().map(|r| r.id.clone()));
        let roles = StringArray::from_iter_values((0..10).map(|i| if i == 7 { "teacher" } else { "labeled" }));
        let batch = RecordBatch::try_new(SplitRow::schema(), vec![Arc::new(ids), Arc::new(roles)]).unwrap();
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut rdr = TableReader::<SplitRow>::open_with_batch_size(&p, 4).unwrap();
        assert_eq!(rdr.next().unwrap().unwrap().len(), 4);
        let e = rdr.next().unwrap().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("row 7") && msg.contains("teacher") && msg.contains("split.parquet"), "{msg}");
    }

    #[test]
    fn missing_and_mistyped_columns_are_named() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("role", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["a"])), Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = read_table::<SplitRow>(&p).unwrap_err().to_string();
        assert!(e.contains("`role`") && e.contains("Int64"), "{e}");
        let e = read_table::<ShardRow>(&p).unwrap_err().to_string();
        assert!(e.contains("missing column `dataset`"), "{e}");
    }

    #[test]
    fn interrupted_writer_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shard.parquet");
        let rows = shard_rows();
        write_table(&p, &rows, &[]).unwrap();
        {
            let mut w = TableWriter::<ShardRow>::create(&p, &[], 2).unwrap();
            w.write(&rows[..3]).unwrap();
            // dropped before finish: the process died
        }
        assert_eq!(read_table::<ShardRow>(&p).unwrap(), rows);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
