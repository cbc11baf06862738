//! Tiny end-to-end trainings (16 px faces, a few steps) on data this test writes: every preset runs and
//! writes checkpoints, metrics and pseudo-labels in the contract schemas; a resumed run's losses equal an
//! uninterrupted run's; a NaN loss stops the run and keeps the last good checkpoint; scrambling the labels of
//! unlabeled samples in the shards changes nothing.

use std::path::{Path, PathBuf};

use exchange::layout;
use exchange::parquet_io::{read_table, write_table};
use exchange::schema::metrics::MetricRow;
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::RunInfo;
use tch::Device;
use test_support::tiny;
use train::config::{resolve, Config};
use train::run::{load_data, train, write_run_info, RunSpec};

pub(crate) fn write_data(root: &Path, scramble: bool) {
    test_support::tiny::write(root, scramble).unwrap();
}

fn split_file(root: &Path) -> PathBuf {
    layout::split_file(&root.join("splits"), tiny::SPLIT)
}

fn shard_dir(root: &Path) -> PathBuf {
    layout::shard_dir(&root.join("shards"), tiny::DATASET)
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
        "method.selection.threshold=0.3".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    resolve(&presets(), preset, "tiny", &sets).unwrap()
}

fn spec(root: &Path, run: &str, resume: bool, stop_after: Option<u64>) -> RunSpec {
    RunSpec {
        split: split_file(root),
        shards: shard_dir(root),
        text_root: root.join("text"),
        run_dir: root.join("runs").join(run),
        resume,
        device: Device::Cpu,
        quiet: true,
        stop_after,
        dist: None,
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
        write_run_info(&s, cfg, &data, "tiny", &[Device::Cpu])?;
    }
    Ok(train(&s, cfg, &data)?.losses)
}

#[test]
fn every_preset_runs_and_writes_contract_files() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    // Every preset in the folder, so a new one cannot ship untried.
    let folder = presets();
    let mut presets: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
        .collect();
    presets.sort();
    for p in ["fixmatch-0.75", "sitfer-novote", "sitfer-placebo", "sitfer", "supervised"] {
        assert!(presets.iter().any(|q| q == p), "preset {p} missing from {}", folder.display());
    }
    let presets: Vec<&str> = presets.iter().map(String::as_str).collect();
    // The demo's backbone too: its 32-d feature needs the text projection and a 32-d memory bank.
    let small_cnn: &[&str] = &["model.arch=small-cnn", "model.width=8"];
    let runs = presets.iter().map(|p| (*p, *p, &[][..])).chain([("sitfer", "sitfer-small-cnn", small_cnn)]);
    for (preset, name, extra) in runs {
        let cfg = config(preset, extra);
        let losses = go(dir.path(), name, &cfg, false, None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(losses.len(), 6, "{preset}");
        assert!(losses.iter().all(|l| l.is_finite()));
        let run = dir.path().join("runs").join(name);
        let info = RunInfo::read(&run).unwrap();
        assert_eq!((info.preset.as_str(), info.classes.len()), (preset, tiny::CLASSES));
        let metrics: Vec<MetricRow> = read_table(layout::run::metrics(&run)).unwrap();
        for m in
            ["acc_cls", "acc_fused", "balanced_acc_cls", "confusion_cls", "loss", "mask_rate", "input_wait_fraction"]
        {
            assert!(metrics.iter().any(|r| r.metric == m && r.epoch == 2), "{preset}: metric {m}");
        }
        // The reported parts add up to the reported total (each an average of the same steps).
        let get = |m: &str| metrics.iter().find(|r| r.metric == m && r.epoch == 2 && r.split == "train").unwrap().value;
        let me = &cfg.method.losses;
        let parts = cfg.method.released_code.loss_scale
            * (get("loss_s")
                + me.lambda_text * get("loss_t")
                + me.lambda_unlabeled * get("loss_u")
                + me.lambda_contrastive * get("loss_con"));
        assert!((parts - get("loss")).abs() < 1e-4, "{preset}: parts {parts} vs loss {}", get("loss"));
        if cfg.method.levels.text {
            assert!(get("loss_t") > 0.0, "{preset}");
        }
        let pl: Vec<PseudoLabelRow> = read_table(run.join("pseudo_labels/epoch-0002.parquet")).unwrap();
        assert_eq!(pl.len(), 80, "{preset}: every unlabeled sample swept");
        assert_eq!(pl[0].p_text.is_some(), cfg.method.levels.text, "{preset}");
        assert_eq!(pl[0].p_ins.is_some(), cfg.method.levels.instance, "{preset}");
        assert!(layout::run::latest_checkpoint(&run).is_file());
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    // EMA on, so its shadow weights must survive the checkpoint too (val/test use them).
    let cfg = config("sitfer", &["optim.ema=0.9"]);
    let whole = go(dir.path(), "whole", &cfg, false, None).unwrap();
    let first = go(dir.path(), "split", &cfg, false, Some(4)).unwrap();
    assert_eq!(first.len(), 4);
    let rest = go(dir.path(), "split", &cfg, true, None).unwrap();
    let joined: Vec<f64> = first.into_iter().chain(rest).collect();
    assert_eq!(joined, whole, "losses of the interrupted-and-resumed run equal the uninterrupted run's");
    let a: Vec<PseudoLabelRow> = read_table(dir.path().join("runs/whole/pseudo_labels/epoch-0002.parquet")).unwrap();
    let b: Vec<PseudoLabelRow> = read_table(dir.path().join("runs/split/pseudo_labels/epoch-0002.parquet")).unwrap();
    assert_eq!(a, b);
    let ma: Vec<MetricRow> = read_table(dir.path().join("runs/whole/metrics.parquet")).unwrap();
    let mb: Vec<MetricRow> = read_table(dir.path().join("runs/split/metrics.parquet")).unwrap();
    let acc = |m: &[MetricRow]| -> Vec<f64> {
        m.iter().filter(|r| r.metric == "acc_cls" && r.class.is_none()).map(|r| r.value).collect()
    };
    assert_eq!(acc(&ma), acc(&mb), "EMA evaluation equal after resume");
}

/// A checkpoint older than the run's records (it stopped after writing epoch 2's metrics and pseudo-labels,
/// before epoch 2's checkpoint: a full disk, a SIGKILL): the resumed run retrains epoch 2 and records it once.
#[test]
fn resume_forgets_records_past_the_checkpoint() {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_data(root, false);
    let cfg = config("sitfer", &[]);
    go(root, "r", &cfg, false, Some(3)).unwrap();
    let checkpoints = root.join("runs/r/checkpoints");
    copy_dir(&checkpoints, &root.join("saved"));
    go(root, "r", &cfg, true, None).unwrap();
    std::fs::remove_dir_all(&checkpoints).unwrap();
    copy_dir(&root.join("saved"), &checkpoints);
    go(root, "r", &cfg, true, None).unwrap();
    let m: Vec<MetricRow> = read_table(root.join("runs/r/metrics.parquet")).unwrap();
    let epochs: Vec<u32> =
        m.iter().filter(|r| r.metric == "acc_cls" && r.split == "val" && r.class.is_none()).map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2], "each epoch evaluated once");
    let lr: Vec<u32> = m.iter().filter(|r| r.metric == "lr").map(|r| r.epoch).collect();
    assert_eq!(lr, vec![1, 2]);
}

