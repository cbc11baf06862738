//! The optimiser, owned here because tch cannot save an optimiser's state: Adam, AdamW and SGD (momentum,
//! Nesterov) with PyTorch's update rules, gradient-norm clipping, and the state as named tensors for the
//! checkpoint (`optim.step`, `optim.m.<param>`, `optim.v.<param>`), so a resumed run continues exactly.
//! Also the `[optim]` config section and the learning-rate schedule it describes.

use std::collections::HashMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LrSchedule {
    Constant,
    Cosine,
}

/// `optim.kind`: the update rule's name in the config (its parameters are the section's other keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OptimName {
    Adam,
    #[serde(rename = "adamw")]
    AdamW,
    Sgd,
    SgdNesterov,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optim {
    pub(crate) kind: OptimName,
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) momentum: f64,
    pub(crate) schedule: LrSchedule,
    pub(crate) warmup_steps: u64,
    /// 0 turns clipping off.
    pub(crate) clip_grad_norm: f64,
    /// EMA decay of an evaluation copy of the model; 0 turns it off.
    pub(crate) ema: f64,
    /// The backbone's learning rate as a fraction of the heads' (`lr`) when `model.init` loads pretrained
    /// weights (from scratch every layer learns at `lr`): below 1 fine-tunes the trunk gently while the new
    /// heads learn; 0 freezes the trunk's weights (its batch norms still follow `model.freeze_bn`).
    pub(crate) backbone_lr_scale: f64,
}

impl Default for Optim {
    fn default() -> Self {
        Optim {
            kind: OptimName::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            momentum: 0.9,
            schedule: LrSchedule::Cosine,
            warmup_steps: 0,
            clip_grad_norm: 0.0,
            ema: 0.0,
            backbone_lr_scale: 1.0,
        }
    }
}

