//! Using a trained run (through the real binary): `predict` on the test split reproduces the accuracy the run
//! recorded at its val-chosen epoch and skips unreadable files by name; `evaluate` scores another split with
//! fewer classes and writes the report audit reads; `export` writes TorchScript that gives the snapshot's
//! logits back.

use std::path::{Path, PathBuf};
use std::process::Command;

use exchange::parquet_io::{read_table, write_table};
use exchange::schema::evaluation::Evaluation;
use exchange::schema::metrics::MetricRow;
use exchange::schema::prediction::PredictionRow;
use exchange::schema::split::{Role, SplitRow};
use exchange::{keys, layout};
use test_support::tiny;
use train::data::batch::to_tensor;
use train::data::loader::{load_faces, Faces};
use train::snapshot::{Model, Snapshot};

fn presets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/train")
}

pub(crate) fn train_bin(root: &Path, args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_train")).current_dir(root).args(args).output().unwrap();
    o
}

pub(crate) fn ok(o: std::process::Output) -> String {
    let t = test_support::text(&o);
    assert!(o.status.success(), "failed:\n{t}");
    t
}

/// A tiny sitfer run under `root/runs/use`, 3 epochs.
pub(crate) fn trained(root: &Path) -> PathBuf {
    tiny::write(root, false).unwrap();
    trained_on(root, &layout::split_file(&root.join("splits"), tiny::SPLIT), "use")
}

/// A tiny sitfer run of `split` (a split file over the tiny shards) under `root/runs/<id>`, 3 epochs.
pub(crate) fn trained_on(root: &Path, split: &Path, id: &str) -> PathBuf {
    trained_with(root, split, id, &[])
}

