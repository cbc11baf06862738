//! The transductive level: label propagation over a k-nearest-neighbour graph of every training face's
//! feature, labeled and unlabeled (Iscen, Tolias, Avrithis & Chum, CVPR 2019; their released code's choices):
//!
//!   a_ij = max(0, ⟨h_i, h_j⟩)^γ for the k nearest j of i (itself excluded), W = A + Aᵀ,
//!   Ŵ = D^-1/2 W D^-1/2 with D = diag(W 1),
//!   (I − α Ŵ) z_c = y_c for each class c, y_c = 1/|L_c| on the labeled faces of class c, 0 elsewhere,
//!   solved by conjugate gradient (the matrix is symmetric positive definite for α < 1),
//!   p_i = max(z_i, 0) / Σ_c max(z_ic, 0)   (uniform where nothing reached face i),
//!   certainty ω_i = 1 − H(p_i) / ln C.
//!
//! Owns the graph, the solve and the distribution; when it runs and which faces it serves is the trainer's
//! (`method.levels.instance_source = "propagation"`). The graph is never materialised as a matrix: `A x` is a
//! gather over each face's neighbours and `Aᵀ x` a scatter-add, both `[N, k, C]` tensor operations.

use tch::{Device, Kind, Tensor};

/// Where the instance level's distribution comes from (`method.levels.instance_source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InstanceSource {
    /// The memory bank's vote over labeled faces (`method.levels.instance_rule`), every step.
    #[default]
    Bank,
    /// Label propagation over all training faces, recomputed at each sweep; the bank's vote until the first.
    Propagation,
}

/// `method.levels.propagation`: the graph and the solve.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PropagationConfig {
    /// Neighbours per face (Iscen et al.: 50).
    pub(crate) k: i64,
    /// Exponent γ on the similarities (3).
    pub(crate) gamma: f64,
    /// α of `(I − α Ŵ)` (0.99): how far labels travel along the graph.
    pub(crate) alpha: f64,
    /// Conjugate-gradient iterations at most (20).
    pub(crate) iterations: u32,
}

impl Default for PropagationConfig {
    fn default() -> Self {
        PropagationConfig { k: 50, gamma: 3.0, alpha: 0.99, iterations: 20 }
    }
}

/// Rows of features compared at once while finding neighbours: `[BLOCK, N]` similarities at a time.
const BLOCK: i64 = 1024;
/// Conjugate gradient stops once every class's residual norm is below this.
const TOLERANCE: f64 = 1e-6;

/// The k-NN graph: for each face its neighbours and `a_ij`, plus the degree normalisation.
pub(crate) struct Graph {
    /// `[N, k]` int64.
    neighbours: Tensor,
    /// `[N, k]` f32 `a_ij`.
    weights: Tensor,
    /// `[N, 1]` `D^-1/2` (1 where a face has no edge).
    inv_sqrt_degree: Tensor,
}

/// The graph of unit features `h` (`[N, D]`): each face's `k` most similar others (fewer when `N ≤ k`).
pub(crate) fn graph(h: &Tensor, k: i64, gamma: f64) -> Graph {
    tch::no_grad(|| {
        let h = h.to_kind(Kind::Float);
        let n = h.size()[0];
        let k = k.min(n - 1).max(0);
        let mut idx = Vec::new();
        let mut sim = Vec::new();
        for start in (0..n).step_by(BLOCK as usize) {
            let rows = BLOCK.min(n - start);
            let s = h.narrow(0, start, rows).matmul(&h.tr());
            // A face is not its own neighbour: its similarity is pushed below every cosine.
            let own = Tensor::arange_start(start, start + rows, (Kind::Int64, h.device())).unsqueeze(1);
            let s = s.scatter_value(1, &own, -2.0);
            let (v, i) = s.topk(k, 1, true, true);
            sim.push(v);
            idx.push(i);
        }
        let weights = Tensor::cat(&sim, 0).clamp_min(0.0).pow_tensor_scalar(gamma);
        let neighbours = Tensor::cat(&idx, 0);
        let g = Graph { neighbours, weights, inv_sqrt_degree: Tensor::ones([n, 1], (Kind::Float, h.device())) };
        let degree = g.adjacency(&Tensor::ones([n, 1], (Kind::Float, h.device())));
        let inv = degree.rsqrt().where_self(&degree.gt(0.0), &degree.ones_like());
        Graph { inv_sqrt_degree: inv, ..g }
    })
}

impl Graph {
    fn len(&self) -> i64 {
        self.neighbours.size()[0]
    }

