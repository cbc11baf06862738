//! Fusing the levels into the pseudo-label distribution, both rules of DESIGN §2, and the mask:
//! `mean-prob` (the paper) `p̂ = Σ w_l p_l / Σ w_l`; `weighted-logit` (the released code)
//! `p̂ = softmax(w_sem z + w_text s_text + w_ins s_ins)`, with the instance level left out before its warm-up
//! epoch (weights 0.6/0.4 then). Levels switched off drop out of either rule.

use exchange::schema::run_info::{Fusion, FusionMode};
use tch::{Kind, Tensor};

use super::levels::Levels;

pub struct Pseudo {
    pub p: Tensor,
    pub label: Tensor,
    pub confidence: Tensor,
    pub mask: Tensor,
}

/// The fusion in force at `epoch` (1-based): the released code fuses without the instance level, with weights
/// (0.6, 0.4), until `instance_warmup` epochs have passed.
pub fn fusion_at(f: &Fusion, epoch: u32, instance_warmup: u32) -> Fusion {
    if f.mode == FusionMode::WeightedLogit && epoch <= instance_warmup {
        Fusion { weights: [0.6, 0.4, 0.0], ..*f }
    } else {
        *f
    }
}

pub fn fuse(l: &Levels, f: &Fusion, threshold: f64) -> Pseudo {
    let w = f.weights;
    let p = match f.mode {
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
    };
    let (confidence, label) = p.max_dim(-1, false);
    let mask = confidence.gt(threshold).to_kind(Kind::Float);
    Pseudo { p, label, confidence, mask }
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
        let warm = fusion_at(&f, 3, 15);
        assert_eq!(warm.weights, [0.6, 0.4, 0.0]);
        assert_eq!(fusion_at(&f, 16, 15).weights, [0.3, 0.2, 0.5]);
    }
}
