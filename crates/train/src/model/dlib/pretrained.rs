//! `model.init = "dlib"`: dlib's weights into [`DlibResNet`], then its batch norms calibrated on training faces.
//!
//! dlib folds each batch norm into `y = scale·(conv(x) + bias) + shift` with scales up to ~23. Loaded as a
//! batch norm's γ with unit running statistics, eval mode is exact, but train mode would normalise each
//! channel by its batch statistics and mis-scale every layer by that channel's spread. So the statistics are
//! measured instead: one eval pass over calibration images records each convolution's per-channel mean μ and
//! variance σ², and each batch norm is re-expressed with running mean μ, running variance σ²,
//! γ' = γ·√(σ²+ε)/√(v₀+ε) and β' = β + γ·(μ − m₀)/√(v₀+ε) (m₀, v₀ the statistics it had; after
//! [`load_folded`], −bias and 1 − ε, so γ' = γ·√(σ²+ε)). Eval mode computes exactly the same function as
//! before (checked: a change beyond rounding is an error), and train mode starts where eval mode is, because a
//! batch's statistics are close to the calibration images'.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::{convert, layer_names, DlibResNet};
use crate::data::augment::Img;
use crate::data::batch::to_tensor;
use crate::model::norm::Norm;

/// What `init.json` records for a dlib start.
#[derive(Debug, Serialize)]
pub(crate) struct DlibInit {
    pub(crate) source: String,
    pub(crate) safetensors: String,
    /// Layers (convolution + batch norm) loaded, of the file's 29: fewer when the trunk is cut.
    pub(crate) layers_loaded: usize,
    pub(crate) embedding_loaded: bool,
    pub(crate) calibration_images: usize,
    /// Largest change of any eval-mode feature on the calibration images' first batch after re-expression:
    /// rounding only (beyond 1e-3 of the features' scale the load fails).
    pub(crate) calibration_max_abs_change: f64,
}

impl DlibInit {
    pub(crate) fn summary(&self) -> String {
        format!(
            "init from dlib ({}): {} of 29 layers{}, batch norms calibrated on {} training faces (eval change {:.1e})",
            self.source,
            self.layers_loaded,
            if self.embedding_loaded { " + identity embedding" } else { "" },
            self.calibration_images,
            self.calibration_max_abs_change
        )
    }
}

/// Copies dlib's folded layers from `path` into `net` with batch norms that reproduce them in eval mode
/// (γ = scale, β = shift, running mean = −bias, running variance = 1 − ε). Returns the layers loaded.
pub(crate) fn load_folded(net: &DlibResNet, path: &Path) -> anyhow::Result<usize> {
    let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .with_context(|| format!("{} is not a readable safetensors file", path.display()))?
        .into_iter()
        .collect();
    let get = |name: String| file.get(&name).with_context(|| format!("{}: no tensor {name}", path.display()));
    tch::no_grad(|| -> anyhow::Result<()> {
        let put = |dst: &Tensor, key: &str, src: &Tensor| -> anyhow::Result<()> {
            if src.size() != dst.size() {
                bail!("{}: {key} is {:?}, the network wants {:?}", path.display(), src.size(), dst.size());
            }
            dst.shallow_clone().f_copy_(&src.to_kind(Kind::Float).to_device(dst.device()))?;
            Ok(())
        };
        for (layer, name) in net.layers.iter().zip(layer_names()) {
            let bn = &layer.bn;
            let gamma = bn.ws.as_ref().context("batch norm without weight")?;
            let beta = bn.bs.as_ref().context("batch norm without bias")?;
            // running mean = −bias: the convolution here has no bias, dlib's adds it before the affine.
            let targets = [
                (&layer.conv.ws, "conv.weight", 1.0),
                (gamma, "affine.scale", 1.0),
                (beta, "affine.shift", 1.0),
                (&bn.running_mean, "conv.bias", -1.0),
            ];
            for (dst, key, sign) in targets {
                let key = format!("{name}.{key}");
                put(dst, &key, &(get(key.clone())? * sign))?;
            }
            let _ = bn.running_var.shallow_clone().fill_(1.0 - super::BN_EPS);
        }
        if let Some(e) = &net.embed {
            put_embedding(e, get("embed.weight".into())?)?;
        }
        Ok(())
    })?;
    Ok(net.layers.len())
}

fn put_embedding(e: &tch::nn::Linear, w: &Tensor) -> anyhow::Result<()> {
    anyhow::ensure!(w.size() == e.ws.size(), "embed.weight is {:?}, expected {:?}", w.size(), e.ws.size());
    e.ws.shallow_clone().f_copy_(&w.to_device(e.ws.device()))?;
    Ok(())
}

/// Per-channel sums of one convolution's outputs over the calibration images.
struct Moments {
    sum: Tensor,
    sum_sq: Tensor,
    count: f64,
}

