//! The run configuration: defaults here, then a method preset (`pipelines/train/<preset>.toml`), then a
//! scale preset (`pipelines/train/scale/<scale>.toml`), then `--set section.key=value` overrides, in that
//! order. Unknown keys are refused with the file (or override) that holds them. The resolved config is what
//! a run saves and what `--resume` compares against.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use exchange::fusion::{Fusion, FusionMode};
use serde::{Deserialize, Serialize};

pub(crate) use crate::model::config::Model;
pub(crate) use crate::optim::Optim;
pub(crate) use crate::sitfer::losses::{LabelTargets, UnlabeledMean};
use crate::sitfer::memory_bank::InstanceRule;
pub(crate) use crate::sitfer::threshold::ThresholdRule;

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
    pub(crate) run: Run,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Method {
    /// Text level on (needs text prototypes).
    pub text: bool,
    /// Instance level (memory bank) on.
    pub instance: bool,
    pub(crate) fusion: FusionMode,
    /// Weights of semantic, text, instance.
    pub(crate) weights: [f32; 3],
    /// The placebo control: the text and instance levels shuffled across the batch before the training
    /// step's fusion (sitfer/placebo.rs).
    pub(crate) placebo: bool,
    /// The fixed threshold (`threshold_rule = "fixed"`).
    pub(crate) threshold: f64,
    /// `fixed` or FreeMatch's `self-adaptive` (sitfer/threshold.rs).
    pub(crate) threshold_rule: ThresholdRule,
    /// EMA momentum of the self-adaptive threshold, per step (FreeMatch: 0.999 over ~10⁶ steps).
    pub(crate) sat_momentum: f64,
    /// Refit τ_t and τ_i on val at every epoch end (sitfer/temperature.rs); `tau_text`/`tau_ins` are the
    /// values until the first fit.
    pub(crate) fit_temperatures: bool,
    pub(crate) tau_text: f64,
    pub(crate) tau_ins: f64,
    pub(crate) instance_rule: InstanceRule,
    /// Memory-bank momentum μ (0: overwrite).
    pub(crate) bank_momentum: f64,
    /// Epochs before the instance level joins the training fusion.
    pub(crate) instance_warmup_epochs: u32,
    /// The same as a share of `schedule.epochs`, so a preset keeps its proportion at every scale (the
    /// released code: 15 of 80 epochs, 0.1875); at most one of the two is set. See [`Config::instance_warmup`].
    pub(crate) instance_warmup_fraction: f64,
    /// Epochs before `L_u` is switched on.
    pub(crate) unlabeled_warmup_epochs: u32,
    pub lambda_text: f64,
    pub lambda_unlabeled: f64,
    /// `majority` (one-hot) or `votes` (FER+'s vote shares, for `L_s` of labeled faces).
    pub(crate) label_targets: LabelTargets,
    /// `batch` (FixMatch, the paper) or `selected` (the released code): what `L_u` averages over.
    pub(crate) unlabeled_mean: UnlabeledMean,
    /// Labeled, weak and strong views in three train-mode forwards (the released code; batch norm then
    /// normalises each with its own statistics) instead of one concatenated batch.
    pub(crate) separate_forwards: bool,
    /// Fusion for the val/test fused accuracy only: `as-trained` (the training fusion in force), or a rule
    /// with `eval_weights` and the instance level always in (the released code: mean-prob, 0.3/0.2/0.5).
    pub(crate) eval_fusion: EvalFusion,
    /// Weights of `eval_fusion` when it is not `as-trained`.
    pub(crate) eval_weights: [f32; 3],
    pub lambda_contrastive: f64,
    pub(crate) supcon_temperature: f64,
    /// Multiplies the total loss (released code: 0.4).
    pub loss_scale: f64,
}

