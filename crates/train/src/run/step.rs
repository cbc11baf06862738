//! One training step, as the method describes it: one forward over labeled, weak and strong views (one batch,
//! as FixMatch does, so batch norm sees labeled and unlabeled faces together, in train mode: the weak view's
//! batch statistics are the batch's) → the three levels on the weak view, from the feature before dropout and
//! the classifier without it → their fusion into pseudo-labels → the threshold in force
//! ([`crate::sitfer::threshold`]) → the loss terms → [`losses::total`]; then the update: backward,
//! optimiser (with the mixed-precision and clipping rules), EMA, and the memory bank with this step's
//! labeled features.

use tch::{Kind, Tensor};

use super::trainer::Trainer;
use crate::amp::to_f32;
use crate::data::prefetch::Batch;
use crate::epoch_stats::StepLosses;
use crate::model::heads::HeadOut;
use crate::optim::learning_rate;
use crate::sitfer::fusion::{fuse, select};
use crate::sitfer::levels::{levels, text_scores};
use crate::sitfer::losses::{self, Terms};
use crate::sitfer::placebo;
use crate::sitfer::propagation;
use crate::sitfer::threshold::ThresholdRule;

/// A step's forward pass: the loss to minimise and what the update needs besides it.
pub(crate) struct Forward {
    pub(crate) loss: Tensor,
    pub(crate) losses: StepLosses,
    /// Labeled slots of the batch (rows of the memory bank) and their features.
    slots: Tensor,
    h_labeled: Tensor,
}

/// `[B]` int64 indices of the batch's unlabeled faces in the unlabeled set.
fn unlabeled_index(faces: &[usize], device: tch::Device) -> Tensor {
    Tensor::from_slice(&faces.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device)
}

