//! Evaluation and the unlabeled sweep, both without augmentation and in eval mode: the network's raw outputs
//! for every image of a set ([`forward_set`]), then the three levels and their fusion ([`infer`]) (val/test: accuracies, balanced accuracy, per-class accuracy,
//! confusion; unlabeled: the pseudo-label exchange rows). Never selects epochs: run.rs picks the best on val.

use std::borrow::Borrow;

use exchange::schema::metrics::{names, MetricRow};
use exchange::schema::pseudo_label::PseudoLabelRow;
use tch::{Device, Kind, Tensor};

use exchange::fusion::{Fusion, Threshold};

use crate::config::Config;
use crate::data::augment::Img;
use crate::model::inference::{Arithmetic, InferenceNet};
use crate::model::Net;
use crate::sitfer::fusion::fused;
use crate::sitfer::levels::{levels, text_scores};
use crate::sitfer::memory_bank::MemoryBank;

/// A set's raw outputs, on the CPU: classifier logits and the text and instance levels' scores (before any
/// temperature), so temperatures can be fitted and fusions recomputed without another forward pass, and the
/// features (the transductive level's graph reads them).
pub(crate) struct Raw {
    pub(crate) h: Tensor,
    pub(crate) z: Tensor,
    pub(crate) s_text: Option<Tensor>,
    pub(crate) s_ins: Option<Tensor>,
}

/// Per-image outputs of a set, on the CPU.
pub struct Inference {
    pub p_sem: Tensor,
    pub p_text: Option<Tensor>,
    pub p_ins: Option<Tensor>,
    pub p_fused: Tensor,
}

/// The network in eval mode over `images`, in `eval_batch` chunks, through the frozen inference network
/// ([`InferenceNet`]: batch norms folded, grey faces through a one-channel stem, the run's precision and
/// memory format).
pub(crate) fn forward_set<I: Borrow<Img> + Sync>(
    net: &Net,
    images: &[I],
    bank: &MemoryBank,
    protos: Option<&Tensor>,
    cfg: &Config,
    device: Device,
) -> Raw {
    let grey = !images.is_empty() && images.iter().all(|i| i.borrow().c == 1);
    let frozen = InferenceNet::new(net, grey, arithmetic(cfg, device));
    let mut parts: Vec<[Option<Tensor>; 4]> = Vec::new();
    tch::no_grad(|| {
        for chunk in images.chunks(cfg.schedule.eval_batch.max(1) as usize) {
            let out = frozen.forward(&frozen.input(chunk, device));
            let s_text = protos.filter(|_| cfg.method.levels.text).map(|p| text_scores(&out.g, p));
            let s_ins = cfg.method.levels.instance.then(|| bank.scores(&out.h, cfg.method.levels.instance_rule));
            let cpu = |t: &Tensor| t.to_device(Device::Cpu);
            parts.push([Some(cpu(&out.z)), s_text.as_ref().map(cpu), s_ins.as_ref().map(cpu), Some(cpu(&out.h))]);
        }
    });
    let cat = |k: usize| -> Option<Tensor> {
        let ts: Vec<Tensor> = parts.iter().filter_map(|p| p[k].as_ref().map(|t| t.shallow_clone())).collect();
        (!ts.is_empty()).then(|| Tensor::cat(&ts, 0))
    };
    Raw { h: cat(3).expect("non-empty set"), z: cat(0).expect("non-empty set"), s_text: cat(1), s_ins: cat(2) }
}

/// The inference arithmetic of a run with `cfg` on `device`: its training precision and memory format (a
/// precision this device refuses was refused when the run started; here it falls back to fp32).
pub(crate) fn arithmetic(cfg: &Config, device: Device) -> Arithmetic {
    Arithmetic {
        autocast: crate::amp::autocast_kind(&cfg.run, device).ok().flatten(),
        channels_last: cfg.run.channels_last,
    }
}

/// The levels at temperatures `taus` (τ_t, τ_i, in f64: the record's f32 copies in `fusion` would move the
/// probabilities in the eighth digit) and their fusion for a set's raw outputs.
pub(crate) fn infer(raw: &Raw, fusion: &Fusion, taus: [f64; 2]) -> Inference {
    let l = levels(
        &raw.z,
        raw.s_text.as_ref().map(Tensor::shallow_clone),
        raw.s_ins.as_ref().map(Tensor::shallow_clone),
        taus[0],
        taus[1],
    );
    // The mask is the caller's: selection happens in [`pseudo_rows`] with the thresholds in force.
    let p_fused = fused(&l, fusion);
    Inference { p_sem: l.p_sem, p_text: l.p_text, p_ins: l.p_ins, p_fused }
}

/// The numbers of one evaluated set.
pub(crate) struct Scores {
    pub(crate) acc_cls: f64,
    pub(crate) acc_fused: f64,
    pub(crate) balanced_cls: f64,
    pub(crate) class_acc: Vec<f64>,
    pub(crate) confusion: Vec<Vec<u64>>,
}

