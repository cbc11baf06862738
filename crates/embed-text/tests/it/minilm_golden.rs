//! Golden parity: our tch MiniLM must reproduce sentence-transformers' all-MiniLM-L6-v2 vectors
//! (cosine ≥ 0.9999) for the sentences in tests/fixtures/minilm_golden.json, written by
//! reference/minilm_golden.py — including a sentence longer than the 256-token context.

use embed_text::encoders::minilm::MiniLm;
use tch::Device;

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = test_support::text_model_dir("minilm_matches_sentence_transformers") else { return };
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/minilm_golden.json")).expect("golden fixture is JSON");
    let sentences: Vec<String> = serde_json::from_value(golden["sentences"].clone()).unwrap();
    let expected: Vec<Vec<f32>> = serde_json::from_value(golden["vectors"].clone()).unwrap();
    let tokens: Vec<usize> = serde_json::from_value(golden["untruncated_tokens"].clone()).unwrap();

    let model = MiniLm::load(&dir, Device::Cpu).expect("MiniLM loads");
    assert_eq!(model.dim(), 384);
    assert_eq!(model.max_len(), golden["max_seq_length"].as_u64().unwrap() as usize);
    // Batches of 3 mix short and long sentences, so padding and the mask are exercised.
    let (ours, truncated) = model.encode(&sentences, 3).unwrap();
    let ours: Vec<Vec<f32>> = Vec::try_from(&ours).unwrap();
    let long: Vec<usize> = tokens.iter().enumerate().filter(|(_, &t)| t > model.max_len()).map(|(i, _)| i).collect();
    assert_eq!(truncated.iter().map(|t| t.index).collect::<Vec<_>>(), long);
    assert!(truncated.iter().all(|t| t.kept == model.max_len()));
    for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos >= 0.9999, "sentence {i} ({:?}): cosine {cos} to sentence-transformers", sentences[i]);
    }
}
