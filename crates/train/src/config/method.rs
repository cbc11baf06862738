//! `[method]`: the method's knobs grouped by the question each answers (levels, fusion, selection, losses,
//! released-code switches), their defaults and checks, and [`MOVED`], the map from the flat keys they had
//! before to their places now.

use anyhow::bail;
use exchange::fusion::FusionMode;
use serde::{Deserialize, Serialize};

use crate::range::Range;
use crate::sitfer::alignment::AlignTarget;
use crate::sitfer::losses::{LabelTargets, UnlabeledMean};
use crate::sitfer::memory_bank::InstanceRule;
use crate::sitfer::propagation::{InstanceSource, PropagationConfig};
use crate::sitfer::threshold::ThresholdRule;

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
    /// `bank` (the memory bank's vote, every step) or `propagation` (label propagation over every training
    /// face, recomputed at each sweep; sitfer/propagation.rs).
    pub(crate) instance_source: InstanceSource,
    pub(crate) propagation: PropagationConfig,
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
    /// `fixed`, FreeMatch's `self-adaptive` or FlexMatch's `flex` (sitfer/threshold.rs; `flex` scales
    /// `threshold` per class).
    pub(crate) rule: ThresholdRule,
    /// EMA momentum of the self-adaptive threshold, per step (FreeMatch: 0.999 over ~10⁶ steps).
    pub(crate) sat_momentum: f64,
    /// `rule = "flex"`: FlexMatch's threshold warm-up (faces never counted weigh in every class's
    /// learning effect) on (its default) or off (sitfer/threshold.rs).
    pub(crate) flex_warmup: bool,
    /// Distribution alignment before selection: `off`, `uniform` or `labeled` (sitfer/alignment.rs).
    pub(crate) alignment: AlignTarget,
    /// EMA momentum of the alignment's running model distribution, per step (USB: 0.999).
    pub(crate) alignment_momentum: f64,
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
            instance_source: InstanceSource::Bank,
            propagation: PropagationConfig::default(),
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
        Selection {
            threshold: 0.75,
            rule: ThresholdRule::Fixed,
            sat_momentum: 0.999,
            flex_warmup: true,
            alignment: AlignTarget::Off,
            alignment_momentum: 0.999,
            unlabeled_warmup_epochs: 0,
        }
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

/// Where an old flat `[method]` key lives now (`method.threshold` -> `method.selection.threshold`), for the
/// messages of the binary's `config --get`.
pub fn new_name(old: &str) -> Option<&'static str> {
    MOVED.iter().find(|(o, _)| *o == old).map(|(_, n)| *n)
}

impl Method {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
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
        let p = &self.propagation;
        if p.k < 1 || p.iterations < 1 {
            bail!("method.levels.propagation = {p:?}: expected k and iterations of at least 1");
        }
        Range::NonNegative.check("method.levels.propagation.gamma", p.gamma)?;
        Range::ZeroToOneOpen.check("method.levels.propagation.alpha", p.alpha)?;
        if self.instance_source == InstanceSource::Propagation && !self.instance {
            bail!("method.levels.instance_source = \"propagation\" feeds the instance level: set method.levels.instance = true");
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
        Range::ZeroToOneOpen.check("method.selection.sat_momentum", self.sat_momentum)?;
        Range::ZeroToOneOpen.check("method.selection.alignment_momentum", self.alignment_momentum)
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
