//! The network: a ResNet-18 backbone ([`resnet`]) and SIT-FER's heads ([`heads`]), assembled in [`Net`].

pub mod heads;
pub mod init;
pub mod resnet;

use tch::nn::{self, ModuleT};
use tch::Tensor;

use heads::{HeadOut, Heads};
use resnet::{ResNet18, Stem};

pub struct Net {
    pub backbone: ResNet18,
    pub heads: Heads,
}

impl Net {
    pub fn new(root: &nn::Path, stem: Stem, classes: i64, text_dim: i64, dropout: f64) -> Self {
        Net { backbone: ResNet18::new(root, stem), heads: Heads::new(root, classes, text_dim, dropout) }
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> HeadOut {
        self.heads.forward(&self.backbone.forward_t(x, train), train)
    }
}
