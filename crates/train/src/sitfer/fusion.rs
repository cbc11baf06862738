//! Fusing the levels into the pseudo-label distribution on tensors, both rules (docs/method.md), and the mask:
//! `mean-prob` (the paper) `p̂ = Σ w_l p_l / Σ w_l`; `weighted-logit` (the released code)
//! `p̂ = softmax(w_sem z + w_text s_text + w_ins s_ins)`. Levels switched off drop out of either rule. Which
//! weights are in force at an epoch (the instance warm-up) and which pseudo-labels are selected are
//! exchange's rules ([`exchange::fusion`]), shared with audit.

use exchange::fusion::{Fusion, FusionMode};
use tch::{Kind, Tensor};

use super::levels::Levels;

pub(crate) struct Pseudo {
    pub(crate) p: Tensor,
    pub(crate) label: Tensor,
    pub(crate) confidence: Tensor,
    pub(crate) mask: Tensor,
}

/// Fuses `l` with `f` (the fusion in force) and selects with [`exchange::fusion::selected`]'s rule: the
/// confidence strictly above the threshold, in `f32`.
pub(crate) fn fuse(l: &Levels, f: &Fusion, threshold: f32) -> Pseudo {
    select(fused(l, f), threshold)
}

/// The pseudo-labels of a fused (or aligned) distribution `p` and [`fuse`]'s mask.
pub(crate) fn select(p: Tensor, threshold: f32) -> Pseudo {
    let (confidence, label) = p.max_dim(-1, false);
    let mask = confidence.gt(f64::from(threshold)).to_kind(Kind::Float);
    Pseudo { p, label, confidence, mask }
}

/// The fused distribution alone, `[B, C]` (evaluation and the pseudo-label files need no selection).
pub(crate) fn fused(l: &Levels, f: &Fusion) -> Tensor {
    let w = f.weights;
    match f.mode {
        FusionMode::MeanProb => {
            let mut parts = vec![(&l.p_sem, w[0])];
            if let Some(p) = &l.p_text {
                parts.push((p, w[1]));
            }
            if let Some(p) = &l.p_ins {
                parts.push((p, w[2]));
            }
            let total: f32 = parts.iter().map(|x| x.1).sum();
            let sum = parts
                .iter()
                .filter(|x| x.1 != 0.0)
                .map(|(p, w)| *p * f64::from(*w))
                .reduce(|a, b| a + b)
                .expect("semantic level");
            sum / f64::from(total.max(1e-12))
        }
        FusionMode::WeightedLogit => {
            let mut logits = &l.z * f64::from(w[0]);
            if let Some(s) = &l.s_text {
                logits += s * f64::from(w[1]);
            }
            if let Some(s) = &l.s_ins {
                logits += s * f64::from(w[2]);
            }
            logits.softmax(-1, Kind::Float)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sitfer::levels::levels;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).view([1, v.len() as i64])
    }

    #[test]
    fn both_rules_by_hand() {
        let l = levels(&t(&[2.0, 0.0]), Some(t(&[0.0, 1.0])), Some(t(&[1.0, 0.0])), 1.0, 1.0);
        let f = Fusion { mode: FusionMode::MeanProb, weights: [1.0, 1.0, 1.0], tau_text: 1.0, tau_ins: 1.0 };
        let q = fuse(&l, &f, 0.75);
        // p_sem = softmax(2,0) = .8808; p_text = softmax(0,1)[0] = .2689; p_ins = softmax(1,0)[0] = .7311
        let want0 = (0.880_797 + 0.268_941 + 0.731_059) / 3.0;
        let p: Vec<f32> = Vec::try_from(&q.p.flatten(0, -1)).unwrap();
        assert!((p[0] - want0).abs() < 1e-5, "{p:?}");
        assert_eq!(i64::try_from(&q.label.get(0)).unwrap(), 0);
        assert_eq!(f32::try_from(&q.mask.get(0)).unwrap(), 0.0); // 0.627 < 0.75

        let f = Fusion { mode: FusionMode::WeightedLogit, weights: [0.3, 0.2, 0.5], tau_text: 1.0, tau_ins: 1.0 };
        let q = fuse(&l, &f, 0.5);
        // logits = 0.3*[2,0] + 0.2*[0,1] + 0.5*[1,0] = [1.1, 0.2]
        let want = 1.0 / (1.0 + (-0.9f32).exp());
        let p: Vec<f32> = Vec::try_from(&q.p.flatten(0, -1)).unwrap();
        assert!((p[0] - want).abs() < 1e-5);
    }

    fn matrix(rows: &[Vec<f32>]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    /// The shared expected values (exchange's fixture, computed by NumPy): raw level scores through the
    /// levels and the fusion in force at the case's epoch give the expected distribution, label and mask.
    #[test]
    fn matches_the_shared_expected_values() {
        for case in exchange::fusion::expected::cases() {
            let fusion = case.fusion.in_force(case.epoch, case.instance_warmup);
            let l = levels(
                &matrix(&case.z),
                case.s_text.as_deref().map(matrix),
                case.s_ins.as_deref().map(matrix),
                f64::from(case.fusion.tau_text),
                f64::from(case.fusion.tau_ins),
            );
            let q = fuse(&l, &fusion, case.threshold);
            let p: Vec<Vec<f32>> = Vec::try_from(&q.p).unwrap();
            for (i, want) in case.p_fused.iter().enumerate() {
                for (a, b) in p[i].iter().zip(want) {
                    assert!((a - b).abs() < 1e-5, "{}: row {i}: {:?} vs {want:?}", case.name, p[i]);
                }
            }
            let label: Vec<i64> = Vec::try_from(&q.label).unwrap();
            let mask: Vec<f32> = Vec::try_from(&q.mask).unwrap();
            assert_eq!(label, case.label.iter().map(|&k| k as i64).collect::<Vec<_>>(), "{}", case.name);
            assert_eq!(
                mask,
                case.selected.iter().map(|&s| f32::from(u8::from(s))).collect::<Vec<_>>(),
                "{}",
                case.name
            );
        }
    }
}