/// bf16 autocast on the CPU with channels-last weights: the run checkpoints (weights written in the standard
/// layout), resumes to the same losses, and its first loss is the fp32 run's up to bf16 rounding.
#[test]
fn bf16_channels_last_runs_checkpoint_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let fp32 = go(dir.path(), "fp32", &config("sitfer", &[]), false, None).unwrap();
    // bf16 is emulated, and slow, on CPUs without AVX-512 BF16: one epoch of four steps, split after two.
    let short = ["schedule.epochs=1", "schedule.steps_per_epoch=4"];
    let cfg = config(
        "sitfer",
        &[&short[..], &["run.precision=\"bf16\"", "run.channels_last=true", "optim.ema=0.9"]].concat(),
    );
    let whole = go(dir.path(), "whole", &cfg, false, None).unwrap();
    let first = go(dir.path(), "split", &cfg, false, Some(2)).unwrap();
    let rest = go(dir.path(), "split", &cfg, true, None).unwrap();
    assert_eq!(first.into_iter().chain(rest).collect::<Vec<_>>(), whole);
    assert!(whole.iter().all(|l| l.is_finite()));
    let rel = (whole[0] - fp32[0]).abs() / fp32[0];
    assert!(rel > 0.0 && rel < 0.05, "first loss bf16 {} vs fp32 {} (relative {rel})", whole[0], fp32[0]);
}

/// Trains `cfg` uninterrupted (run "whole") and stopped after step 4 then resumed (run "split"); the losses
/// agree step for step. Returns them.
fn resumes_exactly(dir: &Path, cfg: &Config) -> Vec<f64> {
    let whole = go(dir, "whole", cfg, false, None).unwrap();
    let first = go(dir, "split", cfg, false, Some(4)).unwrap();
    let rest = go(dir, "split", cfg, true, None).unwrap();
    assert_eq!(first.into_iter().chain(rest).collect::<Vec<_>>(), whole);
    whole
}

