//! Synthetic run folders with known ground truth, for the tests, the 1M-row benchmark and for trying
//! audit before any training: shards (id, label, FERPlus-style votes; a 1-byte stand-in image), a split,
//! `run.json`, and per-epoch pseudo-label files whose levels have realistic, different failure modes
//! (the semantic level confuses neighbouring classes, the text level is noisier, the instance level sharper
//! but sometimes picks the annotators' runner-up), getting better with the epochs.

use std::path::Path;

use exchange::fusion::{Fusion, FusionMode};
use exchange::keys;
use exchange::layout;
use exchange::parquet_io::{write_table, TableWriter};
use exchange::schema::pseudo_label::PseudoLabelRow;
use exchange::schema::run_info::RunInfo;
use exchange::schema::shard::ShardRow;
use exchange::schema::split::{Role, SplitRow};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct FixtureSpec {
    pub unlabeled: usize,
    pub labeled: usize,
    pub epochs: u32,
    pub seed: u64,
    pub fusion: FusionMode,
}

const PRIOR: [f64; 8] = [0.30, 0.27, 0.12, 0.11, 0.09, 0.03, 0.04, 0.04];

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn draw_class(rng: &mut ChaCha8Rng) -> u8 {
    let mut u: f64 = rng.random();
    for (k, p) in PRIOR.iter().enumerate() {
        if u < *p {
            return k as u8;
        }
        u -= p;
    }
    7
}

