//! An exponential moving average of the model's variables (parameters and batch-norm statistics), the
//! evaluation copy USB and FixMatch report. It owns shadow tensors only; the model is swapped to them for
//! evaluation and back, so there is one network and no second forward graph. Checkpointed as `ema.<name>`.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::Tensor;

pub(crate) struct Ema {
    pub(crate) decay: f64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    pub(crate) fn new(vs: &VarStore, decay: f64) -> Self {
        let mut shadow: Vec<(String, Tensor)> =
            vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect();
        shadow.sort_by(|a, b| a.0.cmp(&b.0));
        Ema { decay, shadow }
    }

    /// `shadow ← decay·shadow + (1−decay)·current`, after an optimiser step.
    pub(crate) fn update(&mut self, vs: &VarStore) {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, s) in &mut self.shadow {
                if let Some(v) = vars.get(name.as_str()) {
                    if v.is_floating_point() {
                        let _ = s.g_mul_scalar_(self.decay).g_add_(&(v * (1.0 - self.decay)));
                    } else {
                        s.copy_(v); // integer buffers (batch counts) follow the model
                    }
                }
            }
        });
    }

    /// Runs `f` with the model's variables replaced by the average, then puts the trained ones back.
    pub(crate) fn with_average<T>(&self, vs: &VarStore, f: impl FnOnce() -> T) -> T {
        let vars = vs.variables();
        let saved: Vec<(String, Tensor)> =
            self.shadow.iter().filter_map(|(k, _)| vars.get(k).map(|v| (k.clone(), v.detach().copy()))).collect();
        self.copy_into(&vars, &self.shadow);
        let out = f();
        self.copy_into(&vars, &saved);
        out
    }

    fn copy_into(&self, vars: &HashMap<String, Tensor>, from: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for (k, src) in from {
                if let Some(v) = vars.get(k) {
                    v.shallow_clone().copy_(src);
                }
            }
        });
    }

    pub(crate) fn state(&self) -> Vec<(String, Tensor)> {
        self.shadow.iter().map(|(k, v)| (format!("ema.{k}"), v.shallow_clone())).collect()
    }

    pub(crate) fn load_state(&mut self, named: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        for (k, s) in &mut self.shadow {
            crate::named_tensors::load_into(named, &format!("ema.{k}"), s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn average_follows_the_rule_and_swapping_restores_the_model() {
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 2, 1, Default::default());
        let _ = tch::no_grad(|| lin.ws.shallow_clone().fill_(1.0));
        let mut ema = Ema::new(&vs, 0.9);
        let _ = tch::no_grad(|| lin.ws.shallow_clone().fill_(3.0));
        ema.update(&vs); // 0.9·1 + 0.1·3 = 1.2
        let _ = tch::no_grad(|| lin.ws.shallow_clone().fill_(5.0));
        ema.update(&vs); // 0.9·1.2 + 0.1·5 = 1.58
        let inside = ema.with_average(&vs, || f64::try_from(&lin.ws.mean(Kind::Float)).unwrap());
        assert!((inside - 1.58).abs() < 1e-6, "{inside}");
        assert_eq!(f64::try_from(&lin.ws.mean(Kind::Float)).unwrap(), 5.0);
        let saved: HashMap<String, Tensor> = ema.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
        let mut other = Ema::new(&vs, 0.9);
        other.load_state(&saved).unwrap();
        let again = other.with_average(&vs, || f64::try_from(&lin.ws.mean(Kind::Float)).unwrap());
        assert!((again - 1.58).abs() < 1e-6);
    }
}