/// The "whole" and "split" runs' sweeps of `epoch` hold the same rows; returns them.
fn same_sweeps(dir: &Path, epoch: u32) -> Vec<PseudoLabelRow> {
    let read = |run: &str| -> Vec<PseudoLabelRow> {
        read_table(dir.join(format!("runs/{run}/pseudo_labels/epoch-{epoch:04}.parquet"))).unwrap()
    };
    let whole = read("whole");
    assert_eq!(whole, read("split"));
    whole
}

/// The levels issue's options together — kNN instance vote, temperatures fitted on val, FreeMatch's threshold,
/// the released code's L_u mean and separate forwards, dropout on — survive a stop mid-epoch 2: the fitted τs
/// and the threshold averages come back from the checkpoint, and the run is recorded where audit reads it.
#[test]
fn fitted_temperatures_and_adaptive_thresholds_resume_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config(
        "sitfer",
        &[
            "method.levels.instance_rule={ knn = 5 }",
            "method.levels.fit_temperatures=true",
            "method.selection.rule=self-adaptive",
            "method.selection.sat_momentum=0.5",
            "method.released_code.unlabeled_mean=selected",
            "method.released_code.separate_forwards=true",
            "model.dropout=0.5",
        ],
    );
    resumes_exactly(dir.path(), &cfg);
    let run = dir.path().join("runs/whole");
    let metrics: Vec<MetricRow> = read_table(layout::run::metrics(&run)).unwrap();
    for epoch in [1, 2] {
        for m in ["tau_text", "tau_ins"] {
            let v = metrics.iter().find(|r| r.metric == m && r.epoch == epoch).unwrap_or_else(|| panic!("{m}")).value;
            assert!((1e-3..=10.0).contains(&v), "{m} = {v}");
        }
        let thresholds = metrics.iter().filter(|r| r.metric == "class_threshold" && r.epoch == epoch).count();
        assert_eq!(thresholds, tiny::CLASSES);
    }
    let file = run.join("pseudo_labels/epoch-0002.parquet");
    let meta = exchange::parquet_io::check_table::<PseudoLabelRow>(&file, &[]).unwrap();
    let listed = meta.get(exchange::keys::CLASS_THRESHOLDS).expect("per-class thresholds recorded");
    assert_eq!(listed.split(',').count(), tiny::CLASSES);
    let fusion: exchange::fusion::Fusion = serde_json::from_str(&meta[exchange::keys::FUSION]).unwrap();
    let tau = metrics.iter().find(|r| r.metric == "tau_ins" && r.epoch == 2).unwrap().value;
    assert_eq!(fusion.tau_ins, tau as f32, "the sweep used the fitted τ_i");
    same_sweeps(dir.path(), 2);
}

/// The selection without a veto — FlexMatch's per-face curriculum record and the alignment's running average —
/// survives a stop mid-epoch 2 (both come back from the checkpoint), and the sweep records the bars and the
/// alignment's factors beside aligned fused distributions.
#[test]
fn curriculum_thresholds_and_alignment_resume_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config("sitfer-flex", &["method.selection.alignment_momentum=0.5"]);
    resumes_exactly(dir.path(), &cfg);
    let run = dir.path().join("runs/whole");
    let metrics: Vec<MetricRow> = read_table(layout::run::metrics(&run)).unwrap();
    let bars: Vec<f64> =
        metrics.iter().filter(|r| r.metric == "class_threshold" && r.epoch == 2).map(|r| r.value).collect();
    assert_eq!(bars.len(), tiny::CLASSES);
    assert!(bars.iter().all(|b| (0.0..=0.75).contains(b)), "curriculum bars lie in [0, τ]: {bars:?}");
    let file = run.join("pseudo_labels/epoch-0002.parquet");
    let meta = exchange::parquet_io::check_table::<PseudoLabelRow>(&file, &[]).unwrap();
    let factors: Vec<f32> = meta[exchange::keys::ALIGNMENT_FACTORS].split(',').map(|f| f.parse().unwrap()).collect();
    assert_eq!(factors.len(), tiny::CLASSES);
    assert!(factors.iter().all(|f| f.is_finite() && *f > 0.0), "{factors:?}");
    for r in &same_sweeps(dir.path(), 2) {
        let sum: f32 = r.p_fused.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "aligned rows stay distributions: {sum}");
    }
}

/// The transductive level: with a sweep every epoch, epoch 1's propagation serves epoch 2's steps, survives a
/// stop mid-epoch 2 (the distributions come back from the checkpoint), and the sweep files hold the propagated
/// distributions as the instance level, every face swept.
#[test]
fn propagated_instance_level_resumes_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg =
        config("sitfer-lp", &["run.pseudo_labels_every=1", "run.sweep_subset=10", "method.levels.propagation.k=5"]);
    let whole = resumes_exactly(dir.path(), &cfg);
    let bank = go(dir.path(), "bank", &config("sitfer", &["run.pseudo_labels_every=1"]), false, None).unwrap();
    assert_eq!(bank[..3], whole[..3], "the bank votes until the first propagation");
    assert_ne!(bank[3..], whole[3..], "epoch 2 trains on the propagated level");
    for epoch in [1, 2] {
        let file = dir.path().join(format!("runs/whole/pseudo_labels/epoch-{epoch:04}.parquet"));
        let rows: Vec<PseudoLabelRow> = read_table(&file).unwrap();
        assert_eq!(rows.len(), 80, "epoch {epoch}: propagation sweeps every face, whatever run.sweep_subset says");
        let p = rows[0].p_ins.as_ref().unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
    }
    same_sweeps(dir.path(), 2);
}

