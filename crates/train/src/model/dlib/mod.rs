//! dlib's face-recognition ResNet v1 as a fine-tunable tch backbone (`model.arch = "dlib-resnet"`): 29
//! convolutions trained for face identity on ~3 M faces, the face prior a CPU run cannot learn from 2,500
//! labels. This file owns the network; [`dat`] reads dlib's file, [`convert`] caches it as safetensors,
//! [`pretrained`] loads it into this network and calibrates its batch norms.
//!
//! Each dlib convolution is followed by a folded batch norm (a per-channel affine). Here it is a real batch
//! norm with no convolution bias, so the network can train; loaded from dlib it is set up so that eval mode
//! reproduces dlib's network exactly (see [`pretrained`]). The trunk can be cut after the 128-channel stage
//! (`model.dlib_cut = 128`: identity training has not yet washed expression out of those features) or kept
//! whole (`256`). Input: the loader's ImageNet-normalised `[B, 3, S, S]`, mapped here to dlib's own
//! normalisation `(pixel − mean) / 256`; dlib's native size is 150 px; the smallest input is
//! [`min_image_size`] (31 px cut at 128, 103 px whole).

pub mod convert;
pub(crate) mod dat;
pub(crate) mod pretrained;

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::norm::{batch_norm2d, BatchNorm2d, Norm};
use crate::data::batch::{MEAN, STD};

/// dlib's per-channel pixel means (RGB), subtracted before dividing by 256.
pub(crate) const PIXEL_MEAN: [f64; 3] = [122.782, 117.001, 104.298];
/// Channels at the end of the whole trunk, and the identity embedding's size.
pub(crate) const FULL_CHANNELS: usize = 256;
pub(crate) const EMBED_DIM: usize = 128;

/// The batch norms' ε (PyTorch's default), which [`pretrained`] needs to re-express dlib's affines exactly.
pub(crate) const BN_EPS: f64 = 1e-5;

/// `(channels, blocks)` of each stage after the stem; every stage but the first opens with a down block.
pub(crate) const STAGES: [(usize, usize); 5] = [(32, 3), (64, 4), (128, 3), (256, 3), (256, 1)];

/// One convolution's geometry, as dlib's file states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

/// The 29 convolutions in the order dlib stores them (stem, then conv1/conv2 of each block from the input).
pub(crate) fn conv_shapes() -> Vec<ConvShape> {
    let mut out = vec![ConvShape { cin: 3, cout: 32, kernel: 7, stride: 2, padding: 0 }];
    let mut cin = 32;
    for (stage, &(c, blocks)) in STAGES.iter().enumerate() {
        for b in 0..blocks {
            let down = stage > 0 && b == 0;
            out.push(if down {
                ConvShape { cin, cout: c, kernel: 3, stride: 2, padding: 0 }
            } else {
                ConvShape { cin: c, cout: c, kernel: 3, stride: 1, padding: 1 }
            });
            out.push(ConvShape { cin: c, cout: c, kernel: 3, stride: 1, padding: 1 });
            cin = c;
        }
    }
    out
}

/// The variable-name prefix of each convolution + batch norm pair, in [`conv_shapes`] order: `stem`, then
/// `layer{stage}.{block}.{1,2}` with stages numbered from 1.
pub(crate) fn layer_names() -> Vec<String> {
    let mut out = vec!["stem".to_string()];
    for (s, &(_, blocks)) in STAGES.iter().enumerate() {
        for b in 0..blocks {
            out.push(format!("layer{}.{b}.1", s + 1));
            out.push(format!("layer{}.{b}.2", s + 1));
        }
    }
    out
}

/// The cuts `model.dlib_cut` may name: `(channels, stages kept, smallest input in px)`. The smallest input is
/// the one whose strided convolutions (no padding) all still see at least 3×3.
const CUTS: [(i64, usize, i64); 2] = [(128, 3, 31), (256, 5, 103)];

/// Stages kept for a cut after `channels` (128: stages 1–3; 256: all five); `None` for another cut.
pub(crate) fn stages_for_cut(channels: i64) -> Option<usize> {
    CUTS.iter().find(|c| c.0 == channels).map(|c| c.1)
}

/// The smallest input size for a cut after `channels`; `None` for another cut.
pub(crate) fn min_image_size(channels: i64) -> Option<i64> {
    CUTS.iter().find(|c| c.0 == channels).map(|c| c.2)
}

/// Sees each convolution's output (its index in [`conv_shapes`] order) during a forward pass: calibration.
pub(crate) type Probe<'a> = &'a mut dyn FnMut(usize, &Tensor);

