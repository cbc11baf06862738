//! The running sums of one epoch's steps (loss terms, selected share, time waiting for input), the means
//! the metrics record at its end, and the line the progress bar shows. Saved in mid-epoch checkpoints, so
//! an epoch interrupted and resumed is averaged over all its steps.
//!
//! A step's terms stay on the device ([`StepLosses`] is a tensor) and wait in [`Pending`] until a log point
//! reads them all back at once ([`Pending::flush`], one host read): on a GPU a read per step would stall the
//! pipeline. The flush is also where a non-finite loss is found, named by its step.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::readback;

/// One step's terms on the device: `[loss, s, t, u, con, mask_rate]` (f64; absent terms are 0).
pub(crate) struct StepLosses(pub(crate) Tensor);

impl StepLosses {
    pub(crate) fn new(
        loss: &Tensor,
        s: &Tensor,
        t: Option<&Tensor>,
        u: Option<&Tensor>,
        con: Option<&Tensor>,
        mask_rate: Option<&Tensor>,
    ) -> Self {
        let zero = || loss.zeros_like();
        let part = |x: Option<&Tensor>| x.map_or_else(zero, |x| x.detach().reshape([] as [i64; 0]));
        let parts = [loss.detach(), s.detach(), part(t), part(u), part(con), part(mask_rate)];
        StepLosses(Tensor::stack(&parts.map(|p| p.to_kind(Kind::Double)), 0))
    }
}

/// The first non-finite total loss a flush found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NonFinite {
    pub(crate) step: u64,
    pub(crate) loss: f64,
}

/// Steps whose terms are still on the device, from `first_step` on.
#[derive(Default)]
pub(crate) struct Pending {
    steps: Vec<Tensor>,
    first_step: u64,
}

impl Pending {
    pub(crate) fn push(&mut self, step: u64, losses: StepLosses) {
        if self.steps.is_empty() {
            self.first_step = step;
        }
        self.steps.push(losses.0);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Reads the pending steps back (one host read), adds them to `running` and returns each step's total
    /// loss in order; a non-finite total is an error naming its step, and nothing of the flush is added.
    pub(crate) fn flush(&mut self, running: &mut Running) -> Result<Vec<f64>, NonFinite> {
        if self.steps.is_empty() {
            return Ok(Vec::new());
        }
        let v = readback::values(&Tensor::stack(&self.steps, 0));
        let first = self.first_step;
        self.steps.clear();
        let rows: Vec<&[f64]> = v.chunks(PARTS).collect();
        if let Some(i) = rows.iter().position(|r| !r[0].is_finite()) {
            return Err(NonFinite { step: first + i as u64, loss: rows[i][0] });
        }
        for r in &rows {
            running.add_terms(r);
        }
        Ok(rows.iter().map(|r| r[0]).collect())
    }
}

const PARTS: usize = 6;

/// Running sums over the steps of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Running {
    pub(crate) n: f64,
    pub(crate) loss: f64,
    pub(crate) loss_s: f64,
    pub(crate) loss_t: f64,
    pub(crate) loss_u: f64,
    pub(crate) loss_con: f64,
    pub(crate) mask: f64,
    /// Time the step waited for the prefetch queue, and the whole time of the epoch's steps.
    pub(crate) wait: Duration,
    pub(crate) busy: Duration,
}

impl Running {
    /// A step's timing (its terms come later, at a flush; `n` counts the step now).
    pub(crate) fn add_time(&mut self, wait: Duration, busy: Duration) {
        self.n += 1.0;
        self.wait += wait;
        self.busy += busy;
    }

    /// A step's `[loss, s, t, u, con, mask_rate]`, read back by [`Pending::flush`].
    fn add_terms(&mut self, r: &[f64]) {
        self.loss += r[0];
        self.loss_s += r[1];
        self.loss_t += r[2];
        self.loss_u += r[3];
        self.loss_con += r[4];
        self.mask += r[5];
    }

    /// The epoch means recorded in the metrics, by metric name.
    pub(crate) fn means(&self) -> [(&'static str, f64); 6] {
        let n = self.n.max(1.0);
        [
            ("loss", self.loss / n),
            ("loss_s", self.loss_s / n),
            ("loss_t", self.loss_t / n),
            ("loss_u", self.loss_u / n),
            ("loss_con", self.loss_con / n),
            ("mask_rate", self.mask / n),
        ]
    }

    pub(crate) fn images_per_s(&self, images_per_step: f64) -> f64 {
        self.n * images_per_step / self.busy.as_secs_f64().max(1e-9)
    }

    pub(crate) fn wait_fraction(&self) -> f64 {
        self.wait.as_secs_f64() / self.busy.as_secs_f64().max(1e-9)
    }

    pub(crate) fn message(&self, images_per_step: f64) -> String {
        let n = self.n.max(1.0);
        format!(
            "loss {:.3} (s {:.3} t {:.3} u {:.3}) mask {:.2}  {:.0} img/s  wait {:.0}%",
            self.loss / n,
            self.loss_s / n,
            self.loss_t / n,
            self.loss_u / n,
            self.mask / n,
            self.images_per_s(images_per_step),
            100.0 * self.wait_fraction()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(x: f64) -> Tensor {
        Tensor::from(x)
    }

    fn step(loss: f64, mask: f64) -> StepLosses {
        StepLosses::new(&scalar(loss), &scalar(loss / 2.0), None, Some(&scalar(0.25)), None, Some(&scalar(mask)))
    }

    #[test]
    fn a_flush_reads_all_pending_steps_at_once_and_sums_them() {
        let (mut pending, mut running) = (Pending::default(), Running::default());
        let before = readback::count();
        for (i, (l, m)) in [(2.0, 0.5), (4.0, 0.25), (6.0, 0.0)].into_iter().enumerate() {
            running.add_time(Duration::ZERO, Duration::from_millis(10));
            pending.push(10 + i as u64, step(l, m));
        }
        assert_eq!(readback::count(), before, "pushing reads nothing");
        assert_eq!(pending.flush(&mut running), Ok(vec![2.0, 4.0, 6.0]));
        assert_eq!(readback::count() - before, 1);
        assert!(pending.is_empty());
        let means: Vec<f64> = running.means().iter().map(|m| m.1).collect();
        // loss (2+4+6)/3, s half of it, t absent, u 0.25 each, con absent, mask (0.5+0.25)/3
        assert_eq!(means, vec![4.0, 2.0, 0.0, 0.25, 0.0, 0.25]);
        assert_eq!(pending.flush(&mut running), Ok(vec![]));
        assert_eq!(readback::count() - before, 1, "an empty flush reads nothing");
    }

    #[test]
    fn a_non_finite_loss_is_named_by_its_step_and_adds_nothing() {
        let (mut pending, mut running) = (Pending::default(), Running::default());
        pending.push(7, step(1.0, 0.0));
        pending.push(8, step(f64::NAN, 0.0));
        pending.push(9, step(f64::INFINITY, 0.0));
        let err = pending.flush(&mut running).unwrap_err();
        assert_eq!(err.step, 8);
        assert!(err.loss.is_nan());
        assert_eq!(running.loss, 0.0);
    }
}
