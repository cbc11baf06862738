//! The classifier as TorchScript: the network traced in eval mode from a preprocessed batch to its logits,
//! weights baked in, for serving outside this project (`train export` writes it; a test loads it back).

use tch::{CModule, Kind, Tensor};

use crate::snapshot::Model;

/// Traces `model`'s eval-mode classifier on a two-image batch of the card's input size.
pub fn trace_classifier(model: &Model) -> anyhow::Result<CModule> {
    let s = i64::from(model.card.input.image_size);
    let example = Tensor::zeros([2, 3, s, s], (Kind::Float, model.device));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("SitferClassifier", "forward", &[example], &mut |inputs| {
            vec![model.net.forward(&inputs[0], false).z]
        })
    })?;
    Ok(module)
}