/// FER+'s probability protocol: refused by face id where the shards have no votes; with votes that are all
/// for the majority label it trains exactly as the majority targets do; with split votes it trains otherwise.
#[test]
fn vote_targets_need_votes_and_reduce_to_majority_on_unanimous_ones() {
    use exchange::schema::shard::ShardRow;
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let votes = config("supervised", &["method.losses.label_targets=votes"]);
    let e = go(dir.path(), "none", &votes, false, None).unwrap_err().to_string();
    assert!(e.contains("labeled face t0000 has no annotator votes"), "{e}");

    let part = shard_dir(dir.path()).join(layout::shard_part(0));
    let rewrite = |second: i32| {
        let mut rows: Vec<ShardRow> = read_table(&part).unwrap();
        for r in &mut rows {
            let mut v = vec![0i32; 10];
            let label = r.label.unwrap() as usize;
            v[label] = 10 - second;
            v[(label + 1) % tiny::CLASSES] += second;
            v[8] = 2; // "unknown" votes are not a class of the run: ignored
            r.votes = Some(v);
        }
        let meta = [(exchange::keys::DATASET, tiny::DATASET.to_string())];
        write_table(&part, &rows, &meta).unwrap();
    };
    rewrite(0);
    let majority = go(dir.path(), "majority", &config("supervised", &[]), false, None).unwrap();
    let unanimous = go(dir.path(), "unanimous", &votes, false, None).unwrap();
    assert_eq!(majority.len(), unanimous.len());
    for (a, b) in majority.iter().zip(&unanimous) {
        assert!((a - b).abs() < 1e-5, "{majority:?} vs {unanimous:?}");
    }
    rewrite(4);
    let split = go(dir.path(), "split-votes", &votes, false, None).unwrap();
    assert!(split.iter().all(|l| l.is_finite()) && (split[0] - majority[0]).abs() > 1e-3, "{split:?}");
}

#[test]
fn init_loads_by_name_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    go(dir.path(), "donor", &config("supervised", &[]), false, None).unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/donor/checkpoints/latest.json")).unwrap())
            .unwrap();
    let ckpt = dir.path().join("runs/donor/checkpoints").join(state["tensors"].as_str().unwrap());
    // sitfer has a text projection the supervised donor lacks: reported missing, the rest loaded
    let cfg = config("sitfer", &[&format!("model.init=\"{}\"", ckpt.display())]);
    go(dir.path(), "init", &cfg, false, Some(1)).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/init/init.json")).unwrap()).unwrap();
    let names = |k: &str| -> Vec<String> {
        report[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    assert!(names("loaded").contains(&"layer3.1.conv2.weight".to_string()));
    assert_eq!(names("missing"), vec!["text_proj.bias".to_string(), "text_proj.weight".to_string()]);
    assert!(names("unexpected").iter().any(|n| n.starts_with("optim.m.")), "optimiser state is not model weights");
    let bad = config("sitfer", &["model.init=\"/nonexistent/w.safetensors\""]);
    let e = go(dir.path(), "init-bad", &bad, false, None).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/w.safetensors"), "{e}");
}

/// `model.init = "dlib"` through a real run: the cut trunk loads 21 of dlib's 29 layers, its batch norms are
/// calibrated on the training faces (eval function unchanged up to rounding), a trunk at
/// `backbone_lr_scale = 0` keeps dlib's weights and one at the default scale moves.
#[test]
fn dlib_init_loads_calibrates_and_fine_tunes() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let sets = [
        "model.arch=dlib-resnet",
        "model.init=dlib",
        "model.dlib_cut=128",
        "model.image_size=48",
        "model.calibration_images=12",
        "optim.backbone_lr_scale=0",
    ];
    let cfg = config("sitfer", &sets);
    go(dir.path(), "dlib", &cfg, false, Some(2)).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/dlib/init.json")).unwrap()).unwrap();
    assert_eq!(report["layers_loaded"], 21, "{report}");
    assert_eq!(report["calibration_images"], 12, "{report}");
    assert!(report["calibration_max_abs_change"].as_f64().unwrap() < 1e-3, "{report}");
    let ckpt = |run: &str| -> std::collections::HashMap<String, tch::Tensor> {
        let run = dir.path().join("runs").join(run).join("checkpoints");
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("latest.json")).unwrap()).unwrap();
        tch::Tensor::read_safetensors(run.join(state["tensors"].as_str().unwrap())).unwrap().into_iter().collect()
    };
    let st =
        train::model::dlib::convert::cached_safetensors(&train::model::dlib::convert::dat_path().unwrap()).unwrap();
    let dlib: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(st).unwrap().into_iter().collect();
    let frozen = ckpt("dlib");
    let w = "layer2.0.1.conv.weight";
    assert!(frozen[&format!("model.{w}")].equal(&dlib[w]), "a trunk at lr scale 0 keeps dlib's weights");
    let live = config("sitfer", &sets[..5]);
    go(dir.path(), "dlib-live", &live, false, Some(2)).unwrap();
    assert!(!ckpt("dlib-live")[&format!("model.{w}")].equal(&dlib[w]), "a live trunk moves");
}