    /// `W x = A x + Aᵀ x` for `x` `[N, C]`.
    fn adjacency(&self, x: &Tensor) -> Tensor {
        let (n, k) = (self.len(), self.neighbours.size()[1]);
        let c = x.size()[1];
        let flat = self.neighbours.flatten(0, -1);
        let w = self.weights.unsqueeze(-1);
        // (A x)_i = Σ_j a_ij x_j
        let ax = (x.index_select(0, &flat).view([n, k, c]) * &w).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        // (Aᵀ x)_j = Σ_i a_ij x_i
        let contributions = (x.unsqueeze(1) * &w).view([n * k, c]);
        let atx = x.zeros_like().index_add(0, &flat, &contributions);
        ax + atx
    }

    /// `(I − α Ŵ) x`.
    fn system(&self, x: &Tensor, alpha: f64) -> Tensor {
        let d = &self.inv_sqrt_degree;
        x - self.adjacency(&(x * d)) * d * alpha
    }
}

/// The propagated labels of every face of the graph.
pub(crate) struct Propagated {
    /// `[N, C]` class distributions.
    pub(crate) p: Tensor,
    /// `[N]` certainty `1 − H(p) / ln C`.
    pub(crate) certainty: Tensor,
}

/// Solves `(I − α Ŵ) Z = Y` over `graph` for the faces' labels (`labels[i]`: the class of labeled face i, `None`
/// for an unlabeled one) and returns the normalised distributions.
pub(crate) fn propagate(
    graph: &Graph,
    labels: &[Option<usize>],
    classes: usize,
    cfg: &PropagationConfig,
) -> Propagated {
    tch::no_grad(|| {
        let device = graph.neighbours.device();
        let y = targets(labels, classes, device);
        let z = conjugate_gradient(|x| graph.system(x, cfg.alpha), &y, cfg.iterations);
        let z = z.clamp_min(0.0);
        let sum = z.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let uniform = z.ones_like() / classes as f64;
        let p = (&z / sum.clamp_min(1e-30)).where_self(&sum.gt(0.0), &uniform);
        let entropy = -(&p * p.clamp_min(1e-30).log()).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let certainty = if classes > 1 { 1.0 - entropy / (classes as f64).ln() } else { entropy.ones_like() };
        Propagated { p, certainty }
    })
}

/// `[N, C]` `Y`: column c is `1/|L_c|` on the labeled faces of class c.
fn targets(labels: &[Option<usize>], classes: usize, device: Device) -> Tensor {
    let mut count = vec![0usize; classes];
    for c in labels.iter().flatten() {
        count[*c] += 1;
    }
    let mut y = vec![0f32; labels.len() * classes];
    for (i, c) in labels.iter().enumerate() {
        if let Some(c) = c {
            y[i * classes + c] = 1.0 / count[*c] as f32;
        }
    }
    Tensor::from_slice(&y).view([labels.len() as i64, classes as i64]).to_device(device)
}

/// The smallest propagated probability the instance level's score represents (ln 10⁻⁶ ≈ −13.8).
const FLOOR: f64 = 1e-6;

/// Instance scores `τ_i ln max(p, 10⁻⁶)` for propagated distributions `p`: the level's own softmax at τ_i then
/// gives back `p` (to the floor), so the fusion and the files treat propagation as they treat the bank's vote.
pub(crate) fn as_scores(p: &Tensor, tau_ins: f64) -> Tensor {
    p.clamp_min(FLOOR).log() * tau_ins
}

