//! The network: a backbone — ResNet-18 ([`resnet`], the method's and the default) or a small plain CNN for
//! CPU-sized demos ([`small_cnn`]) — and SIT-FER's heads ([`heads`]), assembled in [`Net`].

pub mod heads;
pub mod init;
pub mod resnet;
pub mod small_cnn;

use tch::nn::{self, ModuleT};
use tch::Tensor;

use heads::{HeadOut, Heads};
use resnet::{ResNet18, Stem};
use small_cnn::SmallCnn;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// torchvision's ResNet-18 (takes pretrained weights by name).
    Resnet18,
    /// Three plain conv stages; learns fastest at 32–48 px on a CPU, no pretrained weights.
    SmallCnn,
}

impl Arch {
    /// The size of the feature `h` the heads, the memory bank and the text projection see.
    pub fn feature_dim(self, width: i64) -> i64 {
        match self {
            Arch::Resnet18 => resnet::feature_dim(width),
            Arch::SmallCnn => small_cnn::feature_dim(width),
        }
    }
}

/// The architecture of a run's network: what `Net::new` builds.
#[derive(Clone, Copy, Debug)]
pub struct NetSpec {
    pub arch: Arch,
    /// ResNet-18 only.
    pub stem: Stem,
    pub width: i64,
    pub classes: i64,
    pub text_dim: i64,
    pub dropout: f64,
    pub classifier_scale: f64,
}

enum Backbone {
    ResNet18(Box<ResNet18>),
    SmallCnn(SmallCnn),
}

pub struct Net {
    backbone: Backbone,
    pub heads: Heads,
}

impl Net {
    pub fn new(root: &nn::Path, s: NetSpec) -> Self {
        let backbone = match s.arch {
            Arch::Resnet18 => Backbone::ResNet18(Box::new(ResNet18::new(root, s.stem, s.width))),
            Arch::SmallCnn => Backbone::SmallCnn(SmallCnn::new(root, s.width)),
        };
        let heads = Heads::new(root, s.arch.feature_dim(s.width), s.classes, s.text_dim, s.dropout, s.classifier_scale);
        Net { backbone, heads }
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> HeadOut {
        let f = match &self.backbone {
            Backbone::ResNet18(b) => b.forward_t(x, train),
            Backbone::SmallCnn(b) => b.forward_t(x, train),
        };
        self.heads.forward(&f, train)
    }
}
