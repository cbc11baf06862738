//! The ONNX golden test: for every shipped architecture, a tiny trained run's `train export --format onnx`
//! file, run by ONNX Runtime (reference/onnx_runtime.py, after onnx's full checker), gives the logits of
//! `train predict` on the same test faces to 1e-4 (up to a constant per face: predict stores probabilities);
//! and where the faces are resized, the script's own preprocessing gives the same predictions.

use std::path::Path;

use exchange::layout;
use exchange::parquet_io::read_table;
use exchange::schema::prediction::PredictionRow;
use exchange::schema::split::Role;
use tch::Tensor;
use test_support::tiny;
use train::data::batch::to_tensor;
use train::data::loader::{load_faces, Faces};

use crate::use_model::{common, ok, train_bin, trained_with};

/// `(run id, --set values)`: each backbone, ResNet-18 with both stems; dlib's trunk needs 31 px at least, so
/// its 16 px faces are resized (the script's resize is checked there), with the demo's classifier scale.
const ARCHITECTURES: [(&str, &[&str]); 4] = [
    ("small-cnn", &["model.arch=small-cnn", "model.width=8"]),
    ("resnet18-small", &["model.arch=resnet18", "model.stem=small", "model.width=8", "model.init=scratch"]),
    ("resnet18-imagenet", &["model.arch=resnet18", "model.stem=imagenet", "model.width=8", "model.init=scratch"]),
    (
        "dlib",
        &[
            "model.arch=dlib-resnet",
            "model.dlib_cut=128",
            "model.init=scratch",
            "model.image_size=32",
            "model.classifier_scale=16",
        ],
    ),
];

/// Logits up to a constant per face, from probabilities: `log p − mean log p`.
fn centred_log(p: &Tensor) -> Tensor {
    let l = p.log();
    &l - l.mean_dim([1i64].as_slice(), true, tch::Kind::Float)
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/onnx_runtime.py")
}

/// `train predict` on the split's test faces: their rows, in the order predict wrote them.
fn predict(root: &Path, run: &Path, split: &Path, out: &Path) -> Vec<PredictionRow> {
    let mut args = vec!["predict".to_string()];
    args.extend(common(root, run));
    args.extend(
        ["--split", split.to_str().unwrap(), "--role", "test", "--out", out.to_str().unwrap()].map(String::from),
    );
    ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    read_table(out).unwrap()
}

/// Exports both formats, then ONNX alone into the same folder: the earlier TorchScript file goes, as a
/// classifier the new card does not describe.
fn export_onnx(root: &Path, run: &Path, out: &Path) -> std::path::PathBuf {
    let both = ["export", "--run", run.to_str().unwrap(), "--out", out.to_str().unwrap()];
    ok(train_bin(root, &both));
    assert!(out.join("classifier.pt").is_file() && out.join("classifier.onnx").is_file());
    let text = ok(train_bin(root, &[&both[..], &["--format", "onnx"]].concat()));
    assert!(text.contains("classifier.onnx") && !out.join("classifier.pt").exists(), "{text}");
    out.join("classifier.onnx")
}

/// ONNX Runtime's logits for the test faces as the card preprocesses them (the loader's own decoding).
fn ort_logits(root: &Path, python: &Path, model: &Path, id: &str, split: &Path) -> (Vec<String>, Tensor) {
    let card = exchange::schema::model_card::ModelCard::read(&model.with_file_name("model.json")).unwrap();
    let shards = layout::shard_dir(&root.join("shards"), tiny::DATASET);
    let faces =
        load_faces(&shards, &Faces::SplitRole(split, Role::Test), card.input.image_size, card.input.grey).unwrap();
    let (input, logits) = (root.join(format!("{id}-input.npy")), root.join(format!("{id}-logits.npy")));
    to_tensor(&faces.images, tch::Device::Cpu).write_npy(&input).unwrap();
    let r = std::process::Command::new(python)
        .arg(script())
        .args(["logits", model.to_str().unwrap(), input.to_str().unwrap(), logits.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{id}: ONNX Runtime failed: {}", String::from_utf8_lossy(&r.stderr));
    (faces.ids, Tensor::read_npy(&logits).unwrap())
}

/// The script's `accuracy` mode: it decodes and resizes the faces itself, from the shards and the model's
/// metadata, and counts where its predictions differ from predict's table.
fn ort_accuracy(root: &Path, python: &Path, model: &Path, split: &Path, pred: &Path) -> serde_json::Value {
    let shards = layout::shard_dir(&root.join("shards"), tiny::DATASET);
    let r = std::process::Command::new(python)
        .arg(script())
        .args(["accuracy", model.to_str().unwrap(), shards.to_str().unwrap(), split.to_str().unwrap(), "test"])
        .arg(pred)
        .output()
        .unwrap();
    assert!(r.status.success(), "accuracy mode failed: {}", String::from_utf8_lossy(&r.stderr));
    serde_json::from_slice(&r.stdout).unwrap()
}

fn check(root: &Path, python: &Path, id: &str, sets: &[&str]) {
    let split = layout::split_file(&root.join("splits"), tiny::SPLIT);
    let run = trained_with(root, &split, id, sets);
    let pred = root.join(format!("{id}.parquet"));
    let rows = predict(root, &run, &split, &pred);
    let model = export_onnx(root, &run, &root.join(format!("{id}-export")));
    let (ids, z_ort) = ort_logits(root, python, &model, id, &split);

    assert_eq!(rows.iter().map(|r| &r.id).collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>(), "{id}");
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.p_sem.iter().copied()).collect();
    let p_predict = Tensor::from_slice(&flat).view([rows.len() as i64, -1]);
    assert_eq!(z_ort.size(), p_predict.size(), "{id}");
    let centred = &z_ort - z_ort.mean_dim([1i64].as_slice(), true, tch::Kind::Float);
    let diff = f64::try_from((centred - centred_log(&p_predict)).abs().max()).unwrap();
    assert!(diff < 1e-4, "{id}: ONNX Runtime's logits differ from train predict's by {diff}");
    // Not all faces alike: a constant network would pass the comparison above.
    let spread = f64::try_from(z_ort.std_dim([0i64].as_slice(), false, false).max()).unwrap();
    assert!(spread > 1e-3, "{id}: the logits hardly vary over the faces ({spread})");

    if sets.iter().any(|s| s.starts_with("model.image_size=")) {
        let scored = ort_accuracy(root, python, &model, &split, &pred);
        assert_eq!(scored["faces"], 24, "{scored}");
        assert_eq!(scored["predictions_differing"], 0, "{id}: {scored}");
        assert!(scored["max_abs_probability_difference"].as_f64().unwrap() < 1e-4, "{id}: {scored}");
    }
}

#[test]
fn onnx_runtime_gives_train_predicts_logits_for_every_architecture() {
    let Some(python) = test_support::reference_python() else {
        panic!("reference Python (.venv-torch) missing: run `make setup`")
    };
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), false).unwrap();
    for (id, sets) in ARCHITECTURES {
        check(dir.path(), &python, id, sets);
    }
}
