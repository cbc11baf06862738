//! Tokenisation through the `tokenizers` crate from a model's `tokenizer.json`, with the file's own padding
//! and truncation switched off: batches are padded to their longest sentence (an attention mask says which
//! positions are real), and sentences longer than the encoder's context are truncated *with a warning*
//! naming them, never silently.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use super::error::{bad, missing, Result};

pub struct TextTokenizer {
    tokenizer: Tokenizer,
    truncating: Tokenizer,
    path: PathBuf,
    max_len: usize,
}

/// A padded batch: `ids` and `mask` are `[batch, longest]` int64 on the requested device.
pub struct TokenBatch {
    pub(crate) ids: Tensor,
    pub(crate) mask: Tensor,
    pub(crate) ids_host: Vec<Vec<i64>>,
}

/// A sentence that did not fit the context.
#[derive(Clone, Debug, PartialEq)]
pub struct Truncation {
    pub index: usize,
    pub tokens: usize,
    pub kept: usize,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_len: usize, hint: &str) -> Result<Self> {
        if !path.is_file() {
            return Err(missing("tokenizer", path.to_path_buf(), hint));
        }
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| bad(path, format!("not a readable tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| bad(path, e.to_string()))?;
        let mut truncating = tokenizer.clone();
        truncating
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| bad(path, e.to_string()))?;
        Ok(Self { tokenizer, truncating, path: path.to_path_buf(), max_len })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Token ids per sentence (special tokens added), truncated to the context where needed.
    pub fn ids(&self, sentences: &[String]) -> Result<(Vec<Vec<i64>>, Vec<Truncation>)> {
        let mut out = Vec::with_capacity(sentences.len());
        let mut truncated = Vec::new();
        for (index, s) in sentences.iter().enumerate() {
            let enc = self.tokenizer.encode(s.as_str(), true).map_err(|e| bad(&self.path, e.to_string()))?;
            let enc = if enc.len() > self.max_len {
                let cut = self.truncating.encode(s.as_str(), true).map_err(|e| bad(&self.path, e.to_string()))?;
                truncated.push(Truncation { index, tokens: enc.len(), kept: cut.len() });
                cut
            } else {
                enc
            };
            out.push(enc.get_ids().iter().map(|&i| i as i64).collect());
        }
        Ok((out, truncated))
    }

    /// Tokenises `sentences` and runs `forward` on padded batches of `batch` without gradient; returns the
    /// `[n, dim]` concatenation and the truncated sentences. Both encoders share this loop.
    pub fn encode_batched(
        &self,
        sentences: &[String],
        batch: usize,
        pad_id: i64,
        dim: i64,
        device: Device,
        forward: impl Fn(&TokenBatch) -> Tensor,
    ) -> Result<(Tensor, Vec<Truncation>)> {
        let (ids, truncated) = self.ids(sentences)?;
        let out: Vec<Tensor> = tch::no_grad(|| {
            ids.chunks(batch.max(1)).map(|chunk| forward(&Self::batch(chunk.to_vec(), pad_id, device))).collect()
        });
        let vectors =
            if out.is_empty() { Tensor::zeros([0, dim], (Kind::Float, device)) } else { Tensor::cat(&out, 0) };
        Ok((vectors, truncated))
    }

    /// Pads `ids` to the longest with `pad_id` and builds the mask.
    pub fn batch(ids: Vec<Vec<i64>>, pad_id: i64, device: Device) -> TokenBatch {
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut flat = Vec::with_capacity(ids.len() * longest);
        let mut mask = Vec::with_capacity(ids.len() * longest);
        for row in &ids {
            flat.extend(row.iter().copied().chain(std::iter::repeat_n(pad_id, longest - row.len())));
            mask.extend(std::iter::repeat_n(1i64, row.len()).chain(std::iter::repeat_n(0, longest - row.len())));
        }
        let shape = [ids.len() as i64, longest as i64];
        TokenBatch {
            ids: Tensor::from_slice(&flat).view(shape).to_device(device),
            mask: Tensor::from_slice(&mask).view(shape).to_device(device),
            ids_host: ids,
        }
    }
}