/// Re-expresses every batch norm of `net` with running statistics measured on `images` (see the module doc);
/// returns the largest eval-mode feature change on the first batch, which should be rounding.
pub(crate) fn calibrate(net: &DlibResNet, images: &[Img], batch: usize, device: Device) -> anyhow::Result<f64> {
    anyhow::ensure!(!images.is_empty(), "no images to calibrate dlib's batch norms on");
    let first = to_tensor(&images[..batch.min(images.len())], device);
    tch::no_grad(|| {
        let before = net.features(&first, Norm::Running, None);
        let mut moments: Vec<Option<Moments>> = (0..net.layers.len()).map(|_| None).collect();
        for chunk in images.chunks(batch.max(1)) {
            let x = to_tensor(chunk, device);
            let mut probe = |i: usize, z: &Tensor| {
                let z = z.to_kind(Kind::Double);
                let dims = [0i64, 2, 3];
                let (s, q) = (
                    z.sum_dim_intlist(dims.as_slice(), false, Kind::Double),
                    z.square().sum_dim_intlist(dims.as_slice(), false, Kind::Double),
                );
                let n = (z.size()[0] * z.size()[2] * z.size()[3]) as f64;
                match &mut moments[i] {
                    Some(m) => {
                        m.sum += s;
                        m.sum_sq += q;
                        m.count += n;
                    }
                    slot => *slot = Some(Moments { sum: s, sum_sq: q, count: n }),
                }
            };
            let _ = net.features(&x, Norm::Running, Some(&mut probe));
        }
        for (layer, m) in net.layers.iter().zip(moments) {
            let m = m.context("a layer saw no calibration output")?;
            let mean = &m.sum / m.count;
            let var = (&m.sum_sq / m.count - mean.square()).clamp_min(0.0);
            let bn = &layer.bn;
            let eps = super::BN_EPS;
            let (gamma, beta) =
                (bn.ws.as_ref().context("batch norm without weight")?, bn.bs.as_ref().context("no bias")?);
            let g = gamma.to_kind(Kind::Double);
            let k0 = (bn.running_var.to_kind(Kind::Double) + eps).sqrt();
            let new_gamma = &g * (&var + eps).sqrt() / &k0;
            let new_beta = beta.to_kind(Kind::Double) + &g * (&mean - bn.running_mean.to_kind(Kind::Double)) / &k0;
            for (dst, src) in [(gamma, new_gamma), (beta, new_beta), (&bn.running_mean, mean), (&bn.running_var, var)] {
                dst.shallow_clone().copy_(&src.to_kind(Kind::Float));
            }
        }
        let after = net.features(&first, Norm::Running, None);
        let change = f64::try_from((after - &before).abs().max())?;
        let scale = f64::try_from(before.abs().max())?.max(1.0);
        if change.is_nan() || change > 1e-3 * scale {
            bail!(
                "calibrating dlib's batch norms changed the eval-mode features by {change:.3e} (features up to \
                 {scale:.3e}): the re-expressed network no longer computes dlib's function"
            );
        }
        Ok(change)
    })
}

/// `model.init = "dlib"`: the cached conversion of the `.dat` `make setup` fetched, loaded and calibrated on
/// `images` (a seeded sample of the training faces).
pub(crate) fn init(net: &DlibResNet, images: &[Img], batch: usize, device: Device) -> anyhow::Result<DlibInit> {
    let dat = convert::dat_path()?;
    let st = convert::cached_safetensors(&dat)?;
    let layers_loaded = load_folded(net, &st)?;
    let change = calibrate(net, images, batch, device)?;
    Ok(DlibInit {
        source: dat.display().to_string(),
        safetensors: st.display().to_string(),
        layers_loaded,
        embedding_loaded: net.embed.is_some(),
        calibration_images: images.len(),
        calibration_max_abs_change: change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, ModuleT};

    /// A random network treated as "folded": calibration must leave eval mode unchanged, set the running
    /// statistics to the measured ones, and so make train mode (batch statistics) match eval mode on the
    /// calibration batch itself.
    #[test]
    fn calibration_keeps_eval_and_aligns_train_mode() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DlibResNet::new(&vs.root(), 128, false);
        tch::no_grad(|| {
            for l in &net.layers {
                let _ = l.bn.ws.as_ref().unwrap().shallow_clone().uniform_(2.0, 20.0);
                let _ = l.bn.bs.as_ref().unwrap().shallow_clone().uniform_(-1.0, 1.0);
                let _ = l.bn.running_mean.shallow_clone().uniform_(-0.1, 0.1);
                let _ = l.bn.running_var.shallow_clone().fill_(1.0 - super::super::BN_EPS);
                let _ = l.conv.ws.shallow_clone().normal_(0.0, 0.02);
            }
        });
        let images: Vec<Img> = (0..8)
            .map(|i| Img {
                w: 64,
                h: 64,
                c: 1,
                data: (0..64 * 64).map(|p| ((p * (i + 3) + p / 64 * 7) % 251) as u8).collect(),
            })
            .collect();
        let x = to_tensor(&images, Device::Cpu);
        let before = tch::no_grad(|| net.forward_t(&x, false));
        let change = calibrate(&net, &images, 3, Device::Cpu).unwrap();
        let after = tch::no_grad(|| net.forward_t(&x, false));
        let scale = f64::try_from(before.abs().max()).unwrap();
        assert!(change < 1e-4 * scale.max(1.0), "eval changed by {change} (features up to {scale})");
        assert!(after.allclose(&before, 1e-4, 1e-4 * scale.max(1.0), false));
        // Train mode on the very images calibrated on: batch statistics = running statistics.
        let train = tch::no_grad(|| net.forward_t(&x, true));
        let d = f64::try_from((train - &after).abs().max()).unwrap();
        assert!(d < 1e-2 * scale.max(1.0), "train mode differs by {d} (features up to {scale})");
    }
}
