//! `artifacts/runs/<run>/model/<snapshot>.json` + `<snapshot>-<step>.safetensors`: a trained network, ready to use
//! without the run's checkpoints, config or text artifacts. train writes the `best` snapshot (the weights of
//! the epoch chosen on val, the EMA average when the run keeps one) whenever val improves, and `last` when
//! the run finishes; `train predict`, `train evaluate` and `train export` read them. The JSON (the card)
//! says what the tensors are: the class order, the preprocessing an image must go through, the fusion the
//! run evaluated with and the architecture (train's own model section, opaque here).
//!
//! Tensors in the safetensors file: the network's variables under [`tensor::NET_PREFIX`], and, when the run
//! has those levels, the memory bank ([`tensor::BANK_FEATS`], [`tensor::BANK_LABELS`],
//! [`tensor::BANK_WRITTEN`]) and the class prototypes of the text level ([`tensor::PROTOTYPES`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fusion::Fusion;

/// Bumped on any incompatible change of the card or the tensor names.
pub const FORMAT: u32 = 1;

/// The snapshots a run can have.
pub const SNAPSHOTS: [&str; 2] = ["best", "last"];

pub mod tensor {
    /// `net.<variable>`: the network's variables, named as train's `VarStore` names them.
    pub const NET_PREFIX: &str = "net.";
    /// `[N, D]` float: the instance level's slot features.
    pub const BANK_FEATS: &str = "bank.feats";
    /// `[N]` int64: each slot's class, as an index into the card's classes.
    pub const BANK_LABELS: &str = "bank.labels";
    /// `[N]` uint8: 1 where the slot was written during training.
    pub const BANK_WRITTEN: &str = "bank.written";
    /// `[C, D]` float: the text level's class prototypes, in the card's class order.
    pub const PROTOTYPES: &str = "text.prototypes";
}

/// How an image becomes the network's input: decoded, converted to grey (`grey`) or RGB, resized to
/// `image_size` × `image_size` with a triangle (bilinear) filter, scaled to [0, 1], grey replicated to three
/// channels, then `(x − mean) / std` per channel; layout `[B, 3, S, S]`, float32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub image_size: u32,
    pub grey: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub run: String,
    /// `best` or `last`.
    pub snapshot: String,
    pub epoch: u32,
    pub step: u64,
    /// The classifier's val accuracy at that epoch, when the run has a val set.
    pub val_accuracy: Option<f64>,
    /// Canonical class names indexing every output.
    pub classes: Vec<String>,
    pub input: Preprocessing,
    /// The fusion the run evaluated with at that epoch; its temperatures as f32 copies of `taus`.
    pub fusion: Fusion,
    /// τ_t and τ_i in full precision (fitted on val when the run fits them).
    pub taus: [f64; 2],
    /// [semantic, text, instance]: the levels the run computes.
    pub levels: [bool; 3],
    /// train's resolved configuration of the run (architecture, head, levels' rules): train's own business.
    pub config: serde_json::Value,
    /// The tensors' file in the same folder, `<snapshot>-<step>.safetensors`: the card is written after it,
    /// so a card always names a complete file.
    pub tensors: String,
    pub created_at: String,
}

impl ModelCard {
    pub fn read(path: &Path) -> crate::Result<Self> {
        let card: ModelCard = crate::atomic::read_json(path)?;
        if card.format != FORMAT {
            return Err(crate::Error::Invalid {
                path: path.into(),
                message: format!("model card format {} (this build reads format {FORMAT})", card.format),
            });
        }
        Ok(card)
    }

    pub fn write(&self, path: &Path) -> crate::Result<()> {
        crate::atomic::write_json(path, self)
    }
}