/// The path of a dotted name (`layer2.0.1`): tch refuses dots within one path segment.
fn sub<'a>(root: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    dotted.split('.').fold(root.clone(), |p, part| p / part)
}

/// A convolution (no bias) and the batch norm that replaces dlib's folded affine.
#[derive(Debug)]
pub(crate) struct ConvBn {
    pub(crate) conv: nn::Conv2D,
    pub(crate) bn: BatchNorm2d,
}

impl ConvBn {
    fn new(p: &nn::Path, s: ConvShape) -> Self {
        let cfg =
            nn::ConvConfig { stride: s.stride as i64, padding: s.padding as i64, bias: false, ..Default::default() };
        ConvBn {
            conv: nn::conv2d(p / "conv", s.cin as i64, s.cout as i64, s.kernel as i64, cfg),
            bn: batch_norm2d(p / "bn", s.cout as i64, BN_EPS),
        }
    }

    /// `bn(conv(x))`; with `probe`, the convolution's output is also handed to it (calibration).
    fn forward(&self, x: &Tensor, norm: Norm, probe: &mut Option<Probe>, i: usize) -> Tensor {
        let z = x.apply(&self.conv);
        if let Some(p) = probe.as_mut() {
            p(i, &z);
        }
        self.bn.forward(&z, norm)
    }
}

#[derive(Debug)]
pub(crate) struct DlibResNet {
    /// In [`layer_names`] order, as many as the cut keeps.
    pub(crate) layers: Vec<ConvBn>,
    stages: usize,
    /// Maps the loader's ImageNet normalisation to dlib's: `x·a + b` per channel, `[1, 3, 1, 1]`.
    input_a: Tensor,
    input_b: Tensor,
    /// The 256 → 128 identity embedding; built only for the whole trunk with `embedding` (parity checks).
    pub(crate) embed: Option<nn::Linear>,
}

impl DlibResNet {
    /// The trunk up to `cut` channels (128 or 256; the config check refuses others).
    pub(crate) fn new(root: &nn::Path, cut: i64, embedding: bool) -> Self {
        let stages = stages_for_cut(cut).unwrap_or(5);
        let keep: usize = 1 + STAGES[..stages].iter().map(|(_, b)| 2 * b).sum::<usize>();
        let layers = conv_shapes()
            .into_iter()
            .zip(layer_names())
            .take(keep)
            .map(|(s, n)| ConvBn::new(&sub(root, &n), s))
            .collect();
        let a: Vec<f32> = (0..3).map(|c| (255.0 * f64::from(STD[c]) / 256.0) as f32).collect();
        let b: Vec<f32> = (0..3).map(|c| ((255.0 * f64::from(MEAN[c]) - PIXEL_MEAN[c]) / 256.0) as f32).collect();
        let device = root.device();
        let embed = (embedding && stages == 5).then(|| {
            nn::linear(
                root / "embed",
                FULL_CHANNELS as i64,
                EMBED_DIM as i64,
                nn::LinearConfig { bias: false, ..Default::default() },
            )
        });
        DlibResNet {
            layers,
            stages,
            input_a: Tensor::from_slice(&a).view([1, 3, 1, 1]).to_device(device),
            input_b: Tensor::from_slice(&b).view([1, 3, 1, 1]).to_device(device),
            embed,
        }
    }

    /// The trunk's feature map for ImageNet-normalised `x`; `probe` sees every convolution's output.
    pub(crate) fn features(&self, x: &Tensor, norm: Norm, mut probe: Option<Probe>) -> Tensor {
        let x = x * &self.input_a + &self.input_b;
        trunk(&x, self.stages, |i, x| self.layers[i].forward(x, norm, &mut probe, i))
    }

    /// How many of [`STAGES`] this trunk keeps.
    pub(crate) fn stages(&self) -> usize {
        self.stages
    }

    /// The map from the loader's ImageNet normalisation to dlib's, `x·a + b` per channel: `(a, b)`, `[1, 3, 1, 1]`.
    pub(crate) fn input_affine(&self) -> (&Tensor, &Tensor) {
        (&self.input_a, &self.input_b)
    }

    /// dlib's 128-d identity descriptor (whole trunk built with `embedding`); `None` otherwise. Only the
    /// parity tests against dlib read it: the expression heads read the trunk's features.
    #[cfg(test)]
    pub(crate) fn descriptor(&self, x: &Tensor) -> Option<Tensor> {
        let e = self.embed.as_ref()?;
        let pooled = self.features(x, Norm::Running, None).mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float);
        Some(nn::Module::forward(e, &pooled))
    }
}

