//! The network: a backbone — ResNet-18 ([`resnet`], the method's and the default), dlib's face-recognition
//! ResNet ([`dlib`], the face-pretrained one) or a small plain CNN for CPU-sized demos ([`small_cnn`]) — and
//! SIT-FER's heads ([`heads`]), assembled in [`Net`].

pub(crate) mod config;
pub mod dlib;
pub(crate) mod heads;
pub(crate) mod inference;
pub(crate) mod init;
pub(crate) mod norm;
pub(crate) mod resnet;
pub(crate) mod small_cnn;

use std::rc::Rc;

use tch::nn;
use tch::Tensor;

pub(crate) use config::{Init, Model};
use dlib::DlibResNet;
use heads::{HeadOut, Heads};
use norm::Norm;
use resnet::ResNet18;
use small_cnn::SmallCnn;

use crate::distributed::Dist;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Arch {
    /// torchvision's ResNet-18 (takes pretrained weights by name).
    Resnet18,
    /// dlib's face-recognition ResNet v1 (takes `init = "dlib"`).
    DlibResnet,
    /// Three plain conv stages; learns fastest at 32–48 px on a CPU, no pretrained weights.
    SmallCnn,
}

impl Arch {
    /// The feature size of this backbone at first-stage width `width`, or at `dlib_cut` channels for dlib's.
    pub(crate) fn feature_dim(self, width: i64, dlib_cut: i64) -> i64 {
        match self {
            Arch::Resnet18 => resnet::feature_dim(width),
            Arch::DlibResnet => dlib_cut,
            Arch::SmallCnn => small_cnn::feature_dim(width),
        }
    }
}

pub(crate) enum Backbone {
    ResNet18(Box<ResNet18>),
    Dlib(Box<DlibResNet>),
    SmallCnn(SmallCnn),
}

/// Whether variable `name` belongs to the heads (the classifier and the text projection) rather than the
/// backbone: `optim.backbone_lr_scale` applies to the others.
pub(crate) fn is_head(name: &str) -> bool {
    name.starts_with("fc.") || name.starts_with("text_proj.")
}

pub struct Net {
    backbone: Backbone,
    /// `model.freeze_bn`: the backbone's batch norms use their running statistics in training too.
    freeze_bn: bool,
    /// `model.sync_bn` in a data-parallel run: training batch norms take every rank's batch together.
    sync_bn: Option<Rc<Dist>>,
    pub(crate) heads: Heads,
}

impl Net {
    /// The network `model` describes, with `classes` outputs and a projection into a `text_dim` text space.
    pub(crate) fn new(root: &nn::Path, model: &Model, classes: i64, text_dim: i64) -> Self {
        let backbone = match model.arch {
            Arch::Resnet18 => Backbone::ResNet18(Box::new(ResNet18::new(root, model.stem, model.width))),
            Arch::DlibResnet => Backbone::Dlib(Box::new(DlibResNet::new(root, model.dlib_cut, false))),
            Arch::SmallCnn => Backbone::SmallCnn(SmallCnn::new(root, model.width)),
        };
        let heads = Heads::new(root, model.feature_dim(), classes, text_dim, model.dropout, model.classifier_scale);
        Net { backbone, freeze_bn: model.freeze_bn, sync_bn: None, heads }
    }

    /// From now on, batch norms in training normalise with the batch of every rank of `dist` together.
    pub(crate) fn synchronise_batch_norm(&mut self, dist: Rc<Dist>) {
        self.sync_bn = Some(dist);
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> HeadOut {
        // The backbones' only train/eval difference is their batch norms' statistics (dropout is the heads').
        let norm = match (&self.sync_bn, train && !self.freeze_bn) {
            (_, false) => Norm::Running,
            (None, true) => Norm::Batch,
            (Some(d), true) => Norm::AllRanks(d.group()),
        };
        let f = match &self.backbone {
            Backbone::ResNet18(b) => b.forward(x, norm),
            Backbone::Dlib(b) => b.forward(x, norm),
            Backbone::SmallCnn(b) => b.forward(x, norm),
        };
        self.heads.forward(&f, train)
    }

    pub(crate) fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The dlib backbone, for `init = "dlib"`.
    pub(crate) fn dlib(&self) -> Option<&DlibResNet> {
        match &self.backbone {
            Backbone::Dlib(b) => Some(b),
            _ => None,
        }
    }
}
