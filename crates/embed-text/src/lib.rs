//! `embed-text`: fine-grained expression descriptions into text embeddings and per-class prototypes.
//!
//! Reads `pipelines/text/descriptions.toml` ([`descriptions`]), encodes one named set with one of the
//! [`encoders`] (a BERT MiniLM or CLIP text tower written on tch, or fixed random vectors), and writes
//! `artifacts/text/<encoder>/<set>/{embeddings,prototypes}.parquet` + `manifest.json` ([`output`]).
//! It never reads another stage's outputs and nothing here trains.

pub mod descriptions;
pub mod encoders;
pub mod output;
pub mod prototypes;
