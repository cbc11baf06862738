//! The classifier as TorchScript: the network traced in eval mode from a preprocessed batch to its logits,
//! weights baked in, for PyTorch and libtorch (`torch.jit.load`, `torch::jit::load`).

use tch::{CModule, Kind, Tensor};

use crate::model::inference::{Arithmetic, InferenceNet};
use crate::snapshot::Model;

/// Traces `model`'s eval-mode classifier on a two-image batch of the card's input size: the frozen inference
/// network (batch norms folded) in fp32, reading the card's three-channel normalised input whatever the data.
pub fn trace_classifier(model: &Model) -> anyhow::Result<CModule> {
    let s = i64::from(model.card.input.image_size);
    let example = Tensor::zeros([2, 3, s, s], (Kind::Float, model.device));
    let frozen = InferenceNet::new(&model.net, false, Arithmetic::FP32);
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("SitferClassifier", "forward", &[example], &mut |inputs| {
            vec![frozen.forward(&inputs[0]).z]
        })
    })?;
    Ok(module)
}

/// The TorchScript archive of `module` as bytes, for the caller to write atomically. libtorch's own
/// `save(path)` aborts the process when the disk fills (its zip writer throws again from a destructor), so it
/// writes into an anonymous in-memory file instead, which cannot run out of disk.
pub fn torchscript_bytes(module: &CModule) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    use std::os::fd::FromRawFd;
    let name = c"sitfer-export";
    // SAFETY: memfd_create with a valid C string; the returned descriptor is owned by `file` from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        anyhow::bail!("creating an in-memory file for the TorchScript archive: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    module
        .save(format!("/proc/self/fd/{fd}"))
        .map_err(|e| anyhow::anyhow!("serialising the TorchScript module: {e}"))?;
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}
