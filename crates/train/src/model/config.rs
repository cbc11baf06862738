//! The `[model]` section of a run's configuration: which backbone, at what size, with which head, from
//! which weights. Read by [`super::Net::new`]; resolved and validated with the rest in `crate::config`.

use std::fmt;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::resnet::{Stem, TORCHVISION_WIDTH};
use super::Arch;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Model {
    pub(crate) image_size: i64,
    /// `resnet18` (the method's backbone), `dlib-resnet` (dlib's face-recognition ResNet, with
    /// `init = "dlib"` the face-pretrained start) or `small-cnn` (CPU demos at 32–48 px).
    pub(crate) arch: Arch,
    /// ResNet-18's first layer; ignored by `small-cnn`.
    pub(crate) stem: Stem,
    /// Channels of the first stage; the stages double it (ResNet-18: feature 8× this, torchvision uses 64;
    /// small-cnn: feature 4×).
    pub(crate) width: i64,
    pub(crate) dropout: f64,
    /// The classifier reads `classifier_scale · h` (1 = the paper's `z = W h + b` on the unit feature). With
    /// `h` of norm 1 the logits can only grow as fast as Adam grows `W`: over a few thousand steps from scratch
    /// that keeps the classifier under-confident and under-fitted (see the `demo` scale).
    pub(crate) classifier_scale: f64,
    /// `dlib-resnet` only: where the trunk is cut, in channels: 128 (after the 128-channel stage, where
    /// expression is still in the features) or 256 (the whole trunk).
    pub(crate) dlib_cut: i64,
    /// Pretrained weights only: batch norms stay in eval mode while training (running statistics fixed). Off:
    /// batch statistics in training, running statistics in evaluation, as usual. In a data-parallel run this is
    /// the mode in which the ranks compute exactly the one-process step (batch statistics are per rank).
    pub(crate) freeze_bn: bool,
    /// Data-parallel runs: batch norms in training take the statistics of every rank's share together (the
    /// whole step's batch, as one process would), at the cost of two small collectives per batch norm and
    /// step. Off: each rank normalises its own share (PyTorch DDP's default). Nothing changes in a
    /// one-process run.
    pub(crate) sync_bn: bool,
    /// `init = "dlib"`: training faces (a seeded sample of labeled + unlabeled) the batch norms are calibrated on.
    pub(crate) calibration_images: usize,
    /// Where the weights start: `scratch`, `dlib` (dlib's face weights that `make setup` fetches;
    /// `arch = "dlib-resnet"`), or a safetensors file with torchvision ResNet-18 names.
    pub init: Init,
}

/// `model.init`, parsed once. In the config it stays one string (`"scratch"`, `"dlib"`, or a path), so
/// configs, their hashes and the runs they keep are what they were when it was a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Init {
    /// Random initialisation.
    Scratch,
    /// dlib's face-recognition ResNet, then batch norms calibrated on the training faces.
    Dlib,
    /// A safetensors file with torchvision ResNet-18 names.
    File(PathBuf),
}

impl Init {
    /// Pretrained weights of either kind.
    pub(crate) fn is_pretrained(&self) -> bool {
        *self != Init::Scratch
    }
}

impl From<String> for Init {
    fn from(s: String) -> Self {
        match s.as_str() {
            "scratch" => Init::Scratch,
            "dlib" => Init::Dlib,
            _ => Init::File(PathBuf::from(s)),
        }
    }
}

impl From<Init> for String {
    fn from(init: Init) -> Self {
        init.to_string()
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Scratch => f.write_str("scratch"),
            Init::Dlib => f.write_str("dlib"),
            Init::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Model {
    /// The `[model]` keys in their ranges and consistent with each other (`crate::config::Config::validate`).
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        use crate::range::Range::*;
        ZeroToOneOpen.check("model.dropout", self.dropout)?;
        Positive.check("model.classifier_scale", self.classifier_scale)?;
        if !(16..=1024).contains(&self.image_size) {
            bail!("model.image_size = {}: expected 16 to 1024 pixels", self.image_size);
        }
        if self.classifier_scale > 100.0 {
            bail!("model.classifier_scale = {}: expected a number in (0, 100] (1 = the paper)", self.classifier_scale);
        }
        if !(4..=256).contains(&self.width) {
            bail!("model.width = {}: expected 4 to 256 channels (torchvision's ResNet-18: 64)", self.width);
        }
        let dlib = self.arch == Arch::DlibResnet;
        if dlib {
            let Some(min) = super::dlib::min_image_size(self.dlib_cut) else {
                bail!(
                    "model.dlib_cut = {}: expected 128 (after the 128-channel stage) or 256 (the whole trunk)",
                    self.dlib_cut
                );
            };
            if self.image_size < min {
                bail!(
                    "model.image_size = {}: dlib's network cut at model.dlib_cut = {} needs at least {min} px (its \
                     strided convolutions have no padding)",
                    self.image_size,
                    self.dlib_cut
                );
            }
        }
        if self.init == Init::Dlib && !dlib {
            bail!("model.init = \"dlib\" needs model.arch = \"dlib-resnet\" (it is {:?})", self.arch);
        }
        if self.freeze_bn && !self.init.is_pretrained() {
            bail!("model.freeze_bn = true: only with pretrained weights (fixed statistics of random weights mean nothing)");
        }
        if self.freeze_bn && self.sync_bn {
            bail!(
                "model.freeze_bn = true and model.sync_bn = true: frozen batch norms use their running statistics, \
                 there is no batch to synchronise (choose one)"
            );
        }
        if self.init == Init::Dlib && self.calibration_images < 1 {
            bail!("model.calibration_images = 0: init = \"dlib\" calibrates its batch norms on at least one face");
        }
        Ok(())
    }

    /// The size of the feature `h` the heads, the memory bank and the text projection see.
    pub(crate) fn feature_dim(&self) -> i64 {
        self.arch.feature_dim(self.width, self.dlib_cut)
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
            dlib_cut: 256,
            freeze_bn: false,
            sync_bn: false,
            calibration_images: 2000,
            init: Init::Scratch,
        }
    }
}
