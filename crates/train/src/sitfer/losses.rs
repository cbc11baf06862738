//! The SIT-FER losses (docs/method.md): `L_s = CE(z_x, y)`, `L_t = CE(s_text(x)/τ_t, y)`,
//! `L_u = mean_batch(mask · CE(z_strong, ŷ))` (FixMatch, the paper) or `Σ mask · CE / Σ mask` (the released code), optional SupCon `L_con` on labeled features, and the objective
//! [`total`] `L = scale · (L_s + λ_t L_t + λ_u L_u + λ_con L_con)` (the released code: `0.4 (L_s + L_t + 0.5 L_u)`).

use tch::{Kind, Reduction, Tensor};

pub(crate) fn supervised(z: &Tensor, y: &Tensor) -> Tensor {
    z.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
}

/// `L_s` against a target distribution `q` (`[B, C]`, rows summing to 1; FER+'s vote shares): the mean over
/// the batch of `−Σ_c q_c log softmax(z)_c` (FER+'s "probability" protocol).
pub(crate) fn supervised_soft(z: &Tensor, q: &Tensor) -> Tensor {
    -(q * z.log_softmax(-1, Kind::Float)).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float).mean(Kind::Float)
}

/// What labeled faces are trained towards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LabelTargets {
    /// The majority label, one-hot.
    #[default]
    Majority,
    /// The annotators' vote shares over the run's classes (needs a dataset with votes: FERPlus).
    Votes,
}

pub(crate) fn text(s_text: &Tensor, y: &Tensor, tau_text: f64) -> Tensor {
    (s_text / tau_text).cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
}

/// Over which rows `L_u` averages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum UnlabeledMean {
    /// The whole unlabeled batch, masked rows contributing 0 (FixMatch, the paper): `L_u` grows with the mask rate.
    #[default]
    Batch,
    /// The selected rows only (the released code): at a 6 % mask rate each selected row weighs ~16× more.
    Selected,
}

/// Masked consistency loss, averaged as `mean` says (0 when nothing is selected).
pub(crate) fn unlabeled(z_strong: &Tensor, pseudo: &Tensor, mask: &Tensor, mean: UnlabeledMean) -> Tensor {
    let per = z_strong.cross_entropy_loss::<Tensor>(pseudo, None, Reduction::None, -100, 0.0);
    match mean {
        UnlabeledMean::Batch => (per * mask).mean(Kind::Float),
        UnlabeledMean::Selected => (per * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0),
    }
}

/// Supervised contrastive loss (Khosla et al. 2020, "out" form) over normalised features `h` `[B, D]`.
/// Anchors without a positive are left out of the mean.
pub(crate) fn supcon(h: &Tensor, y: &Tensor, temperature: f64) -> Tensor {
    let b = h.size()[0];
    let device = h.device();
    let sim = h.matmul(&h.tr()) / temperature;
    let eye = Tensor::eye(b, (Kind::Bool, device));
    let logits = sim.masked_fill(&eye, f64::NEG_INFINITY);
    let log_prob = logits.log_softmax(-1, Kind::Float);
    let pos = y.unsqueeze(0).eq_tensor(&y.unsqueeze(1)).logical_and(&eye.logical_not());
    let pos_f = pos.to_kind(Kind::Float);
    let n_pos = pos_f.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let per_anchor =
        -(log_prob.masked_fill(&pos.logical_not(), 0.0)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            / n_pos.clamp_min(1.0);
    let has = n_pos.gt(0.0).to_kind(Kind::Float);
    (per_anchor * &has).sum(Kind::Float) / has.sum(Kind::Float).clamp_min(1.0)
}

/// One step's loss terms; a term that is switched off (its level or weight off, or before its warm-up) is
/// `None` and leaves the sum.
pub(crate) struct Terms {
    pub(crate) s: Tensor,
    pub(crate) t: Option<Tensor>,
    pub(crate) u: Option<Tensor>,
    pub(crate) con: Option<Tensor>,
}

/// The weights of the terms in [`total`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Weights {
    pub(crate) text: f64,
    pub(crate) unlabeled: f64,
    pub(crate) contrastive: f64,
    /// Multiplies the whole sum (the released code's 0.4).
    pub(crate) scale: f64,
}