/// Conjugate gradient on every column of `b` at once (each its own step sizes), from 0, for a symmetric
/// positive definite operator `m`.
fn conjugate_gradient(m: impl Fn(&Tensor) -> Tensor, b: &Tensor, iterations: u32) -> Tensor {
    let col_dot = |a: &Tensor, b: &Tensor| (a * b).sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
    let mut x = b.zeros_like();
    let mut r = b.copy();
    let mut p = r.copy();
    let mut rs = col_dot(&r, &r);
    for _ in 0..iterations {
        if f64::try_from(rs.max()).unwrap_or(0.0).sqrt() < TOLERANCE {
            break;
        }
        let mp = m(&p);
        // A converged column (rs = 0) takes no step and keeps its direction at 0.
        let step = &rs / col_dot(&p, &mp).clamp_min(1e-30);
        x += &p * &step;
        r -= &mp * &step;
        let rs_new = col_dot(&r, &r);
        p = &r + &p * (&rs_new / rs.clamp_min(1e-30));
        rs = rs_new;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.flatten(0, -1)).unwrap()
    }

    /// Four faces on a line in feature space: 0 and 1 close, 2 and 3 close, 1 and 2 further apart.
    fn line() -> Tensor {
        let angles = [0.0f32, 0.1, 0.5, 0.6];
        let h: Vec<f32> = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
        Tensor::from_slice(&h).view([4, 2])
    }

    #[test]
    fn the_graph_is_each_face_s_nearest_others_by_hand() {
        let g = graph(&line(), 1, 1.0);
        // 0 → 1, 1 → 0, 2 → 3, 3 → 2, each at cos 0.1.
        assert_eq!(Vec::<i64>::try_from(&g.neighbours.flatten(0, -1)).unwrap(), vec![1, 0, 3, 2]);
        let c = 0.1f32.cos();
        assert!(v(&g.weights).iter().all(|w| (w - c).abs() < 1e-6));
        // W = A + Aᵀ: every face has degree 2c.
        assert!(v(&g.inv_sqrt_degree).iter().all(|d| (d - 1.0 / (2.0 * c).sqrt()).abs() < 1e-5));
    }

    #[test]
    fn propagation_by_hand_on_three_faces() {
        // Three faces, k = 2: each face's neighbours are the other two; γ = 0 turns every similarity into 1,
        // so W = A + Aᵀ has 2 on every off-diagonal pair.
        let h = Tensor::from_slice(&[1.0f32, 0.0, 0.8, 0.6, 0.0, 1.0]).view([3, 2]);
        let g = graph(&h, 2, 0.0);
        // Every face is every other's neighbour: W = 2 (J − I), degree 4, Ŵ = (J − I) / 2.
        // Face 0 labeled class 0, face 2 class 1, face 1 unlabeled; α = 0.5:
        // (I − ½Ŵ) z = y, with ½Ŵ = (J − I)/4. For class 0, y = (1, 0, 0):
        //   z0 − (z1 + z2)/4 = 1, z1 − (z0 + z2)/4 = 0, z2 − (z0 + z1)/4 = 0  →  z = (1.2, 0.4, 0.4)
        // and for class 1 by symmetry (0.4, 0.4, 1.2).
        let cfg = PropagationConfig { k: 2, gamma: 0.0, alpha: 0.5, iterations: 20 };
        let out = propagate(&g, &[Some(0), None, Some(1)], 2, &cfg);
        let p = v(&out.p);
        let want = [0.75f32, 0.25, 0.5, 0.5, 0.25, 0.75];
        assert!(p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{p:?}");
        // Certainty: face 1 is even (0), faces 0 and 2 at 1 − H(¾, ¼)/ln 2.
        let h34 = -(0.75f32 * 0.75f32.ln() + 0.25 * 0.25f32.ln()) / 2f32.ln();
        let c = v(&out.certainty);
        assert!((c[0] - (1.0 - h34)).abs() < 1e-5 && c[1].abs() < 1e-5 && (c[2] - (1.0 - h34)).abs() < 1e-5, "{c:?}");
    }

    #[test]
    fn labels_follow_the_clusters_and_an_unreached_face_is_uniform() {
        // The line with k = 1: two separate pairs. Face 0 labeled class 0, face 3 class 1: 1 takes 0's
        // class, 2 takes 3's, and nothing crosses between the pairs.
        let g = graph(&line(), 1, 3.0);
        let cfg = PropagationConfig { k: 1, ..PropagationConfig::default() };
        let out = propagate(&g, &[Some(0), None, None, Some(1)], 2, &cfg);
        let p = v(&out.p);
        assert_eq!(p, vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        // No labeled face in face 2's pair: it stays uniform.
        let out = propagate(&g, &[Some(0), None, None, None], 2, &cfg);
        assert_eq!(v(&out.p)[4..6], [0.5, 0.5]);
    }

    #[test]
    fn scores_give_back_the_distribution_through_the_level_s_softmax() {
        let p = Tensor::from_slice(&[0.7f32, 0.2, 0.1, 0.0]).view([1, 4]);
        let back = v(&(as_scores(&p, 0.02) / 0.02).softmax(-1, Kind::Float));
        assert!(back.iter().zip([0.7f32, 0.2, 0.1, 0.0]).all(|(a, b)| (a - b).abs() < 1e-5), "{back:?}");
    }

    #[test]
    fn conjugate_gradient_solves_each_column_by_hand() {
        // [[4, 1], [1, 3]] x = b for b = (1, 2) and (0, 1): x = (1/11, 7/11) and (−1/11, 4/11).
        let m = Tensor::from_slice(&[4.0f32, 1.0, 1.0, 3.0]).view([2, 2]);
        let b = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 1.0]).view([2, 2]);
        let x = v(&conjugate_gradient(|x| m.matmul(x), &b, 10));
        let want = [1.0 / 11.0, -1.0 / 11.0, 7.0 / 11.0, 4.0 / 11.0];
        assert!(x.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{x:?}");
    }
}
