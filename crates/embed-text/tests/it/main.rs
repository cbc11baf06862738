//! The crate's integration tests, one binary (each test binary links the whole dependency tree).

mod cli;
mod clip_text;
mod minilm_golden;