/// The objective, written once: `L = scale · (L_s + λ_t L_t + λ_u L_u + λ_con L_con)`.
pub(crate) fn total(terms: &Terms, w: &Weights) -> Tensor {
    // A new tensor, not a shallow clone of L_s: `+=` below would otherwise add into L_s and misreport it.
    let mut loss = &terms.s * 1.0;
    if let Some(t) = &terms.t {
        loss += t * w.text;
    }
    if let Some(u) = &terms.u {
        loss += u * w.unlabeled;
    }
    if let Some(con) = &terms.con {
        loss += con * w.contrastive;
    }
    loss * w.scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: &Tensor) -> f32 {
        f32::try_from(t).unwrap()
    }

    #[test]
    fn by_hand() {
        let z = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 2.0]).view([2, 2]);
        let y = Tensor::from_slice(&[0i64, 0]);
        // CE row 0: log(1+e^-2) = 0.126928; row 1: log(1+e^2) = 2.126928
        assert!((f(&supervised(&z, &y)) - 1.126_928).abs() < 1e-5);
        assert!(
            (f(&text(&z, &y, 2.0)) - ((1.0f32 + (-1.0f32).exp()).ln() + (1.0f32 + 1.0f32.exp()).ln()) / 2.0).abs()
                < 1e-5
        );
        // Soft targets: one-hot rows give the hard loss.
        let onehot = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        assert!((f(&supervised_soft(&z, &onehot)) - 1.126_928).abs() < 1e-5);
        let half = Tensor::from_slice(&[0.5f32, 0.5, 1.0, 0.0]).view([2, 2]);
        // Row 0: 0.5·0.126928 + 0.5·2.126928 = 1.126928; row 1 (z = [0, 2], q = [1, 0]): 2.126928.
        assert!((f(&supervised_soft(&z, &half)) - (1.126_928 + 2.126_928) / 2.0).abs() < 1e-5);
        let mask = Tensor::from_slice(&[1.0f32, 0.0]);
        assert!((f(&unlabeled(&z, &y, &mask, UnlabeledMean::Batch)) - 0.126_928 / 2.0).abs() < 1e-5);
        assert!((f(&unlabeled(&z, &y, &mask, UnlabeledMean::Selected)) - 0.126_928).abs() < 1e-5);
        let none = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu));
        assert_eq!(f(&unlabeled(&z, &y, &none, UnlabeledMean::Selected)), 0.0);
    }

    #[test]
    fn total_is_the_weighted_sum_and_leaves_l_s_alone() {
        let terms =
            Terms { s: Tensor::from(1.5f32), t: Some(Tensor::from(2.0f32)), u: None, con: Some(Tensor::from(4.0f32)) };
        let w = Weights { text: 0.5, unlabeled: 100.0, contrastive: 0.25, scale: 0.4 };
        // 0.4 · (1.5 + 0.5·2 + 0.25·4) = 0.4 · 3.5
        assert!((f(&total(&terms, &w)) - 1.4).abs() < 1e-6);
        assert_eq!(f(&terms.s), 1.5);
    }

    #[test]
    fn supcon_by_hand() {
        // Three unit features: a, a, b with a ⟂ b; labels 0, 0, 1. Anchor 0: positive 1 (sim 1/τ), negative 2 (0).
        let h = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0]).view([3, 2]);
        let y = Tensor::from_slice(&[0i64, 0, 1]);
        let tau = 0.5;
        let l = f(&supcon(&h, &y, tau));
        let want = -((2.0f32).exp() / ((2.0f32).exp() + 1.0)).ln(); // anchors 0 and 1 alike; anchor 2 has no positive
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
    }
}
