//! all-MiniLM-L6-v2 (a 6-layer BERT) written on tch, as sentence-transformers runs it: WordPiece tokens
//! with [CLS]/[SEP], BERT encoder (post-LayerNorm, exact GELU), attention-masked mean pooling over the last
//! hidden states, L2 normalisation. Variable names follow Hugging Face's `BertModel` without a `bert.`
//! prefix, so `model.safetensors` from `make setup` loads as it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use super::error::{bad, missing, Result};
use super::layers::{attention, l2_normalize, padding_mask};
use super::tokenize::{TextTokenizer, Truncation};
use super::weights::{load_checked, LoadReport};

const SETUP_HINT: &str = "run `make setup` (it installs all-MiniLM-L6-v2 and links it as .text-model), or point \
                          --model-dir / SITFER_TEXT_MODEL at a folder with model.safetensors, tokenizer.json and config.json";

#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub(crate) vocab_size: i64,
    pub(crate) hidden_size: i64,
    pub(crate) num_hidden_layers: i64,
    pub(crate) num_attention_heads: i64,
    pub(crate) intermediate_size: i64,
    pub(crate) max_position_embeddings: i64,
    #[serde(default = "default_type_vocab")]
    pub(crate) type_vocab_size: i64,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub(crate) hidden_act: String,
    #[serde(default)]
    pub(crate) pad_token_id: i64,
}

fn default_type_vocab() -> i64 {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attn_out: nn::Linear,
    attn_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    out_norm: nn::LayerNorm,
}

pub struct MiniLm {
    _vs: VarStore,
    cfg: BertConfig,
    device: Device,
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<Layer>,
    tokenizer: TextTokenizer,
    pub(crate) load_report: LoadReport,
}

/// The files a MiniLM folder must hold; the manifest hashes them.
pub fn input_files(dir: &Path) -> Vec<PathBuf> {
    ["model.safetensors", "tokenizer.json", "config.json"].iter().map(|f| dir.join(f)).collect()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &'static str) -> Result<T> {
    if !path.is_file() {
        return Err(missing(what, path.to_path_buf(), SETUP_HINT));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("line {}: {e}", e.line())))
}

impl MiniLm {
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(missing("text model folder", dir.to_path_buf(), SETUP_HINT));
        }
        let cfg: BertConfig = read_json(&dir.join("config.json"), "model config")?;
        if cfg.hidden_act != "gelu" {
            return Err(bad(
                dir.join("config.json"),
                format!("hidden_act {:?}: only BERT's exact \"gelu\" is implemented", cfg.hidden_act),
            ));
        }
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(bad(dir.join("config.json"), "hidden_size is not a multiple of num_attention_heads"));
        }
        // sentence-transformers truncates at its own max_seq_length (256 for this model), not at the
        // tokenizer file's 128; follow it so our vectors match its vectors.
        #[derive(Deserialize)]
        struct SentenceBert {
            max_seq_length: usize,
        }
        let st = dir.join("sentence_bert_config.json");
        let max_len = if st.is_file() {
            read_json::<SentenceBert>(&st, "sentence-transformers config")?.max_seq_length
        } else {
            usize::MAX
        }
        .min(cfg.max_position_embeddings as usize);
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), max_len, SETUP_HINT)?;

        let mut vs = VarStore::new(device);
        let root = vs.root();
        let emb = &root / "embeddings";
        let ln = |p: nn::Path| {
            nn::layer_norm(
                p,
                vec![cfg.hidden_size],
                nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() },
            )
        };
        let lin = |p: nn::Path, i, o| nn::linear(p, i, o, Default::default());
        let h = cfg.hidden_size;
        let word = nn::embedding(&emb / "word_embeddings", cfg.vocab_size, h, Default::default());
        let position = nn::embedding(&emb / "position_embeddings", cfg.max_position_embeddings, h, Default::default());
        let token_type = nn::embedding(&emb / "token_type_embeddings", cfg.type_vocab_size, h, Default::default());
        let emb_norm = ln(&emb / "LayerNorm");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = &root / "encoder" / "layer" / i;
                let att = &p / "attention";
                Layer {
                    query: lin(&att / "self" / "query", h, h),
                    key: lin(&att / "self" / "key", h, h),
                    value: lin(&att / "self" / "value", h, h),
                    attn_out: lin(&att / "output" / "dense", h, h),
                    attn_norm: ln(&att / "output" / "LayerNorm"),
                    intermediate: lin(&p / "intermediate" / "dense", h, cfg.intermediate_size),
                    output: lin(&p / "output" / "dense", cfg.intermediate_size, h),
                    out_norm: ln(&p / "output" / "LayerNorm"),
                }
            })
            .collect();
        let load_report = load_checked(&mut vs, &dir.join("model.safetensors"), SETUP_HINT)?;
        vs.freeze();
        Ok(Self { _vs: vs, cfg, device, word, position, token_type, emb_norm, layers, tokenizer, load_report })
    }

    pub fn dim(&self) -> usize {
        self.cfg.hidden_size as usize
    }

    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len()
    }

    /// Unit-norm sentence embeddings `[n, hidden]`, in batches of `batch` sentences.
    pub fn encode(&self, sentences: &[String], batch: usize) -> Result<(Tensor, Vec<Truncation>)> {
        let (pad, dim) = (self.cfg.pad_token_id, self.cfg.hidden_size);
        self.tokenizer.encode_batched(sentences, batch, pad, dim, self.device, |b| self.forward(&b.ids, &b.mask))
    }

    /// `ids`, `mask`: `[b, l]` int64 -> `[b, hidden]` unit vectors.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let l = ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, self.device)).unsqueeze(0);
        let x = self.word.forward(ids) + self.position.forward(&positions) + self.token_type.forward(&ids.zeros_like());
        let mut x = self.emb_norm.forward(&x);
        let additive = padding_mask(mask);
        for layer in &self.layers {
            let ctx = attention(
                &layer.query.forward(&x),
                &layer.key.forward(&x),
                &layer.value.forward(&x),
                self.cfg.num_attention_heads,
                &additive,
            );
            x = layer.attn_norm.forward(&(layer.attn_out.forward(&ctx) + &x));
            let ff = layer.output.forward(&layer.intermediate.forward(&x).gelu("none"));
            x = layer.out_norm.forward(&(ff + &x));
        }
        let m = mask.to_kind(Kind::Float).unsqueeze(-1);
        let summed = (x * &m).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let counts = m.sum_dim_intlist([1i64].as_slice(), false, Kind::Float).clamp_min(1e-9);
        l2_normalize(&(summed / counts))
    }
}
