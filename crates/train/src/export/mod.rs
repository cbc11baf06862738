//! The trained classifier in the formats serving stacks read, each from a preprocessed `[B, 3, S, S]` batch
//! (the card's preprocessing) to `[B, C]` logits, the eval-mode network with its batch norms folded:
//! [`torchscript`] (PyTorch, libtorch) and [`onnx`] (ONNX Runtime, OpenVINO, TensorRT). `train export`
//! writes them beside the card and the tensors.

pub mod onnx;
pub mod torchscript;

pub use torchscript::{torchscript_bytes, trace_classifier};