/// Ctrl-C through the real binary: a checkpoint is written, the exit code is 130, and `--resume` continues;
/// SIGTERM (what Slurm, Docker and systemd send) does the same.
#[cfg(unix)]
#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_continues() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let root = dir.path();
    let args = |resume: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
        c.args(["run", "--split"]).arg(split_file(root));
        c.arg("--shards").arg(shard_dir(root)).arg("--text-root").arg(root.join("text"));
        c.arg("--runs-root").arg(root.join("runs")).arg("--presets").arg(presets());
        c.args(["--preset", "sitfer", "--scale", "tiny", "--run-id", "c", "--device", "cpu"]);
        for s in [
            "model.image_size=16",
            "schedule.steps_per_epoch=100000",
            "schedule.epochs=1",
            "method.selection.threshold=0.3",
        ] {
            c.args(["--set", s]);
        }
        if resume {
            c.arg("--resume");
        }
        c.stderr(Stdio::piped()).stdout(Stdio::null());
        c
    };
    let latest = root.join("runs/c/checkpoints/latest.json");
    let interrupt = |resume: bool, signal: &str| -> (i32, String) {
        let mut child = args(resume).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = String::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            log += &l;
            log.push('\n');
            if l.starts_with("train ") {
                break; // data loaded, training starts now
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let ok = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success();
        assert!(ok);
        for l in lines {
            log += &l.unwrap();
            log.push('\n');
        }
        (child.wait().unwrap().code().unwrap_or(-1), log)
    };
    let (code, log) = interrupt(false, "-INT");
    assert_eq!(code, 130, "{log}");
    assert!(log.contains("--resume"), "{log}");
    let step = |p: &Path| -> u64 {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap()["step"]
            .as_u64()
            .unwrap()
    };
    let first = step(&latest);
    assert!(first > 0 && first < 100_000, "{first}");
    let (code, log) = interrupt(true, "-TERM");
    assert_eq!(code, 130, "{log}");
    assert!(step(&latest) > first, "resumed from {first} and went on: {log}");
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config("sitfer", &[]);
    go(dir.path(), "n", &cfg, false, Some(3)).unwrap();
    let before = std::fs::read(dir.path().join("runs/n/checkpoints/latest.json")).unwrap();
    let mut bad = cfg.clone();
    bad.method.released_code.loss_scale = f64::NAN;
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

// ---- Nothing lost, nothing accepted silently (through the real binary) ---------------------------------

/// `train run` on the tiny data under `root`, run id `id`, extra `--set`s and flags.
pub(crate) fn command(root: &Path, id: &str, sets: &[&str], extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_train"));
    c.current_dir(root).args(["run", "--split"]).arg(split_file(root));
    c.arg("--shards").arg(shard_dir(root)).arg("--text-root").arg(root.join("text"));
    c.arg("--runs-root").arg(root.join("runs")).arg("--presets").arg(presets());
    c.args(["--preset", "sitfer", "--scale", "tiny", "--run-id", id, "--device", "cpu", "--quiet"]);
    for s in ["model.image_size=16", "schedule.batch_labeled=8", "schedule.batch_unlabeled=8"].iter().chain(sets) {
        c.args(["--set", s]);
    }
    c.args(extra);
    c
}

/// [`command`], run to its end.
pub(crate) fn cli(root: &Path, id: &str, sets: &[&str], extra: &[&str]) -> std::process::Output {
    command(root, id, sets, extra).output().unwrap()
}

/// The processes `parent` started whose environment holds `RANK=…` (a launcher's ranks), by pid.
pub(crate) fn ranks_of(parent: u32) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid =
                stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
            let rank = env.split(|&b| b == 0).find_map(|v| v.strip_prefix(b"RANK="))?;
            (ppid == Some(parent)).then(|| (pid, String::from_utf8_lossy(rank).into_owned()))
        })
        .collect()
}