impl Optim {
    /// Every `[optim]` number in its range (`crate::config::Config::validate` calls it).
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        use crate::range::Range::*;
        for (key, v, range) in [
            ("optim.lr", self.lr, Positive),
            ("optim.weight_decay", self.weight_decay, NonNegative),
            ("optim.beta1", self.beta1, ZeroToOneOpen),
            ("optim.beta2", self.beta2, ZeroToOneOpen),
            ("optim.momentum", self.momentum, ZeroToOneOpen),
            ("optim.clip_grad_norm", self.clip_grad_norm, NonNegative),
            ("optim.ema", self.ema, ZeroToOneOpen),
            ("optim.backbone_lr_scale", self.backbone_lr_scale, NonNegative),
        ] {
            range.check(key, v)?;
        }
        Ok(())
    }

    /// The update rule `kind` names, with its parameters.
    pub(crate) fn kind(&self) -> OptimKind {
        let o = self;
        match o.kind {
            OptimName::Adam => OptimKind::Adam { beta1: o.beta1, beta2: o.beta2, eps: 1e-8 },
            OptimName::AdamW => OptimKind::AdamW { beta1: o.beta1, beta2: o.beta2, eps: 1e-8 },
            OptimName::Sgd => OptimKind::Sgd { momentum: o.momentum, nesterov: false },
            OptimName::SgdNesterov => OptimKind::Sgd { momentum: o.momentum, nesterov: true },
        }
    }
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up, then constant or cosine decay to 0.
pub(crate) fn learning_rate(o: &Optim, step: u64, total: u64) -> f64 {
    if step < o.warmup_steps {
        return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
    }
    match o.schedule {
        LrSchedule::Constant => o.lr,
        LrSchedule::Cosine => {
            let span = total.saturating_sub(o.warmup_steps).max(1) as f64;
            let t = (step - o.warmup_steps) as f64 / span;
            o.lr * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub(crate) enum OptimKind {
    /// L2 penalty added to the gradient (PyTorch `Adam(weight_decay=…)`).
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// Decoupled weight decay (PyTorch `AdamW`).
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
}

pub(crate) struct Optimizer {
    pub(crate) kind: OptimKind,
    pub(crate) weight_decay: f64,
    pub(crate) step: i64,
    params: Vec<(String, Tensor)>,
    /// Each parameter's learning rate as a multiple of the step's (1 unless [`Optimizer::with_lr_scale`]).
    lr_scales: Vec<f64>,
    /// First moment (Adam) or momentum buffer (SGD), per parameter.
    m: Vec<Tensor>,
    /// Second moment (Adam only).
    v: Vec<Tensor>,
}

impl Optimizer {
    pub(crate) fn new(vs: &VarStore, kind: OptimKind, weight_decay: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let lr_scales = vec![1.0; params.len()];
        Optimizer { kind, weight_decay, step: 0, params, lr_scales, m, v }
    }

    /// Scales the learning rate of each parameter by `scale(name)`; a parameter at 0 is not updated at all.
    pub(crate) fn with_lr_scale(mut self, scale: impl Fn(&str) -> f64) -> Self {
        self.lr_scales = self.params.iter().map(|(n, _)| scale(n)).collect();
        self
    }

    /// Drops the gradients (PyTorch's default `set_to_none`): a parameter the next loss does not reach keeps
    /// none and is not updated, as in PyTorch.
    pub(crate) fn zero_grad(&mut self) -> anyhow::Result<()> {
        let params: Vec<Tensor> = self.params.iter().map(|(_, p)| p.shallow_clone()).collect();
        torch_ext::optim::clear_grads(&params).context("clearing gradients")?;
        Ok(())
    }

    /// The parameters' gradients (shallow handles; undefined ones included).
    pub(crate) fn gradients(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, p)| p.grad()).collect()
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before clipping, as a
    /// device scalar. PyTorch's rule (`clip_grad_norm_`): every gradient times `min(1, max_norm / (norm + 1e-6))`,
    /// computed on the device, so clipping never waits for a read back; a non-finite norm leaves them as they are.
    pub(crate) fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect();
            let Some(first) = grads.first() else {
                return Tensor::from(0.0f32);
            };
            let total =
                Tensor::stack(&grads.iter().map(|g| g.norm().to_kind(Kind::Float)).collect::<Vec<_>>(), 0).norm();
            let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
            let coef = coef.where_self(&total.isfinite(), &coef.ones_like()).to_device(first.device());
            for mut g in grads {
                let c = coef.to_kind(g.kind());
                let _ = g.g_mul_(&c);
            }
            total
        })
    }

    /// One update with learning rate `lr` from the parameters' current gradients.
    pub(crate) fn step(&mut self, lr: f64) -> anyhow::Result<()> {
        self.step += 1;
        tch::no_grad(|| match self.kind {
            OptimKind::Adam { beta1, beta2, eps } | OptimKind::AdamW { beta1, beta2, eps } => {
                let decoupled = matches!(self.kind, OptimKind::AdamW { .. });
                let h = torch_ext::optim::Adam { lr, beta1, beta2, eps, weight_decay: self.weight_decay, decoupled };
                self.adam_step(h)
            }
            OptimKind::Sgd { momentum, nesterov } => {
                self.sgd_step(lr, momentum, nesterov);
                Ok(())
            }
        })
    }

    /// Adam/AdamW through libtorch's fused kernel (one call per learning rate), which wants dense tensors in
    /// the default layout; channels-last parameters take the same rule written with tensor ops.
    fn adam_step(&mut self, h: torch_ext::optim::Adam) -> anyhow::Result<()> {
        let mut groups: Vec<(f64, [Vec<Tensor>; 4])> = Vec::new();
        for (i, g, lr) in self.live(h.lr) {
            let (p, m, v) = (&mut self.params[i].1, &mut self.m[i], &mut self.v[i]);
            if ![&*p, &g, &*m, &*v].iter().all(|t| t.is_contiguous()) {
                unfused_adam(p, &g, m, v, self.step, torch_ext::optim::Adam { lr, ..h });
                continue;
            }
            let at = match groups.iter().position(|(l, _)| *l == lr) {
                Some(at) => at,
                None => {
                    groups.push((lr, Default::default()));
                    groups.len() - 1
                }
            };
            let [ps, gs, ms, vs] = &mut groups[at].1;
            ps.push(p.shallow_clone());
            gs.push(g);
            ms.push(m.shallow_clone());
            vs.push(v.shallow_clone());
        }
        for (lr, [ps, gs, ms, vs]) in groups {
            torch_ext::optim::fused_adam(&ps, &gs, &ms, &vs, self.step, torch_ext::optim::Adam { lr, ..h })
                .context("Adam update")?;
        }
        Ok(())
    }

    /// The parameters a step moves: those with a gradient and a non-zero learning rate (`base_lr` times their
    /// scale), as (index, gradient, learning rate).
    fn live(&self, base_lr: f64) -> Vec<(usize, Tensor, f64)> {
        let live = |(i, (_, p)): (usize, &(String, Tensor))| {
            let (g, lr) = (p.grad(), base_lr * self.lr_scales[i]);
            (g.defined() && lr != 0.0).then_some((i, g, lr))
        };
        self.params.iter().enumerate().filter_map(live).collect()
    }

    fn sgd_step(&mut self, lr: f64, momentum: f64, nesterov: bool) {
        let wd = self.weight_decay;
        for (i, g, lr) in self.live(lr) {
            let p = &mut self.params[i].1;
            let g = if wd != 0.0 { &g + &*p * wd } else { g };
            let d = if momentum != 0.0 {
                if self.step == 1 {
                    self.m[i].copy_(&g);
                } else {
                    let _ = self.m[i].g_mul_scalar_(momentum).g_add_(&g);
                }
                if nesterov {
                    &g + &self.m[i] * momentum
                } else {
                    self.m[i].shallow_clone()
                }
            } else {
                g
            };
            let _ = p.g_sub_(&(d * lr));
        }
    }

    /// The state as named tensors for a checkpoint.
    pub(crate) fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optim.step".to_string(), Tensor::from_slice(&[self.step]))];
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("optim.m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("optim.v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores [`Optimizer::state`]; every parameter's moments must be there with matching shapes.
    pub(crate) fn load_state(&mut self, named: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let step = named.get("optim.step").context("checkpoint has no optim.step")?;
        self.step = i64::try_from(step)?;
        for (i, (name, _)) in self.params.iter().enumerate() {
            crate::named_tensors::load_into(named, &format!("optim.m.{name}"), &mut self.m[i])?;
            crate::named_tensors::load_into(named, &format!("optim.v.{name}"), &mut self.v[i])?;
        }
        Ok(())
    }
}

