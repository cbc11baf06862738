//! The running sums of one epoch's steps (loss terms, selected share, time waiting for input), the means
//! the metrics record at its end, and the line the progress bar shows. Saved in mid-epoch checkpoints, so
//! an epoch interrupted and resumed is averaged over all its steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One step's loss terms as numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepLosses {
    pub loss: f64,
    pub s: f64,
    pub t: f64,
    pub u: f64,
    pub con: f64,
    /// Share of the unlabeled batch whose pseudo-label was selected.
    pub mask_rate: f64,
}

/// Running sums over the steps of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub n: f64,
    pub loss: f64,
    pub loss_s: f64,
    pub loss_t: f64,
    pub loss_u: f64,
    pub loss_con: f64,
    pub mask: f64,
    /// Time the step waited for the prefetch queue, and the whole time of the epoch's steps.
    pub wait: Duration,
    pub busy: Duration,
}

impl Running {
    pub fn add(&mut self, s: &StepLosses, wait: Duration, busy: Duration) {
        self.n += 1.0;
        self.loss += s.loss;
        self.loss_s += s.s;
        self.loss_t += s.t;
        self.loss_u += s.u;
        self.loss_con += s.con;
        self.mask += s.mask_rate;
        self.wait += wait;
        self.busy += busy;
    }

    /// The epoch means recorded in the metrics, by metric name.
    pub fn means(&self) -> [(&'static str, f64); 6] {
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

    pub fn images_per_s(&self, images_per_step: f64) -> f64 {
        self.n * images_per_step / self.busy.as_secs_f64().max(1e-9)
    }

    pub fn wait_fraction(&self) -> f64 {
        self.wait.as_secs_f64() / self.busy.as_secs_f64().max(1e-9)
    }

    pub fn message(&self, images_per_step: f64) -> String {
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
