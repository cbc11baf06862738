//! CLIP's text tower written on tch, for users who bring CLIP weights: BPE tokens with start/end-of-text,
//! token + position embeddings, pre-LayerNorm transformer with a causal mask and quick-GELU, final
//! LayerNorm, the hidden state at the (first) end-of-text token, `text_projection` (no bias), L2
//! normalisation. Names follow Hugging Face's `CLIPModel` / `CLIPTextModelWithProjection` safetensors
//! (`text_model.…`, `text_projection.weight`); the config may be a full CLIP config (with `text_config`
//! and `projection_dim`) or a flat text config.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use super::error::{bad, missing, Result};
use super::layers::{attention, l2_normalize, padding_mask};
use super::tokenize::{TextTokenizer, Truncation};
use super::weights::{load_checked, LoadReport};

const HINT: &str = "the clip-text encoder needs a folder (--model-dir) holding model.safetensors with Hugging Face CLIP \
                    names, config.json and the CLIP BPE vocabulary as tokenizer.json (CLIPTokenizerFast.save_pretrained writes it)";

#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    pub(crate) vocab_size: i64,
    pub(crate) hidden_size: i64,
    pub(crate) intermediate_size: i64,
    pub(crate) num_hidden_layers: i64,
    pub(crate) num_attention_heads: i64,
    #[serde(default = "default_ctx")]
    pub(crate) max_position_embeddings: i64,
    #[serde(default = "default_act")]
    pub(crate) hidden_act: String,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    pub(crate) eos_token_id: Option<i64>,
    pub(crate) projection_dim: Option<i64>,
}

