//! Loads a safetensors checkpoint into a VarStore, checking every variable's name and shape first, so a
//! wrong checkpoint is reported as a list of mismatches instead of a libtorch panic halfway through.

use std::collections::HashMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::Tensor;

use super::error::{bad, missing, EncoderError, Result};

/// What a load found besides the variables it filled.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    /// Tensors in the file the model has no use for (e.g. BERT's pooler); harmless, listed for `--verbose`.
    pub unexpected: Vec<String>,
}

pub fn load_checked(vs: &mut VarStore, path: &Path, hint: &str) -> Result<LoadReport> {
    if !path.is_file() {
        return Err(missing("model weights", path.to_path_buf(), hint));
    }
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| bad(path, format!("not a readable safetensors file: {e}")))?;
    let mut file: HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));

    let mut problems = Vec::new();
    for (name, var) in &vars {
        match file.get(name) {
            None => problems.push(format!("  missing: {name} (expected shape {:?})", var.size())),
            Some(t) if t.size() != var.size() => problems.push(format!(
                "  shape: {name} is {:?} in the file, the model expects {:?}",
                t.size(),
                var.size()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(20);
        if n > 20 {
            problems.push(format!("  … and {} more", n - 20));
        }
        return Err(EncoderError::Shapes { path: path.to_path_buf(), problems: problems.join("\n") });
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let src = file.remove(name).expect("checked above");
            let mut var = var.shallow_clone();
            var.f_copy_(&src.to_kind(var.kind()).to_device(var.device()))?;
        }
        Ok(())
    })?;
    let mut unexpected: Vec<String> = file.into_keys().collect();
    unexpected.sort();
    Ok(LoadReport { loaded: vars.len(), unexpected })
}