/// PyTorch's Adam/AdamW rule with tensor ops, for the tensors the fused kernel does not take.
fn unfused_adam(p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor, step: i64, h: torch_ext::optim::Adam) {
    let (lr, wd, t) = (h.lr, h.weight_decay, step as f64);
    let g = if !h.decoupled && wd != 0.0 { g + &*p * wd } else { g.shallow_clone() };
    if h.decoupled && wd != 0.0 {
        let _ = p.g_mul_scalar_(1.0 - lr * wd);
    }
    let _ = m.lerp_(&g, 1.0 - h.beta1);
    let _ = v.g_mul_scalar_(h.beta2).g_add_(&(&g * &g * (1.0 - h.beta2)));
    let (bc1, bc2) = (1.0 - h.beta1.powf(t), 1.0 - h.beta2.powf(t));
    let denom = (&*v / bc2).sqrt() + h.eps;
    let _ = p.g_sub_(&(&*m / &denom * (lr / bc1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_and_cosine() {
        let o = Optim { lr: 1.0, warmup_steps: 10, schedule: LrSchedule::Cosine, ..Default::default() };
        assert!((learning_rate(&o, 0, 110) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&o, 10, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&o, 60, 110) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&o, 109, 110) < 0.001);
    }
    use tch::nn::{self, OptimizerConfig};
    use tch::Device;

    /// A few steps on a small least-squares problem, ours against libtorch's own optimiser.
    fn compare(kind: OptimKind, wd: f64, theirs: impl OptimizerConfig + Clone) {
        // Fixed values, not the global RNG: other tests in this binary reseed and draw from it concurrently.
        let fixed =
            |n: usize, k: f32| Tensor::from_slice(&(0..n).map(|i| ((i as f32 + 1.0) * k).sin()).collect::<Vec<f32>>());
        let run = |ours: bool| -> Vec<f32> {
            let vs = VarStore::new(Device::Cpu);
            let mut lin = nn::linear(vs.root() / "lin", 4, 3, Default::default());
            tch::no_grad(|| {
                lin.ws.copy_(&fixed(12, 0.7).view([3, 4]));
                lin.bs.as_mut().expect("bias").copy_(&fixed(3, 1.3));
            });
            let x = fixed(32, 0.37).view([8, 4]);
            let y = fixed(24, 0.91).view([8, 3]);
            let mut mine = Optimizer::new(&vs, kind, wd);
            let mut lib = theirs.clone().build(&vs, 0.05).unwrap();
            for _ in 0..5 {
                let loss = (x.apply(&lin) - &y).pow_tensor_scalar(2).mean(Kind::Float);
                if ours {
                    mine.zero_grad().unwrap();
                    loss.backward();
                    mine.step(0.05).unwrap();
                } else {
                    lib.zero_grad();
                    loss.backward();
                    lib.step();
                }
            }
            Vec::try_from(&lin.ws.flatten(0, -1)).unwrap()
        };
        let (a, b) = (run(true), run(false));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{kind:?}: ours {a:?}\nlibtorch {b:?}");
        }
    }

    #[test]
    fn matches_libtorch() {
        compare(OptimKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 1e-2, nn::adam(0.9, 0.999, 1e-2));
        compare(OptimKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 1e-2, nn::adamw(0.9, 0.999, 1e-2));
        compare(OptimKind::Sgd { momentum: 0.9, nesterov: true }, 5e-4, nn::sgd(0.9, 0.0, 5e-4, true));
        compare(OptimKind::Sgd { momentum: 0.9, nesterov: false }, 0.0, nn::sgd(0.9, 0.0, 0.0, false));
    }

    #[test]
    fn state_round_trip_and_clipping() {
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 2, 1, Default::default());
        let mut opt = Optimizer::new(&vs, OptimKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 0.0);
        let loss = Tensor::from_slice(&[30.0f32, 40.0]).view([1, 2]).apply(&lin).sum(Kind::Float);
        loss.backward();
        let norm = f64::try_from(&opt.clip_grad_norm(1.0)).unwrap();
        assert!((norm - (30f64.powi(2) + 40f64.powi(2) + 1.0).sqrt()).abs() < 1e-3, "{norm}");
        let after = f64::try_from(&lin.ws.grad().norm()).unwrap();
        assert!(after < 1.0, "{after}");
        opt.step(0.1).unwrap();
        let saved: HashMap<String, Tensor> = opt.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
        let mut other = Optimizer::new(&vs, OptimKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 0.0);
        other.load_state(&saved).unwrap();
        assert_eq!(other.step, 1);
        let mut missing: HashMap<String, Tensor> = saved.iter().map(|(k, v)| (k.clone(), v.copy())).collect();
        missing.remove("optim.v.lin.weight");
        assert!(other.load_state(&missing).unwrap_err().to_string().contains("optim.v.lin.weight"));
    }

    /// SGD without momentum: a parameter at scale 0.1 moves a tenth as far, one at 0 not at all.
    #[test]
    fn per_parameter_learning_rate_scale() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().zeros("a", &[1]);
        let b = vs.root().zeros("b", &[1]);
        let c = vs.root().zeros("c", &[1]);
        let mut opt =
            Optimizer::new(&vs, OptimKind::Sgd { momentum: 0.0, nesterov: false }, 0.0).with_lr_scale(|n| match n {
                "a" => 1.0,
                "b" => 0.1,
                _ => 0.0,
            });
        (&a + &b + &c).sum(Kind::Float).backward();
        opt.step(0.5).unwrap();
        let got: Vec<f64> = [&a, &b, &c].iter().map(|t| f64::try_from(*t).unwrap()).collect();
        assert!((got[0] + 0.5).abs() < 1e-7 && (got[1] + 0.05).abs() < 1e-7 && got[2] == 0.0, "{got:?}");
    }

    /// Adam's first step moves every parameter by lr·sign(g) (m̂ = g, v̂ = g²): the fused kernel runs once per
    /// learning rate, so each scale must land on its own parameters.
    #[test]
    fn adam_learning_rate_groups() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().zeros("a", &[2]);
        let b = vs.root().zeros("b", &[1]);
        let c = vs.root().zeros("c", &[1]);
        let adam = OptimKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut opt = Optimizer::new(&vs, adam, 0.0).with_lr_scale(|n| match n {
            "a" => 1.0,
            "b" => 0.1,
            _ => 0.0,
        });
        (a.sum(Kind::Float) * 3.0 - b.sum(Kind::Float) * 2.0 + c.sum(Kind::Float)).backward();
        opt.step(0.5).unwrap();
        let got: Vec<f64> =
            [a.get(0), a.get(1), b.get(0), c.get(0)].iter().map(|t| f64::try_from(t).unwrap()).collect();
        let want = [-0.5, -0.5, 0.05, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    /// A channels-last weight is not dense in the default layout, so it takes the unfused rule: both paths
    /// must give the same parameters.
    #[test]
    fn channels_last_parameters_follow_the_same_rule() {
        let run = |channels_last: bool| -> Vec<f32> {
            let vs = VarStore::new(Device::Cpu);
            let mut w = vs.root().zeros("w", &[2, 3, 2, 2]);
            let x = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, Device::Cpu)).view([2, 3, 2, 2]).sin();
            tch::no_grad(|| w.copy_(&x.cos()));
            if channels_last {
                torch_ext::memory_format::params_channels_last([&mut w]).unwrap();
                assert!(!w.is_contiguous());
            }
            let mut opt = Optimizer::new(&vs, OptimKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 1e-2);
            for _ in 0..3 {
                opt.zero_grad().unwrap();
                (&w * &x).pow_tensor_scalar(2).sum(Kind::Float).backward();
                opt.step(0.05).unwrap();
            }
            Vec::try_from(&w.contiguous().flatten(0, -1)).unwrap()
        };
        let (fused, unfused) = (run(false), run(true));
        for (a, b) in fused.iter().zip(&unfused) {
            assert!((a - b).abs() < 1e-6, "fused {fused:?}\nunfused {unfused:?}");
        }
    }

    /// As in PyTorch: a parameter the step's loss does not reach has no gradient and does not move, even
    /// with momentum from earlier steps (zeroed gradients would have moved it).
    #[test]
    fn a_parameter_the_loss_does_not_reach_stays_put() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().zeros("a", &[1]);
        let b = vs.root().zeros("b", &[1]);
        let mut opt = Optimizer::new(&vs, OptimKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 0.0);
        opt.zero_grad().unwrap();
        (&a + &b).sum(Kind::Float).backward();
        opt.step(0.1).unwrap();
        let b1 = f64::try_from(&b).unwrap();
        opt.zero_grad().unwrap();
        a.sum(Kind::Float).backward();
        opt.step(0.1).unwrap();
        assert_eq!(f64::try_from(&b).unwrap(), b1);
        assert!((f64::try_from(&a).unwrap() + 0.2).abs() < 1e-6);
    }
}
