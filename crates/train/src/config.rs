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

/// The method's knobs, grouped by the question each answers (`[method.levels]`, `[method.fusion]`,
/// `[method.selection]`, `[method.losses]`, `[method.released_code]`). Before the grouping they were 26 flat
/// keys; [`MOVED`] maps each old name to its new one, so an old config is refused with the key to write.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Method {
    pub levels: Levels,
    pub(crate) fusion: FusionConfig,
    pub(crate) selection: Selection,
    pub losses: Losses,
    pub released_code: ReleasedCode,
}

/// Which levels score an unlabeled face, and how each turns its scores into probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Levels {
    /// Text level on (needs text prototypes).
    pub text: bool,
    /// Instance level (memory bank) on.
    pub instance: bool,
    /// Temperatures of the text and instance levels' softmax.
    pub(crate) tau_text: f64,
    pub(crate) tau_ins: f64,
    /// Refit τ_t and τ_i on val at every epoch end (sitfer/temperature.rs); `tau_text`/`tau_ins` are the
    /// values until the first fit.
    pub(crate) fit_temperatures: bool,
    pub(crate) instance_rule: InstanceRule,
    /// Memory-bank momentum μ (0: overwrite).
    pub(crate) bank_momentum: f64,
    /// Epochs before the instance level joins the training fusion.
    pub(crate) instance_warmup_epochs: u32,
    /// The same as a share of `schedule.epochs`, so a preset keeps its proportion at every scale (the
    /// released code: 15 of 80 epochs, 0.1875); at most one of the two is set. See [`Config::instance_warmup`].
    pub(crate) instance_warmup_fraction: f64,
}

/// How the levels' votes combine into one pseudo-label distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FusionConfig {
    pub(crate) mode: FusionMode,
    /// Weights of semantic, text, instance.
    pub(crate) weights: [f32; 3],
    /// The placebo control: the text and instance levels shuffled across the batch before the training
    /// step's fusion (sitfer/placebo.rs).
    pub(crate) placebo: bool,
}

/// Which fused pseudo-labels train the strong view, and from when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Selection {
    /// The fixed threshold (`rule = "fixed"`).
    pub(crate) threshold: f64,
    /// `fixed` or FreeMatch's `self-adaptive` (sitfer/threshold.rs).
    pub(crate) rule: ThresholdRule,
    /// EMA momentum of the self-adaptive threshold, per step (FreeMatch: 0.999 over ~10⁶ steps).
    pub(crate) sat_momentum: f64,
    /// Epochs before `L_u` is switched on.
    pub(crate) unlabeled_warmup_epochs: u32,
}

/// The loss terms' weights and targets (sitfer/losses.rs has the formula).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Losses {
    pub lambda_text: f64,
    pub lambda_unlabeled: f64,
    pub lambda_contrastive: f64,
    pub(crate) supcon_temperature: f64,
    /// `majority` (one-hot) or `votes` (FER+'s vote shares, for `L_s` of labeled faces).
    pub(crate) label_targets: LabelTargets,
}

/// Switches that reproduce the released SIT-FER code where it departs from the paper (docs/method.md); the
/// defaults are the paper's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasedCode {
    /// `batch` (FixMatch, the paper) or `selected` (the released code): what `L_u` averages over.
    pub(crate) unlabeled_mean: UnlabeledMean,
    /// Labeled, weak and strong views in three train-mode forwards (the released code; batch norm then
    /// normalises each with its own statistics) instead of one concatenated batch.
    pub(crate) separate_forwards: bool,
    /// Multiplies the total loss (released code: 0.4).
    pub loss_scale: f64,
    /// Fusion for the val/test fused accuracy only: `as-trained` (the training fusion in force), or a rule
    /// with `eval_weights` and the instance level always in (the released code: mean-prob, 0.3/0.2/0.5).
    pub(crate) eval_fusion: EvalFusion,
    /// Weights of `eval_fusion` when it is not `as-trained`.
    pub(crate) eval_weights: [f32; 3],
}

