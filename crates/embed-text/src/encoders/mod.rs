//! Text encoders, selected by name: `minilm` (default, a real pretrained sentence encoder), `clip-text`
//! (CLIP's text tower with weights the user brings) and `random` (the released code's fixed random vectors).
//! Each turns (class, sentence) pairs into unit vectors; none knows about files other than its weights.

pub mod clip_text;
pub mod error;
mod layers;
pub mod minilm;
pub mod random;
pub mod tokenize;
pub mod weights;

use std::path::{Path, PathBuf};

use exchange::Expression;
use tch::Device;

pub use error::{EncoderError, Result};
pub use tokenize::Truncation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// all-MiniLM-L6-v2 sentence encoder (384-d), installed by `make setup`.
    Minilm,
    /// CLIP text transformer; needs --model-dir with CLIP safetensors + tokenizer.json.
    ClipText,
    /// Fixed random unit vectors per class (seeded): the released reference code's behaviour.
    Random,
}

impl EncoderKind {
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Minilm => "minilm",
            EncoderKind::ClipText => "clip-text",
            EncoderKind::Random => "random",
        }
    }
}

pub enum Encoder {
    Minilm(minilm::MiniLm),
    ClipText(clip_text::ClipText),
    Random { seed: u64, dim: usize },
}

/// What encoding a set gave.
pub struct Encoded {
    pub vectors: Vec<Vec<f32>>,
    pub truncated: Vec<Truncation>,
}

impl Encoder {
    pub fn load(kind: EncoderKind, model_dir: &Path, device: Device, seed: u64, dim: usize) -> Result<Self> {
        Ok(match kind {
            EncoderKind::Minilm => Encoder::Minilm(minilm::MiniLm::load(model_dir, device)?),
            EncoderKind::ClipText => Encoder::ClipText(clip_text::ClipText::load(model_dir, device)?),
            EncoderKind::Random => Encoder::Random { seed, dim },
        })
    }

    /// The weight files whose content decides the output (hashed into the manifest).
    pub fn input_files(kind: EncoderKind, model_dir: &Path) -> Vec<PathBuf> {
        match kind {
            EncoderKind::Minilm => minilm::input_files(model_dir),
            EncoderKind::ClipText => clip_text::input_files(model_dir),
            EncoderKind::Random => Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            Encoder::Minilm(m) => m.dim(),
            Encoder::ClipText(c) => c.dim(),
            Encoder::Random { dim, .. } => *dim,
        }
    }

    /// Longest input in tokens (special tokens included), `None` when text is not tokenised.
    pub fn context(&self) -> Option<usize> {
        match self {
            Encoder::Minilm(m) => Some(m.max_len()),
            Encoder::ClipText(c) => Some(c.max_len()),
            Encoder::Random { .. } => None,
        }
    }

    pub fn unexpected_weights(&self) -> &[String] {
        match self {
            Encoder::Minilm(m) => &m.load_report.unexpected,
            Encoder::ClipText(c) => &c.load_report.unexpected,
            Encoder::Random { .. } => &[],
        }
    }

    pub fn encode(&self, items: &[(Expression, String)]) -> Result<Encoded> {
        let sentences: Vec<String> = items.iter().map(|(_, s)| s.clone()).collect();
        let (tensor, truncated) = match self {
            Encoder::Minilm(m) => m.encode(&sentences, 64)?,
            Encoder::ClipText(c) => c.encode(&sentences, 64)?,
            Encoder::Random { seed, dim } => {
                let vectors = items.iter().map(|(c, _)| random::class_vector(*seed, *c, *dim)).collect();
                return Ok(Encoded { vectors, truncated: Vec::new() });
            }
        };
        let vectors: Vec<Vec<f32>> = Vec::try_from(&tensor.to_device(Device::Cpu).to_kind(tch::Kind::Float))?;
        Ok(Encoded { vectors, truncated })
    }
}
