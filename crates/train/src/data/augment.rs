//! Image augmentations on plain `u8` buffers (they run on rayon threads; tch tensors are not `Sync`):
//! the weak view (random crop after padding, horizontal flip) and the strong view (RandAugment: 3 ops drawn
//! with replacement from the 14 of docs/method.md, each at a uniformly random magnitude, then Cutout, then the weak
//! view). Geometry uses inverse mapping with bilinear sampling and grey fill, as PIL's affine transform does.

use rand::Rng;

/// An image, row-major `h × w × c` (c = 1 grey or 3 RGB).
#[derive(Clone, Debug, PartialEq)]
pub struct Img {
    pub w: usize,
    pub h: usize,
    pub c: usize,
    pub data: Vec<u8>,
}

const FILL: f32 = 128.0;

impl Img {
    pub(crate) fn new(w: usize, h: usize, c: usize) -> Self {
        Img { w, h, c, data: vec![0; w * h * c] }
    }

    fn at(&self, x: usize, y: usize, ch: usize) -> u8 {
        self.data[(y * self.w + x) * self.c + ch]
    }

    fn map(&self, f: impl Fn(u8) -> u8) -> Img {
        Img { data: self.data.iter().map(|&v| f(v)).collect(), ..*self }
    }

    /// Bilinear sample at (x, y) in pixel-centre coordinates; outside the image is grey.
    fn sample(&self, x: f32, y: f32, ch: usize) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let get = |xi: f32, yi: f32| {
            if xi < 0.0 || yi < 0.0 || xi >= self.w as f32 || yi >= self.h as f32 {
                FILL
            } else {
                f32::from(self.at(xi as usize, yi as usize, ch))
            }
        };
        let top = get(x0, y0) * (1.0 - fx) + get(x0 + 1.0, y0) * fx;
        let bottom = get(x0, y0 + 1.0) * (1.0 - fx) + get(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Output pixel (x, y) takes input at `m · (x, y, 1)` (inverse affine map, about the image centre).
    fn affine(&self, m: [f32; 6]) -> Img {
        let (cx, cy) = ((self.w as f32 - 1.0) / 2.0, (self.h as f32 - 1.0) / 2.0);
        let mut out = Img::new(self.w, self.h, self.c);
        for y in 0..self.h {
            for x in 0..self.w {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let sx = m[0] * dx + m[1] * dy + m[2] + cx;
                let sy = m[3] * dx + m[4] * dy + m[5] + cy;
                for ch in 0..self.c {
                    out.data[(y * self.w + x) * self.c + ch] = self.sample(sx, sy, ch).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }

    /// Per-pixel luminance (for RGB: ITU-R 601-2, as PIL's "L").
    fn grey(&self) -> Vec<f32> {
        if self.c == 1 {
            return self.data.iter().map(|&v| f32::from(v)).collect();
        }
        self.data
            .chunks(3)
            .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
            .collect()
    }

    /// `self * (1 - a) + other * a`, clamped (PIL's ImageEnhance blend with factor `a`... from `other`).
    fn blend(&self, other: &Img, factor: f32) -> Img {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&d, &o)| (f32::from(o) + (f32::from(d) - f32::from(o)) * factor).round().clamp(0.0, 255.0) as u8)
            .collect();
        Img { data, ..*self }
    }
}

/// The 14 RandAugment operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    AutoContrast,
    Brightness,
    Color,
    Contrast,
    Equalize,
    Identity,
    Posterize,
    Rotate,
    Sharpness,
    ShearX,
    ShearY,
    Solarize,
    TranslateX,
    TranslateY,
}

pub(crate) const OPS: [Op; 14] = [
    Op::AutoContrast,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Equalize,
    Op::Identity,
    Op::Posterize,
    Op::Rotate,
    Op::Sharpness,
    Op::ShearX,
    Op::ShearY,
    Op::Solarize,
    Op::TranslateX,
    Op::TranslateY,
];

/// Applies `op` at magnitude `m` in [0, 1] (signed ops pick their sign from `neg`).
pub(crate) fn apply(img: &Img, op: Op, m: f32, neg: bool) -> Img {
    let s = if neg { -1.0 } else { 1.0 };
    match op {
        Op::Identity => img.clone(),
        Op::AutoContrast => auto_contrast(img),
        Op::Equalize => equalize(img),
        Op::Brightness => img.blend(&Img { data: vec![0; img.data.len()], ..*img }, 1.0 + s * 0.9 * m),
        Op::Color => {
            let g = img.grey();
            let degenerate =
                Img { data: g.iter().flat_map(|v| std::iter::repeat_n(v.round() as u8, img.c)).collect(), ..*img };
            img.blend(&degenerate, 1.0 + s * 0.9 * m)
        }
        Op::Contrast => {
            let mean = img.grey().iter().sum::<f32>() / (img.w * img.h) as f32;
            img.blend(&Img { data: vec![mean.round() as u8; img.data.len()], ..*img }, 1.0 + s * 0.9 * m)
        }
        Op::Sharpness => img.blend(&smooth(img), 1.0 + s * 0.9 * m),
        Op::Posterize => {
            let bits = 8 - (m * 4.0).round() as u32; // 8..4 bits kept
            let mask = !((1u16 << (8 - bits)) - 1) as u8;
            img.map(|v| v & mask)
        }
        Op::Solarize => {
            let threshold = (256.0 - m * 256.0).round() as u16;
            img.map(|v| if u16::from(v) >= threshold { 255 - v } else { v })
        }
        Op::Rotate => {
            let a = (s * 30.0 * m).to_radians();
            let (sin, cos) = a.sin_cos();
            img.affine([cos, sin, 0.0, -sin, cos, 0.0])
        }
        Op::ShearX => img.affine([1.0, s * 0.3 * m, 0.0, 0.0, 1.0, 0.0]),
        Op::ShearY => img.affine([1.0, 0.0, 0.0, s * 0.3 * m, 1.0, 0.0]),
        Op::TranslateX => img.affine([1.0, 0.0, s * 0.3 * m * img.w as f32, 0.0, 1.0, 0.0]),
        Op::TranslateY => img.affine([1.0, 0.0, 0.0, 0.0, 1.0, s * 0.3 * m * img.h as f32]),
    }
}

/// Each channel stretched to the full 0–255 range (PIL's `autocontrast`).
fn auto_contrast(img: &Img) -> Img {
    let mut out = img.clone();
    for ch in 0..img.c {
        let vals = img.data.iter().skip(ch).step_by(img.c);
        let (lo, hi) = vals.fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
        if hi > lo {
            let scale = 255.0 / f32::from(hi - lo);
            for v in out.data.iter_mut().skip(ch).step_by(img.c) {
                *v = ((f32::from(*v) - f32::from(lo)) * scale).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Each channel's histogram equalised (PIL's `equalize`).
fn equalize(img: &Img) -> Img {
    let mut out = img.clone();
    for ch in 0..img.c {
        let mut hist = [0usize; 256];
        img.data.iter().skip(ch).step_by(img.c).for_each(|&v| hist[v as usize] += 1);
        let n: usize = hist.iter().sum();
        let mut cdf = [0usize; 256];
        let mut acc = 0;
        for (i, h) in hist.iter().enumerate() {
            acc += h;
            cdf[i] = acc;
        }
        let first = cdf.iter().copied().find(|&c| c > 0).unwrap_or(0);
        if n > first {
            for v in out.data.iter_mut().skip(ch).step_by(img.c) {
                *v = ((cdf[*v as usize] - first) as f32 * 255.0 / (n - first) as f32).round() as u8;
            }
        }
    }
    out
}

/// PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 on the interior, border kept: what `Sharpness` blends
/// away from.
fn smooth(img: &Img) -> Img {
    let mut smooth = img.clone();
    for y in 1..img.h.saturating_sub(1) {
        for x in 1..img.w.saturating_sub(1) {
            for ch in 0..img.c {
                let mut acc = 0.0;
                for (dy, dx) in (-1i32..=1).flat_map(|dy| (-1i32..=1).map(move |dx| (dy, dx))) {
                    let w = if dx == 0 && dy == 0 { 5.0 } else { 1.0 };
                    acc += w * f32::from(img.at((x as i32 + dx) as usize, (y as i32 + dy) as usize, ch));
                }
                smooth.data[(y * img.w + x) * img.c + ch] = (acc / 13.0).round() as u8;
            }
        }
    }
    smooth
}

/// Weak view: with probability 0.5 a random crop after `pad`-pixel grey padding, then a horizontal flip
/// with probability 0.5.
pub fn weak(img: &Img, pad: usize, rng: &mut impl Rng) -> Img {
    let mut out = img.clone();
    if pad > 0 && rng.random_bool(0.5) {
        let ox = rng.random_range(0..=2 * pad) as isize - pad as isize;
        let oy = rng.random_range(0..=2 * pad) as isize - pad as isize;
        for y in 0..img.h {
            for x in 0..img.w {
                let (sx, sy) = (x as isize + ox, y as isize + oy);
                for ch in 0..img.c {
                    out.data[(y * img.w + x) * img.c + ch] =
                        if sx < 0 || sy < 0 || sx >= img.w as isize || sy >= img.h as isize {
                            FILL as u8
                        } else {
                            img.at(sx as usize, sy as usize, ch)
                        };
                }
            }
        }
    }
    if rng.random_bool(0.5) {
        let src = out.clone();
        for y in 0..img.h {
            for x in 0..img.w {
                for ch in 0..img.c {
                    out.data[(y * img.w + x) * img.c + ch] = src.at(img.w - 1 - x, y, ch);
                }
            }
        }
    }
    out
}

/// Cutout: a grey square of side U(0, 0.5)·width at a uniformly random centre (clipped at the borders).
pub(crate) fn cutout(img: &Img, rng: &mut impl Rng) -> Img {
    let side = (rng.random::<f32>() * 0.5 * img.w as f32).round() as isize;
    if side == 0 {
        return img.clone();
    }
    let cx = rng.random_range(0..img.w) as isize;
    let cy = rng.random_range(0..img.h) as isize;
    let mut out = img.clone();
    for y in (cy - side / 2).max(0)..(cy + (side + 1) / 2).min(img.h as isize) {
        for x in (cx - side / 2).max(0)..(cx + (side + 1) / 2).min(img.w as isize) {
            for ch in 0..img.c {
                out.data[(y as usize * img.w + x as usize) * img.c + ch] = FILL as u8;
            }
        }
    }
    out
}

/// Strong view: 3 RandAugment ops (with replacement, random magnitude and sign), Cutout, then the weak view.
pub fn strong(img: &Img, pad: usize, rng: &mut impl Rng) -> Img {
    let mut out = img.clone();
    for _ in 0..3 {
        let op = OPS[rng.random_range(0..OPS.len())];
        out = apply(&out, op, rng.random::<f32>(), rng.random_bool(0.5));
    }
    weak(&cutout(&out, rng), pad, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp(w: usize, h: usize) -> Img {
        Img { w, h, c: 1, data: (0..w * h).map(|i| ((i % w) * 255 / (w - 1)) as u8).collect() }
    }

    #[test]
    fn ops_by_hand() {
        let img = Img { w: 2, h: 1, c: 1, data: vec![100, 200] };
        assert_eq!(apply(&img, Op::AutoContrast, 0.0, false).data, vec![0, 255]);
        assert_eq!(apply(&img, Op::Solarize, 0.5, false).data, vec![100, 55]); // threshold 128
        assert_eq!(apply(&img, Op::Posterize, 1.0, false).data, vec![96, 192]); // 4 bits
        assert_eq!(apply(&img, Op::Brightness, 0.0, false), img);
        assert_eq!(apply(&img, Op::Contrast, 1.0, true).data, vec![145, 155]); // factor 0.1 towards mean 150
        assert_eq!(apply(&img, Op::Equalize, 0.0, false).data, vec![0, 255]);
        assert_eq!(apply(&img, Op::Identity, 0.7, false), img);
    }

    #[test]
    fn geometry_by_hand() {
        let img = ramp(9, 9);
        assert_eq!(apply(&img, Op::Rotate, 0.0, false), img, "zero rotation is the identity");
        // Rotating by 180° twice through 90°-equivalent magnitudes is not exact; a 30° rotation keeps the centre.
        let r = apply(&img, Op::Rotate, 1.0, false);
        assert_eq!(r.at(4, 4, 0), img.at(4, 4, 0));
        // TranslateX by 0.3·9 = 2.7 px at magnitude 1: output x takes input x + 2.7.
        let t = apply(&img, Op::TranslateX, 1.0, false);
        let want = (f32::from(img.at(2, 4, 0)) * 0.3 + f32::from(img.at(3, 4, 0)) * 0.7).round() as u8;
        assert_eq!(t.at(0, 4, 0), want);
        assert_eq!(t.at(8, 4, 0), 128, "pixels from outside are grey");
    }

    #[test]
    fn weak_strong_cutout_are_seeded_and_keep_shape() {
        let img = ramp(32, 32);
        let a = strong(&img, 2, &mut ChaCha8Rng::seed_from_u64(1));
        let b = strong(&img, 2, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        assert_eq!((a.w, a.h, a.c, a.data.len()), (32, 32, 1, 1024));
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let flips = (0..200).filter(|_| weak(&img, 0, &mut rng) != img).count();
        assert!((70..130).contains(&flips), "about half are flipped: {flips}");
        let c = cutout(&img, &mut ChaCha8Rng::seed_from_u64(3));
        assert!(c.data.iter().filter(|&&v| v == 128).count() > 0);
    }
}
