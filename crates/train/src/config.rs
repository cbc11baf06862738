//! The run configuration: defaults here, then a method preset (`pipelines/train/<preset>.toml`), then a
//! scale preset (`pipelines/train/scale/<scale>.toml`), then `--set section.key=value` overrides, in that
//! order. Unknown keys are refused with the file (or override) that holds them. The resolved config is what
//! a run saves and what `--resume` compares against.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use exchange::schema::run_info::{Fusion, FusionMode};
use serde::{Deserialize, Serialize};

use crate::model::resnet::{Stem, TORCHVISION_WIDTH};
use crate::model::Arch;
use crate::optim::OptimKind;
use crate::sitfer::memory_bank::InstanceRule;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub preset: String,
    pub scale: String,
    pub method: Method,
    pub text: Text,
    pub model: Model,
    pub optim: Optim,
    pub schedule: Schedule,
    pub run: Run,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Method {
    /// Text level on (needs text prototypes).
    pub text: bool,
    /// Instance level (memory bank) on.
    pub instance: bool,
    pub fusion: FusionMode,
    /// Weights of semantic, text, instance.
    pub weights: [f32; 3],
    pub threshold: f64,
    pub tau_text: f64,
    pub tau_ins: f64,
    pub instance_rule: InstanceRule,
    /// Memory-bank momentum μ (0: overwrite).
    pub bank_momentum: f64,
    /// Epochs before the instance level joins weighted-logit fusion (released code: 15).
    pub instance_warmup_epochs: u32,
    /// Epochs before `L_u` is switched on.
    pub unlabeled_warmup_epochs: u32,
    pub lambda_text: f64,
    pub lambda_unlabeled: f64,
    pub lambda_contrastive: f64,
    pub supcon_temperature: f64,
    /// Multiplies the total loss (released code: 0.4).
    pub loss_scale: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Text {
    pub encoder: String,
    pub set: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Model {
    pub image_size: i64,
    /// `resnet18` (the method's backbone) or `small-cnn` (CPU demos at 32–48 px).
    pub arch: Arch,
    /// ResNet-18's first layer; ignored by `small-cnn`.
    pub stem: Stem,
    /// Channels of the first stage; the stages double it (ResNet-18: feature 8× this, torchvision uses 64;
    /// small-cnn: feature 4×).
    pub width: i64,
    pub dropout: f64,
    /// The classifier reads `classifier_scale · h` (1 = the paper's `z = W h + b` on the unit feature). With
    /// `h` of norm 1 the logits can only grow as fast as Adam grows `W`: over a few thousand steps from scratch
    /// that keeps the classifier under-confident and under-fitted (see the `demo` scale).
    pub classifier_scale: f64,
    /// `scratch`, or a safetensors file with torchvision ResNet-18 names.
    pub init: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    Constant,
    Cosine,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optim {
    pub kind: String,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub momentum: f64,
    pub schedule: LrSchedule,
    pub warmup_steps: u64,
    /// 0 turns clipping off.
    pub clip_grad_norm: f64,
    /// EMA decay of an evaluation copy of the model; 0 turns it off.
    pub ema: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    pub epochs: u32,
    pub steps_per_epoch: u64,
    pub batch_labeled: i64,
    pub batch_unlabeled: i64,
    pub eval_batch: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    pub seed: u64,
    /// Checkpoint every N steps (0: only at epoch ends).
    pub checkpoint_every: u64,
    /// Write pseudo-label files every N epochs (0: never).
    pub pseudo_labels_every: u32,
    /// Rayon threads decoding and augmenting ahead of the step.
    pub loader_threads: usize,
    /// Batches prepared ahead (the bounded prefetch queue).
    pub prefetch: usize,
    /// Mixed precision (fp16 autocast + dynamic loss scaling) on CUDA; ignored on the CPU.
    pub amp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: "sitfer".into(),
            scale: "cpu".into(),
            method: Method::default(),
            text: Text::default(),
            model: Model::default(),
            optim: Optim::default(),
            schedule: Schedule::default(),
            run: Run::default(),
        }
    }
}

impl Default for Method {
    fn default() -> Self {
        Method {
            text: true,
            instance: true,
            fusion: FusionMode::MeanProb,
            weights: [1.0, 1.0, 1.0],
            threshold: 0.75,
            tau_text: 0.1,
            tau_ins: 0.02,
            instance_rule: InstanceRule::Max,
            bank_momentum: 0.0,
            instance_warmup_epochs: 0,
            unlabeled_warmup_epochs: 0,
            lambda_text: 1.0,
            lambda_unlabeled: 1.0,
            lambda_contrastive: 0.0,
            supcon_temperature: 0.07,
            loss_scale: 1.0,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text { encoder: "minilm".into(), set: "facs".into() }
    }
}

impl Model {
    /// The size of the feature `h` the heads, the memory bank and the text projection see.
    pub fn feature_dim(&self) -> i64 {
        self.arch.feature_dim(self.width)
    }
}

impl Default for Model {
    fn default() -> Self {
        Model {
            image_size: 64,
            arch: Arch::Resnet18,
            stem: Stem::Small,
            width: TORCHVISION_WIDTH,
            dropout: 0.5,
            classifier_scale: 1.0,
            init: "scratch".into(),
        }
    }
}

impl Default for Optim {
    fn default() -> Self {
        Optim {
            kind: "adam".into(),
            lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            momentum: 0.9,
            schedule: LrSchedule::Cosine,
            warmup_steps: 0,
            clip_grad_norm: 0.0,
            ema: 0.0,
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { epochs: 12, steps_per_epoch: 150, batch_labeled: 32, batch_unlabeled: 32, eval_batch: 256 }
    }
}

impl Default for Run {
    fn default() -> Self {
        Run { seed: 0, checkpoint_every: 0, pseudo_labels_every: 1, loader_threads: 0, prefetch: 4, amp: true }
    }
}

/// Deep-merges `over` into `base` (tables merge key by key, everything else replaces).
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn read_toml(path: &Path, what: &str) -> anyhow::Result<toml::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{what} {} not found", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))
}

/// `section.key=value` into a one-key TOML table; the value is parsed as TOML, else taken as a string.
fn override_value(spec: &str) -> anyhow::Result<toml::Value> {
    let (key, raw) = spec.split_once('=').with_context(|| format!("--set {spec:?}: expected section.key=value"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut v = value;
    for part in key.trim().split('.').rev() {
        let mut t = toml::Table::new();
        t.insert(part.to_string(), v);
        v = toml::Value::Table(t);
    }
    Ok(v)
}

/// Resolves preset + scale + overrides from `dir` (normally `pipelines/train`).
pub fn resolve(dir: &Path, preset: &str, scale: &str, overrides: &[String]) -> anyhow::Result<Config> {
    let mut value = toml::Value::try_from(Config::default())?;
    let preset_path = dir.join(format!("{preset}.toml"));
    if !preset_path.is_file() {
        bail!("preset {preset:?}: no {} (presets: {})", preset_path.display(), list(dir).join(", "));
    }
    let scale_path: PathBuf = dir.join("scale").join(format!("{scale}.toml"));
    for (path, what) in [(&preset_path, "preset"), (&scale_path, "scale preset")] {
        let layer = read_toml(path, what)?;
        check_keys(&value, &layer, &path.display().to_string())?;
        merge(&mut value, layer);
    }
    for spec in overrides {
        let layer = override_value(spec)?;
        check_keys(&value, &layer, &format!("--set {spec}"))?;
        merge(&mut value, layer);
    }
    merge(&mut value, toml::Value::try_from(Names { preset: preset.into(), scale: scale.into() })?);
    let config: Config = value.try_into().context("resolving the run configuration")?;
    config.validate()?;
    Ok(config)
}

#[derive(Serialize)]
struct Names {
    preset: String,
    scale: String,
}

/// Every key of `layer` must exist in `base` (a typo would otherwise be silently ignored).
fn check_keys(base: &toml::Value, layer: &toml::Value, origin: &str) -> anyhow::Result<()> {
    fn walk(base: &toml::Value, layer: &toml::Value, prefix: &str, origin: &str) -> anyhow::Result<()> {
        if let (toml::Value::Table(b), toml::Value::Table(l)) = (base, layer) {
            for (k, v) in l {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match b.get(k) {
                    None => bail!(
                        "{origin}: unknown setting `{key}` (known here: {})",
                        b.keys()
                            .map(|k| if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(bv) => walk(bv, v, &key, origin)?,
                }
            }
        }
        Ok(())
    }
    walk(base, layer, "", origin)
}

/// Preset names in `dir`.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string)).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        let m = &self.method;
        if !(0.0..1.0).contains(&m.threshold) {
            bail!("method.threshold = {}: expected a number in [0, 1)", m.threshold);
        }
        if m.tau_text <= 0.0 || m.tau_ins <= 0.0 {
            bail!("method.tau_text and method.tau_ins must be positive");
        }
        if m.weights.iter().any(|w| *w < 0.0) || m.weights[0] + m.weights[1] + m.weights[2] <= 0.0 {
            bail!("method.weights {:?}: expected three non-negative numbers, not all zero", m.weights);
        }
        if self.schedule.batch_labeled < 1 || self.schedule.epochs < 1 || self.schedule.steps_per_epoch < 1 {
            bail!("schedule: epochs, steps_per_epoch and batch_labeled must be at least 1");
        }
        if (m.lambda_unlabeled > 0.0) && self.schedule.batch_unlabeled < 1 {
            bail!("schedule.batch_unlabeled must be at least 1 when method.lambda_unlabeled > 0");
        }
        if self.model.image_size < 16 {
            bail!("model.image_size = {}: at least 16", self.model.image_size);
        }
        if !(self.model.classifier_scale > 0.0 && self.model.classifier_scale <= 100.0) {
            bail!(
                "model.classifier_scale = {}: expected a number in (0, 100] (1 = the paper)",
                self.model.classifier_scale
            );
        }
        if !(4..=256).contains(&self.model.width) {
            bail!("model.width = {}: expected 4 to 256 channels (torchvision's ResNet-18: 64)", self.model.width);
        }
        self.optim_kind()?;
        Ok(())
    }

    pub fn optim_kind(&self) -> anyhow::Result<OptimKind> {
        let o = &self.optim;
        Ok(match o.kind.as_str() {
            "adam" => OptimKind::Adam { beta1: o.beta1, beta2: o.beta2, eps: 1e-8 },
            "adamw" => OptimKind::AdamW { beta1: o.beta1, beta2: o.beta2, eps: 1e-8 },
            "sgd" => OptimKind::Sgd { momentum: o.momentum, nesterov: false },
            "sgd-nesterov" => OptimKind::Sgd { momentum: o.momentum, nesterov: true },
            k => bail!("optim.kind = {k:?}: expected adam, adamw, sgd or sgd-nesterov"),
        })
    }

    /// The fusion rule as recorded for audit.
    pub fn fusion(&self) -> Fusion {
        let m = &self.method;
        Fusion { mode: m.fusion, weights: m.weights, tau_text: m.tau_text as f32, tau_ins: m.tau_ins as f32 }
    }

    /// Whether pseudo-labels are used at all (supervised has none).
    pub fn semi_supervised(&self) -> bool {
        self.method.lambda_unlabeled > 0.0
    }
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up, then constant or cosine decay to 0.
pub fn learning_rate(o: &Optim, step: u64, total: u64) -> f64 {
    if step < o.warmup_steps {
        return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
    }
    match o.schedule {
        LrSchedule::Constant => o.lr,
        LrSchedule::Cosine => {
            let span = total.saturating_sub(o.warmup_steps).max(1) as f64;
            let t = (step - o.warmup_steps) as f64 / span;
            o.lr * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/train")
    }

    #[test]
    fn every_shipped_preset_resolves_at_every_scale() {
        for preset in list(&dir()).into_iter().filter(|p| p != "scale") {
            for scale in ["cpu", "paper", "tiny", "demo"] {
                let c = resolve(&dir(), &preset, scale, &[]).unwrap_or_else(|e| panic!("{preset}/{scale}: {e:#}"));
                assert_eq!((c.preset.as_str(), c.scale.as_str()), (preset.as_str(), scale));
            }
        }
        let official = resolve(&dir(), "sitfer-official", "paper", &[]).unwrap();
        assert_eq!(official.method.fusion, FusionMode::WeightedLogit);
        assert_eq!(official.text.encoder, "random");
        assert_eq!((official.model.image_size, official.schedule.steps_per_epoch), (224, 800));
        let demo = resolve(&dir(), "sitfer", "demo", &[]).unwrap();
        assert_eq!((demo.model.arch, demo.model.width, demo.model.classifier_scale), (Arch::SmallCnn, 32, 1.0));
        let sup = resolve(&dir(), "supervised", "cpu", &[]).unwrap();
        assert!(!sup.semi_supervised() && !sup.method.text && !sup.method.instance);
    }

    #[test]
    fn overrides_apply_and_typos_are_refused() {
        let c = resolve(&dir(), "sitfer", "tiny", &["method.threshold=0.9".into(), "optim.kind=adamw".into()]).unwrap();
        assert_eq!(c.method.threshold, 0.9);
        assert!(matches!(c.optim_kind().unwrap(), OptimKind::AdamW { .. }));
        let e = resolve(&dir(), "sitfer", "tiny", &["method.treshold=0.9".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown setting `method.treshold`") && e.contains("method.threshold"), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["method.threshold=1.5".into()]).unwrap_err().to_string();
        assert!(e.contains("[0, 1)"), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["model.width=2".into()]).unwrap_err().to_string();
        assert!(e.contains("model.width = 2") && e.contains("4 to 256"), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["model.classifier_scale=0".into()]).unwrap_err().to_string();
        assert!(e.contains("model.classifier_scale = 0"), "{e}");
        let e = format!("{:#}", resolve(&dir(), "sitfer", "tiny", &["model.arch=vgg".into()]).unwrap_err());
        assert!(e.contains("small-cnn"), "{e}");
        let e = resolve(&dir(), "nope", "tiny", &[]).unwrap_err().to_string();
        assert!(e.contains("sitfer-official"), "{e}");
    }

    #[test]
    fn warmup_and_cosine() {
        let o = Optim { lr: 1.0, warmup_steps: 10, schedule: LrSchedule::Cosine, ..Default::default() };
        assert!((learning_rate(&o, 0, 110) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&o, 10, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&o, 60, 110) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&o, 109, 110) < 0.001);
    }
}
