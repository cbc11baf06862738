//! What libtorch offers and tch's C API does not: autocast on the CPU (and on CUDA in bf16), the channels-last
//! memory format, the CPU capabilities that say whether bf16 is native, libtorch's fused Adam kernel, and c10d's
//! process groups (the collectives PyTorch's distributed training runs on). A thin, safe layer over a C++ shim
//! (`csrc/`) compiled against the same torch wheel's headers that torch-sys links; nothing here knows about
//! training.

pub mod autocast;
pub mod cpu;
pub mod dist;
mod ffi;
pub mod memory_format;
pub mod optim;

/// A libtorch call that threw: which shim function, and libtorch's own message.
#[derive(Debug, thiserror::Error)]
#[error("libtorch error in {call}: {message}")]
pub struct TorchExtError {
    pub call: &'static str,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, TorchExtError>;
