//! dlib's `.dat` → safetensors, once per file: the converted copy sits beside the `.dat` that `make setup`
//! fetched, named by the `.dat`'s BLAKE3 hash, so a different file can never be served a stale conversion.
//! The tensors keep dlib's own form (convolution weight and bias, folded affine scale and shift, the
//! embedding) under this network's layer names; folding them into batch norms is [`super::pretrained`]'s job.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tch::Tensor;

use super::dat::{self, DatWeights};
use super::layer_names;

/// The file `make setup` fetches, inside the folder `$SITFER_FACE_MODEL` (or the `.face-model` link) names.
pub const DAT_FILE: &str = "dlib_face_recognition_resnet_model_v1.dat";

/// The `.dat` file, checked to exist.
pub fn dat_path() -> anyhow::Result<PathBuf> {
    let p = tch_common::models::face_model_dir().join(DAT_FILE);
    anyhow::ensure!(
        p.is_file(),
        "model.init = \"dlib\": no {} (run `make setup`, which fetches it, or point SITFER_FACE_MODEL at the folder \
         holding {DAT_FILE})",
        p.display()
    );
    Ok(p)
}

/// The tensors of `w` under this network's names: `<layer>.conv.weight` `[cout, cin, k, k]`,
/// `<layer>.conv.bias`, `<layer>.affine.scale`, `<layer>.affine.shift`, and `embed.weight` `[128, 256]`.
pub(crate) fn named_tensors(w: &DatWeights) -> Vec<(String, Tensor)> {
    let mut out = Vec::with_capacity(4 * w.convs.len() + 1);
    for ((name, c), a) in layer_names().iter().zip(&w.convs).zip(&w.affines) {
        let k = c.kernel as i64;
        out.push((
            format!("{name}.conv.weight"),
            Tensor::from_slice(&c.weight).view([c.cout as i64, c.cin as i64, k, k]),
        ));
        out.push((format!("{name}.conv.bias"), Tensor::from_slice(&c.bias)));
        out.push((format!("{name}.affine.scale"), Tensor::from_slice(&a.scale)));
        out.push((format!("{name}.affine.shift"), Tensor::from_slice(&a.shift)));
    }
    out.push((
        "embed.weight".into(),
        Tensor::from_slice(&w.embed).view([w.embed_outputs as i64, w.embed_inputs as i64]),
    ));
    out
}

/// The safetensors conversion of `dat`, written (atomically) on first use.
pub fn cached_safetensors(dat: &Path) -> anyhow::Result<PathBuf> {
    let bytes = std::fs::read(dat).with_context(|| format!("reading {}", dat.display()))?;
    let hash = blake3::hash(&bytes).to_hex();
    let dir = dat.parent().unwrap_or(Path::new("."));
    let out = dir.join(format!("converted-{}.safetensors", &hash[..16]));
    if out.is_file() {
        return Ok(out);
    }
    let weights = dat::parse(&dat.display().to_string(), &bytes)?;
    // Unique per process and thread (parallel tests convert concurrently); the rename makes the last one win.
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_digit(), "");
    let tmp = dir.join(format!(".converted-{}.{}.{thread}.tmp", &hash[..16], std::process::id()));
    Tensor::write_safetensors(&named_tensors(&weights), &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::Img;
    use crate::data::batch::to_tensor;
    use crate::model::dlib::{pretrained, DlibResNet};
    use tch::{nn, Device};

    /// Golden parity: dlib's own descriptors (fixtures/dlib/reference.py, dlib 20.0.1) against this port, loaded
    /// through the converter, on the reference script's 150 px images; then the same after batch-norm
    /// calibration, which must not change the eval-mode function.
    #[test]
    fn matches_dlib_descriptors() {
        let dat = dat_path().expect("the dlib face model (make setup fetches it)");
        let st = cached_safetensors(&dat).unwrap();
        assert_eq!(cached_safetensors(&dat).unwrap(), st, "the second call reuses the conversion");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dlib");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap()).unwrap();
        let mut images = Vec::new();
        let mut want = Vec::new();
        for case in expected["cases"].as_array().unwrap() {
            let img = image::open(fixtures.join(case["image"].as_str().unwrap())).unwrap().to_rgb8();
            images.push(Img { w: img.width() as usize, h: img.height() as usize, c: 3, data: img.into_raw() });
            want.extend(case["descriptor"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32));
        }
        let want = Tensor::from_slice(&want).view([images.len() as i64, 128]);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DlibResNet::new(&vs.root(), 256, true);
        assert_eq!(pretrained::load_folded(&net, &st).unwrap(), 29);
        let x = to_tensor(&images, Device::Cpu);
        let got = tch::no_grad(|| net.descriptor(&x).unwrap());
        let diff = f64::try_from((&got - &want).abs().max()).unwrap();
        assert!(diff <= 1e-4, "max |tch − dlib| = {diff}");
        let change = pretrained::calibrate(&net, &images, 2, Device::Cpu).unwrap();
        let calibrated = tch::no_grad(|| net.descriptor(&x).unwrap());
        let diff = f64::try_from((&calibrated - &want).abs().max()).unwrap();
        assert!(diff <= 1e-4, "after calibration: max |tch − dlib| = {diff} (feature change {change})");
    }
}
