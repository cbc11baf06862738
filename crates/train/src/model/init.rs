//! `--init <file.safetensors>`: copy pretrained weights into the model by name (torchvision ResNet-18 names,
//! e.g. converted torchvision or MS-Celeb-1M weights; a `model.` prefix, as in this trainer's own
//! checkpoints, is accepted). Nothing is silently dropped: the report lists what the model wanted and the file
//! lacks (missing), what the file has and the model does not (unexpected), and same-named tensors of another
//! shape (kept at their fresh values — a 1000-class `fc` is the usual one).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;
use tch::nn::VarStore;
use tch::Tensor;

#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct InitReport {
    pub(crate) file: String,
    pub(crate) loaded: Vec<String>,
    pub(crate) missing: Vec<String>,
    pub(crate) unexpected: Vec<String>,
    /// (name, shape in the file, shape in the model)
    pub(crate) mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl InitReport {
    pub(crate) fn summary(&self) -> String {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let mism: Vec<String> =
            self.mismatched.iter().map(|(n, f, m)| format!("{n} (file {f:?}, model {m:?})")).collect();
        format!(
            "init from {}: {} tensors loaded; missing (fresh): {}; unexpected (ignored): {}; shape mismatch (fresh): {}",
            self.file,
            self.loaded.len(),
            list(&self.missing),
            list(&self.unexpected),
            list(&mism)
        )
    }
}

pub(crate) fn load(vs: &VarStore, path: &Path) -> anyhow::Result<InitReport> {
    let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .with_context(|| format!("--init: {} is not a readable safetensors file", path.display()))?
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("model.").map(str::to_string).unwrap_or(k), v))
        .collect();
    let vars = vs.variables();
    let mut r = InitReport { file: path.display().to_string(), ..Default::default() };
    tch::no_grad(|| {
        for (name, v) in &vars {
            match file.get(name) {
                None => r.missing.push(name.clone()),
                Some(src) if src.size() != v.size() => r.mismatched.push((name.clone(), src.size(), v.size())),
                Some(src) => {
                    v.shallow_clone().copy_(&src.to_kind(v.kind()).to_device(v.device()));
                    r.loaded.push(name.clone());
                }
            }
        }
    });
    r.unexpected = file.keys().filter(|k| !vars.contains_key(*k)).cloned().collect();
    for v in [&mut r.loaded, &mut r.missing, &mut r.unexpected] {
        v.sort();
    }
    r.mismatched.sort();
    if r.loaded.is_empty() {
        bail!(
            "--init: no tensor of {} matches the model by name and shape (expected torchvision ResNet-18 names such as \
             conv1.weight, layer1.0.conv1.weight); {}",
            path.display(),
            r.summary()
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::model::Net;
    use tch::{Device, Kind};

    #[test]
    fn loads_by_name_and_reports_missing_unexpected_and_mismatched() {
        let dir = tempfile::tempdir().unwrap();
        let src = VarStore::new(Device::Cpu);
        let _ = Net::new(&src.root(), &Model::default(), 1000, 512);
        let mut named: Vec<(String, Tensor)> = src
            .variables()
            .into_iter()
            .filter(|(k, _)| k != "layer4.1.bn2.bias")
            .map(|(k, v)| (k, v.detach().copy().fill_(0.25)))
            .collect();
        named.push(("layer1.0.bn1.num_batches_tracked".into(), Tensor::from_slice(&[3i64])));
        let path = dir.path().join("w.safetensors");
        Tensor::write_safetensors(&named, &path).unwrap();

        let vs = VarStore::new(Device::Cpu);
        let _ = Net::new(&vs.root(), &Model::default(), 8, 512);
        let r = load(&vs, &path).unwrap();
        assert_eq!(r.missing, vec!["layer4.1.bn2.bias".to_string()]);
        assert_eq!(r.unexpected, vec!["layer1.0.bn1.num_batches_tracked".to_string()]);
        assert_eq!(r.mismatched.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), vec!["fc.bias", "fc.weight"]);
        let w = &vs.variables()["layer2.0.conv1.weight"];
        assert_eq!(f64::try_from(&w.mean(Kind::Float)).unwrap(), 0.25);
        assert!(r.summary().contains("missing (fresh): layer4.1.bn2.bias"));

        let junk = dir.path().join("junk.safetensors");
        Tensor::write_safetensors(
            &[("encoder.weight".to_string(), Tensor::zeros([2], (Kind::Float, Device::Cpu)))],
            &junk,
        )
        .unwrap();
        let e = load(&vs, &junk).unwrap_err().to_string();
        assert!(e.contains("no tensor") && e.contains("encoder.weight"), "{e}");
        assert!(load(&vs, &dir.path().join("none.safetensors")).unwrap_err().to_string().contains("none.safetensors"));
    }
}