fn default_ctx() -> i64 {
    77
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

#[derive(Deserialize)]
struct FullConfig {
    text_config: Option<ClipTextConfig>,
    projection_dim: Option<i64>,
}

struct Layer {
    norm1: nn::LayerNorm,
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

pub struct ClipText {
    _vs: VarStore,
    cfg: ClipTextConfig,
    device: Device,
    token: nn::Embedding,
    position: nn::Embedding,
    layers: Vec<Layer>,
    final_norm: nn::LayerNorm,
    projection: nn::Linear,
    tokenizer: TextTokenizer,
    eos_id: i64,
    pub load_report: LoadReport,
}

pub fn input_files(dir: &Path) -> Vec<PathBuf> {
    ["model.safetensors", "tokenizer.json", "config.json"].iter().map(|f| dir.join(f)).collect()
}

pub fn read_config(path: &Path) -> Result<ClipTextConfig> {
    if !path.is_file() {
        return Err(missing("CLIP config", path.to_path_buf(), HINT));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let full: FullConfig = serde_json::from_str(&text).map_err(|e| bad(path, format!("line {}: {e}", e.line())))?;
    let mut cfg = match full.text_config {
        Some(c) => c,
        None => serde_json::from_str(&text).map_err(|e| bad(path, format!("line {}: {e}", e.line())))?,
    };
    cfg.projection_dim = cfg.projection_dim.or(full.projection_dim);
    Ok(cfg)
}

impl ClipText {
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(missing("CLIP model folder", dir.to_path_buf(), HINT));
        }
        let cfg = read_config(&dir.join("config.json"))?;
        if !matches!(cfg.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(bad(
                dir.join("config.json"),
                format!("hidden_act {:?}: expected quick_gelu or gelu", cfg.hidden_act),
            ));
        }
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(bad(dir.join("config.json"), "hidden_size is not a multiple of num_attention_heads"));
        }
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), cfg.max_position_embeddings as usize, HINT)?;
        let eot = tokenizer.token_id("<|endoftext|>").map(i64::from);
        // Hugging Face: configs with eos_token_id 2 predate the fix and pool at argmax(id), i.e. at the
        // end-of-text token of the real vocabulary; use the tokenizer's token then.
        let eos_id = match cfg.eos_token_id {
            Some(id) if id != 2 => id,
            _ => eot.ok_or_else(|| {
                bad(dir.join("tokenizer.json"), "no <|endoftext|> token and no eos_token_id in config.json")
            })?,
        };

        let mut vs = VarStore::new(device);
        let root = vs.root();
        let tm = &root / "text_model";
        let h = cfg.hidden_size;
        let ln = |p: nn::Path| {
            nn::layer_norm(p, vec![h], nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() })
        };
        let lin = |p: nn::Path, i, o| nn::linear(p, i, o, Default::default());
        let token = nn::embedding(&tm / "embeddings" / "token_embedding", cfg.vocab_size, h, Default::default());
        let position = nn::embedding(
            &tm / "embeddings" / "position_embedding",
            cfg.max_position_embeddings,
            h,
            Default::default(),
        );
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = &tm / "encoder" / "layers" / i;
                let a = &p / "self_attn";
                Layer {
                    norm1: ln(&p / "layer_norm1"),
                    q: lin(&a / "q_proj", h, h),
                    k: lin(&a / "k_proj", h, h),
                    v: lin(&a / "v_proj", h, h),
                    out: lin(&a / "out_proj", h, h),
                    norm2: ln(&p / "layer_norm2"),
                    fc1: lin(&p / "mlp" / "fc1", h, cfg.intermediate_size),
                    fc2: lin(&p / "mlp" / "fc2", cfg.intermediate_size, h),
                }
            })
            .collect();
        let final_norm = ln(&tm / "final_layer_norm");
        let proj_dim = cfg.projection_dim.unwrap_or(h);
        let projection =
            nn::linear(&root / "text_projection", h, proj_dim, nn::LinearConfig { bias: false, ..Default::default() });
        let load_report = load_checked(&mut vs, &dir.join("model.safetensors"), HINT)?;
        vs.freeze();
        Ok(Self {
            _vs: vs,
            cfg,
            device,
            token,
            position,
            layers,
            final_norm,
            projection,
            tokenizer,
            eos_id,
            load_report,
        })
    }

    pub fn dim(&self) -> usize {
        self.cfg.projection_dim.unwrap_or(self.cfg.hidden_size) as usize
    }

    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len()
    }

    pub fn encode(&self, sentences: &[String], batch: usize) -> Result<(Tensor, Vec<Truncation>)> {
        self.tokenizer.encode_batched(sentences, batch, self.eos_id, self.dim() as i64, self.device, |b| {
            let eos: Vec<i64> = b
                .ids_host
                .iter()
                .map(|row| row.iter().position(|&t| t == self.eos_id).unwrap_or(row.len().saturating_sub(1)) as i64)
                .collect();
            self.forward(&b.ids, &b.mask, &Tensor::from_slice(&eos).to_device(self.device))
        })
    }

    /// `ids`, `mask`: `[b, l]`; `eos`: `[b]` position of each row's end-of-text token -> `[b, proj]` unit vectors.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, eos: &Tensor) -> Tensor {
        let (b, l) = ids.size2().expect("ids are [batch, len]");
        let positions = Tensor::arange(l, (Kind::Int64, self.device)).unsqueeze(0);
        let mut x = self.token.forward(ids) + self.position.forward(&positions);
        let causal = Tensor::ones([l, l], (Kind::Float, self.device)).triu(1) * f64::from(f32::MIN);
        let additive = padding_mask(mask) + causal.view([1, 1, l, l]);
        let act =
            |t: Tensor| if self.cfg.hidden_act == "quick_gelu" { &t * (&t * 1.702).sigmoid() } else { t.gelu("none") };
        for layer in &self.layers {
            let y = layer.norm1.forward(&x);
            let ctx = attention(
                &layer.q.forward(&y),
                &layer.k.forward(&y),
                &layer.v.forward(&y),
                self.cfg.num_attention_heads,
                &additive,
            );
            x += layer.out.forward(&ctx);
            let y = layer.norm2.forward(&x);
            x += layer.fc2.forward(&act(layer.fc1.forward(&y)));
        }
        let x = self.final_norm.forward(&x);
        let pooled =
            x.gather(1, &eos.view([b, 1, 1]).expand([b, 1, self.cfg.hidden_size], false), false).squeeze_dim(1);
        l2_normalize(&self.projection.forward(&pooled))
    }
}
