//! Every exchange schema round-trips through Parquet and is readable by polars (and pyarrow/pandas when the
//! reference venv is there); a file polars writes — BinaryView, Utf8View, LargeList — is readable by the
//! contracts crate.

use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::shard::{ShardIndexRow, ShardRow};
use exchange::schema::split::{Role, SplitRow};
use exchange::schema::text::{PrototypeRow, TextEmbeddingRow};
use exchange::Table;
use polars::prelude::*;

fn polars_frame(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn shard_rows() -> Vec<ShardRow> {
    (0..3)
        .map(|i| ShardRow {
            id: format!("ferplus/train/fer{i:07}"),
            dataset: "ferplus".into(),
            split: "train".into(),
            label: (i != 1).then_some(i as u8),
            votes: (i != 2).then(|| vec![10 - i, i, 0, 0, 0, 0, 0, 0, 0, 0]),
            image: vec![0x89, b'P', b'N', b'G', i as u8],
            height: 48,
            width: 48,
            channels: 1,
            source_path: format!("FER2013Train/fer{i:07}.png"),
        })
        .collect()
}

fn write_and_check_polars<T: Table>(dir: &std::path::Path, name: &str, rows: &[T]) -> DataFrame {
    let p = dir.join(format!("{name}.parquet"));
    write_table(&p, rows, &[]).unwrap();
    let df = polars_frame(&p);
    assert_eq!(df.height(), rows.len(), "{name}");
    let want: Vec<String> = T::fields().iter().map(|f| f.name().clone()).collect();
    let got: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want, "{name}: polars sees the documented columns");
    df
}

#[test]
fn every_schema_is_readable_by_polars() {
    let dir = tempfile::tempdir().unwrap();
    let df = write_and_check_polars(dir.path(), "shard", &shard_rows());
    let labels = df.column("label").unwrap().as_materialized_series().i32().unwrap().clone();
    assert_eq!(labels.get(0), Some(0));
    assert_eq!(labels.get(1), None);
    let votes = df.column("votes").unwrap().as_materialized_series().list().unwrap().clone();
    assert_eq!(votes.get_as_series(0).unwrap().i32().unwrap().get(0), Some(10));
    assert!(votes.get_as_series(2).is_none());
    let img = df.column("image").unwrap().as_materialized_series().binary().unwrap().clone();
    assert_eq!(img.get(2), Some(&[0x89, b'P', b'N', b'G', 2][..]));

    let df = write_and_check_polars(
        dir.path(),
        "split",
        &[SplitRow { id: "a".into(), role: Role::Unlabeled }, SplitRow { id: "b".into(), role: Role::Test }],
    );
    assert_eq!(df.column("role").unwrap().as_materialized_series().str().unwrap().get(0), Some("unlabeled"));

    write_and_check_polars(
        dir.path(),
        "text",
        &[TextEmbeddingRow {
            class: 1,
            class_name: "happiness".into(),
            description: "lip corners up".into(),
            vector: vec![0.6, 0.8],
        }],
    );
    write_and_check_polars(
        dir.path(),
        "proto",
        &[PrototypeRow { class: 1, class_name: "happiness".into(), n_descriptions: 4, vector: vec![1.0, 0.0] }],
    );
    let df = write_and_check_polars(
        dir.path(),
        "pseudo",
        &[PseudoLabelRow {
            id: "u1".into(),
            epoch: 2,
            p_sem: vec![0.2, 0.8],
            p_text: Some(vec![0.4, 0.6]),
            p_ins: None,
            p_fused: vec![0.3, 0.7],
            pseudo_label: 1,
            confidence: 0.7,
            selected: false,
        }],
    );
    assert_eq!(df.column("p_ins").unwrap().null_count(), 1);
    let df = write_and_check_polars(dir.path(), "metrics", &[MetricRow::scalar(1, 10, "val", "acc_cls", 0.61)]);
    assert_eq!(df.column("value").unwrap().as_materialized_series().f64().unwrap().get(0), Some(0.61));
}

#[test]
fn polars_written_shard_with_binary_column_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("polars.parquet");
    let votes: ListChunked =
        vec![Some(Series::new("".into(), &[3i32, 7, 0, 0, 0, 0, 0, 0, 0, 0])), None].into_iter().collect();
    let mut df = DataFrame::new(
        2,
        vec![
            Column::new("id".into(), &["x/train/1", "x/test/2"]),
            Column::new("dataset".into(), &["x", "x"]),
            Column::new("split".into(), &["train", "test"]),
            Column::new("label".into(), &[Some(1i32), None]),
            votes.into_series().with_name("votes".into()).into(),
            Column::new("image".into(), &[&b"\x89PNGa"[..], &b"\x89PNGbb"[..]]),
            Column::new("height".into(), &[48i64, 48]),
            Column::new("width".into(), &[48i64, 48]),
            Column::new("channels".into(), &[1i64, 3]),
            Column::new("source_path".into(), &["a.png", "b.png"]),
            Column::new("notebook_extra".into(), &[1.5f64, 2.5]),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();

    let rows = read_table::<ShardRow>(&p).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].image, b"\x89PNGa");
    assert_eq!(rows[1].image, b"\x89PNGbb");
    assert_eq!(rows[0].votes.as_deref(), Some(&[3, 7, 0, 0, 0, 0, 0, 0, 0, 0][..]));
    assert_eq!(rows[1].votes, None);
    assert_eq!((rows[1].label, rows[1].channels), (None, 3));
    let index = read_table::<ShardIndexRow>(&p).unwrap();
    assert_eq!(index[0].id, "x/train/1");
}

#[test]
fn pyarrow_and_pandas_read_every_schema() {
    let Some(py) = test_support::reference_python() else {
        eprintln!("\n!!! SKIPPED pyarrow check: run `make setup` for the reference venv !!!\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_table(dir.path().join("shard.parquet"), &shard_rows(), &[]).unwrap();
    write_table(dir.path().join("split.parquet"), &[SplitRow { id: "a".into(), role: Role::Val }], &[]).unwrap();
    let script = r#"
import sys, pyarrow.parquet as pq, pandas as pd
d = sys.argv[1]
t = pq.read_table(d + "/shard.parquet")
assert t.num_rows == 3 and t.column("image")[2].as_py() == b"\x89PNG\x02", t
assert t.schema.metadata[b"sitfer.table"] == b"shard"
df = pd.read_parquet(d + "/split.parquet")
assert list(df.columns) == ["id", "role"] and df.role[0] == "val", df
print("ok")
"#;
    let out = std::process::Command::new(py).args(["-c", script]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", test_support::text(&out));
}