/// The `[method]` keys that moved when the section was grouped: (old key, new key).
pub(crate) const MOVED: &[(&str, &str)] = &[
    ("method.text", "method.levels.text"),
    ("method.instance", "method.levels.instance"),
    ("method.tau_text", "method.levels.tau_text"),
    ("method.tau_ins", "method.levels.tau_ins"),
    ("method.fit_temperatures", "method.levels.fit_temperatures"),
    ("method.instance_rule", "method.levels.instance_rule"),
    ("method.bank_momentum", "method.levels.bank_momentum"),
    ("method.instance_warmup_epochs", "method.levels.instance_warmup_epochs"),
    ("method.instance_warmup_fraction", "method.levels.instance_warmup_fraction"),
    ("method.fusion", "method.fusion.mode"),
    ("method.weights", "method.fusion.weights"),
    ("method.placebo", "method.fusion.placebo"),
    ("method.threshold", "method.selection.threshold"),
    ("method.threshold_rule", "method.selection.rule"),
    ("method.sat_momentum", "method.selection.sat_momentum"),
    ("method.unlabeled_warmup_epochs", "method.selection.unlabeled_warmup_epochs"),
    ("method.lambda_text", "method.losses.lambda_text"),
    ("method.lambda_unlabeled", "method.losses.lambda_unlabeled"),
    ("method.lambda_contrastive", "method.losses.lambda_contrastive"),
    ("method.supcon_temperature", "method.losses.supcon_temperature"),
    ("method.label_targets", "method.losses.label_targets"),
    ("method.unlabeled_mean", "method.released_code.unlabeled_mean"),
    ("method.separate_forwards", "method.released_code.separate_forwards"),
    ("method.loss_scale", "method.released_code.loss_scale"),
    ("method.eval_fusion", "method.released_code.eval_fusion"),
    ("method.eval_weights", "method.released_code.eval_weights"),
];

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

impl Default for Levels {
    fn default() -> Self {
        Levels {
            text: true,
            instance: true,
            tau_text: 0.1,
            tau_ins: 0.02,
            fit_temperatures: false,
            instance_rule: InstanceRule::Max,
            bank_momentum: 0.0,
            instance_warmup_epochs: 0,
            instance_warmup_fraction: 0.0,
        }
    }
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig { mode: FusionMode::MeanProb, weights: [1.0, 1.0, 1.0], placebo: false }
    }
}

impl Default for Selection {
    fn default() -> Self {
        Selection { threshold: 0.75, rule: ThresholdRule::Fixed, sat_momentum: 0.999, unlabeled_warmup_epochs: 0 }
    }
}

impl Default for Losses {
    fn default() -> Self {
        Losses {
            lambda_text: 1.0,
            lambda_unlabeled: 1.0,
            lambda_contrastive: 0.0,
            supcon_temperature: 0.07,
            label_targets: LabelTargets::Majority,
        }
    }
}