/// Writes `<root>/shards/part-00000.parquet`, `<root>/split.parquet` and the run folder `<root>/runs/<run>/`;
/// returns the run folder.
pub fn write(root: &Path, run: &str, spec: &FixtureSpec) -> anyhow::Result<std::path::PathBuf> {
    let classes: Vec<String> = exchange::labels::ALL.iter().map(|e| e.name().to_string()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let faces = write_shards_and_split(root, spec, classes.len(), &mut rng)?;
    let run_dir = root.join("runs").join(run);
    std::fs::create_dir_all(layout::run::pseudo_labels(&run_dir))?;
    let info = run_info(root, run, classes.clone(), spec.fusion);
    info.write(&run_dir)?;
    for epoch in 1..=spec.epochs {
        write_epoch(&run_dir, &info, epoch, spec, &faces, &mut rng)?;
    }
    Ok(run_dir)
}

/// Each face's true class and the annotators' runner-up.
struct Faces {
    truth: Vec<u8>,
    runner_up: Vec<u8>,
}

/// The shards (labeled faces first) and the split; returns the faces' classes.
fn write_shards_and_split(root: &Path, spec: &FixtureSpec, c: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<Faces> {
    let n = spec.unlabeled + spec.labeled;
    let mut truth = Vec::with_capacity(n);
    let mut runner_up = Vec::with_capacity(n);
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let t = draw_class(rng);
        let mut r = draw_class(rng);
        if r == t {
            r = (t + 1) % c as u8;
        }
        let mut votes = vec![0i32; 10];
        let second = rng.random_range(0..4);
        votes[t as usize] = 10 - second;
        votes[r as usize] = second;
        truth.push(t);
        runner_up.push(r);
        shards.push(ShardRow {
            id: format!("fx{i:07}"),
            dataset: "fixture".into(),
            split: "train".into(),
            label: Some(t),
            votes: Some(votes),
            image: vec![0],
            height: 1,
            width: 1,
            channels: 1,
            source_path: String::new(),
        });
    }
    std::fs::create_dir_all(root.join("shards"))?;
    write_table(root.join("shards").join(layout::shard_part(0)), &shards, &[(keys::DATASET, "fixture".into())])?;
    drop(shards);
    let split: Vec<SplitRow> = (0..n)
        .map(|i| SplitRow {
            id: format!("fx{i:07}"),
            role: if i < spec.labeled { Role::Labeled } else { Role::Unlabeled },
        })
        .collect();
    write_table(root.join("split.parquet"), &split, &[])?;
    Ok(Faces { truth, runner_up })
}

/// `run.json` of the fixture run: the paper's fusion with temperatures, or the released code's without.
fn run_info(root: &Path, run: &str, classes: Vec<String>, mode: FusionMode) -> RunInfo {
    let fusion = match mode {
        FusionMode::MeanProb => {
            Fusion { mode: FusionMode::MeanProb, weights: [1.0, 1.0, 1.0], tau_text: 0.1, tau_ins: 0.1 }
        }
        FusionMode::WeightedLogit => {
            Fusion { mode: FusionMode::WeightedLogit, weights: [0.3, 0.2, 0.5], tau_text: 1.0, tau_ins: 1.0 }
        }
    };
    RunInfo {
        run: run.into(),
        preset: "fixture".into(),
        dataset: "fixture".into(),
        shards: root.join("shards").display().to_string(),
        split: root.join("split.parquet").display().to_string(),
        classes,
        threshold: 0.75,
        fusion,
        levels: [true, true, true],
        created_at: "2026-01-01T00:00:00Z".into(),
        seed: None,
        world_size: None,
        devices: Vec::new(),
    }
}

/// One epoch's pseudo-label file: every unlabeled face's three levels, fused by the run's rule.
fn write_epoch(
    run_dir: &Path,
    info: &RunInfo,
    epoch: u32,
    spec: &FixtureSpec,
    faces: &Faces,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<()> {
    let (fusion, c) = (info.fusion, info.classes.len());
    let n = spec.unlabeled + spec.labeled;
    let skill = 0.6 + 0.5 * epoch as f32;
    let path = layout::run::pseudo_labels(run_dir).join(layout::run::pseudo_label_file(epoch));
    let meta = [
        (keys::CLASSES, info.classes.join(",")),
        (keys::THRESHOLD, info.threshold.to_string()),
        (keys::FUSION, serde_json::to_string(&fusion)?),
        (keys::RUN, info.run.clone()),
    ];
    let mut w = TableWriter::<PseudoLabelRow>::create(&path, &meta, 65536)?;
    let mut rows = Vec::with_capacity(65536);
    for i in spec.labeled..n {
        let (t, r) = (faces.truth[i] as usize, faces.runner_up[i] as usize);
        // Raw scores per level: the true class boosted by the level's skill, the runner-up partly.
        let mut level = |signal: f32, confuse: f32, noise: f32, scale: f32| -> Vec<f32> {
            let mut z: Vec<f32> = (0..c).map(|_| noise * gauss(rng)).collect();
            z[t] += signal * skill;
            z[r] += confuse * skill;
            z.iter_mut().for_each(|x| *x *= scale);
            z
        };
        // The released code's fusion has no temperatures: its raw scores must be larger to be confident.
        let scale = if fusion.mode == FusionMode::WeightedLogit { 4.0 } else { 1.0 };
        let z_sem = level(1.6, 0.9, 1.0, scale);
        let s_text = level(0.35, 0.15, 0.25, scale);
        let s_ins = level(0.45, 0.35, 0.2, scale);
        let p_sem = softmax(&z_sem);
        let p_text = softmax(&s_text.iter().map(|x| x / fusion.tau_text).collect::<Vec<_>>());
        let p_ins = softmax(&s_ins.iter().map(|x| x / fusion.tau_ins).collect::<Vec<_>>());
        let p_fused = match fusion.mode {
            FusionMode::MeanProb => (0..c).map(|k| (p_sem[k] + p_text[k] + p_ins[k]) / 3.0).collect::<Vec<f32>>(),
            FusionMode::WeightedLogit => {
                softmax(&(0..c).map(|k| 0.3 * z_sem[k] + 0.2 * s_text[k] + 0.5 * s_ins[k]).collect::<Vec<_>>())
            }
        };
        let (label, conf) =
            p_fused.iter().enumerate().fold((0, f32::MIN), |b, (k, v)| if *v > b.1 { (k, *v) } else { b });
        rows.push(PseudoLabelRow {
            id: format!("fx{i:07}"),
            epoch,
            p_sem,
            p_text: Some(p_text),
            p_ins: Some(p_ins),
            p_fused,
            pseudo_label: label as u32,
            confidence: conf,
            selected: conf > info.threshold,
        });
        if rows.len() == 65536 {
            w.write(&rows)?;
            rows.clear();
        }
    }
    w.write(&rows)?;
    w.finish()?;
    Ok(())
}
