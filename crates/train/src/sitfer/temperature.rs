//! Temperature scaling (Guo et al. 2017) for the text and instance levels: the τ that turns a level's raw
//! scores into probabilities is fitted to labeled faces the model did not train on (the val split), by
//! minimising the negative log-likelihood of `softmax(s / τ)`. It replaces a hand-set τ (the instance level's
//! raw cosines differ by ~0.01 between classes, so any fixed τ is either flat or arbitrary) and changes no
//! argmax, only how much a level's vote weighs in the fusion.
//!
//! Owns the fit only; the trainer decides when to fit and records the result.

use tch::{Kind, Reduction, Tensor};

/// Range searched, in τ.
pub(crate) const TAU_MIN: f64 = 1e-3;
pub(crate) const TAU_MAX: f64 = 10.0;

/// Negative log-likelihood of `softmax(scores / tau)` at `labels`, averaged over rows, in f64 (near its
/// minimum the NLL is flat: f32 rounding moves the fitted τ in the third digit).
pub(crate) fn nll(scores: &Tensor, labels: &Tensor, tau: f64) -> f64 {
    let loss =
        (scores.to_kind(Kind::Double) / tau).cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0);
    f64::try_from(&loss).unwrap_or(f64::INFINITY)
}

/// The τ in [[`TAU_MIN`], [`TAU_MAX`]] minimising [`nll`], by golden-section search on ln τ (the NLL of a
/// temperature-scaled softmax is unimodal in it). `None` for an empty set or scores that are all equal in
/// every row (no τ carries information).
pub(crate) fn fit(scores: &Tensor, labels: &Tensor) -> Option<f64> {
    if scores.size().first().copied().unwrap_or(0) == 0 {
        return None;
    }
    let spread =
        f64::try_from(&(scores.amax([-1i64].as_slice(), false) - scores.amin([-1i64].as_slice(), false)).max())
            .unwrap_or(0.0);
    // NaN spread (non-finite scores) refuses too.
    if spread.is_nan() || spread <= 0.0 {
        return None;
    }
    let f = |ln_tau: f64| nll(scores, labels, ln_tau.exp());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (TAU_MIN.ln(), TAU_MAX.ln());
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-5 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    Some(((a + b) / 2.0).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_computed_minimum() {
        // Three faces of class 0 and one of class 1, all scored [1, 0]: NLL(a = 1/τ) = −3 ln σ(a) − ln σ(−a),
        // whose derivative vanishes at σ(a) = 3/4, i.e. τ = 1 / ln 3 = 0.910239.
        let s = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).view([4, 2]);
        let y = Tensor::from_slice(&[0i64, 0, 0, 1]);
        let tau = fit(&s, &y).unwrap();
        assert!((tau - 1.0 / 3f64.ln()).abs() < 1e-4, "{tau}");
    }

    #[test]
    fn separable_scores_hit_the_lower_bound_and_flat_ones_refuse() {
        // Every face scored highest at its own class (margins 0.1, 0.3): sharper is always better, until the
        // NLL underflows to 0 (margin/τ beyond ~37 in f64, τ below ~0.0027): the fit lands in that floor.
        let s = Tensor::from_slice(&[0.3f32, 0.2, 0.1, 0.4]).view([2, 2]);
        let y = Tensor::from_slice(&[0i64, 1]);
        let tau = fit(&s, &y).unwrap();
        assert!((TAU_MIN..0.003).contains(&tau), "{tau}");
        assert_eq!(
            fit(
                &Tensor::ones([3, 4], (Kind::Float, tch::Device::Cpu)),
                &Tensor::zeros([3], (Kind::Int64, tch::Device::Cpu))
            ),
            None
        );
        assert_eq!(
            fit(
                &Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu)),
                &Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu))
            ),
            None
        );
    }
}
