//! The run configuration: defaults here, then a method preset (`pipelines/train/<preset>.toml`), then a
//! scale preset (`pipelines/train/scale/<scale>.toml`), then `--set section.key=value` overrides, in that
//! order. Unknown keys are refused with the file (or override) that holds them. The resolved config is what
//! a run saves and what `--resume` compares against.

//!
//! Rooms: this file holds the sections other than `[method]` and what the whole config answers;
//! [`method`] the `[method]` groups; [`layers`] the resolution of the layers and the reading of saved configs.

mod layers;
mod method;

use std::path::Path;

use anyhow::bail;
use exchange::fusion::Fusion;
use serde::{Deserialize, Serialize};

pub use layers::resolve;
pub(crate) use method::EvalFusion;
pub use method::{new_name, Levels, Losses, Method, ReleasedCode};

pub(crate) use crate::model::config::Model;
pub(crate) use crate::optim::Optim;
pub(crate) use crate::sitfer::losses::LabelTargets;
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
    use std::path::PathBuf;

    use exchange::fusion::FusionMode;

    use super::method::MOVED;
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
