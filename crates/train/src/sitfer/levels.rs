//! The three levels' scores and probabilities for a batch of features (docs/method.md):
//! semantic `p_sem = softmax(z)`, text `s_text = cos(g(h), t_c)`, `p_text = softmax(s_text / τ_t)`,
//! instance `p_ins = softmax(s_ins / τ_i)` with `s_ins` from the memory bank.

use tch::{Kind, Tensor};

/// Raw scores and probabilities of the levels that are switched on.
pub(crate) struct Levels {
    pub(crate) z: Tensor,
    pub(crate) p_sem: Tensor,
    pub(crate) s_text: Option<Tensor>,
    pub(crate) p_text: Option<Tensor>,
    pub(crate) s_ins: Option<Tensor>,
    pub(crate) p_ins: Option<Tensor>,
}

/// `[B, C]` cosine similarities between projected features `g` (`[B, D]`) and unit prototypes (`[C, D]`).
pub(crate) fn text_scores(g: &Tensor, prototypes: &Tensor) -> Tensor {
    let g = g / g.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
    g.matmul(&prototypes.tr())
}

pub(crate) fn levels(z: &Tensor, s_text: Option<Tensor>, s_ins: Option<Tensor>, tau_text: f64, tau_ins: f64) -> Levels {
    let p_text = s_text.as_ref().map(|s| (s / tau_text).softmax(-1, Kind::Float));
    let p_ins = s_ins.as_ref().map(|s| (s / tau_ins).softmax(-1, Kind::Float));
    Levels { z: z.shallow_clone(), p_sem: z.softmax(-1, Kind::Float), s_text, p_text, s_ins, p_ins }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        let protos = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]);
        let g = Tensor::from_slice(&[3.0f32, 4.0]).view([1, 2]);
        let s = text_scores(&g, &protos);
        let v: Vec<f32> = Vec::try_from(&s.flatten(0, -1)).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let z = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        let l = levels(&z, Some(s), None, 0.1, 0.1);
        let p: Vec<f32> = Vec::try_from(&l.p_text.unwrap().flatten(0, -1)).unwrap();
        // softmax([6, 8]) = [1/(1+e^2), e^2/(1+e^2)]
        let e2 = (2.0f32).exp();
        assert!((p[0] - 1.0 / (1.0 + e2)).abs() < 1e-6, "{p:?}");
        let ps: Vec<f32> = Vec::try_from(&l.p_sem.flatten(0, -1)).unwrap();
        assert_eq!(ps, vec![0.5, 0.5]);
    }
}