impl Default for ReleasedCode {
    fn default() -> Self {
        ReleasedCode {
            unlabeled_mean: UnlabeledMean::Batch,
            separate_forwards: false,
            loss_scale: 1.0,
            eval_fusion: EvalFusion::AsTrained,
            eval_weights: [0.3, 0.2, 0.5],
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

/// Every key of `layer` must exist in `base` (a typo would otherwise be silently ignored); a key that moved
/// ([`MOVED`]) is refused with its new name.
fn check_keys(base: &toml::Value, layer: &toml::Value, origin: &str) -> anyhow::Result<()> {
    fn walk(base: &toml::Value, layer: &toml::Value, prefix: &str, origin: &str) -> anyhow::Result<()> {
        if let (toml::Value::Table(b), toml::Value::Table(l)) = (base, layer) {
            for (k, v) in l {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if let Some(new) = moved(&key, b.get(k), v) {
                    bail!(
                        "{origin}: `{key}` has moved to `{new}` ([method] is grouped by concern: levels, fusion, \
                         selection, losses, released_code; docs/pipeline.md#configuration)"
                    );
                }
                match b.get(k) {
                    None => bail!(
                        "{origin}: unknown setting `{key}`{} (known here: {})",
                        closest(b, k, prefix).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default(),
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

/// Where an old flat `[method]` key lives now (`method.threshold` -> `method.selection.threshold`), for the
/// messages of the binary's `config --get`.
pub fn new_name(old: &str) -> Option<&'static str> {
    MOVED.iter().find(|(o, _)| *o == old).map(|(_, n)| *n)
}

/// The setting under `table` (at any depth) whose last name is nearest to the mistyped `name`, within two edits.
fn closest(table: &toml::Table, name: &str, prefix: &str) -> Option<String> {
    fn leaves(t: &toml::Table, path: &str, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            match v.as_table() {
                Some(sub) => leaves(sub, &p, out),
                None => out.push((k.clone(), p)),
            }
        }
    }
    let mut all = Vec::new();
    leaves(table, prefix, &mut all);
    all.into_iter()
        .map(|(leaf, path)| (strsim::levenshtein(&leaf, name), path))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, path)| path)
}

/// The new name of `key` when it is one of the old flat `[method]` keys: absent from the new layout, or (as
/// `method.fusion`, now a table) given a plain value where a table is expected.
fn moved(key: &str, now: Option<&toml::Value>, given: &toml::Value) -> Option<&'static str> {
    let (_, new) = MOVED.iter().find(|(old, _)| *old == key)?;
    match now {
        Some(toml::Value::Table(_)) if given.is_table() => None,
        Some(toml::Value::Table(_)) | None => Some(new),
        Some(_) => None,
    }
}

/// Rewrites a saved config's old flat `[method]` keys to their grouped places, so run folders and snapshots
/// written before the grouping still load; configs a person writes are refused instead ([`check_keys`]).
fn upgrade_saved(value: &mut toml::Value) {
    let Some(method) = value.get_mut("method").and_then(toml::Value::as_table_mut) else { return };
    for (old, new) in MOVED {
        let (Some(old), Some((group, key))) =
            (old.strip_prefix("method."), new.strip_prefix("method.").and_then(|n| n.split_once('.')))
        else {
            continue;
        };
        if method.get(old).is_some_and(|v| !v.is_table()) {
            let v = method.remove(old).expect("present");
            let slot = method.entry(group).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(t) = slot.as_table_mut() {
                t.insert(key.to_string(), v);
            }
        }
    }
}

impl Config {
    /// A config a run saved (its folder's `config.toml`), in this layout or the one before `[method]` was
    /// grouped.
    pub fn from_saved_toml(text: &str) -> anyhow::Result<Config> {
        let mut value: toml::Value = toml::from_str(text).context("not valid TOML")?;
        upgrade_saved(&mut value);
        value.try_into().context("not a config this build of train reads")
    }

    /// The config a snapshot's model card holds (JSON), in this layout or the one before the grouping.
    pub(crate) fn from_saved_json(json: &serde_json::Value) -> anyhow::Result<Config> {
        let mut value = toml::Value::try_from(json).context("the model card's config is not a table")?;
        upgrade_saved(&mut value);
        value.try_into().context("the model card's config is not one this build of train reads")
    }
}

impl Method {
    fn validate(&self) -> anyhow::Result<()> {
        self.levels.validate()?;
        self.fusion.validate()?;
        self.selection.validate()?;
        self.losses.validate()?;
        self.released_code.validate()?;
        if self.fusion.placebo && !(self.levels.text || self.levels.instance) {
            bail!(
                "method.fusion.placebo = true shuffles the text and instance levels: switch at least one of them on \
                 (method.levels.text, method.levels.instance)"
            );
        }
        Ok(())
    }
}

impl Levels {
    fn validate(&self) -> anyhow::Result<()> {
        use Range::*;
        Positive.check("method.levels.tau_text", self.tau_text)?;
        Positive.check("method.levels.tau_ins", self.tau_ins)?;
        ZeroToOneOpen.check("method.levels.bank_momentum", self.bank_momentum)?;
        if !(0.0..1.0).contains(&self.instance_warmup_fraction) {
            bail!(
                "method.levels.instance_warmup_fraction = {}: expected a share of the schedule in [0, 1)",
                self.instance_warmup_fraction
            );
        }
        if self.instance_warmup_fraction > 0.0 && self.instance_warmup_epochs > 0 {
            bail!(
                "method.levels.instance_warmup_epochs = {} and method.levels.instance_warmup_fraction = {}: set one \
                 of them (the fraction keeps its share of the schedule at every scale)",
                self.instance_warmup_epochs,
                self.instance_warmup_fraction
            );
        }
        if let InstanceRule::TopKMean(k) | InstanceRule::Knn(k) = self.instance_rule {
            if k < 1 {
                bail!("method.levels.instance_rule = {:?}: expected k of at least 1", self.instance_rule);
            }
        }
        Ok(())
    }
}

/// Three level weights: finite, non-negative, not all zero.
fn check_weights(key: &str, w: [f32; 3]) -> anyhow::Result<()> {
    if w.iter().any(|w| !w.is_finite() || *w < 0.0) || w.iter().sum::<f32>() <= 0.0 {
        bail!("{key} = {w:?}: expected three finite non-negative numbers, not all zero");
    }
    Ok(())
}

impl FusionConfig {
    fn validate(&self) -> anyhow::Result<()> {
        check_weights("method.fusion.weights", self.weights)
    }
}

impl Selection {
    fn validate(&self) -> anyhow::Result<()> {
        Range::ZeroToOneOpen.check("method.selection.threshold", self.threshold)?;
        Range::ZeroToOneOpen.check("method.selection.sat_momentum", self.sat_momentum)
    }
}

impl Losses {
    fn validate(&self) -> anyhow::Result<()> {
        use Range::*;
        NonNegative.check("method.losses.lambda_text", self.lambda_text)?;
        NonNegative.check("method.losses.lambda_unlabeled", self.lambda_unlabeled)?;
        NonNegative.check("method.losses.lambda_contrastive", self.lambda_contrastive)?;
        Positive.check("method.losses.supcon_temperature", self.supcon_temperature)
    }
}

impl ReleasedCode {
    fn validate(&self) -> anyhow::Result<()> {
        Range::Positive.check("method.released_code.loss_scale", self.loss_scale)?;
        check_weights("method.released_code.eval_weights", self.eval_weights)
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
        if method.losses.lambda_unlabeled > 0.0 && self.batch_unlabeled < 1 {
            bail!("schedule.batch_unlabeled must be at least 1 when method.losses.lambda_unlabeled > 0");
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

    /// Epochs before the instance level joins the training fusion: `method.levels.instance_warmup_epochs`, or
    /// `method.levels.instance_warmup_fraction` of `schedule.epochs` rounded to the nearest epoch.
    pub(crate) fn instance_warmup(&self) -> u32 {
        let m = &self.method.levels;
        if m.instance_warmup_fraction > 0.0 {
            (m.instance_warmup_fraction * f64::from(self.schedule.epochs)).round() as u32
        } else {
            m.instance_warmup_epochs
        }
    }

    /// The selection threshold at the precision every stage compares it in.
    pub(crate) fn threshold(&self) -> f32 {
        self.method.selection.threshold as f32
    }

    /// The fusion rule as recorded for audit.
    pub(crate) fn fusion(&self) -> Fusion {
        let (f, l) = (&self.method.fusion, &self.method.levels);
        Fusion { mode: f.mode, weights: f.weights, tau_text: l.tau_text as f32, tau_ins: l.tau_ins as f32 }
    }

    /// The weights of the loss terms.
    pub(crate) fn loss_weights(&self) -> crate::sitfer::losses::Weights {
        let m = &self.method.losses;
        crate::sitfer::losses::Weights {
            text: m.lambda_text,
            unlabeled: m.lambda_unlabeled,
            contrastive: m.lambda_contrastive,
            scale: self.method.released_code.loss_scale,
        }
    }

    /// Whether pseudo-labels are used at all (supervised has none).
    pub(crate) fn semi_supervised(&self) -> bool {
        self.method.losses.lambda_unlabeled > 0.0
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
        assert_eq!(official.method.fusion.mode, FusionMode::WeightedLogit);
        assert_eq!(official.text.encoder, "random");
        // The released code's warm-up, 15 of 80 epochs, kept as a share: 3 of the cpu scale's 15.
        let official_cpu = resolve(&dir(), "sitfer-official", "cpu", &[]).unwrap();
        assert_eq!((official_cpu.schedule.epochs, official_cpu.instance_warmup()), (15, 3));
        let both = resolve(&dir(), "sitfer-official", "cpu", &["method.levels.instance_warmup_epochs=2".into()]);
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
        assert!(!sup.semi_supervised() && !sup.method.levels.text && !sup.method.levels.instance);
    }

    #[test]
    fn overrides_apply_and_typos_are_refused() {
        let c =
            resolve(&dir(), "sitfer", "tiny", &["method.selection.threshold=0.9".into(), "optim.kind=adamw".into()])
                .unwrap();
        assert_eq!(c.method.selection.threshold, 0.9);
        assert!(matches!(c.optim.kind(), crate::optim::OptimKind::AdamW { .. }));
        let e = resolve(&dir(), "sitfer", "tiny", &["optim.kind=adamx".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("expected one of `adam`, `adamw`, `sgd`, `sgd-nesterov`"), "{e:#}");
        let e = resolve(&dir(), "sitfer", "tiny", &["method.treshold=0.9".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown setting `method.treshold`; did you mean `method.selection.threshold`?"), "{e}");
        let e = resolve(&dir(), "sitfer", "tiny", &["method.selection.threshold=1.5".into()]).unwrap_err().to_string();
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

    /// A config written before `[method]` was grouped: each moved key, in a preset or a `--set`, is refused
    /// naming its new key; a run folder's saved config in the old layout still loads, to the same values.
    #[test]
    fn moved_method_keys_name_their_new_place() {
        for (set, want) in [
            ("method.threshold=0.9", "`method.threshold` has moved to `method.selection.threshold`"),
            ("method.fusion=\"mean-prob\"", "`method.fusion` has moved to `method.fusion.mode`"),
            ("method.threshold_rule=fixed", "`method.threshold_rule` has moved to `method.selection.rule`"),
            ("method.loss_scale=0.4", "`method.loss_scale` has moved to `method.released_code.loss_scale`"),
            ("method.text=false", "`method.text` has moved to `method.levels.text`"),
        ] {
            let e = resolve(&dir(), "sitfer", "tiny", &[set.to_string()]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--set {set}: ")) && e.contains(want), "{set}: {e}");
        }
        let old_preset = tempfile::tempdir().unwrap();
        std::fs::create_dir(old_preset.path().join("scale")).unwrap();
        std::fs::write(old_preset.path().join("scale/tiny.toml"), "").unwrap();
        std::fs::write(old_preset.path().join("old.toml"), "[method]\nfusion = \"mean-prob\"\nweights = [1, 0, 0]\n")
            .unwrap();
        let e = resolve(old_preset.path(), "old", "tiny", &[]).unwrap_err().to_string();
        assert!(e.contains("old.toml") && e.contains("`method.fusion` has moved to `method.fusion.mode`"), "{e}");
        // Every old key has a new home that exists, and every new home is reached by exactly one old key.
        let value = toml::Value::try_from(Config::default()).unwrap();
        for (old, new) in MOVED {
            let found = new.split('.').try_fold(&value, |v, k| v.get(k));
            assert!(found.is_some_and(|v| !v.is_table()), "{old} -> {new}: not a setting");
        }
        let news: std::collections::BTreeSet<_> = MOVED.iter().map(|(_, n)| n).collect();
        assert_eq!(news.len(), MOVED.len());

        let official = resolve(&dir(), "sitfer-official", "cpu", &[]).unwrap();
        let old_saved = "preset = \"sitfer-official\"\nscale = \"cpu\"\n[method]\ntext = true\ninstance = true\n\
                         fusion = \"weighted-logit\"\nweights = [0.3, 0.2, 0.5]\nthreshold_rule = \"fixed\"\n\
                         tau_text = 1.0\ntau_ins = 1.0\ninstance_warmup_fraction = 0.1875\nlambda_unlabeled = 0.5\n\
                         loss_scale = 0.4\nunlabeled_mean = \"selected\"\nseparate_forwards = true\n\
                         eval_fusion = \"mean-prob\"\n";
        let mut new_saved = toml::Value::try_from(&official).unwrap();
        let method = toml::Value::try_from(&Config::from_saved_toml(old_saved).unwrap().method).unwrap();
        new_saved.as_table_mut().unwrap().insert("method".into(), method);
        let upgraded: Config = new_saved.try_into().unwrap();
        assert_eq!(upgraded, official, "the old layout loads to the same values");
        let json = serde_json::to_value(&official).unwrap();
        assert_eq!(Config::from_saved_json(&json).unwrap(), official);
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
            ("method.losses.lambda_text=-1", "method.losses.lambda_text = -1: expected a finite number >= 0"),
            ("model.dropout=1.5", "model.dropout = 1.5: expected a number in [0, 1)"),
            ("method.levels.tau_text=nan", "method.levels.tau_text = NaN: expected a finite number > 0"),
            ("method.levels.tau_ins=0", "method.levels.tau_ins = 0"),
            ("method.fusion.weights=[0.5, nan, 0.5]", "method.fusion.weights"),
            ("schedule.eval_batch=0", "eval_batch"),
            ("run.prefetch=0", "run.prefetch = 0"),
        ] {
            let e = resolve(&dir(), "sitfer", "tiny", &[set.to_string()]).unwrap_err().to_string();
            assert!(e.contains(want), "{set}: {e}");
        }
        assert!(resolve(&dir(), "sitfer", "tiny", &["optim.ema=0.999".into(), "model.dropout=0".into()]).is_ok());
    }
}
