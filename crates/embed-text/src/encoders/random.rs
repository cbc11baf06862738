//! Fixed random unit vectors, one per class, by seed: what the released SIT-FER code effectively uses (its
//! "text encoder" is a frozen random transformer whose only surviving token is the class word), kept for the
//! `sitfer-official` preset and the text-level ablation. Every description of a class gets the class's
//! vector; the description text does not matter, by design.

use exchange::Expression;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The vector of `class` for `seed`: standard normal entries (Box–Muller over ChaCha8, so the same on every
/// platform), normalised. Seeded per class so adding a class never changes another's vector.
pub(crate) fn class_vector(seed: u64, class: Expression, dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(class.id() as u64 + 1)));
    let mut v: Vec<f64> = (0..dim)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v.into_iter().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_deterministic_and_nearly_orthogonal() {
        let a = class_vector(1, Expression::Happiness, 512);
        assert_eq!(a, class_vector(1, Expression::Happiness, 512));
        assert_ne!(a, class_vector(2, Expression::Happiness, 512));
        let b = class_vector(1, Expression::Fear, 512);
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(cos.abs() < 0.2, "random 512-d vectors should be nearly orthogonal, cos {cos}");
    }
}
