//! What a run reads besides its config: the split's images by role ([`crate::data::loader`]) and the text
//! prototypes embed-text wrote, in the run's class order; and what it records about itself for the other
//! stages (`run.json`, `config.toml`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use exchange::parquet_io::{file_metadata, read_table};
use exchange::schema::run_info::RunInfo;
use exchange::schema::text::PrototypeRow;
use exchange::Expression;
use exchange::{keys, layout};
use tch::{Device, Tensor};

use super::spec::RunSpec;
use crate::config::Config;
use crate::data::loader::{self, Data};

/// A `--split` argument resolved: the split file, the dataset it names (in its metadata, written by
/// `shard split` from the split's TOML — the one place a split names its dataset) and that dataset's shards.
pub struct SplitInputs {
    pub split: PathBuf,
    pub name: String,
    pub dataset: String,
    pub shards: PathBuf,
}

/// Resolves a split name (under `artifacts/splits/`) or a split file; `shards` overrides the shard folder.
pub fn resolve_split(arg: &str, shards: Option<&Path>) -> anyhow::Result<SplitInputs> {
    let split = layout::split_file(Path::new(layout::SPLITS_ROOT), arg);
    if split != Path::new(arg) {
        // A split name, not a file: it must not reach outside the splits root.
        layout::check_name("split", arg)?;
    }
    if !split.is_file() {
        bail!("split file {} not found (run `make split SPLIT={arg}`)", split.display());
    }
    let meta = file_metadata(&split)?;
    let dataset = meta.get(keys::DATASET).cloned().unwrap_or_else(|| "unknown".into());
    layout::check_name("dataset", &dataset)
        .with_context(|| format!("{}: metadata {}", split.display(), keys::DATASET))?;
    let shards =
        shards.map(Path::to_path_buf).unwrap_or_else(|| layout::shard_dir(Path::new(layout::SHARDS_ROOT), &dataset));
    let name = split.file_stem().and_then(|s| s.to_str()).unwrap_or("split").to_string();
    Ok(SplitInputs { split, name, dataset, shards })
}

/// Loads the data for a spec.
pub fn load_data(spec: &RunSpec, cfg: &Config) -> anyhow::Result<Data> {
    loader::load(&spec.shards, &spec.split, cfg.model.image_size as u32)
}

/// The run's class prototypes `[C, D]` in the run's class order, from embed-text's prototypes file.
pub(crate) fn prototypes(
    text_root: &Path,
    cfg: &Config,
    classes: &[Expression],
    device: Device,
) -> anyhow::Result<Tensor> {
    let path = layout::prototypes_file(text_root, &cfg.text.encoder, &cfg.text.set);
    let rows: Vec<PrototypeRow> = read_table(&path).with_context(|| {
        format!(
            "text prototypes not found at {} (run `make embed-text ENCODER={} TEXT_SET={}`)",
            path.display(),
            cfg.text.encoder,
            cfg.text.set
        )
    })?;
    let mut out = Vec::new();
    for c in classes {
        let r = rows
            .iter()
            .find(|r| r.class == c.id())
            .with_context(|| format!("{}: no prototype for class {c}", path.display()))?;
        out.push(Tensor::from_slice(&r.vector));
    }
    Ok(Tensor::stack(&out, 0).to_device(device))
}

/// The run folder's name, as other stages and file metadata know the run.
pub(crate) fn run_name(spec: &RunSpec) -> String {
    spec.run_dir.file_name().and_then(|s| s.to_str()).unwrap_or("run").to_string()
}

/// A device as libtorch and PyTorch users write it: `cpu`, `cuda:0`, `mps`.
pub(crate) fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// Writes `run.json` (what audit needs) and `config.toml` (the resolved config `--resume` compares against).
/// `devices` holds every rank's training device in rank order (one for a single process).
pub fn write_run_info(
    spec: &RunSpec,
    cfg: &Config,
    data: &Data,
    dataset: &str,
    devices: &[Device],
) -> anyhow::Result<()> {
    let info = RunInfo {
        run: run_name(spec),
        preset: cfg.preset.clone(),
        dataset: dataset.to_string(),
        shards: spec.shards.display().to_string(),
        split: spec.split.display().to_string(),
        classes: data.classes.iter().map(|c| c.name().to_string()).collect(),
        threshold: cfg.method.selection.threshold as f32,
        fusion: cfg.fusion(),
        levels: [true, cfg.method.levels.text, cfg.method.levels.instance],
        created_at: chrono::Utc::now().to_rfc3339(),
        seed: Some(cfg.run.seed),
        world_size: Some(u32::try_from(devices.len())?),
        devices: devices.iter().map(|d| device_name(*d)).collect(),
    };
    info.write(&spec.run_dir)?;
    exchange::atomic::write_bytes(
        spec.run_dir.join(layout::run::CONFIG_FILE),
        toml::to_string_pretty(cfg)?.as_bytes(),
    )?;
    Ok(())
}