pub(crate) fn score(inf: &Inference, labels: &[i64], classes: usize) -> Scores {
    let pred = |p: &Tensor| -> Vec<i64> { Vec::try_from(&p.argmax(-1, false)).unwrap_or_default() };
    let (cls, fused) = (pred(&inf.p_sem), pred(&inf.p_fused));
    let acc = |p: &[i64]| p.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / labels.len().max(1) as f64;
    let counts = per_class(labels.iter().zip(&cls).map(|(t, p)| (*t as usize, *p as usize)), classes);
    Scores {
        acc_cls: acc(&cls),
        acc_fused: acc(&fused),
        balanced_cls: counts.balanced,
        class_acc: counts.recall.iter().map(|r| r.unwrap_or(f64::NAN)).collect(),
        confusion: counts.confusion,
    }
}

/// The per-class numbers of an evaluated set.
pub struct PerClass {
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Recall per class; `None` where the set has no face of the class.
    pub recall: Vec<Option<f64>>,
    /// Mean recall over the classes that have faces (balanced accuracy).
    pub balanced: f64,
}

/// Confusion, recall and balanced accuracy from (true, predicted) class pairs: for the sets a run scores
/// each epoch and for `train evaluate` alike.
pub fn per_class(pairs: impl IntoIterator<Item = (usize, usize)>, classes: usize) -> PerClass {
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (t, p) in pairs {
        confusion[t][p] += 1;
    }
    let recall: Vec<Option<f64>> = confusion
        .iter()
        .enumerate()
        .map(|(k, row)| {
            let n: u64 = row.iter().sum();
            (n > 0).then(|| row[k] as f64 / n as f64)
        })
        .collect();
    let with_faces = recall.iter().flatten().count().max(1);
    let balanced = recall.iter().flatten().sum::<f64>() / with_faces as f64;
    PerClass { confusion, recall, balanced }
}

pub(crate) fn metric_rows(s: &Scores, epoch: u32, step: u64, split: &str) -> Vec<MetricRow> {
    let mut rows = vec![
        MetricRow::scalar(epoch, step, split, names::ACC_CLS, s.acc_cls),
        MetricRow::scalar(epoch, step, split, names::ACC_FUSED, s.acc_fused),
        MetricRow::scalar(epoch, step, split, names::BALANCED_ACC_CLS, s.balanced_cls),
    ];
    for (k, a) in s.class_acc.iter().enumerate() {
        if !a.is_nan() {
            rows.push(MetricRow {
                class: Some(k as u32),
                ..MetricRow::scalar(epoch, step, split, "class_acc_cls", *a)
            });
        }
    }
    for (t, row) in s.confusion.iter().enumerate() {
        for (p, v) in row.iter().enumerate() {
            rows.push(MetricRow {
                class: Some(t as u32),
                pred: Some(p as u32),
                ..MetricRow::scalar(epoch, step, split, "confusion_cls", *v as f64)
            });
        }
    }
    rows
}

/// A `[N, C]` probability tensor as N rows of f32.
pub fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    Vec::try_from(&t.to_kind(Kind::Float)).unwrap_or_default()
}

/// A probability row's most probable class and its probability (the first on ties).
pub fn most_probable(p: &[f32]) -> (usize, f32) {
    p.iter().enumerate().fold((0, f32::MIN), |b, (k, v)| if *v > b.1 { (k, *v) } else { b })
}

/// Pseudo-label exchange rows of the unlabeled sweep (ids and probabilities only), selected with the
/// threshold in force for each row's class.
pub(crate) fn pseudo_rows(inf: &Inference, ids: &[String], epoch: u32, threshold: &Threshold) -> Vec<PseudoLabelRow> {
    let (sem, fused) = (rows(&inf.p_sem), rows(&inf.p_fused));
    let text = inf.p_text.as_ref().map(rows);
    let ins = inf.p_ins.as_ref().map(rows);
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let f = &fused[i];
            let (label, conf) = most_probable(f);
            PseudoLabelRow {
                id: id.clone(),
                epoch,
                p_sem: sem[i].clone(),
                p_text: text.as_ref().map(|t| t[i].clone()),
                p_ins: ins.as_ref().map(|t| t[i].clone()),
                p_fused: f.clone(),
                pseudo_label: label as u32,
                confidence: conf,
                selected: threshold.selects(conf, label),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_hand_computed() {
        // Class 0: 3 faces, 2 right; class 1: 1 face, right; class 2: no face (predicted once).
        let c = per_class([(0, 0), (0, 0), (0, 2), (1, 1)], 3);
        assert_eq!(c.confusion, vec![vec![2, 0, 1], vec![0, 1, 0], vec![0, 0, 0]]);
        assert_eq!(c.recall, vec![Some(2.0 / 3.0), Some(1.0), None]);
        assert!((c.balanced - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(per_class([], 2).balanced, 0.0);
    }
}
