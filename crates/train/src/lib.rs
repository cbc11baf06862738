//! The SIT-FER trainer's library: the model ([`model`]), the method (`sitfer`), the loop ([`run`]) and what a
//! trained run is used for ([`evaluate`], [`export`], [`snapshot`]). The binary (`src/bin/train/`) drives it.
//!
//! The public surface is what the binary and the integration tests (`tests/it/`) call, and nothing else:
//! every other item is `pub(crate)`. A module is public only for the reason given beside it.

/// Checkpoints: `train run --resume` and the tests read the latest one.
pub mod checkpoint;
/// The resolved configuration (presets, scales, `--set`): `train run`, `plan` and `config`.
pub mod config;
/// Faces and their views: `train predict` decodes images, `augment-preview` draws the views.
pub mod data;
/// Data-parallel ranks: the binary's launcher and `train run`.
pub mod distributed;
/// Scoring a network on faces: `train evaluate` and `predict`.
pub mod evaluate;
/// TorchScript and ONNX: `train export`.
pub mod export;
/// The networks: the binary opens a trained run's, the tests convert dlib's weights.
pub mod model;
/// Host read-backs counted: the tests check the loop reads the GPU back only where it must.
pub mod readback;
/// Memory and thread checks before a run: `train run`.
pub mod resources;
/// The training loop and its run folder: `train run`, `plan`.
pub mod run;
/// A trained network with its card: `predict`, `evaluate`, `export`.
pub mod snapshot;

mod amp;
mod ema;
mod epoch_stats;
mod named_tensors;
mod optim;
mod range;
mod sitfer;