/// [`trained_on`] with more `--set` values (another architecture, image size).
pub(crate) fn trained_with(root: &Path, split: &Path, id: &str, sets: &[&str]) -> PathBuf {
    let mut args: Vec<String> = ["run", "--split"].map(String::from).to_vec();
    args.push(split.display().to_string());
    for (k, v) in [
        ("--shards", layout::shard_dir(&root.join("shards"), tiny::DATASET).display().to_string()),
        ("--text-root", root.join("text").display().to_string()),
        ("--runs-root", root.join("runs").display().to_string()),
        ("--presets", presets().display().to_string()),
    ] {
        args.extend([k.to_string(), v]);
    }
    args.extend(["--preset", "sitfer", "--scale", "tiny", "--run-id", id, "--device", "cpu", "-q"].map(String::from));
    for s in [
        "model.image_size=16",
        "schedule.batch_labeled=8",
        "schedule.batch_unlabeled=8",
        "schedule.steps_per_epoch=4",
        "schedule.epochs=3",
        "method.selection.threshold=0.3",
        // What a snapshot must carry beyond the weights: the EMA average evaluation reads, fitted temperatures.
        "optim.ema=0.9",
        "method.levels.fit_temperatures=true",
    ]
    .iter()
    .chain(sets)
    {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(train_bin(root, &args));
    root.join("runs").join(id)
}

pub(crate) fn common(root: &Path, run: &Path) -> Vec<String> {
    let shards = layout::shard_dir(&root.join("shards"), tiny::DATASET);
    vec![
        "--run".into(),
        run.display().to_string(),
        "--device".into(),
        "cpu".into(),
        "--shards".into(),
        shards.display().to_string(),
    ]
}

#[test]
fn predict_evaluate_and_export_a_trained_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = trained(root);
    let split = layout::split_file(&root.join("splits"), tiny::SPLIT).display().to_string();

    // predict on the test role == the test accuracy the run recorded at its best val epoch.
    let metrics: Vec<MetricRow> = read_table(layout::run::metrics(&run)).unwrap();
    let at = |split: &str, e: u32| {
        metrics.iter().find(|r| r.metric == "acc_cls" && r.split == split && r.epoch == e).unwrap().value
    };
    let best = (1..=3).fold(1, |b, e| if at("val", e) > at("val", b) { e } else { b });
    let out = root.join("pred.parquet");
    let mut args = vec!["predict".to_string()];
    args.extend(common(root, &run));
    args.extend(["--split", &split, "--role", "test", "--levels", "--json", "--out"].map(String::from));
    args.push(out.display().to_string());
    let text = ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["epoch"], best, "{text}");
    let rows: Vec<PredictionRow> = read_table(&out).unwrap();
    assert_eq!(rows.len(), 24);
    let right = rows.iter().filter(|r| r.label.as_deref() == Some(r.predicted.as_str())).count();
    assert_eq!(right as f64 / 24.0, at("test", best), "predict reproduces the recorded test accuracy");
    assert!(rows.iter().all(|r| r.p_text.is_some() && r.p_ins.is_some() && r.p_fused.is_some()));

    // Files and folders; an unreadable file is named and skipped. CSV has one column per class.
    let imgs = root.join("imgs/sub");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::write(imgs.join("a.png"), tiny::png(2, 7)).unwrap();
    std::fs::write(imgs.join("broken.png"), b"not an image").unwrap();
    let csv = root.join("pred.csv");
    let o = train_bin(
        root,
        &[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--device",
            "cpu",
            root.join("imgs").to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    let text = ok(o);
    assert!(text.contains("broken.png") && text.contains("1 images (1 skipped)"), "{text}");
    let table = std::fs::read_to_string(&csv).unwrap();
    assert!(table.starts_with("id,predicted,confidence,label,p_neutral,p_happiness"), "{table}");
    assert_eq!(table.lines().count(), 2);

    // evaluate on a split without contempt: scored over 7 classes, the report beside the run.
    let test_rows: Vec<SplitRow> =
        read_table::<SplitRow>(&split).unwrap().into_iter().filter(|r| r.role == Role::Test).collect();
    let no_contempt: Vec<SplitRow> =
        test_rows.into_iter().filter(|r| r.id[1..].parse::<usize>().unwrap() % tiny::CLASSES != 7).collect();
    let split7 = root.join("splits/seven.parquet");
    let seven: Vec<&str> = exchange::labels::ALL[..7].iter().map(|e| e.name()).collect();
    write_table(&split7, &no_contempt, &[(keys::DATASET, tiny::DATASET.into()), (keys::CLASSES, seven.join(","))])
        .unwrap();
    let mut args = vec!["evaluate".to_string()];
    args.extend(common(root, &run));
    args.extend(["--split".to_string(), split7.display().to_string()]);
    let text = ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(text.contains("run classes the dataset lacks (left out of the argmax): contempt"), "{text}");
    let evals = Evaluation::read_all(&run).into_iter().collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(evals.len(), 1);
    let e = &evals[0];
    assert_eq!(
        (e.faces, e.classes.len(), e.split.as_str(), e.snapshot.as_str()),
        (no_contempt.len(), 7, "seven", "best")
    );
    assert_eq!(e.confusion.iter().flatten().sum::<u64>() as usize, e.faces);
    assert!((0.0..=1.0).contains(&e.ece));

    // Or a dataset's own partition, without a split file (the tiny shards are all partition `train`).
    let mut args = vec!["evaluate".to_string()];
    args.extend(common(root, &run));
    args.extend(["--dataset", tiny::DATASET, "--partition", "train", "--json"].map(String::from));
    let text = ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(text.contains("\"faces\": 160"), "{text}");
    assert!(
        text.contains("112 of these 160 faces are the run's own training faces (32 labeled, 80 unlabeled)"),
        "{text}"
    );
    assert_eq!(Evaluation::read_all(&run).into_iter().collect::<Result<Vec<_>, _>>().unwrap().len(), 2);

    // export: TorchScript logits equal the snapshot network's.
    let exported = root.join("exported");
    let mut args =
        vec!["export".to_string(), "--run".into(), run.display().to_string(), "--device".into(), "cpu".into()];
    args.extend(["--out".to_string(), exported.display().to_string()]);
    ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let model = Model::load(Snapshot::read(&run, "best").unwrap(), tch::Device::Cpu).unwrap();
    let faces = load_faces(
        &layout::shard_dir(&root.join("shards"), tiny::DATASET),
        &Faces::SplitRole(Path::new(&split), Role::Test),
        16,
        true,
    )
    .unwrap();
    let x = to_tensor(&faces.images, tch::Device::Cpu);
    let module = tch::CModule::load(exported.join("classifier.pt")).unwrap();
    let traced = tch::no_grad(|| module.forward_ts(&[&x])).unwrap();
    let want = tch::no_grad(|| model.net.forward(&x, false).z);
    let diff = f64::try_from((&traced - &want).abs().max()).unwrap();
    assert!(diff < 1e-5, "TorchScript logits differ by {diff}");
    let card = exchange::schema::model_card::ModelCard::read(&exported.join("model.json")).unwrap();
    assert_eq!((card.classes.len(), card.input.image_size, card.tensors.as_str()), (8, 16, "model.safetensors"));
    assert!(exported.join("model.safetensors").is_file());
}

#[test]
fn best_snapshot_is_refused_for_a_run_without_one_and_bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let o = train_bin(root, &["predict", "--run", "nope", "x.png", "--out", "p.parquet"]);
    assert!(!o.status.success());
    assert!(test_support::text(&o).contains("not a run folder"), "{}", test_support::text(&o));
    let o = train_bin(root, &["predict", "--run", "nope", "x.png", "--out", "p.txt"]);
    assert!(!o.status.success());
    assert!(test_support::text(&o).contains("expected a .parquet or .csv file"), "{}", test_support::text(&o));
    let o = train_bin(root, &["predict", "--run", "nope", "x.png", "--split", "s", "--out", "p.csv"]);
    assert!(!o.status.success());
    assert!(test_support::text(&o).contains("not both"), "{}", test_support::text(&o));
}
