//! Pieces both transformer encoders share: multi-head attention over an additive mask, and L2 rows.

use tch::{Kind, Tensor};

/// `[b, l, h*d]` projections -> attention output `[b, l, h*d]`. `additive_mask` broadcasts to
/// `[b, heads, l, l]` and holds 0 where attention is allowed and a large negative number where not.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, additive_mask: &Tensor) -> Tensor {
    let (b, l, width) = q.size3().expect("attention input is [batch, len, width]");
    let d = width / heads;
    let split = |t: &Tensor| t.view([b, l, heads, d]).transpose(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt() + additive_mask;
    let probs = scores.softmax(-1, Kind::Float);
    probs.matmul(&v).transpose(1, 2).contiguous().view([b, l, width])
}

/// Rows scaled to unit L2 norm (zero rows stay zero).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [-1i64], true).clamp_min(1e-12)
}

/// A `[b, 1, 1, l]` additive mask from a `[b, l]` 0/1 padding mask, as Hugging Face builds it.
pub fn padding_mask(mask: &Tensor) -> Tensor {
    let (b, l) = mask.size2().expect("mask is [batch, len]");
    let keep: Tensor = mask.to_kind(Kind::Float).view([b, 1, 1, l]);
    (keep.ones_like() - keep) * f64::from(f32::MIN)
}
