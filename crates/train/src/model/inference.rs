//! The network as evaluation, the sweeps and `train predict` run it: frozen, in eval mode, in the run's
//! precision and memory format. For dlib's trunk every batch norm is folded into its convolution (a weight
//! scale and a bias), and the loader's normalisation into the stem, which has no padding, so both folds are
//! exact. Grey faces then go through a one-channel stem, the sum of the three colour filters, instead of being
//! replicated three times. The other backbones run their ordinary eval-mode forward.

use std::borrow::Borrow;

use tch::{Device, Kind, Tensor};

use super::dlib::{self, DlibResNet};
use super::heads::HeadOut;
use super::norm::BatchNorm2d;
use super::Net;
use crate::data::augment::Img;
use crate::data::batch::{to_tensor, MEAN, STD};

/// How an inference forward computes, from the run's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arithmetic {
    /// The dtype the backbone's autocast lowers to (`None`: fp32).
    pub(crate) autocast: Option<Kind>,
    pub(crate) channels_last: bool,
}

impl Arithmetic {
    pub(crate) const FP32: Arithmetic = Arithmetic { autocast: None, channels_last: false };
}

/// One convolution with its batch norm folded in.
pub(crate) struct FoldedConv {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    pub(crate) stride: i64,
    pub(crate) padding: i64,
}

impl FoldedConv {
    /// `bn(conv(x))` in eval mode as one convolution (the backbones' convolutions have no bias).
    pub(crate) fn of(conv: &tch::nn::Conv2D, bn: &BatchNorm2d, stride: i64, padding: i64) -> Self {
        debug_assert!(conv.bs.is_none(), "the backbones' convolutions have no bias of their own");
        let f = tch::no_grad(|| Self::fold(&conv.ws, None, bn, stride, padding));
        FoldedConv { weight: f.weight.contiguous(), ..f }
    }

    /// `bn(conv_w(x) + bias)` in eval mode as one convolution: `W·s` and `bias·s + shift` per output channel.
    fn fold(w: &Tensor, bias: Option<Tensor>, bn: &BatchNorm2d, stride: i64, padding: i64) -> Self {
        let (scale, shift) = bn_affine(bn);
        let weight = w * scale.view([-1, 1, 1, 1]);
        let bias = match bias {
            Some(b) => b * &scale + shift,
            None => shift,
        };
        FoldedConv { weight, bias, stride, padding }
    }

    fn apply(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, Some(&self.bias), [self.stride], [self.padding], [1], 1)
    }
}

/// The folded dlib trunk: convolutions in [`dlib::layer_names`] order, the stem taking one channel (grey
/// inputs) or three.
pub(crate) struct FoldedDlib {
    pub(crate) layers: Vec<FoldedConv>,
    pub(crate) stages: usize,
    grey: bool,
}

/// The eval-mode network of one evaluation, built from the weights in force when it is made (the EMA average
/// inside [`crate::ema::Ema::with_average`]). Holds copies, so later training steps do not change it.
pub(crate) struct InferenceNet<'n> {
    net: &'n Net,
    dlib: Option<FoldedDlib>,
    arithmetic: Arithmetic,
}

/// `γ / √(var + ε)` and `β − mean · γ / √(var + ε)` of a batch norm in eval mode.
fn bn_affine(bn: &BatchNorm2d) -> (Tensor, Tensor) {
    let (Some(gamma), Some(beta)) = (&bn.ws, &bn.bs) else { unreachable!("the backbones' batch norms are affine") };
    let scale = gamma / (&bn.running_var + bn.eps()).sqrt();
    let shift = beta - &bn.running_mean * &scale;
    (scale, shift)
}