/// The trunk's wiring over `stages` of [`STAGES`]: the stem (convolution `0`, ReLU, 3×3 max pool), then each
/// block's two convolutions with its shortcut. `layer(i, x)` is convolution `i` with what follows it before
/// the ReLU (a batch norm in training, nothing once it is folded in: [`crate::model::inference`]).
pub(crate) fn trunk(x: &Tensor, stages: usize, mut layer: impl FnMut(usize, &Tensor) -> Tensor) -> Tensor {
    let mut x = layer(0, x).relu().max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
    let mut i = 1;
    for (stage, &(_, blocks)) in STAGES[..stages].iter().enumerate() {
        for b in 0..blocks {
            let main = layer(i, &x).relu();
            let main = layer(i + 1, &main);
            x = if stage > 0 && b == 0 { down_add(main, &x) } else { main + &x }.relu();
            i += 2;
        }
    }
    x
}

/// dlib's `add_prev` after a down block: the shortcut is `x` average-pooled 2×2 with zero channels appended;
/// where the strided main branch came out smaller (even input sizes), it is zero-padded at the bottom/right.
fn down_add(main: Tensor, x: &Tensor) -> Tensor {
    let short = x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
    let (ms, ss) = (main.size(), short.size());
    let short = if ms[1] > ss[1] { short.constant_pad_nd([0, 0, 0, 0, 0, ms[1] - ss[1]]) } else { short };
    let (dh, dw) = (ss[2] - ms[2], ss[3] - ms[3]);
    let main = if dh > 0 || dw > 0 { main.constant_pad_nd([0, dw, 0, dh]) } else { main };
    main + short
}

impl DlibResNet {
    pub(crate) fn forward(&self, x: &Tensor, norm: Norm) -> Tensor {
        self.features(x, norm, None).adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for DlibResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward(x, Norm::local(train))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_sizes_and_parameter_count() {
        let shapes = conv_shapes();
        assert_eq!(shapes.len(), 29);
        assert_eq!(layer_names().len(), 29);
        // 5,614,592 parameters in dlib's file: conv weights + biases + affines (2 per channel) + the 256×128 fc.
        let convs: usize = shapes.iter().map(|s| s.cout * s.cin * s.kernel * s.kernel + s.cout).sum();
        let affines: usize = shapes.iter().map(|s| 2 * s.cout).sum();
        assert_eq!(convs + affines + 256 * 128, 5_614_592);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DlibResNet::new(&vs.root(), 256, true);
        // 150 px: stem 72 → pool 35 → 17 → 8 → 4 (main 3, padded) → 2 (main 1, padded).
        let x = Tensor::zeros([2, 3, 150, 150], (Kind::Float, Device::Cpu));
        assert_eq!(net.features(&x, Norm::Running, None).size(), vec![2, 256, 2, 2]);
        assert_eq!(net.descriptor(&x).unwrap().size(), vec![2, 128]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mid = DlibResNet::new(&vs.root(), 128, true);
        assert!(mid.embed.is_none());
        assert_eq!(mid.layers.len(), 1 + 6 + 8 + 6);
        let x = Tensor::zeros([1, 3, 112, 112], (Kind::Float, Device::Cpu));
        // 112 px: 53 → 26 → 13 (main 12, padded) → 6.
        assert_eq!(mid.features(&x, Norm::Running, None).size(), vec![1, 128, 6, 6]);
        assert_eq!(mid.forward_t(&x, true).size(), vec![1, 128]);
        assert!(vs.variables().contains_key("layer3.2.2.bn.running_var"));
    }

    #[test]
    fn down_add_pads_main_and_channels() {
        let main = Tensor::ones([1, 2, 1, 1], (Kind::Float, Device::Cpu));
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
        let y = down_add(main, &x);
        // shortcut: mean 2.5 in channel 0, zero channel 1; main 1 everywhere it exists.
        assert_eq!(y.size(), vec![1, 2, 1, 1]);
        assert_eq!(Vec::<f32>::try_from(y.flatten(0, -1)).unwrap(), vec![3.5, 1.0]);
        let main = Tensor::ones([1, 1, 1, 1], (Kind::Float, Device::Cpu));
        let x = Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let y = down_add(main, &x);
        assert_eq!(Vec::<f32>::try_from(y.flatten(0, -1)).unwrap(), vec![2.0, 1.0, 1.0, 1.0]);
    }
}