pub(crate) fn cli_err(root: &Path, id: &str, sets: &[&str], extra: &[&str]) -> String {
    let o = cli(root, id, sets, extra);
    let t = test_support::text(&o);
    assert!(!o.status.success(), "should have failed:\n{t}");
    t
}

#[test]
fn invalid_values_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    for (set, want) in [
        ("optim.lr=-1", "optim.lr = -1: expected a finite number > 0"),
        ("optim.lr=nan", "optim.lr = NaN"),
        ("optim.ema=2", "optim.ema = 2: expected a number in [0, 1)"),
        ("optim.beta1=1.5", "optim.beta1 = 1.5"),
        ("method.losses.lambda_text=-1", "method.losses.lambda_text = -1"),
        ("model.dropout=1.5", "model.dropout = 1.5"),
        ("method.levels.tau_text=nan", "method.levels.tau_text = NaN"),
        ("run.precision=\"fp8\"", "unknown variant `fp8`, expected one of `auto`, `fp32`, `bf16`, `fp16`"),
    ] {
        let e = cli_err(dir.path(), "bad", &[set], &[]);
        assert!(e.contains(want), "{set}: {e}");
    }
    assert!(!dir.path().join("runs/bad").exists(), "nothing is written for a refused config");
}

/// Weights that stop being finite stop the run like a NaN loss does, even in a one-step run.
#[test]
fn non_finite_weights_stop_the_run_without_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let e = cli_err(dir.path(), "w", &["optim.lr=1e39", "schedule.epochs=1", "schedule.steps_per_epoch=1"], &[]);
    assert!(e.contains("is not finite after step 1") && e.contains("last") && e.contains("checkpoint"), "{e}");
    assert!(!dir.path().join("runs/w/checkpoints/latest.json").exists());
}

#[test]
fn run_ids_that_leave_the_runs_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    for id in ["../../etc", "a/b/c", "/tmp/abs", ".."] {
        let e = cli_err(dir.path(), id, &[], &[]);
        assert!(e.contains("run id") && e.contains("single plain"), "{id}: {e}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "only shards/, splits/ and text/");
}

/// A finished run is up to date only while its inputs are the ones it started from.
#[test]
fn a_rebuilt_split_makes_a_finished_run_stale_and_blocks_resume() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_data(root, false);
    let sets = ["schedule.epochs=1", "schedule.steps_per_epoch=2"];
    assert!(cli(root, "s", &sets, &[]).status.success());
    let again = cli(root, "s", &sets, &[]);
    assert!(test_support::text(&again).contains("up to date"), "{}", test_support::text(&again));
    // The split is rebuilt: fewer unlabeled faces.
    let split = split_file(root);
    let rows: Vec<exchange::schema::split::SplitRow> = read_table(&split).unwrap();
    let meta = exchange::parquet_io::file_metadata(&split).unwrap();
    let meta: Vec<(&str, String)> =
        [exchange::keys::CLASSES, exchange::keys::DATASET].into_iter().map(|k| (k, meta[k].clone())).collect();
    exchange::parquet_io::write_table(&split, &rows[..rows.len() - 10], &meta).unwrap();
    let e = cli_err(root, "s", &sets, &[]);
    assert!(e.contains("the run's split changed since the run started"), "{e}");
    let e = cli_err(root, "s", &sets, &["--resume"]);
    assert!(e.contains("changed since the run started"), "{e}");
}

/// A different config names the key that differs.
#[test]
fn resume_with_another_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let o = cli(dir.path(), "k", &["schedule.epochs=2", "schedule.steps_per_epoch=2"], &[]);
    assert!(o.status.success(), "{}", test_support::text(&o));
    let e = cli_err(dir.path(), "k", &["schedule.epochs=3", "schedule.steps_per_epoch=2"], &["--resume"]);
    assert!(e.contains("schedule.epochs: 2 -> 3"), "{e}");
}

/// While one process trains a run, a second one on the same run id is refused with the holder's pid.
#[test]
fn a_run_being_trained_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    std::fs::create_dir_all(dir.path().join("runs/l")).unwrap();
    let held = train::run::folder::lock(&dir.path().join("runs/l")).unwrap();
    let e = cli_err(dir.path(), "l", &[], &[]);
    assert!(e.contains("being trained by another process") && e.contains(&std::process::id().to_string()), "{e}");
    let e = cli_err(dir.path(), "l", &[], &["--resume"]);
    assert!(e.contains("being trained by another process"), "{e}");
    drop(held);
    assert!(cli(dir.path(), "l", &[], &[]).status.success());
}

