//! The clip-text encoder on a tiny randomly initialised CLIP checkpoint this test writes itself (Hugging
//! Face names, a word-level tokenizer.json with start/end-of-text tokens), checked against an independent
//! computation: transformers' `CLIPTextModelWithProjection` in reference/clip_text_reference.py.

use std::path::Path;

use embed_text::encoders::clip_text::ClipText;
use embed_text::encoders::EncoderError;
use tch::{Device, Kind, Tensor};

const WORDS: &[&str] = &[
    "a",
    "face",
    "with",
    "raised",
    "brows",
    "and",
    "open",
    "mouth",
    "smiling",
    "lip",
    "corners",
    "pulled",
    "up",
    "the",
    "nose",
    "is",
    "wrinkled",
    "eyes",
    "wide",
    "of",
    "this",
    "image",
    "happiness",
    "fear",
    "[UNK]",
];
const HIDDEN: i64 = 32;
const LAYERS: i64 = 2;
const INTER: i64 = 64;
const CTX: i64 = 16;
const PROJ: i64 = 24;

fn vocab() -> i64 {
    WORDS.len() as i64 + 2
}

fn write_checkpoint(dir: &Path, hidden: i64) {
    tch::manual_seed(11);
    let v = vocab();
    let mut t: Vec<(String, Tensor)> = Vec::new();
    let w = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.3;
    let ln = |t: &mut Vec<(String, Tensor)>, p: &str| {
        t.push((format!("{p}.weight"), Tensor::randn([hidden], (Kind::Float, Device::Cpu)) * 0.1 + 1.0));
        t.push((format!("{p}.bias"), Tensor::randn([hidden], (Kind::Float, Device::Cpu)) * 0.1));
    };
    t.push(("text_model.embeddings.token_embedding.weight".into(), w(&[v, hidden])));
    t.push(("text_model.embeddings.position_embedding.weight".into(), w(&[CTX, hidden])));
    for i in 0..LAYERS {
        let p = format!("text_model.encoder.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.push((format!("{p}.self_attn.{proj}.weight"), w(&[hidden, hidden])));
            t.push((format!("{p}.self_attn.{proj}.bias"), w(&[hidden])));
        }
        ln(&mut t, &format!("{p}.layer_norm1"));
        ln(&mut t, &format!("{p}.layer_norm2"));
        t.push((format!("{p}.mlp.fc1.weight"), w(&[INTER, hidden])));
        t.push((format!("{p}.mlp.fc1.bias"), w(&[INTER])));
        t.push((format!("{p}.mlp.fc2.weight"), w(&[hidden, INTER])));
        t.push((format!("{p}.mlp.fc2.bias"), w(&[hidden])));
    }
    ln(&mut t, "text_model.final_layer_norm");
    t.push(("text_projection.weight".into(), w(&[PROJ, hidden])));
    Tensor::write_safetensors(&t, dir.join("model.safetensors")).unwrap();

    let config = serde_json::json!({
        "model_type": "clip_text_model",
        "vocab_size": v, "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "max_position_embeddings": CTX, "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5, "projection_dim": PROJ, "eos_token_id": v - 1, "bos_token_id": v - 2, "pad_token_id": v - 1,
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let mut vocab_map: serde_json::Map<String, serde_json::Value> =
        WORDS.iter().enumerate().map(|(i, w)| (w.to_string(), (i as i64).into())).collect();
    vocab_map.insert("<|startoftext|>".into(), (v - 2).into());
    vocab_map.insert("<|endoftext|>".into(), (v - 1).into());
    let special = |id: i64, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false,
        "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(v - 2, "<|startoftext|>"), special(v - 1, "<|endoftext|>")],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|startoftext|>": {"id": "<|startoftext|>", "ids": [v - 2], "tokens": ["<|startoftext|>"]},
                               "<|endoftext|>": {"id": "<|endoftext|>", "ids": [v - 1], "tokens": ["<|endoftext|>"]}}},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": "[UNK]"},
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string_pretty(&tokenizer).unwrap()).unwrap();
}

fn sentences() -> Vec<String> {
    vec![
        "A face with raised brows and open mouth".into(),
        "smiling".into(),
        "the nose is wrinkled".into(),
        "This image of happiness".into(),
        // 20 words + 2 special tokens > the 16-token context: truncated, and the end-of-text token kept.
        "a face with wide eyes and the lip corners pulled up and the brows raised with open mouth and wrinkled nose"
            .into(),
    ]
}

#[test]
fn tiny_clip_matches_transformers() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), HIDDEN);
    let enc = ClipText::load(dir.path(), Device::Cpu).expect("tiny checkpoint loads");
    assert_eq!(enc.dim(), PROJ as usize);
    assert!(enc.load_report.unexpected.is_empty(), "{:?}", enc.load_report.unexpected);
    let (ours, truncated) = enc.encode(&sentences(), 3).unwrap();
    assert_eq!(truncated.len(), 1, "the long sentence is reported as truncated");
    assert_eq!((truncated[0].index, truncated[0].kept), (4, CTX as usize));
    let ours: Vec<Vec<f32>> = Vec::try_from(&ours).unwrap();

    // Batching/padding must not change a row: the same sentence alone gives the same vector.
    let (alone, _) = enc.encode(&sentences()[1..2], 1).unwrap();
    let alone: Vec<Vec<f32>> = Vec::try_from(&alone).unwrap();
    assert!(ours[1].iter().zip(&alone[0]).all(|(a, b)| (a - b).abs() < 1e-5));

    let Some(python) = test_support::reference_python() else {
        panic!("reference Python (.venv-torch) missing: run `make setup`");
    };
    let sentences_path = dir.path().join("sentences.json");
    std::fs::write(&sentences_path, serde_json::to_string(&sentences()).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/clip_text_reference.py");
    let out = std::process::Command::new(python).arg(script).arg(dir.path()).arg(&sentences_path).output().unwrap();
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs: Vec<Vec<f32>> = serde_json::from_value(reference["vectors"].clone()).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let max_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(cos > 0.99999 && max_diff < 1e-4, "sentence {i}: cos {cos}, max |diff| {max_diff}");
    }
}

#[test]
fn wrong_shapes_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), HIDDEN);
    // A config that disagrees with the weights.
    let cfg = std::fs::read_to_string(dir.path().join("config.json"))
        .unwrap()
        .replace("\"hidden_size\": 32", "\"hidden_size\": 48");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let e = ClipText::load(dir.path(), Device::Cpu).err().expect("shape mismatch refused");
    assert!(matches!(e, EncoderError::Shapes { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("text_model.embeddings.token_embedding.weight")
            && msg.contains("[27, 32]")
            && msg.contains("[27, 48]"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), HIDDEN);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let e = ClipText::load(dir.path(), Device::Cpu).err().expect("missing tokenizer refused");
    assert!(matches!(e, EncoderError::Missing { .. }) && e.to_string().contains("tokenizer.json"), "{e}");
}