impl Trainer<'_> {
    /// Forward → levels → fusion → loss terms → objective, for `batch` at (0-based) `step` of `epoch`.
    pub(crate) fn forward(&mut self, batch: &Batch, step: u64, epoch: u32) -> anyhow::Result<Forward> {
        let cfg = self.cfg;
        tch::manual_seed((cfg.run.seed as i64).wrapping_mul(1_000_003).wrapping_add(step as i64));
        let x = self.input(&batch.x);
        let nl = batch.labeled.len() as i64;
        let nu = batch.unlabeled.len() as i64;
        let out = self.forward_views(&x, nl, nu);
        let slots =
            Tensor::from_slice(&batch.labeled.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(self.device);
        let y = self.labels.index_select(0, &slots);

        let s = match &self.soft_targets {
            Some(q) => losses::supervised_soft(&out.z.narrow(0, 0, nl), &q.index_select(0, &slots)),
            None => losses::supervised(&out.z.narrow(0, 0, nl), &y),
        };
        let t = self
            .protos
            .as_ref()
            .map(|p| losses::text(&text_scores(&out.g.narrow(0, 0, nl), p), &y, cfg.method.levels.tau_text));
        let mut mask_rate = None;
        let mut u = None;
        if nu > 0 {
            let (label, mask) = self.pseudo_labels(&out, nl, nu, epoch, &batch.unlabeled)?;
            mask_rate = Some(mask.mean(Kind::Float));
            if epoch > cfg.method.selection.unlabeled_warmup_epochs {
                u = Some(losses::unlabeled(
                    &out.z.narrow(0, nl + nu, nu),
                    &label,
                    &mask,
                    cfg.method.released_code.unlabeled_mean,
                ));
            }
        }
        let con = (cfg.method.losses.lambda_contrastive > 0.0)
            .then(|| losses::supcon(&out.h.narrow(0, 0, nl), &y, cfg.method.losses.supcon_temperature));
        let terms = Terms { s, t, u, con };
        let loss = losses::total(&terms, &cfg.loss_weights());
        // Kept on the device: read back at the next log point, not here (see crate::readback).
        let losses = StepLosses::new(
            &loss,
            &terms.s,
            terms.t.as_ref(),
            terms.u.as_ref(),
            terms.con.as_ref(),
            mask_rate.as_ref(),
        );
        Ok(Forward { loss, losses, slots, h_labeled: out.h.narrow(0, 0, nl) })
    }

    /// The batch on the training device, in the convolutions' memory format (`run.channels_last`).
    fn input(&self, x: &Tensor) -> Tensor {
        let x = x.to_device(self.device);
        if self.cfg.run.channels_last {
            torch_ext::memory_format::channels_last(&x).expect("an image batch is 4-d")
        } else {
            x
        }
    }

    /// The train-mode forward over [labeled; weak; strong] (`nl`, `nu`, `nu` rows): one concatenated batch, or
    /// with `method.released_code.separate_forwards` one forward per view (the released code: batch norm then normalises
    /// and tracks each view with its own statistics). Outputs in f32, in the same row order either way.
    fn forward_views(&self, x: &Tensor, nl: i64, nu: i64) -> HeadOut {
        let run = |x: &Tensor| {
            // The kind and device were checked when the trainer was built: entering the region cannot fail.
            let out = torch_ext::autocast::autocast(self.device, self.autocast, || self.net.forward(x, true))
                .expect("autocast region with a validated kind");
            HeadOut { h: to_f32(&out.h), z: to_f32(&out.z), g: to_f32(&out.g) }
        };
        if !self.cfg.method.released_code.separate_forwards || nu == 0 {
            return run(x);
        }
        let parts: Vec<HeadOut> =
            [(0, nl), (nl, nu), (nl + nu, nu)].iter().map(|&(s, n)| run(&x.narrow(0, s, n))).collect();
        let cat = |f: fn(&HeadOut) -> &Tensor| Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0);
        HeadOut { h: cat(|o| &o.h), z: cat(|o| &o.z), g: cat(|o| &o.g) }
    }

    /// The three levels on the weak view, without gradient, fused into pseudo-labels for the strong view
    /// (aligned first with `method.selection.alignment`), selected by the rule in force: `(label, mask)` over
    /// the `nu` unlabeled faces, whose indices in the unlabeled set are `faces`.
    fn pseudo_labels(
        &mut self,
        out: &HeadOut,
        nl: i64,
        nu: i64,
        epoch: u32,
        faces: &[usize],
    ) -> anyhow::Result<(Tensor, Tensor)> {
        let m = &self.cfg.method;
        let fusion = self.fusion_at(epoch);
        let q = tch::no_grad(|| {
            let h_w = out.h.narrow(0, nl, nu).detach();
            // The step's logits saw dropout; a pseudo-label is made without it.
            let z_w = if self.cfg.model.dropout > 0.0 {
                self.net.heads.logits(&h_w)
            } else {
                out.z.narrow(0, nl, nu).detach()
            };
            let s_text = self.protos.as_ref().map(|p| text_scores(&out.g.narrow(0, nl, nu).detach(), p));
            let s_ins = m.levels.instance.then(|| match &self.propagated {
                Some(p) => {
                    propagation::as_scores(&p.index_select(0, &unlabeled_index(faces, self.device)), self.taus[1])
                }
                None => self.bank.scores(&h_w, m.levels.instance_rule),
            });
            let mut l = levels(&z_w, s_text, s_ins, self.taus[0], self.taus[1]);
            if m.fusion.placebo {
                // Drawn from the step's seeded generator (see `forward`): the same shuffle on a resume.
                let perm = || Tensor::randperm(nu, (Kind::Int64, self.device));
                l = placebo::shuffle(l, &perm(), &perm());
            }
            fuse(&l, &fusion, self.cfg.threshold())
        });
        // The running averages and the curriculum follow the whole batch, so they stay the same on every rank.
        let whole = |t: &Tensor| match &self.dist {
            Some(d) => d.gather_rows(t),
            None => Ok(t.shallow_clone()),
        };
        let q = match &mut self.align {
            Some(a) => {
                a.update(&whole(&q.p)?);
                select(a.align(&q.p), self.cfg.threshold())
            }
            None => q,
        };
        let tau = m.selection.threshold;
        let mask = match m.selection.rule {
            ThresholdRule::Fixed => q.mask,
            ThresholdRule::SelfAdaptive => {
                self.sat.update(&whole(&q.p)?);
                self.sat.select(&q.confidence, &q.label)
            }
            ThresholdRule::Flex => {
                // FlexMatch selects with the bars from before this batch, then counts the batch.
                let mask = self.flex.select(&q.confidence, &q.label, tau);
                let idx = unlabeled_index(faces, self.device);
                self.flex.update(&whole(&idx)?, &whole(&q.confidence)?, &whole(&q.label)?, tau);
                mask
            }
        };
        Ok((q.label, mask))
    }

    /// Backward and update at (0-based) `step` of `total`. A mixed-precision step whose gradients overflowed
    /// is skipped, as PyTorch's GradScaler does; the memory bank takes the step's labeled features either way.
    /// Data-parallel: the gradients are averaged over the ranks before anything reads them, and the bank takes
    /// every rank's labeled features, so weights and bank stay identical everywhere.
    pub(crate) fn update(&mut self, f: &Forward, step: u64, total: u64) -> anyhow::Result<()> {
        let cfg = self.cfg;
        self.opt.zero_grad()?;
        self.scaler.scale_loss(&f.loss).backward();
        if let Some(d) = &self.dist {
            d.average_gradients(&self.opt.gradients())?;
        }
        if !self.scaler.enabled || self.scaler.unscale(&self.opt.gradients()) {
            if cfg.optim.clip_grad_norm > 0.0 {
                let _norm = self.opt.clip_grad_norm(cfg.optim.clip_grad_norm);
            }
            self.opt.step(learning_rate(&cfg.optim, step, total))?;
            if let Some(e) = self.ema.as_mut() {
                e.update(&self.vs);
            }
        }
        if cfg.method.levels.instance {
            match &self.dist {
                Some(d) => self.bank.update(&d.gather_rows(&f.slots)?, &d.gather_rows(&f.h_labeled.detach())?),
                None => self.bank.update(&f.slots, &f.h_labeled),
            }
        }
        Ok(())
    }
}