/// A corrupt checkpoint says how to get out: start over or use another run id.
#[test]
fn a_corrupt_checkpoint_names_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let sets = ["schedule.epochs=2", "schedule.steps_per_epoch=2"];
    assert!(cli(dir.path(), "c", &sets, &[]).status.success());
    let ckpts = dir.path().join("runs/c/checkpoints");
    for e in std::fs::read_dir(&ckpts).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "safetensors") {
            std::fs::write(e.path(), b"not a checkpoint").unwrap();
        }
    }
    let e = cli_err(dir.path(), "c", &["schedule.epochs=3", "schedule.steps_per_epoch=2"], &[]);
    assert!(e.contains("another configuration (schedule.epochs: 2 -> 3)") && e.contains("--run-id"), "{e}");
    // A corrupt state file: --resume says how to start over.
    std::fs::write(ckpts.join("latest.json"), b"{ not json").unwrap();
    let e = cli_err(dir.path(), "c", &sets, &["--resume"]);
    assert!(e.contains("latest.json") && e.contains("to start over"), "{e}");
}

/// An epoch interrupted and resumed records the same mean loss as one trained through.
#[test]
fn a_resumed_epoch_averages_all_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config("sitfer", &[]);
    go(dir.path(), "whole", &cfg, false, None).unwrap();
    go(dir.path(), "split", &cfg, false, Some(2)).unwrap();
    go(dir.path(), "split", &cfg, true, None).unwrap();
    let loss = |run: &str| -> Vec<f64> {
        let rows: Vec<MetricRow> = read_table(dir.path().join(format!("runs/{run}/metrics.parquet"))).unwrap();
        rows.iter().filter(|r| r.split == "train" && r.metric == "loss").map(|r| r.value).collect()
    };
    assert_eq!(loss("whole"), loss("split"));
}

/// The steps read nothing back from the device: their loss terms come back in one read per log point (here,
/// with a hidden bar and no log lines: the two periodic checkpoints and the two epoch ends), clipping included.
#[test]
fn steps_read_back_only_at_log_points() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let cfg = config(
        "sitfer",
        &["schedule.steps_per_epoch=6", "run.checkpoint_every=4", "optim.clip_grad_norm=0.5", "optim.ema=0.9"],
    );
    let before = train::readback::count();
    let losses = go(dir.path(), "reads", &cfg, false, None).unwrap();
    assert_eq!(losses.len(), 12);
    assert_eq!(train::readback::count() - before, 4, "reads at steps 4 (checkpoint), 6 (epoch end), 8, 12");
}

// ---- Data-parallel (c10d Gloo on loopback, through the real binary) ---------------------------------------

/// The latest checkpoint's tensors of run `id`.
fn checkpoint_tensors(root: &Path, id: &str) -> std::collections::HashMap<String, tch::Tensor> {
    let dir = root.join("runs").join(id).join("checkpoints");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("latest.json")).unwrap()).unwrap();
    tch::Tensor::read_safetensors(dir.join(state["tensors"].as_str().unwrap())).unwrap().into_iter().collect()
}

/// Every file under run `id`, as paths relative to it (the lock file aside).
fn file_set(root: &Path, id: &str) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let base = root.join("runs").join(id);
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.retain(|f| !f.ends_with(layout::run::LOCK_FILE));
    out.sort();
    out
}

/// One SIT-FER step at world size 2 (each rank 4 + 4 + 4 faces) against one process with the whole batch
/// (8 + 8 + 8): the same weights after an SGD step (so the same mean gradient, to lr · 1e-5) and the same
/// memory bank. Batch norms frozen and no dropout: a mode in which the split is exact (dropout masks are per
/// rank by design). Both runs write the same files.
///
/// The tolerance is the rounding of the computation, not of one CPU's kernels: every gradient entry is a sum
/// of n = faces × pixels f32 products (up to 24 × 16 × 16 = 6,144 at the first layers), which two ranks add
/// in another order (two half sums, then their mean). Reordered f32 sums differ by about √n · 2⁻²⁴ ≈ 5e-6 of
/// the entries' magnitude; 2e-5 of each tensor's largest entry is four times that. Measured: at most 2.2e-6
/// under ATEN_CPU_CAPABILITY=default, avx2 and avx512 alike. A wrong step (a gradient not averaged, a rank's
/// share missed) is off by 1e-1 or more.
#[test]
fn two_ranks_take_the_one_process_step() {
    one_process_vs_two_ranks("model.freeze_bn=true", 2e-5);
}

/// The same with batch norms in training mode, synchronised over the ranks: the statistics of the whole
/// 24-face batch on both ranks, so the step, the running statistics and the bank are again the one-process
/// ones (to float rounding of the combined statistics).
///
/// Ignored: the two-rank step differs from the one-process step by up to 8e-3 of a tensor's largest entry
/// (optim.m.layer2.0.downsample.1.weight under avx2; 2.7e-3 under avx512, 7.4e-3 under default), while the
/// same one-process run at 1 and at 2 threads agrees to 8e-6: this is no rounding, and no tolerance should
/// hide it. Run with `--ignored` to see it; docs/distributed.md says what is known.
#[test]
#[ignore = "the synchronised two-rank step differs from the one-process step beyond rounding (docs/distributed.md)"]
fn two_ranks_with_synchronised_batch_norm_take_the_one_process_step() {
    one_process_vs_two_ranks("model.sync_bn=true", 2e-5);
}

