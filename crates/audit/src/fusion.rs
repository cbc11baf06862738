//! Recomputes a fused distribution from the stored per-level probabilities, for either fusion rule
//! (docs/method.md). Weighted-logit fusion works on raw scores, which the files do not store; they are
//! recovered up to a per-row constant (which softmax ignores): `z = log p_sem + c`,
//! `s_text = τ_t log p_text + c'`, `s_ins = τ_i log p_ins + c''`.

use exchange::fusion::{Fusion, FusionMode};
use rayon::prelude::*;

/// Probabilities this small are floored before the log (float32 softmax outputs can underflow to 0).
pub(crate) const FLOOR: f32 = 1e-30;

/// Fused `n × c` distribution. Levels that are `None` (switched off) are left out and the remaining
/// weights renormalised (mean-prob) or used as they are (weighted-logit).
pub(crate) fn fuse(levels: [Option<&[f32]>; 3], c: usize, fusion: &Fusion) -> Vec<f32> {
    let n = levels.iter().flatten().next().map(|l| l.len() / c).unwrap_or(0);
    let mut out = vec![0f32; n * c];
    let taus = [1.0, fusion.tau_text, fusion.tau_ins];
    let active: Vec<(usize, &[f32], f32)> =
        (0..3).filter_map(|l| levels[l].map(|p| (l, p, fusion.weights[l]))).filter(|(_, _, w)| *w != 0.0).collect();
    let wsum: f32 = active.iter().map(|a| a.2).sum();
    out.par_chunks_mut(c).enumerate().for_each(|(i, row)| match fusion.mode {
        FusionMode::MeanProb => {
            for (_, p, w) in &active {
                for (o, x) in row.iter_mut().zip(&p[i * c..(i + 1) * c]) {
                    *o += w * x;
                }
            }
            if wsum > 0.0 {
                row.iter_mut().for_each(|o| *o /= wsum);
            }
        }
        FusionMode::WeightedLogit => {
            for (l, p, w) in &active {
                for (o, x) in row.iter_mut().zip(&p[i * c..(i + 1) * c]) {
                    *o += w * taus[*l] * x.max(FLOOR).ln();
                }
            }
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0.0;
            row.iter_mut().for_each(|o| {
                *o = (*o - m).exp();
                s += *o;
            });
            row.iter_mut().for_each(|o| *o /= s);
        }
    });
    out
}

/// Distribution alignment as the trainer applied it: each row of `p` (`n × c`) multiplied class by class by
/// `factors` and renormalised to sum 1.
pub(crate) fn align(p: &mut [f32], c: usize, factors: &[f32]) {
    p.par_chunks_mut(c).for_each(|row| {
        row.iter_mut().zip(factors).for_each(|(x, f)| *x *= f);
        let s: f32 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|x| *x /= s);
        }
    });
}

/// `mode:w_sem,w_text,w_ins` for reports.
pub(crate) fn describe(f: &Fusion) -> String {
    let w = f.weights;
    format!("{} {:.2}/{:.2}/{:.2}", f.mode.name(), w[0], w[1], w[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_by_hand() {
        // [0.6, 0.4] · [0.5/0.7, 0.5/0.3] = [0.428571, 0.666667] → [0.391304, 0.608696]; a zero row stays.
        let mut p = vec![0.6f32, 0.4, 0.0, 0.0];
        align(&mut p, 2, &[0.5 / 0.7, 0.5 / 0.3]);
        assert!((p[0] - 0.391_304).abs() < 1e-5 && (p[1] - 0.608_696).abs() < 1e-5, "{p:?}");
        assert_eq!(p[2..], [0.0, 0.0]);
    }

    fn f(mode: FusionMode, w: [f32; 3]) -> Fusion {
        Fusion { mode, weights: w, tau_text: 1.0, tau_ins: 1.0 }
    }

    fn softmax(row: &[f32], tau: f32) -> Vec<f32> {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|x| ((x - m) / tau).exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    /// The shared expected values (exchange's fixture, computed by NumPy): stored probabilities of each level
    /// fused with the rule in force at the case's epoch give the expected distribution, label and selection.
    #[test]
    fn replay_matches_the_shared_expected_values() {
        for case in exchange::fusion::expected::cases() {
            let fusion = case.fusion.in_force(case.epoch, case.instance_warmup);
            let flat = |m: &Vec<Vec<f32>>, tau: f32| -> Vec<f32> { m.iter().flat_map(|r| softmax(r, tau)).collect() };
            let sem = flat(&case.z, 1.0);
            let text = case.s_text.as_ref().map(|s| flat(s, fusion.tau_text));
            let ins = case.s_ins.as_ref().map(|s| flat(s, fusion.tau_ins));
            let c = case.z[0].len();
            let p = fuse([Some(&sem), text.as_deref(), ins.as_deref()], c, &fusion);
            for (i, want) in case.p_fused.iter().enumerate() {
                let row = &p[i * c..(i + 1) * c];
                for (a, b) in row.iter().zip(want) {
                    assert!((a - b).abs() < 1e-5, "{}: row {i}: {row:?} vs {want:?}", case.name);
                }
                let (k, conf) =
                    row.iter().enumerate().fold((0, f32::MIN), |b, (k, v)| if *v > b.1 { (k, *v) } else { b });
                assert_eq!(k, case.label[i], "{}: row {i}", case.name);
                assert_eq!(
                    exchange::fusion::selected(conf, case.threshold),
                    case.selected[i],
                    "{}: row {i}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn mean_prob_is_the_weighted_average() {
        let a = [0.8, 0.2];
        let b = [0.2, 0.8];
        let p = fuse([Some(&a), Some(&b), None], 2, &f(FusionMode::MeanProb, [1.0, 1.0, 1.0]));
        assert!((p[0] - 0.5).abs() < 1e-6);
        let p = fuse([Some(&a), Some(&b), None], 2, &f(FusionMode::MeanProb, [3.0, 1.0, 0.0]));
        assert!((p[0] - 0.65).abs() < 1e-6);
    }

    #[test]
    fn weighted_logit_recovers_the_logit_rule() {
        // z = [2, 0], s_text = [0, 1] with τ_t = 0.5: p_text = softmax(s/τ) = softmax([0, 2]).
        let sm = |v: [f32; 2]| {
            let e = [v[0].exp(), v[1].exp()];
            [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
        };
        let p_sem = sm([2.0, 0.0]);
        let p_text = sm([0.0, 2.0]);
        let fusion = Fusion { mode: FusionMode::WeightedLogit, weights: [0.6, 0.4, 0.0], tau_text: 0.5, tau_ins: 1.0 };
        let p = fuse([Some(&p_sem), Some(&p_text), None], 2, &fusion);
        let want = sm([0.6 * 2.0, 0.4 * 1.0]);
        assert!((p[0] - want[0]).abs() < 1e-5, "{p:?} vs {want:?}");
    }
}
