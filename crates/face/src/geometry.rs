//! The 2-D maps the landmark model and the alignment use, as dlib computes them: points, affine maps, the
//! least-squares similarity between two point sets (Umeyama 1991, dlib's `find_similarity_transform`) and
//! dlib's rounding of a point to a pixel.

/// A point `(x, y)` in pixels (x to the right, y down).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }

    /// The pixel dlib assigns to the point: each coordinate rounded half up (`floor(v + 0.5)`).
    pub fn pixel(self) -> (i64, i64) {
        ((self.x + 0.5).floor() as i64, (self.y + 0.5).floor() as i64)
    }
}

/// `p ↦ m · p + b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Row-major 2 × 2.
    pub m: [[f64; 2]; 2],
    pub b: [f64; 2],
}

impl Affine {
    pub fn apply(&self, p: Point) -> Point {
        Point::new(
            self.m[0][0] * p.x + self.m[0][1] * p.y + self.b[0],
            self.m[1][0] * p.x + self.m[1][1] * p.y + self.b[1],
        )
    }
}

/// The similarity (scale, rotation, translation; no reflection) that maps `from` onto `to` with the least
/// squared error. For 2-D point sets Umeyama's SVD has a closed form: with the centred cross-covariance
/// `Σ = mean((t − t̄)(f − f̄)ᵀ)` and `σ² = mean|f − f̄|²`, the map's linear part is
/// `[[p, −q], [q, p]] / σ²` with `p = Σ₀₀ + Σ₁₁`, `q = Σ₁₀ − Σ₀₁` (its scale times rotation), and the
/// translation `t̄ − m f̄`. Identical to dlib's SVD route, reflection correction included, up to rounding.
pub fn similarity(from: &[Point], to: &[Point]) -> Affine {
    let n = from.len().min(to.len()).max(1) as f64;
    let mean = |ps: &[Point]| {
        let (x, y) = ps.iter().fold((0.0, 0.0), |(x, y), p| (x + p.x, y + p.y));
        Point::new(x / n, y / n)
    };
    let (mf, mt) = (mean(from), mean(to));
    let (mut sigma, mut c) = (0.0, [[0.0f64; 2]; 2]);
    for (f, t) in from.iter().zip(to) {
        let (fx, fy, tx, ty) = (f.x - mf.x, f.y - mf.y, t.x - mt.x, t.y - mt.y);
        sigma += fx * fx + fy * fy;
        c[0][0] += tx * fx;
        c[0][1] += tx * fy;
        c[1][0] += ty * fx;
        c[1][1] += ty * fy;
    }
    let (p, q) = (c[0][0] + c[1][1], c[1][0] - c[0][1]);
    // Both sums carry the same 1/n, which cancels in m.
    let (a, b) = if sigma > 0.0 { (p / sigma, q / sigma) } else { (1.0, 0.0) };
    let m = [[a, -b], [b, a]];
    let b = [mt.x - (m[0][0] * mf.x + m[0][1] * mf.y), mt.y - (m[1][0] * mf.x + m[1][1] * mf.y)];
    Affine { m, b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Point, b: Point) -> bool {
        (a.x - b.x).abs() < 1e-9 && (a.y - b.y).abs() < 1e-9
    }

    #[test]
    fn an_exact_similarity_is_recovered() {
        // Scale 2, rotation 90° (x → y, y → −x), then shift (3, 4).
        let map = |p: Point| Point::new(-2.0 * p.y + 3.0, 2.0 * p.x + 4.0);
        let from = [Point::new(0.0, 0.0), Point::new(1.0, 0.0), Point::new(0.0, 1.0), Point::new(2.0, 3.0)];
        let to: Vec<Point> = from.iter().map(|&p| map(p)).collect();
        let s = similarity(&from, &to);
        assert!((s.m[0][0]).abs() < 1e-12 && (s.m[0][1] + 2.0).abs() < 1e-12 && (s.m[1][0] - 2.0).abs() < 1e-12);
        for p in from {
            assert!(close(s.apply(p), map(p)));
        }
    }

    #[test]
    fn a_mirrored_set_gets_the_best_rotation_not_a_reflection() {
        // `to` is `from` mirrored in x. Σ = diag(−2, 2)/4, so p = 0 and q = 0: no rotation does better than
        // collapsing onto the centroid (dlib's SVD route gives scale trace(DS)/σ² = (½ − ½)/1 = 0 as well).
        let from = [Point::new(1.0, 0.0), Point::new(-1.0, 0.0), Point::new(0.0, 1.0), Point::new(0.0, -1.0)];
        let to: Vec<Point> = from.iter().map(|p| Point::new(-p.x, p.y)).collect();
        let s = similarity(&from, &to);
        assert_eq!(s.m, [[0.0, -0.0], [0.0, 0.0]]);
    }

    #[test]
    fn pixels_round_half_up() {
        assert_eq!(Point::new(2.5, -0.5).pixel(), (3, 0));
        assert_eq!(Point::new(2.49, -0.51).pixel(), (2, -1));
    }
}
