//! ResNet-18 with torchvision's variable names (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`,
//! …), so converted torchvision / MS-Celeb weights in safetensors load by name. `Stem::Small` (3×3 stride-1
//! first conv, no max-pool) keeps spatial detail on 32–64 px faces; it changes `conv1`'s shape, so such a
//! model cannot take ImageNet-stem weights for that one layer (the load report says so). `width` is the first
//! stage's channel count (64 in torchvision; the stages double it): a narrower net with the small stem keeps
//! the spatial detail of 32 px faces at the cost of the ImageNet stem at full width, and learns from few labels
//! faster. Pretrained weights only fit width 64.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::norm::{batch_norm2d, BatchNorm2d, Norm};

/// torchvision's batch-norm epsilon.
const BN_EPS: f64 = 1e-5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Stem {
    /// 7×7 stride-2 conv + 3×3 stride-2 max-pool (torchvision; for 112–224 px).
    Imagenet,
    /// 3×3 stride-1 conv, no max-pool (for 32–64 px).
    Small,
}

impl Stem {
    /// The first convolution's stride (its padding is half its kernel, as for every convolution here).
    pub(crate) fn stride(self) -> i64 {
        match self {
            Stem::Imagenet => 2,
            Stem::Small => 1,
        }
    }
}

fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    nn::conv2d(p, i, o, k, nn::ConvConfig { stride, padding, bias: false, ..Default::default() })
}

#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) conv1: nn::Conv2D,
    pub(crate) bn1: BatchNorm2d,
    pub(crate) conv2: nn::Conv2D,
    pub(crate) bn2: BatchNorm2d,
    /// The 1×1 shortcut convolution where the block changes size (stride or width).
    pub(crate) down: Option<(nn::Conv2D, BatchNorm2d)>,
    /// `conv1`'s and the shortcut's stride (tch keeps a convolution's own private).
    pub(crate) stride: i64,
}

impl Block {
    fn new(p: &nn::Path, i: i64, o: i64, stride: i64) -> Self {
        let down = (stride != 1 || i != o).then(|| {
            (conv(p / "downsample" / "0", i, o, 1, stride, 0), batch_norm2d(p / "downsample" / "1", o, BN_EPS))
        });
        Block {
            conv1: conv(p / "conv1", i, o, 3, stride, 1),
            bn1: batch_norm2d(p / "bn1", o, BN_EPS),
            conv2: conv(p / "conv2", o, o, 3, 1, 1),
            bn2: batch_norm2d(p / "bn2", o, BN_EPS),
            down,
            stride,
        }
    }

    fn forward(&self, x: &Tensor, norm: Norm) -> Tensor {
        let y = self.bn1.forward(&x.apply(&self.conv1), norm).relu();
        let y = self.bn2.forward(&y.apply(&self.conv2), norm);
        let skip = match &self.down {
            Some((c, b)) => b.forward(&x.apply(c), norm),
            None => x.shallow_clone(),
        };
        (y + skip).relu()
    }
}

/// The backbone up to global average pooling: image `[B, 3, H, W]` -> feature `[B, 8 × width]`.
#[derive(Debug)]
pub(crate) struct ResNet18 {
    pub(crate) conv1: nn::Conv2D,
    pub(crate) bn1: BatchNorm2d,
    pub(crate) stem: Stem,
    /// `layer1.0`, `layer1.1`, `layer2.0`, … in order.
    pub(crate) layers: Vec<Block>,
}

/// torchvision's first-stage width; the only one pretrained weights fit.
pub(crate) const TORCHVISION_WIDTH: i64 = 64;

/// The feature size a backbone of this first-stage width ends with (512 at torchvision's 64).
pub(crate) fn feature_dim(width: i64) -> i64 {
    8 * width
}

impl ResNet18 {
    pub(crate) fn new(root: &nn::Path, stem: Stem, width: i64) -> Self {
        let conv1 = match stem {
            Stem::Imagenet => conv(root / "conv1", 3, width, 7, Stem::Imagenet.stride(), 3),
            Stem::Small => conv(root / "conv1", 3, width, 3, Stem::Small.stride(), 1),
        };
        let mut layers = Vec::new();
        let mut i = width;
        for (n, o) in [1, 2, 4, 8].map(|m| m * width).into_iter().enumerate() {
            let stride = if n == 0 { 1 } else { 2 };
            let p = root / format!("layer{}", n + 1);
            layers.push(Block::new(&(&p / "0"), i, o, stride));
            layers.push(Block::new(&(&p / "1"), o, o, 1));
            i = o;
        }
        ResNet18 { conv1, bn1: batch_norm2d(root / "bn1", width, BN_EPS), stem, layers }
    }
}

impl ResNet18 {
    pub(crate) fn forward(&self, x: &Tensor, norm: Norm) -> Tensor {
        let mut x = self.bn1.forward(&x.apply(&self.conv1), norm).relu();
        if self.stem == Stem::Imagenet {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for b in &self.layers {
            x = b.forward(&x, norm);
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward(x, Norm::local(train))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn torchvision_names_shapes_and_size() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet18::new(&vs.root(), Stem::Imagenet, TORCHVISION_WIDTH);
        let vars = vs.variables();
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.bias",
            "layer4.1.bn2.weight",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
        assert!(!vars.contains_key("layer1.0.downsample.0.weight"));
        assert_eq!(vars["layer3.0.conv1.weight"].size(), vec![256, 128, 3, 3]);
        // torchvision resnet18 without fc: 11,689,512 - 513,000 = 11,176,512 parameters.
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(params, 11_176_512);
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward_t(&x, false).size(), vec![2, 512]);
        let vs = nn::VarStore::new(Device::Cpu);
        let small = ResNet18::new(&vs.root(), Stem::Small, 16);
        assert_eq!(
            small.forward_t(&Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)), false).size(),
            vec![1, feature_dim(16)]
        );
        assert_eq!(vs.variables()["layer4.1.conv2.weight"].size(), vec![128, 128, 3, 3]);
    }
}
