//! The classifier as an ONNX model, written from the network's weights (no tracing, no Python): input
//! `input` `[batch, 3, S, S]` float, the card's preprocessing applied; output `logits` `[batch, C]`. Batch
//! norms are folded into the convolutions ([`crate::model::inference::FoldedConv`]), so the graph is
//! convolutions, ReLUs, pools, adds and the heads' normalised linear classifier. The card's class order,
//! input size and normalisation ride along as metadata properties, for a server that has only this file.

mod backbones;
pub(crate) mod graph;

use protobuf::Message;

use crate::snapshot::Model;
use graph::{Graph, Value};

/// The input's and the output's names.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "logits";

/// The floor of the feature norm the heads divide by (`Heads::forward`'s `clamp_min`).
const NORM_EPS: f32 = 1e-12;

/// The ONNX model of `model`'s eval-mode classifier, serialised.
pub fn onnx_bytes(model: &Model) -> protobuf::Result<Vec<u8>> {
    let card = &model.card;
    let s = i64::from(card.input.image_size);
    let input = Value { name: INPUT.into(), shape: vec![3, s, s] };
    let mut g = Graph::default();
    let feature = backbones::feature(&mut g, model.net.backbone(), &input);
    let h = g.l2_normalise(&feature, NORM_EPS);
    let heads = &model.net.heads;
    let bias = heads.fc.bs.as_ref().expect("the classifier has a bias");
    let fc = g.linear("fc", &h, &heads.fc.ws, bias, heads.scale as f32);
    let logits = g.identity(&fc, OUTPUT);
    let proto = g.model(&input, &logits, doc(model), &metadata(model));
    proto.write_to_bytes()
}

/// What the model is, for a person who opens it in a viewer.
fn doc(model: &Model) -> String {
    let c = &model.card;
    format!(
        "SIT-FER facial expression classifier (run {}, {} snapshot, epoch {}). Input {INPUT}: [batch, 3, {s}, {s}] \
         float32: decoded, resized with a triangle filter (metadata `resize`), RGB pixels / 255 minus mean {:?}, \
         divided by std {:?} per channel{}. Output {OUTPUT}: [batch, {}] \
         logits over {}.",
        c.run,
        c.snapshot,
        c.epoch,
        c.input.mean,
        c.input.std,
        if c.input.grey { " (grey faces: the grey value in all three channels)" } else { "" },
        c.classes.len(),
        c.classes.join(", "),
        s = c.input.image_size,
    )
}

/// The card's facts a server needs, as metadata properties.
fn metadata(model: &Model) -> Vec<(&'static str, String)> {
    let c = &model.card;
    let list = |v: &[f32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    vec![
        ("classes", c.classes.join(",")),
        ("image_size", c.input.image_size.to_string()),
        ("grey", c.input.grey.to_string()),
        // How a server reproduces the loader's preprocessing exactly (image-rs 0.25's `resize` and `to_luma8`);
        // PIL's bilinear resize changes some predictions.
        ("resize", "triangle filter, rows then columns, float32 taps, rounded to u8 (image-rs)".into()),
        ("grey_from_rgb", "floor((2126 R + 7152 G + 722 B) / 10000)".into()),
        ("mean", list(&c.input.mean)),
        ("std", list(&c.input.std)),
        ("run", c.run.clone()),
        ("snapshot", c.snapshot.clone()),
        ("epoch", c.epoch.to_string()),
    ]
}
