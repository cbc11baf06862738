//! Each backbone's eval-mode wiring as ONNX nodes, every convolution with its batch norm folded in: the same
//! layers, in the same order, as the backbone's `forward` (`model/resnet.rs`, `model/small_cnn.rs`,
//! `model/dlib/mod.rs`), which the ONNX Runtime golden test holds them to.

use super::graph::{Graph, Value};
use crate::model::dlib::{self, DlibResNet};
use crate::model::inference::{FoldedConv, FoldedDlib};
use crate::model::resnet::{ResNet18, Stem};
use crate::model::small_cnn::SmallCnn;
use crate::model::Backbone;

/// The backbone's feature `[F]` for the ImageNet-normalised input `x` (`[3, S, S]`).
pub(crate) fn feature(g: &mut Graph, backbone: &Backbone, x: &Value) -> Value {
    match backbone {
        Backbone::ResNet18(b) => resnet18(g, b, x),
        Backbone::Dlib(b) => dlib_trunk(g, b, x),
        Backbone::SmallCnn(b) => small_cnn(g, b, x),
    }
}

/// A convolution padded by half its kernel (every ResNet and small-CNN convolution is).
fn same(conv: &tch::nn::Conv2D, bn: &crate::model::norm::BatchNorm2d, stride: i64) -> FoldedConv {
    FoldedConv::of(conv, bn, stride, conv.ws.size()[2] / 2)
}

fn resnet18(g: &mut Graph, r: &ResNet18, x: &Value) -> Value {
    let stem = g.conv("conv1", x, &same(&r.conv1, &r.bn1, r.stem.stride()));
    let mut x = g.relu(&stem);
    if r.stem == Stem::Imagenet {
        x = g.max_pool(&x, 3, 2, 1);
    }
    for (i, b) in r.layers.iter().enumerate() {
        let name = format!("layer{}.{}", i / 2 + 1, i % 2);
        let y = g.conv(&format!("{name}.conv1"), &x, &same(&b.conv1, &b.bn1, b.stride));
        let y = g.relu(&y);
        let y = g.conv(&format!("{name}.conv2"), &y, &same(&b.conv2, &b.bn2, 1));
        let skip = match &b.down {
            Some((c, bn)) => g.conv(&format!("{name}.downsample"), &x, &same(c, bn, b.stride)),
            None => x,
        };
        let sum = g.add(&y, &skip);
        x = g.relu(&sum);
    }
    g.global_mean(&x)
}

fn small_cnn(g: &mut Graph, net: &SmallCnn, x: &Value) -> Value {
    let mut x = x.clone();
    for (s, stage) in net.stages.iter().enumerate() {
        for (k, layer) in stage.iter().enumerate() {
            let y = g.conv(&format!("stage{}.{k}.conv", s + 1), &x, &same(&layer.conv, &layer.bn, 1));
            x = g.relu(&y);
        }
        x = g.max_pool(&x, 2, 2, 0);
    }
    g.global_mean(&x)
}

/// dlib's trunk ([`dlib::trunk`]'s wiring) with the input affine folded into the stem.
fn dlib_trunk(g: &mut Graph, trunk: &DlibResNet, x: &Value) -> Value {
    let folded = FoldedDlib::new(trunk, false, false);
    let names = dlib::layer_names();
    let conv = |g: &mut Graph, i: usize, x: &Value| g.conv(&names[i], x, &folded.layers[i]);
    let stem = conv(g, 0, x);
    let stem = g.relu(&stem);
    let mut x = g.max_pool(&stem, 3, 2, 0);
    let mut i = 1;
    for (stage, &(_, blocks)) in dlib::STAGES[..folded.stages].iter().enumerate() {
        for b in 0..blocks {
            let main = conv(g, i, &x);
            let main = g.relu(&main);
            let main = conv(g, i + 1, &main);
            let sum = if stage > 0 && b == 0 { down_add(g, &main, &x) } else { g.add(&main, &x) };
            x = g.relu(&sum);
            i += 2;
        }
    }
    g.global_mean(&x)
}

/// dlib's `add_prev` after a down block (`dlib::down_add`): the shortcut average-pooled 2×2 with zero
/// channels appended, the main branch zero-padded at the bottom/right where it came out smaller.
fn down_add(g: &mut Graph, main: &Value, x: &Value) -> Value {
    let short = g.avg_pool(x, 2, 2);
    let short = g.pad_end(&short, [(main.shape[0] - short.shape[0]).max(0), 0, 0]);
    let (dh, dw) = (short.shape[1] - main.shape[1], short.shape[2] - main.shape[2]);
    let main = g.pad_end(main, [0, dh.max(0), dw.max(0)]);
    g.add(&main, &short)
}
