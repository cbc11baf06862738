//! Pseudo-label quality metrics over one epoch's joined data. Every function takes flat `n × C`
//! probabilities (or the argmax/confidence derived from them) and the true class indices; nothing here
//! reads files or prints.

pub mod agreement;
pub mod calibration;
pub mod per_class;
pub mod quality;

use rayon::prelude::*;

pub(crate) const LEVELS: [&str; 4] = ["semantic", "text", "instance", "fused"];

/// Argmax and max probability of each row.
#[derive(Clone, Debug)]
pub(crate) struct Decisions {
    pub(crate) pred: Vec<u8>,
    pub(crate) conf: Vec<f32>,
}

pub(crate) fn decide(p: &[f32], c: usize) -> Decisions {
    let (pred, conf): (Vec<u8>, Vec<f32>) = p
        .par_chunks(c)
        .map(|row| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            (best as u8, row[best])
        })
        .unzip();
    Decisions { pred, conf }
}

pub(crate) fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}