fn one_process_vs_two_ranks(batch_norm: &str, rtol: f64) {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let one_step = ["schedule.epochs=1", "schedule.steps_per_epoch=1"];
    let o = cli(dir.path(), "donor", &one_step, &[]);
    assert!(o.status.success(), "{}", test_support::text(&o));
    let donor = dir.path().join("runs/donor/checkpoints");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(donor.join("latest.json")).unwrap()).unwrap();
    let init = format!("model.init=\"{}\"", donor.join(state["tensors"].as_str().unwrap()).display());
    let sets = [
        init.as_str(),
        batch_norm,
        "model.dropout=0",
        "optim.kind=\"sgd\"",
        "optim.lr=0.1",
        "optim.warmup_steps=0",
        "method.selection.unlabeled_warmup_epochs=0",
        "method.selection.threshold=0.2",
        "schedule.epochs=1",
        "schedule.steps_per_epoch=1",
    ];
    let one = cli(dir.path(), "one", &sets, &[]);
    assert!(one.status.success(), "{}", test_support::text(&one));
    let two = cli(dir.path(), "two", &sets, &["--nproc", "2"]);
    assert!(two.status.success(), "{}", test_support::text(&two));
    let (a, b) = (checkpoint_tensors(dir.path(), "one"), checkpoint_tensors(dir.path(), "two"));
    assert_eq!(a.keys().collect::<std::collections::BTreeSet<_>>(), b.keys().collect());
    let moved = (&a["model.fc.weight"] - &checkpoint_tensors(dir.path(), "donor")["model.fc.weight"]).abs().max();
    assert!(f64::try_from(moved).unwrap() > 1e-4, "the step changed the classifier");
    // Each tensor against the rounding its computation allows, relative to its own largest entry: see the
    // callers for the bound.
    let mut worst: Vec<(f64, String)> = a
        .iter()
        .map(|(k, ta)| {
            let (x, y) = (ta.to_kind(tch::Kind::Double), b[k].to_kind(tch::Kind::Double));
            let diff = f64::try_from((&x - &y).abs().max()).unwrap();
            let scale = f64::try_from(x.abs().max()).unwrap().max(f64::MIN_POSITIVE);
            (diff / scale, k.clone())
        })
        .collect();
    worst.sort_by(|x, y| y.0.total_cmp(&x.0));
    assert!(
        worst[0].0 <= rtol,
        "one process vs two ranks ({batch_norm}): relative differences above {rtol:e}: {:?}",
        worst.iter().take(5).filter(|w| w.0 > rtol).collect::<Vec<_>>()
    );
    assert_eq!(file_set(dir.path(), "one"), file_set(dir.path(), "two"));
}

/// A rank killed mid-run stops the other with a message naming it; the run then resumes at world size 2 from
/// the last checkpoint and finishes with the files of a run never interrupted.
#[test]
fn a_killed_rank_stops_the_run_and_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let sets = ["schedule.epochs=3", "schedule.steps_per_epoch=4", "run.checkpoint_every=1"];
    let whole = cli(dir.path(), "whole", &sets, &["--nproc", "2"]);
    assert!(whole.status.success(), "{}", test_support::text(&whole));

    let root = dir.path();
    let launcher =
        command(root, "killed", &sets, &["--nproc", "2"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let latest = root.join("runs/killed/checkpoints/latest.json");
    let t0 = std::time::Instant::now();
    while !latest.is_file() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (rank1, _) = ranks_of(launcher.id()).into_iter().find(|(_, rank)| rank == "1").expect("rank 1 is running");
    unsafe { libc::kill(rank1 as i32, libc::SIGKILL) };
    let out = launcher.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rank 1 of 2 failed"), "{text}");
    let resumed = cli(dir.path(), "killed", &sets, &["--nproc", "2", "--resume"]);
    assert!(resumed.status.success(), "{}", test_support::text(&resumed));
    assert_eq!(file_set(dir.path(), "killed"), file_set(dir.path(), "whole"));
    let acc = |id: &str| -> usize {
        let m: Vec<MetricRow> = read_table(dir.path().join("runs").join(id).join("metrics.parquet")).unwrap();
        m.iter().filter(|r| r.metric == "acc_cls" && r.class.is_none()).count()
    };
    assert_eq!(acc("killed"), acc("whole"), "every epoch evaluated once");
}
