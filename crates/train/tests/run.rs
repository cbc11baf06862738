//! Tiny end-to-end trainings (16 px faces, a few steps) on data this test writes: every preset runs and
//! writes checkpoints, metrics and pseudo-labels in the contract schemas; a resumed run's losses equal an
//! uninterrupted run's; a NaN loss stops the run and keeps the last good checkpoint; scrambling the labels of
//! unlabeled samples in the shards changes nothing.

use std::path::{Path, PathBuf};

use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::RunInfo;
use exchange::schema::shard::ShardRow;
use exchange::schema::split::{Role, SplitRow};
use exchange::schema::text::PrototypeRow;
use exchange::schema::CLASSES_KEY;
use tch::Device;
use train::config::{resolve, Config};
use train::run::{load_data, train, write_run_info, RunSpec};

const CLASSES: usize = 8;

fn png(class: usize, i: usize) -> Vec<u8> {
    // Class decides the brightness of a square's position; i adds texture.
    let img = image::GrayImage::from_fn(16, 16, |x, y| {
        let inside = (x as usize / 4 + y as usize / 8 * 4) == class;
        image::Luma([if inside { 220 } else { 40 + ((x as usize * 7 + y as usize * 3 + i) % 30) as u8 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// Shards, split and text prototypes under `root`; `scramble` relabels every unlabeled row.
fn write_data(root: &Path, scramble: bool) {
    let mut shards = Vec::new();
    let mut split = Vec::new();
    for i in 0..160 {
        let class = i % CLASSES;
        let role = match i {
            0..=31 => Role::Labeled,
            32..=111 => Role::Unlabeled,
            112..=135 => Role::Val,
            _ => Role::Test,
        };
        let label = if scramble && role == Role::Unlabeled { (class * 5 + 3) % CLASSES } else { class };
        let id = format!("t{i:04}");
        shards.push(ShardRow {
            id: id.clone(),
            dataset: "tiny".into(),
            split: "train".into(),
            label: Some(label as u8),
            votes: None,
            image: png(class, i),
            height: 16,
            width: 16,
            channels: 1,
            source_path: String::new(),
        });
        split.push(SplitRow { id, role });
    }
    std::fs::create_dir_all(root.join("shards")).unwrap();
    write_table(root.join("shards/part-00000.parquet"), &shards, &[]).unwrap();
    let names: Vec<&str> = exchange::labels::ALL.iter().map(|e| e.name()).collect();
    write_table(
        root.join("split.parquet"),
        &split,
        &[(CLASSES_KEY, names.join(",")), ("sitfer.dataset", "tiny".into())],
    )
    .unwrap();
    for (enc, set, dim) in [("minilm", "facs", 12usize), ("random", "template", 512)] {
        let protos: Vec<PrototypeRow> = (0..CLASSES)
            .map(|c| {
                let mut v = vec![0.0f32; dim];
                v[c] = 1.0;
                PrototypeRow { class: c as u8, class_name: names[c].into(), n_descriptions: 1, vector: v }
            })
            .collect();
        let d = root.join("text").join(enc).join(set);
        std::fs::create_dir_all(&d).unwrap();
        write_table(d.join("prototypes.parquet"), &protos, &[]).unwrap();
    }
}

fn presets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/train")
}

fn config(preset: &str, extra: &[&str]) -> Config {
    let mut sets = vec![
        "model.image_size=16".to_string(),
        "schedule.batch_labeled=8".into(),
        "schedule.batch_unlabeled=8".into(),
        "schedule.steps_per_epoch=3".into(),
        "schedule.epochs=2".into(),
        "method.threshold=0.3".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    resolve(&presets(), preset, "tiny", &sets).unwrap()
}

fn spec(root: &Path, run: &str, resume: bool, stop_after: Option<u64>) -> RunSpec {
    RunSpec {
        split: root.join("split.parquet"),
        shards: root.join("shards"),
        text_root: root.join("text"),
        run_dir: root.join("runs").join(run),
        resume,
        device: Device::Cpu,
        quiet: true,
        stop_after,
    }
}

/// libtorch's random generator is process-global: trainings in parallel test threads would interleave their
/// draws, so the runs of this file take turns.
static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn go(root: &Path, run: &str, cfg: &Config, resume: bool, stop_after: Option<u64>) -> anyhow::Result<Vec<f64>> {
    let _turn = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let s = spec(root, run, resume, stop_after);
    std::fs::create_dir_all(&s.run_dir).unwrap();
    let data = load_data(&s, cfg)?;
    if !resume {
        write_run_info(&s, cfg, &data, "tiny")?;
    }
    Ok(train(&s, cfg, &data)?.0)
}

#[test]
fn every_preset_runs_and_writes_contract_files() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    for preset in ["supervised", "fixmatch", "sitfer", "sitfer-official", "sitfer-no-text", "sitfer-no-instance"] {
        let cfg = config(preset, &[]);
        let losses = go(dir.path(), preset, &cfg, false, None).unwrap_or_else(|e| panic!("{preset}: {e:#}"));
        assert_eq!(losses.len(), 6, "{preset}");
        assert!(losses.iter().all(|l| l.is_finite()));
        let run = dir.path().join("runs").join(preset);
        let info = RunInfo::read(&run).unwrap();
        assert_eq!((info.preset.as_str(), info.classes.len()), (preset, CLASSES));
        let metrics: Vec<MetricRow> = read_table(run.join("metrics.parquet")).unwrap();
        for m in ["acc_cls", "acc_fused", "balanced_acc_cls", "confusion_cls", "loss", "mask_rate"] {
            assert!(metrics.iter().any(|r| r.metric == m && r.epoch == 2), "{preset}: metric {m}");
        }
        let pl: Vec<PseudoLabelRow> = read_table(run.join("pseudo_labels/epoch-0002.parquet")).unwrap();
        assert_eq!(pl.len(), 80, "{preset}: every unlabeled sample swept");
        assert_eq!(pl[0].p_text.is_some(), cfg.method.text, "{preset}");
        assert_eq!(pl[0].p_ins.is_some(), cfg.method.instance, "{preset}");
        assert!(run.join("checkpoints/latest.json").is_file());
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config("sitfer", &[]);
    let whole = go(dir.path(), "whole", &cfg, false, None).unwrap();
    let first = go(dir.path(), "split", &cfg, false, Some(4)).unwrap();
    assert_eq!(first.len(), 4);
    let rest = go(dir.path(), "split", &cfg, true, None).unwrap();
    let joined: Vec<f64> = first.into_iter().chain(rest).collect();
    assert_eq!(joined, whole, "losses of the interrupted-and-resumed run equal the uninterrupted run's");
    let a: Vec<PseudoLabelRow> = read_table(dir.path().join("runs/whole/pseudo_labels/epoch-0002.parquet")).unwrap();
    let b: Vec<PseudoLabelRow> = read_table(dir.path().join("runs/split/pseudo_labels/epoch-0002.parquet")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config("sitfer", &[]);
    go(dir.path(), "n", &cfg, false, Some(3)).unwrap();
    let before = std::fs::read(dir.path().join("runs/n/checkpoints/latest.json")).unwrap();
    let mut bad = cfg.clone();
    bad.method.loss_scale = f64::NAN;
    let err = go(dir.path(), "n", &bad, true, None).unwrap_err().to_string();
    assert!(err.contains("loss became NaN at step 3") && err.contains("last good checkpoint"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("runs/n/checkpoints/latest.json")).unwrap(), before);
}

#[test]
fn scrambled_unlabeled_labels_change_nothing() {
    let clean = tempfile::tempdir().unwrap();
    let scrambled = tempfile::tempdir().unwrap();
    write_data(clean.path(), false);
    write_data(scrambled.path(), true);
    let cfg = config("sitfer", &[]);
    let a = go(clean.path(), "r", &cfg, false, None).unwrap();
    let b = go(scrambled.path(), "r", &cfg, false, None).unwrap();
    assert_eq!(a, b, "training never sees unlabeled labels");
    let pa: Vec<PseudoLabelRow> = read_table(clean.path().join("runs/r/pseudo_labels/epoch-0002.parquet")).unwrap();
    let pb: Vec<PseudoLabelRow> = read_table(scrambled.path().join("runs/r/pseudo_labels/epoch-0002.parquet")).unwrap();
    assert_eq!(pa, pb);
}
