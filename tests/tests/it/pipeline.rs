//! The whole pipeline once, through the four stage binaries as a user runs them, in a scratch folder:
//! synthetic faces (a few hundred) → shards → split → `embed-text --encoder random` → `train --scale tiny` →
//! `audit --json`. After each stage it checks the contract with the next one: ids, class order, roles,
//! and that audit's replay of the fusion equals what train stored.

use std::collections::HashSet;
use std::path::Path;

use exchange::parquet_io::{file_metadata, read_table};
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::RunInfo;
use exchange::schema::shard::ShardIndexRow;
use exchange::schema::split::{Role, SplitRow};
use exchange::schema::text::PrototypeRow;
use exchange::{keys, layout};
use test_support::{repo_root, run, stage_bin, text};

fn ok(bin: &str, cwd: &Path, args: &[&str]) -> String {
    let out = run(&stage_bin(bin), cwd, args);
    assert!(out.status.success(), "{bin} {args:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first number under `key` anywhere in a JSON document.
fn find_number(v: &serde_json::Value, key: &str) -> Option<f64> {
    match v {
        serde_json::Value::Object(m) => {
            m.get(key).and_then(|x| x.as_f64()).or_else(|| m.values().find_map(|x| find_number(x, key)))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_number(x, key)),
        _ => None,
    }
}

#[test]
fn synthetic_faces_through_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let repo = repo_root();
    let splits_dir = repo.join(layout::SPLIT_CONFIGS).display().to_string();
    let presets = repo.join(layout::TRAIN_PRESETS).display().to_string();
    let descriptions = repo.join(layout::DESCRIPTIONS).display().to_string();
    let split_name = "synthetic_10pct";

    // shard: synthetic faces -> artifacts/shards/synthetic
    ok("shard", cwd, &["synthetic", "--train", "240", "--valid", "48", "--test", "48", "--size", "32", "--quiet"]);
    let shard_dir = layout::shard_dir(&cwd.join(layout::SHARDS_ROOT), "synthetic");
    let mut shard_ids = HashSet::new();
    for e in std::fs::read_dir(&shard_dir).unwrap().flatten() {
        if layout::is_shard_part(&e.file_name().to_string_lossy()) {
            assert_eq!(file_metadata(e.path()).unwrap()[keys::DATASET], "synthetic");
            shard_ids.extend(read_table::<ShardIndexRow>(e.path()).unwrap().into_iter().map(|r| r.id));
        }
    }
    // The FER+ majority protocol drops the faces whose votes have no majority: most are kept.
    assert!(shard_ids.len() > 300 && shard_ids.len() <= 240 + 48 + 48, "{} faces sharded", shard_ids.len());

    // split: names its dataset once (the TOML); every id is a shard id
    assert_eq!(
        ok("shard", cwd, &["prepare", split_name, "--splits-dir", &splits_dir, "--print-dataset"]).trim(),
        "synthetic"
    );
    ok("shard", cwd, &["split", split_name, "--splits-dir", &splits_dir]);
    let split_path = layout::split_file(&cwd.join(layout::SPLITS_ROOT), split_name);
    let split: Vec<SplitRow> = read_table(&split_path).unwrap();
    assert!(split.iter().all(|r| shard_ids.contains(&r.id)), "split ids come from the shards");
    let split_meta = file_metadata(&split_path).unwrap();
    assert_eq!(split_meta[keys::DATASET], "synthetic");
    let classes: Vec<String> = split_meta[keys::CLASSES].split(',').map(str::to_string).collect();
    let unlabeled: HashSet<String> = split.iter().filter(|r| r.role == Role::Unlabeled).map(|r| r.id.clone()).collect();
    assert!(!unlabeled.is_empty() && split.iter().any(|r| r.role == Role::Labeled));

    // embed-text: a prototype per class the split has
    ok("embed-text", cwd, &["--encoder", "random", "--set", "facs", "--descriptions", &descriptions, "--quiet"]);
    let protos: Vec<PrototypeRow> =
        read_table(layout::prototypes_file(&cwd.join(layout::TEXT_ROOT), "random", "facs")).unwrap();
    for c in &classes {
        assert!(protos.iter().any(|p| &p.class_name == c), "a prototype for {c}");
    }

    // train: the tiny scale of sitfer with the random prototypes
    ok(
        "train",
        cwd,
        &[
            "run",
            "--split",
            split_name,
            "--preset",
            "sitfer",
            "--scale",
            "tiny",
            "--presets",
            &presets,
            "--set",
            "text.encoder=random",
            "--set",
            "model.image_size=32",
            "--run-id",
            "e2e",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let run_dir = layout::run_dir(&cwd.join(layout::RUNS_ROOT), "e2e");
    let info = RunInfo::read(&run_dir).unwrap();
    assert_eq!(info.classes, classes, "the run's class order is the split's");
    assert_eq!(info.dataset, "synthetic");
    let (epoch_files, _): (Vec<_>, Vec<_>) = std::fs::read_dir(layout::run::pseudo_labels(&run_dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .partition(|p| p.file_name().and_then(|n| n.to_str()).and_then(layout::run::pseudo_label_epoch).is_some());
    assert_eq!(epoch_files.len(), 2, "one pseudo-label file per epoch of the tiny scale");
    for f in &epoch_files {
        let rows: Vec<PseudoLabelRow> = read_table(f).unwrap();
        let ids: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, unlabeled, "{}: pseudo-labels cover exactly the unlabeled faces", f.display());
        assert_eq!(file_metadata(f).unwrap()[keys::CLASSES].split(',').collect::<Vec<_>>(), classes);
        assert!(rows.iter().all(|r| r.p_fused.len() == classes.len()));
    }
    assert!(layout::run::metrics(&run_dir).is_file() && layout::run::latest_checkpoint(&run_dir).is_file());

    // audit: reads it all back; its replay of the fusion matches what train stored
    let json: serde_json::Value = serde_json::from_str(&ok("audit", cwd, &["e2e", "--json", "--no-html"])).unwrap();
    assert_eq!(json["run"], "e2e");
    let audit_classes: Vec<String> = serde_json::from_value(json["classes"].clone()).unwrap();
    assert_eq!(audit_classes, classes);
    let diff = find_number(&json, "stored_fusion_max_diff").expect("audit reports the stored-vs-replayed difference");
    assert!(diff < 1e-5, "audit's replayed fusion differs from train's stored one by {diff}");
    assert!(cwd.join(layout::REPORTS_ROOT).join("e2e").join(layout::report::SUMMARY_JSON).is_file());

    // The page: learning curves from train's metrics, and the gallery's faces embedded from the shards.
    let json: serde_json::Value = serde_json::from_str(&ok("audit", cwd, &["e2e", "--json"])).unwrap();
    let faces: usize = ["per_class", "pairs"]
        .iter()
        .flat_map(|k| json["gallery"][*k].as_array().cloned().unwrap_or_default())
        .map(|g| ["wrong", "right", "faces"].iter().map(|f| g[*f].as_array().map_or(0, Vec::len)).sum::<usize>())
        .sum();
    let page = std::fs::read_to_string(cwd.join(layout::REPORTS_ROOT).join("e2e").join("index.html")).unwrap();
    assert!(page.contains("id=\"curves\"") && page.contains("id=\"faces\""), "curves and faces on the page");
    assert!(json["gallery"]["per_class"].as_array().is_some_and(|c| c.len() == classes.len()));
    assert_eq!(page.matches("<img src=\"data:image/png;base64,").count(), faces, "every face's shard image embedded");
}
