//! `embed-text` as users run it: files written and readable, "up to date" on a rerun, stale when a
//! description changes, and clear refusals that write nothing.

use std::path::Path;

use exchange::parquet_io::{file_metadata, read_table};
use exchange::schema::text::{PrototypeRow, TextEmbeddingRow};
use test_support::{run, text};

const BIN: &str = env!("CARGO_BIN_EXE_embed-text");

fn descriptions(dir: &Path, happiness: &str) -> String {
    let p = dir.join("d.toml");
    let mut s =
        String::from("default = \"mine\"\n[sets.mine]\nabout = \"test set\"\ntemplate = \"a face of {class}\"\n");
    s += &format!("[sets.mine.classes]\nhappiness = [\"{happiness}\", \"cheeks raised\"]\n");
    std::fs::write(&p, s).unwrap();
    p.display().to_string()
}

#[test]
fn random_encoder_writes_then_is_up_to_date_then_stale_on_edit() {
    let dir = tempfile::tempdir().unwrap();
    let d = descriptions(dir.path(), "lip corners up");
    let args = ["--encoder", "random", "--dim", "16", "--descriptions", &d, "--out-root", "out", "--device", "cpu"];
    let o = run(Path::new(BIN), dir.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("prototype cosine similarity"), "{}", text(&o));

    let set_dir = dir.path().join("out/random/mine");
    let rows: Vec<TextEmbeddingRow> = read_table(set_dir.join("embeddings.parquet")).unwrap();
    assert_eq!(rows.len(), 9, "two happiness sentences + the template for the other 7 classes");
    assert!(rows.iter().all(|r| r.vector.len() == 16));
    let protos: Vec<PrototypeRow> = read_table(set_dir.join("prototypes.parquet")).unwrap();
    assert_eq!(protos.len(), 8);
    assert_eq!(protos[1].n_descriptions, 2);
    assert_eq!(file_metadata(set_dir.join("prototypes.parquet")).unwrap()["sitfer.encoder"], "random");

    let before = std::fs::read(set_dir.join("embeddings.parquet")).unwrap();
    let o = run(Path::new(BIN), dir.path(), &args);
    assert!(text(&o).contains("up to date"), "{}", text(&o));
    descriptions(dir.path(), "lip corners pulled up");
    let o = run(Path::new(BIN), dir.path(), &args);
    assert!(o.status.success() && text(&o).contains("rebuilding"), "{}", text(&o));
    let rows: Vec<TextEmbeddingRow> = read_table(set_dir.join("embeddings.parquet")).unwrap();
    assert!(rows.iter().any(|r| r.description == "lip corners pulled up"));
    // Same seed: the random vectors are the same, only the text changed.
    assert_eq!(rows[0].vector, read_table::<TextEmbeddingRow>(set_dir.join("embeddings.parquet")).unwrap()[0].vector);
    assert_ne!(before, std::fs::read(set_dir.join("embeddings.parquet")).unwrap());
}

#[test]
fn refusals_name_the_problem_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = descriptions(dir.path(), "smile");
    let empty = dir.path().join("no-model");
    std::fs::create_dir(&empty).unwrap();
    let o = run(
        Path::new(BIN),
        dir.path(),
        &["--descriptions", &d, "--out-root", "out", "--model-dir", empty.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("make setup") && msg.contains("no-model/model.safetensors"), "{msg}");

    let o = run(Path::new(BIN), dir.path(), &["--encoder", "bert-large", "--descriptions", &d]);
    assert!(!o.status.success() && text(&o).contains("possible values"), "{}", text(&o));

    let o = run(
        Path::new(BIN),
        dir.path(),
        &["--encoder", "random", "--descriptions", &d, "--set", "other", "--out-root", "out"],
    );
    assert!(!o.status.success() && text(&o).contains("no description set named `other`"), "{}", text(&o));

    let o = run(Path::new(BIN), dir.path(), &["--encoder", "clip-text", "--descriptions", &d, "--out-root", "out"]);
    assert!(!o.status.success() && text(&o).contains("--model-dir"), "{}", text(&o));
    assert!(!dir.path().join("out").exists(), "nothing may be written by a refused run");
}

#[test]
fn minilm_cli_warns_on_truncation_and_strict_refuses() {
    let Some(model) = test_support::text_model_dir("minilm_cli_warns_on_truncation_and_strict_refuses") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let long = ["the brows are lowered and drawn together"; 60].join(" and ");
    let d = descriptions(dir.path(), &long);
    let m = model.to_str().unwrap();
    let o = run(
        Path::new(BIN),
        dir.path(),
        &["--descriptions", &d, "--out-root", "out", "--model-dir", m, "--strict", "--device", "cpu"],
    );
    assert!(
        !o.status.success() && text(&o).contains("refusing (--strict)") && text(&o).contains("class `happiness`"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("out").exists());

    let o = run(
        Path::new(BIN),
        dir.path(),
        &["--descriptions", &d, "--out-root", "out", "--model-dir", m, "--json", "--device", "cpu"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("truncated to fit"));
    // The warning quotes an excerpt of the 2.5 KB description, not all of it.
    let warning = stderr.lines().find(|l| l.contains("truncated to fit")).unwrap();
    assert!(warning.contains("more characters)") && warning.len() < 600, "{warning}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["dim"], 384);
    assert_eq!(summary["truncated"], 1);
    let table = summary["prototype_cosine"].as_array().unwrap();
    assert_eq!(table.len(), 8);
    assert!((table[3][3].as_f64().unwrap() - 1.0).abs() < 1e-5);
}

/// A description set named like a path would become a folder outside the text root: it is refused, and the
/// folder it names survives.
#[test]
fn a_set_name_with_a_path_is_refused_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("a/b/c");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(dir.path().join("victim")).unwrap();
    std::fs::write(dir.path().join("victim/data.txt"), b"keep").unwrap();
    let p = work.join("d.toml");
    std::fs::write(&p, "default = \"../../../victim\"\n[sets.\"../../../victim\"]\ntemplate = \"a face of {class}\"\n")
        .unwrap();
    let args = ["--encoder", "random", "--dim", "8", "--descriptions", p.to_str().unwrap(), "--out-root", "out"];
    let o = run(Path::new(BIN), &work, &args);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("description set") && text(&o).contains("single plain"), "{}", text(&o));
    assert_eq!(std::fs::read(dir.path().join("victim/data.txt")).unwrap(), b"keep");
}

/// An output folder that another tool owns (no embed-text manifest) is never replaced.
#[test]
fn a_folder_embed_text_does_not_own_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = descriptions(dir.path(), "lip corners up");
    let foreign = dir.path().join("out/random/mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.md"), b"mine").unwrap();
    let args = ["--encoder", "random", "--dim", "16", "--descriptions", &d, "--out-root", "out", "--device", "cpu"];
    let o = run(Path::new(BIN), dir.path(), &args);
    assert!(!o.status.success() && text(&o).contains("leaves this one alone"), "{}", text(&o));
    assert_eq!(std::fs::read(foreign.join("notes.md")).unwrap(), b"mine");
}