/// The fusion behind the val/test fused accuracy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EvalFusion {
    AsTrained,
    MeanProb,
    WeightedLogit,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Text {
    pub encoder: String,
    pub set: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    pub epochs: u32,
    pub steps_per_epoch: u64,
    pub batch_labeled: i64,
    pub batch_unlabeled: i64,
    pub(crate) eval_batch: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Run {
    pub(crate) seed: u64,
    /// Checkpoint every N steps (0: only at epoch ends).
    pub(crate) checkpoint_every: u64,
    /// Write pseudo-label files every N epochs (0: never).
    pub(crate) pseudo_labels_every: u32,
    /// Unlabeled faces an earlier sweep reads: a fixed subset drawn from `seed` (0: all). The last epoch's
    /// sweep always reads every face. Training never reads the sweeps; only audit does.
    pub(crate) sweep_subset: usize,
    /// Rayon threads decoding and augmenting ahead of the step.
    pub(crate) loader_threads: usize,
    /// Batches prepared ahead (the bounded prefetch queue).
    pub(crate) prefetch: usize,
    /// A throughput diagnostic, not a way to train: when N > 0 the first N batches are augmented once and
    /// then fed again and again, so the step runs without augmentation competing for the cores (`make bench`'s
    /// "step alone" row). 0 (default): every step gets its own batch.
    pub(crate) replay_batches: usize,
    /// The training forward's arithmetic: see [`Precision`].
    pub(crate) precision: Precision,
    /// Convolution weights and input batches in the channels-last memory format (oneDNN's and cuDNN's fastest
    /// layout; values are the same, only the strides change).
    pub(crate) channels_last: bool,
    /// Before `precision`: `amp = false` meant fp32 everywhere, `true` (the old default) fp16 on CUDA. Read for
    /// old configs and run folders, never written; with `precision` left at auto, `amp = false` means fp32.
    #[serde(default, skip_serializing)]
    pub(crate) amp: Option<bool>,
}

/// Mixed precision of the training forward and of the backbone in inference (evaluation, sweeps, predict).
/// Losses, fusion, the memory bank and the heads stay fp32 in every mode: the backbone's outputs are cast back
/// before anything reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Precision {
    /// bf16 on CUDA, fp32 on the CPU (bf16 pays off only on CPUs with AVX-512 BF16 or AMX: ask for it there).
    Auto,
    Fp32,
    /// bf16 autocast, no loss scaling (bf16 has fp32's range). On CUDA and on CPUs; emulated, and slower, on
    /// CPUs without native bf16 (`train doctor` says which this is).
    Bf16,
    /// fp16 autocast with dynamic loss scaling, for GPUs older than Ampere; CUDA only.
    Fp16,
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
            placebo: false,
            threshold: 0.75,
            threshold_rule: ThresholdRule::Fixed,
            sat_momentum: 0.999,
            fit_temperatures: false,
            tau_text: 0.1,
            tau_ins: 0.02,
            instance_rule: InstanceRule::Max,
            bank_momentum: 0.0,
            instance_warmup_epochs: 0,
            instance_warmup_fraction: 0.0,
            unlabeled_warmup_epochs: 0,
            lambda_text: 1.0,
            lambda_unlabeled: 1.0,
            label_targets: LabelTargets::Majority,
            unlabeled_mean: UnlabeledMean::Batch,
            separate_forwards: false,
            eval_fusion: EvalFusion::AsTrained,
            eval_weights: [0.3, 0.2, 0.5],
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

impl Default for Schedule {
    fn default() -> Self {
        Schedule { epochs: 12, steps_per_epoch: 150, batch_labeled: 32, batch_unlabeled: 32, eval_batch: 256 }
    }
}

impl Default for Run {
    fn default() -> Self {
        Run {
            seed: 0,
            checkpoint_every: 0,
            pseudo_labels_every: 1,
            sweep_subset: 0,
            loader_threads: 0,
            prefetch: 4,
            replay_batches: 0,
            precision: Precision::Auto,
            channels_last: false,
            amp: None,
        }
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
    let preset_path = exchange::layout::train_preset(dir, preset);
    if !preset_path.is_file() {
        bail!("preset {preset:?}: no {} (presets: {})", preset_path.display(), list(dir).join(", "));
    }
    let scale_path: PathBuf = exchange::layout::scale_preset(dir, scale);
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

impl Method {
    fn validate(&self) -> anyhow::Result<()> {
        use Range::*;
        for (key, v, range) in [
            ("method.threshold", self.threshold, ZeroToOneOpen),
            ("method.tau_text", self.tau_text, Positive),
            ("method.tau_ins", self.tau_ins, Positive),
            ("method.bank_momentum", self.bank_momentum, ZeroToOneOpen),
            ("method.sat_momentum", self.sat_momentum, ZeroToOneOpen),
            ("method.lambda_text", self.lambda_text, NonNegative),
            ("method.lambda_unlabeled", self.lambda_unlabeled, NonNegative),
            ("method.lambda_contrastive", self.lambda_contrastive, NonNegative),
            ("method.supcon_temperature", self.supcon_temperature, Positive),
            ("method.loss_scale", self.loss_scale, Positive),
        ] {
            range.check(key, v)?;
        }
        for (key, w) in [("method.weights", self.weights), ("method.eval_weights", self.eval_weights)] {
            if w.iter().any(|w| !w.is_finite() || *w < 0.0) || w.iter().sum::<f32>() <= 0.0 {
                bail!("{key} = {w:?}: expected three finite non-negative numbers, not all zero");
            }
        }
        if !(0.0..1.0).contains(&self.instance_warmup_fraction) {
            bail!(
                "method.instance_warmup_fraction = {}: expected a share of the schedule in [0, 1)",
                self.instance_warmup_fraction
            );
        }
        if self.instance_warmup_fraction > 0.0 && self.instance_warmup_epochs > 0 {
            bail!(
                "method.instance_warmup_epochs = {} and method.instance_warmup_fraction = {}: set one of them (the \
                 fraction keeps its share of the schedule at every scale)",
                self.instance_warmup_epochs,
                self.instance_warmup_fraction
            );
        }
        if self.placebo && !(self.text || self.instance) {
            bail!("method.placebo = true shuffles the text and instance levels: switch at least one of them on");
        }
        if let InstanceRule::TopKMean(k) | InstanceRule::Knn(k) = self.instance_rule {
            if k < 1 {
                bail!("method.instance_rule = {:?}: expected k of at least 1", self.instance_rule);
            }
        }
        Ok(())
    }
}

impl Schedule {
    fn validate(&self, method: &Method) -> anyhow::Result<()> {
        if self.batch_labeled < 1 || self.epochs < 1 || self.steps_per_epoch < 1 || self.eval_batch < 1 {
            bail!("schedule: epochs, steps_per_epoch, batch_labeled and eval_batch must each be at least 1");
        }
        if self.batch_unlabeled < 0 {
            bail!("schedule.batch_unlabeled = {}: expected 0 or more", self.batch_unlabeled);
        }
        if method.lambda_unlabeled > 0.0 && self.batch_unlabeled < 1 {
            bail!("schedule.batch_unlabeled must be at least 1 when method.lambda_unlabeled > 0");
        }
        Ok(())
    }
}

/// The ranges config values are checked against.
#[derive(Clone, Copy)]
pub(crate) enum Range {
    /// `(0, ∞)`
    Positive,
    /// `[0, ∞)`
    NonNegative,
    /// `[0, 1)`
    ZeroToOneOpen,
}

impl Range {
    pub(crate) fn check(self, key: &str, v: f64) -> anyhow::Result<()> {
        let (ok, text) = match self {
            Range::Positive => (v > 0.0, "a finite number > 0"),
            Range::NonNegative => (v >= 0.0, "a finite number >= 0"),
            Range::ZeroToOneOpen => ((0.0..1.0).contains(&v), "a number in [0, 1)"),
        };
        if ok && v.is_finite() {
            Ok(())
        } else {
            bail!("{key} = {v}: expected {text}")
        }
    }
}

/// Preset names in `dir`.
pub(crate) fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string)).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Config {
    /// Every section's values in their ranges and consistent with each other; each message names the key,
    /// the value and what was expected.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.method.validate()?;
        self.optim.validate()?;
        self.schedule.validate(&self.method)?;
        self.model.validate()?;
        if self.run.prefetch < 1 {
            bail!("run.prefetch = 0: expected at least 1 batch prepared ahead");
        }
        Ok(())
    }

    /// Epochs before the instance level joins the training fusion: `method.instance_warmup_epochs`, or
    /// `method.instance_warmup_fraction` of `schedule.epochs` rounded to the nearest epoch.
    pub(crate) fn instance_warmup(&self) -> u32 {
        let m = &self.method;
        if m.instance_warmup_fraction > 0.0 {
            (m.instance_warmup_fraction * f64::from(self.schedule.epochs)).round() as u32
        } else {
            m.instance_warmup_epochs
        }
    }

    /// The selection threshold at the precision every stage compares it in.
    pub(crate) fn threshold(&self) -> f32 {
        self.method.threshold as f32
    }

    /// The fusion rule as recorded for audit.
    pub(crate) fn fusion(&self) -> Fusion {
        let m = &self.method;
        Fusion { mode: m.fusion, weights: m.weights, tau_text: m.tau_text as f32, tau_ins: m.tau_ins as f32 }
    }

    /// The weights of the loss terms.
    pub(crate) fn loss_weights(&self) -> crate::sitfer::losses::Weights {
        let m = &self.method;
        crate::sitfer::losses::Weights {
            text: m.lambda_text,
            unlabeled: m.lambda_unlabeled,
            contrastive: m.lambda_contrastive,
            scale: m.loss_scale,
        }
    }

    /// Whether pseudo-labels are used at all (supervised has none).
    pub(crate) fn semi_supervised(&self) -> bool {
        self.method.lambda_unlabeled > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Init;

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
        // The released code's warm-up, 15 of 80 epochs, kept as a share: 3 of the cpu scale's 15.
        let official_cpu = resolve(&dir(), "sitfer-official", "cpu", &[]).unwrap();
        assert_eq!((official_cpu.schedule.epochs, official_cpu.instance_warmup()), (15, 3));
        let both = resolve(&dir(), "sitfer-official", "cpu", &["method.instance_warmup_epochs=2".into()]);
        let e = format!("{:#}", both.unwrap_err());
        assert!(e.contains("instance_warmup_fraction") && e.contains("set one of them"), "{e}");
        assert_eq!((official.model.image_size, official.schedule.steps_per_epoch), (150, 800));
        assert_eq!((official.model.arch, &official.model.init), (crate::model::Arch::DlibResnet, &Init::Dlib));
        let demo = resolve(&dir(), "sitfer", "demo", &[]).unwrap();
        assert_eq!(
            (demo.model.arch, &demo.model.init, demo.model.image_size),
            (crate::model::Arch::DlibResnet, &Init::Dlib, 64)
        );
        let sup = resolve(&dir(), "supervised", "cpu", &[]).unwrap();
        assert!(!sup.semi_supervised() && !sup.method.text && !sup.method.instance);
    }

    #[test]
    fn overrides_apply_and_typos_are_refused() {
        let c = resolve(&dir(), "sitfer", "tiny", &["method.threshold=0.9".into(), "optim.kind=adamw".into()]).unwrap();
        assert_eq!(c.method.threshold, 0.9);
        assert!(matches!(c.optim.kind(), crate::optim::OptimKind::AdamW { .. }));
        let e = resolve(&dir(), "sitfer", "tiny", &["optim.kind=adamx".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("expected one of `adam`, `adamw`, `sgd`, `sgd-nesterov`"), "{e:#}");
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
        let e = resolve(&dir(), "sitfer", "cpu", &["model.dlib_cut=64".into()]).unwrap_err().to_string();
        assert!(e.contains("model.dlib_cut = 64") && e.contains("128") && e.contains("256"), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["model.init=dlib".into()]).unwrap_err().to_string();
        assert!(e.contains("model.init = \"dlib\" needs model.arch = \"dlib-resnet\""), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["model.arch=dlib-resnet".into()]).unwrap_err().to_string();
        assert!(e.contains("model.image_size = 32") && e.contains("103 px"), "{e}");
        let e = resolve(&dir(), "sitfer", "cpu", &["model.init=scratch".into(), "model.freeze_bn=true".into()]);
        assert!(e.unwrap_err().to_string().contains("model.freeze_bn = true"));
        let e = resolve(&dir(), "sitfer", "cpu", &["model.freeze_bn=true".into(), "model.sync_bn=true".into()]);
        assert!(e.unwrap_err().to_string().contains("no batch to synchronise"));
        let cpu = resolve(&dir(), "sitfer", "cpu", &["model.init=scratch".into()]).unwrap();
        assert_eq!((cpu.model.arch, cpu.model.feature_dim()), (crate::model::Arch::DlibResnet, 128));
    }

    /// Out-of-range values are refused where they are parsed, naming the key, the value and the range.
    #[test]
    fn every_numeric_key_is_range_checked() {
        for (set, want) in [
            ("optim.lr=-1", "optim.lr = -1: expected a finite number > 0"),
            ("optim.lr=nan", "optim.lr = NaN: expected a finite number > 0"),
            ("optim.lr=inf", "optim.lr = inf"),
            ("optim.ema=2", "optim.ema = 2: expected a number in [0, 1)"),
            ("optim.beta1=1.5", "optim.beta1 = 1.5: expected a number in [0, 1)"),
            ("method.lambda_text=-1", "method.lambda_text = -1: expected a finite number >= 0"),
            ("model.dropout=1.5", "model.dropout = 1.5: expected a number in [0, 1)"),
            ("method.tau_text=nan", "method.tau_text = NaN: expected a finite number > 0"),
            ("method.tau_ins=0", "method.tau_ins = 0"),
            ("method.weights=[0.5, nan, 0.5]", "method.weights"),
            ("schedule.eval_batch=0", "eval_batch"),
            ("run.prefetch=0", "run.prefetch = 0"),
        ] {
            let e = resolve(&dir(), "sitfer", "tiny", &[set.to_string()]).unwrap_err().to_string();
            assert!(e.contains(want), "{set}: {e}");
        }
        assert!(resolve(&dir(), "sitfer", "tiny", &["optim.ema=0.999".into(), "model.dropout=0".into()]).is_ok());
    }
}