impl FoldedDlib {
    pub(crate) fn new(trunk: &DlibResNet, grey: bool, channels_last: bool) -> Self {
        let shapes = dlib::conv_shapes();
        assert_eq!(shapes[0].padding, 0, "the input affine folds into the stem only without padding");
        let (a, b) = trunk.input_affine();
        let layers = tch::no_grad(|| {
            trunk
                .layers
                .iter()
                .zip(&shapes)
                .enumerate()
                .map(|(i, (layer, shape))| {
                    let (stride, padding) = (shape.stride as i64, shape.padding as i64);
                    let f = if i > 0 {
                        FoldedConv::fold(&layer.conv.ws, None, &layer.bn, stride, padding)
                    } else {
                        let (w, bias) = stem_weights(&layer.conv.ws, a, b, grey);
                        FoldedConv::fold(&w, Some(bias), &layer.bn, stride, padding)
                    };
                    let weight = if channels_last {
                        torch_ext::memory_format::channels_last(&f.weight).expect("a convolution weight is 4-d")
                    } else {
                        f.weight.contiguous()
                    };
                    FoldedConv { weight, ..f }
                })
                .collect()
        });
        FoldedDlib { layers, stages: trunk.stages(), grey }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        dlib::trunk(x, self.stages, |i, x| self.layers[i].apply(x)).adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

/// The stem's weight and bias with the input map folded in. Colour: the stem reads the loader's
/// ImageNet-normalised `x` and dlib's input is `a·x + b`, so `W' = W·a` and the bias is `Σ W·b`. Grey: the
/// stem reads `u = pixel / 255` once, dlib's input is `α·u + β` with `α = a / std`, `β = b − a·mean / std`
/// per colour channel, so the one-channel filter is `Σ_c W_c·α_c` and the bias `Σ W·β`.
fn stem_weights(w: &Tensor, a: &Tensor, b: &Tensor, grey: bool) -> (Tensor, Tensor) {
    let per_channel = |v: [f32; 3]| Tensor::from_slice(&v).view([1, 3, 1, 1]).to_device(w.device());
    let (slope, offset) = if grey {
        let (mean, std) = (per_channel(MEAN), per_channel(STD));
        (a / &std, b - a * mean / std)
    } else {
        (a.shallow_clone(), b.shallow_clone())
    };
    let bias = (w * &offset).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
    let weight = w * slope;
    let weight = if grey { weight.sum_dim_intlist([1i64].as_slice(), true, Kind::Float) } else { weight };
    (weight, bias)
}

/// A grey batch as the one-channel stem reads it: `[B, 1, S, S]` of `pixel / 255`.
pub(crate) fn grey_tensor<I: Borrow<Img> + Sync>(images: &[I], device: Device) -> Tensor {
    let (w, h) = images.first().map(|i| (i.borrow().w, i.borrow().h)).unwrap_or((1, 1));
    let flat: Vec<u8> = images.iter().flat_map(|i| i.borrow().data.iter().copied()).collect();
    Tensor::from_slice(&flat).view([images.len() as i64, 1, h as i64, w as i64]).to_device(device).to_kind(Kind::Float)
        / 255.0
}

impl<'n> InferenceNet<'n> {
    /// `net` frozen for inference; `grey` when every image it will see has one channel (dlib's trunk then
    /// takes them as they are).
    pub(crate) fn new(net: &'n Net, grey: bool, arithmetic: Arithmetic) -> Self {
        let dlib = net.dlib().map(|t| FoldedDlib::new(t, grey, arithmetic.channels_last));
        InferenceNet { net, dlib, arithmetic }
    }

    /// The input tensor this network reads for `images`.
    pub(crate) fn input<I: Borrow<Img> + Sync>(&self, images: &[I], device: Device) -> Tensor {
        let x = match &self.dlib {
            Some(d) if d.grey => grey_tensor(images, device),
            _ => to_tensor(images, device),
        };
        if self.arithmetic.channels_last {
            torch_ext::memory_format::channels_last(&x).expect("an image batch is 4-d")
        } else {
            x
        }
    }

    /// The heads' outputs, in fp32, for a batch made by [`Self::input`].
    pub(crate) fn forward(&self, x: &Tensor) -> HeadOut {
        tch::no_grad(|| {
            let Some(d) = &self.dlib else {
                return self.net.forward(x, false);
            };
            let feature = torch_ext::autocast::autocast(x.device(), self.arithmetic.autocast, || d.forward(x))
                .expect("autocast takes the kinds amp::autocast_kind gives");
            self.net.heads.forward(&feature.to_kind(Kind::Float), false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, Model};
    use tch::nn;

    /// A dlib network with batch norms that are far from the identity, so a wrong fold shows.
    fn dlib_net(vs: &nn::VarStore) -> Net {
        let model = Model { arch: Arch::DlibResnet, dlib_cut: 128, image_size: 40, ..Model::default() };
        let net = Net::new(&vs.root(), &model, 8, 128);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                let r = Tensor::rand_like(&t);
                if name.ends_with("running_var") {
                    t.copy_(&(r + 0.5));
                } else if name.ends_with("running_mean") || name.ends_with("bn.bias") {
                    t.copy_(&((r - 0.5) * 0.2));
                } else if name.ends_with("bn.weight") {
                    t.copy_(&(r + 0.5));
                }
            }
        });
        net
    }

    fn faces(channels: usize, n: usize) -> Vec<Img> {
        (0..n)
            .map(|k| Img {
                w: 40,
                h: 40,
                c: channels,
                data: (0..40 * 40 * channels).map(|i| ((i * 37 + k * 101) % 256) as u8).collect(),
            })
            .collect()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn folded_dlib_gives_the_eval_forwards_outputs_for_colour_and_grey() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = dlib_net(&vs);
        for channels in [3, 1] {
            let imgs = faces(channels, 4);
            let plain = tch::no_grad(|| net.forward(&to_tensor(&imgs, Device::Cpu), false));
            for channels_last in [false, true] {
                let frozen = InferenceNet::new(&net, channels == 1, Arithmetic { autocast: None, channels_last });
                let x = frozen.input(&imgs, Device::Cpu);
                assert_eq!(x.size()[1], channels as i64);
                let out = frozen.forward(&x);
                assert!(max_diff(&out.z, &plain.z) < 1e-5, "{channels} channels: {}", max_diff(&out.z, &plain.z));
                assert!(max_diff(&out.h, &plain.h) < 1e-5);
                assert!(max_diff(&out.g, &plain.g) < 1e-5);
            }
        }
    }

    #[test]
    fn the_grey_stem_is_the_sum_of_the_colour_filters_on_the_raw_pixel() {
        // One filter, 1×1: dlib input a·x + b with x = (u − mean) / std per channel.
        let w = Tensor::from_slice(&[1f32, 2., 3.]).view([1, 3, 1, 1]);
        let a = Tensor::from_slice(&[0.5f32, 0.25, 1.0]).view([1, 3, 1, 1]);
        let b = Tensor::from_slice(&[0.1f32, -0.2, 0.3]).view([1, 3, 1, 1]);
        let (wg, bg) = stem_weights(&w, &a, &b, true);
        let u = 0.6f64;
        let expected: f64 = (0..3)
            .map(|c| {
                let x = (u - f64::from(MEAN[c])) / f64::from(STD[c]);
                [1.0, 2.0, 3.0][c] * ([0.5, 0.25, 1.0][c] * x + [0.1, -0.2, 0.3][c])
            })
            .sum();
        let got = wg.double_value(&[0, 0, 0, 0]) * u + bg.double_value(&[0]);
        assert_eq!(wg.size(), vec![1, 1, 1, 1]);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }
}
