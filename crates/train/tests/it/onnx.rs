//! The ONNX golden test: for every shipped architecture, a tiny trained run's `train export --format onnx`
//! file, run by ONNX Runtime (reference/onnx_runtime.py, after onnx's full checker), gives the logits of
//! `train predict` on the same test faces to 1e-4.

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

/// `(run id, --set values)`: each backbone, ResNet-18 with both stems; dlib's trunk needs 31 px at least.
const ARCHITECTURES: [(&str, &[&str]); 4] = [
    ("small-cnn", &["model.arch=small-cnn", "model.width=8"]),
    ("resnet18-small", &["model.arch=resnet18", "model.stem=small", "model.width=8", "model.init=scratch"]),
    ("resnet18-imagenet", &["model.arch=resnet18", "model.stem=imagenet", "model.width=8", "model.init=scratch"]),
    ("dlib", &["model.arch=dlib-resnet", "model.dlib_cut=128", "model.init=scratch", "model.image_size=32"]),
];

/// Logits up to a constant per face, from probabilities: `log p − mean log p`.
fn centred_log(p: &Tensor) -> Tensor {
    let l = p.log();
    &l - l.mean_dim([1i64].as_slice(), true, tch::Kind::Float)
}

fn check(root: &Path, python: &Path, id: &str, sets: &[&str]) {
    let split = layout::split_file(&root.join("splits"), tiny::SPLIT);
    let run = trained_with(root, &split, id, sets);
    let pred = root.join(format!("{id}.parquet"));
    let mut args = vec!["predict".to_string()];
    args.extend(common(root, &run));
    args.extend(
        ["--split", split.to_str().unwrap(), "--role", "test", "--out", pred.to_str().unwrap()].map(String::from),
    );
    ok(train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let out = root.join(format!("{id}-export"));
    let export = ["export", "--run", run.to_str().unwrap(), "--format", "onnx", "--out", out.to_str().unwrap()];
    let text = ok(train_bin(root, &export));
    assert!(text.contains("classifier.onnx") && !out.join("classifier.pt").exists(), "{text}");

    // The faces as the card preprocesses them, in predict's order, for ONNX Runtime.
    let card = exchange::schema::model_card::ModelCard::read(&out.join("model.json")).unwrap();
    let shards = layout::shard_dir(&root.join("shards"), tiny::DATASET);
    let faces =
        load_faces(&shards, &Faces::SplitRole(&split, Role::Test), card.input.image_size, card.input.grey).unwrap();
    let (input, logits) = (root.join(format!("{id}-input.npy")), root.join(format!("{id}-logits.npy")));
    to_tensor(&faces.images, tch::Device::Cpu).write_npy(&input).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/onnx_runtime.py");
    let r = std::process::Command::new(python)
        .arg(script)
        .args(["logits", out.join("classifier.onnx").to_str().unwrap(), input.to_str().unwrap()])
        .arg(&logits)
        .output()
        .unwrap();
    assert!(r.status.success(), "{id}: ONNX Runtime failed: {}", String::from_utf8_lossy(&r.stderr));

    let rows: Vec<PredictionRow> = read_table(&pred).unwrap();
    assert_eq!(rows.iter().map(|r| &r.id).collect::<Vec<_>>(), faces.ids.iter().collect::<Vec<_>>(), "{id}");
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.p_sem.iter().copied()).collect();
    let p_predict = Tensor::from_slice(&flat).view([rows.len() as i64, -1]);
    let z_ort = Tensor::read_npy(&logits).unwrap();
    assert_eq!(z_ort.size(), p_predict.size(), "{id}");
    let centred = &z_ort - z_ort.mean_dim([1i64].as_slice(), true, tch::Kind::Float);
    let diff = f64::try_from((centred - centred_log(&p_predict)).abs().max()).unwrap();
    assert!(diff < 1e-4, "{id}: ONNX Runtime's logits differ from train predict's by {diff}");
    // Not all faces alike: a constant network would pass the comparison above.
    let spread = f64::try_from(z_ort.std_dim([0i64].as_slice(), false, false).max()).unwrap();
    assert!(spread > 1e-3, "{id}: the logits hardly vary over the faces ({spread})");
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
