//! The image and RandAugment's 14 operations (docs/method.md) on plain `u8` buffers (they run on rayon
//! threads; tch tensors are not `Sync`), each in its PIL semantics: warps by inverse mapping with bilinear
//! sampling and grey fill, as PIL's affine transform does; point ops as a table of the 256 values per channel
//! (so [`super::views`] can chain them); Sharpness and colour Color by their neighbourhood. [`apply`] runs one
//! op, the reference the one-pass views are tested against.

#[cfg(test)]
use super::views::Plan;

/// An image, row-major `h × w × c` (c = 1 grey or 3 RGB).
#[derive(Clone, Debug, PartialEq)]
pub struct Img {
    pub w: usize,
    pub h: usize,
    pub c: usize,
    pub data: Vec<u8>,
}

/// The grey that fills what a warp, a crop or Cutout uncovers.
pub(crate) const FILL: f32 = 128.0;

impl Img {
    pub(crate) fn new(w: usize, h: usize, c: usize) -> Self {
        Img { w, h, c, data: vec![0; w * h * c] }
    }

    fn at(&self, x: usize, y: usize, ch: usize) -> u8 {
        self.data[(y * self.w + x) * self.c + ch]
    }

    /// Each channel's values through its table.
    pub(crate) fn map_luts(&self, luts: &[[u8; 256]]) -> Img {
        let mut data = self.data.clone();
        for px in data.chunks_exact_mut(self.c) {
            for (v, lut) in px.iter_mut().zip(luts) {
                *v = lut[*v as usize];
            }
        }
        Img { data, ..*self }
    }

    /// Bilinear sample at (x, y) in pixel-centre coordinates; outside the image is grey.
    pub(crate) fn sample(&self, x: f32, y: f32, ch: usize) -> f32 {
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
    #[cfg(test)]
    fn affine(&self, m: [f32; 6]) -> Img {
        let (cx, cy) = ((self.w as f32 - 1.0) / 2.0, (self.h as f32 - 1.0) / 2.0);
        let mut out = Img::new(self.w, self.h, self.c);
        for y in 0..self.h {
            for x in 0..self.w {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let sx = m[0] * dx + m[1] * dy + m[2] + cx;
                let sy = m[3] * dx + m[4] * dy + m[5] + cy;
                for ch in 0..self.c {
                    out.data[(y * self.w + x) * self.c + ch] = to_u8(self.sample(sx, sy, ch));
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

    /// `self` blended from `other` by `factor`, pixel by pixel (PIL's ImageEnhance).
    fn blend(&self, other: &Img, factor: f32) -> Img {
        let data = self.data.iter().zip(&other.data).map(|(&d, &o)| blend_value(d, o, factor)).collect();
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

/// How an operation touches the pixels: through an inverse affine map, through a table of the 256 values
/// (per channel), or through each pixel's neighbours (or other channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Warp,
    Point,
    Local,
}

impl Op {
    /// What `self` does to an image of `channels` channels (Color on a grey image is the identity).
    pub(crate) fn action(self, channels: usize) -> Action {
        match self {
            Op::Rotate | Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY => Action::Warp,
            Op::Sharpness => Action::Local,
            Op::Color if channels > 1 => Action::Local,
            _ => Action::Point,
        }
    }
}

/// The blend factor of the enhancement ops (PIL's ImageEnhance) at magnitude `m`: 1 ± 0.9·m.
pub(crate) fn enhance_factor(m: f32, neg: bool) -> f32 {
    1.0 + if neg { -0.9 } else { 0.9 } * m
}

/// The inverse affine map (about the image centre) of a [`Action::Warp`] op on a `w`-pixel-wide, `h`-high
/// image; the identity for any other op.
pub(crate) fn inverse_map(op: Op, m: f32, neg: bool, w: usize, h: usize) -> [f32; 6] {
    let s = if neg { -1.0 } else { 1.0 };
    match op {
        Op::Rotate => {
            let a = (s * 30.0 * m).to_radians();
            let (sin, cos) = a.sin_cos();
            [cos, sin, 0.0, -sin, cos, 0.0]
        }
        Op::ShearX => [1.0, s * 0.3 * m, 0.0, 0.0, 1.0, 0.0],
        Op::ShearY => [1.0, 0.0, 0.0, s * 0.3 * m, 1.0, 0.0],
        Op::TranslateX => [1.0, 0.0, s * 0.3 * m * w as f32, 0.0, 1.0, 0.0],
        Op::TranslateY => [1.0, 0.0, 0.0, 0.0, 1.0, s * 0.3 * m * h as f32],
        _ => [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    }
}

/// One value table per channel: a point operation, or a chain of them.
pub(crate) type Luts = Vec<[u8; 256]>;

pub(crate) fn identity_luts(channels: usize) -> Luts {
    vec![std::array::from_fn(|i| i as u8); channels]
}

/// Per-channel histograms of an image's values.
pub(crate) fn histograms(img: &Img) -> Vec<[u32; 256]> {
    let mut hist = vec![[0u32; 256]; img.c];
    for px in img.data.chunks_exact(img.c) {
        for (h, &v) in hist.iter_mut().zip(px) {
            h[v as usize] += 1;
        }
    }
    hist
}

/// The tables of a [`Action::Point`] op on a `channels`-channel image whose per-channel histograms `hist`
/// gives (called only by the ops that read statistics: AutoContrast, Equalize, Contrast); the identity for
/// any other op.
pub(crate) fn point_luts(op: Op, m: f32, neg: bool, channels: usize, hist: impl FnOnce() -> Vec<[u32; 256]>) -> Luts {
    let table = |f: &dyn Fn(u8) -> u8| -> [u8; 256] { std::array::from_fn(|v| f(v as u8)) };
    let same = |f: &dyn Fn(u8) -> u8| vec![table(f); channels];
    let factor = enhance_factor(m, neg);
    match op {
        Op::AutoContrast => hist().iter().map(|h| table(&auto_contrast(h))).collect(),
        Op::Equalize => hist().iter().map(|h| table(&equalizer(h))).collect(),
        Op::Brightness => same(&|v| blend_value(v, 0, factor)),
        Op::Contrast => {
            let mean = grey_mean(&hist()).round() as u8;
            same(&|v| blend_value(v, mean, factor))
        }
        Op::Posterize => {
            let bits = 8 - (m * 4.0).round() as u32; // 8..4 bits kept
            let mask = !((1u16 << (8 - bits)) - 1) as u8;
            same(&|v| v & mask)
        }
        Op::Solarize => {
            let threshold = (256.0 - m * 256.0).round() as u16;
            same(&|v| if u16::from(v) >= threshold { 255 - v } else { v })
        }
        _ => identity_luts(channels),
    }
}

/// The mean luminance (for RGB: ITU-R 601-2, as PIL's "L") of an image with per-channel histograms `hist`.
fn grey_mean(hist: &[[u32; 256]]) -> f32 {
    let sum = |h: &[u32; 256]| h.iter().enumerate().map(|(v, &n)| v as f64 * f64::from(n)).sum::<f64>();
    let n: f64 = hist[0].iter().map(|&n| f64::from(n)).sum();
    let total = match hist {
        [g] => sum(g),
        [r, g, b] => 0.299 * sum(r) + 0.587 * sum(g) + 0.114 * sum(b),
        _ => unreachable!("images are grey or RGB"),
    };
    (total / n.max(1.0)) as f32
}

/// `d` blended from `o` by `factor` (PIL's ImageEnhance), rounded and clamped.
fn blend_value(d: u8, o: u8, factor: f32) -> u8 {
    to_u8(f32::from(o) + (f32::from(d) - f32::from(o)) * factor)
}

/// `v.round().clamp(0.0, 255.0) as u8`, exactly (NaN gives 0, halves round up), without the `roundf` call the
/// baseline x86-64 target makes of `round` (a quarter of a view's time when it was one).
#[inline]
pub(crate) fn to_u8(v: f32) -> u8 {
    if v.is_nan() || v <= 0.0 {
        return 0;
    }
    if v >= 255.0 {
        return 255;
    }
    let t = v as u32;
    // `v - t` is exact here (Sterbenz), so the comparison is the rounding's own.
    (t + u32::from(v - t as f32 >= 0.5)) as u8
}

/// Applies `op` at magnitude `m` in [0, 1] (signed ops pick their sign from `neg`): the reference, one op
/// at a time, each warp resampled on its own (the training views compose them: [`super::views`]).
#[cfg(test)]
pub(crate) fn apply(img: &Img, op: Op, m: f32, neg: bool) -> Img {
    match op.action(img.c) {
        Action::Warp => img.affine(inverse_map(op, m, neg, img.w, img.h)),
        Action::Point => img.map_luts(&point_luts(op, m, neg, img.c, || histograms(img))),
        Action::Local => local(img, op, enhance_factor(m, neg)),
    }
}

/// The [`Action::Local`] ops: Sharpness, and Color on an RGB image.
pub(crate) fn local(img: &Img, op: Op, factor: f32) -> Img {
    match op {
        Op::Sharpness => img.blend(&smooth(img), factor),
        Op::Color => {
            let g = img.grey();
            let degenerate =
                Img { data: g.iter().flat_map(|v| std::iter::repeat_n(to_u8(*v), img.c)).collect(), ..*img };
            img.blend(&degenerate, factor)
        }
        _ => img.clone(),
    }
}

/// AutoContrast's map for a channel with histogram `h`: the channel stretched to 0–255 (PIL's `autocontrast`).
fn auto_contrast(h: &[u32; 256]) -> impl Fn(u8) -> u8 {
    let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
    let hi = h.iter().rposition(|&n| n > 0).unwrap_or(0);
    let scale = 255.0 / hi.saturating_sub(lo).max(1) as f32;
    move |v| {
        if hi <= lo {
            return v;
        }
        ((f32::from(v) - lo as f32) * scale).round().clamp(0.0, 255.0) as u8
    }
}

/// Equalize's map for a channel with histogram `h` (PIL's `equalize`).
fn equalizer(h: &[u32; 256]) -> impl Fn(u8) -> u8 {
    let mut cdf = [0usize; 256];
    let mut acc = 0;
    for (c, &n) in cdf.iter_mut().zip(h) {
        acc += n as usize;
        *c = acc;
    }
    let n = acc;
    let first = cdf.iter().copied().find(|&c| c > 0).unwrap_or(0);
    move |v| {
        if n > first {
            (cdf[v as usize].saturating_sub(first) as f32 * 255.0 / (n - first) as f32).round() as u8
        } else {
            v
        }
    }
}

/// PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 on the interior, border kept: what `Sharpness` blends
/// away from.
fn smooth(img: &Img) -> Img {
    let mut smooth = img.clone();
    let (c, stride, d) = (img.c, img.w * img.c, &img.data);
    let v = |i: usize| f32::from(d[i]);
    for y in 1..img.h.saturating_sub(1) {
        for x in 1..img.w.saturating_sub(1) {
            for ch in 0..c {
                let i = (y * img.w + x) * c + ch;
                // Integer sums (at most 13 · 255): exact in f32 whatever the order.
                let ring = v(i - stride - c)
                    + v(i - stride)
                    + v(i - stride + c)
                    + v(i - c)
                    + v(i + c)
                    + v(i + stride - c)
                    + v(i + stride)
                    + v(i + stride + c);
                smooth.data[i] = to_u8((ring + 5.0 * v(i)) / 13.0);
            }
        }
    }
    smooth
}

/// The reference for a view [`Plan`]: its ops one at a time as PIL applies them (each warp resampled on its
/// own), then Cutout's grey square, the crop's shift with grey where it uncovers, and the flip. Training
/// renders the same plan in one pass ([`super::views::render`]); the tests hold the two together.
#[cfg(test)]
pub(crate) fn stepwise(img: &Img, plan: &Plan) -> Img {
    let mut out = img.clone();
    for &(op, m, neg) in &plan.ops {
        out = apply(&out, op, m, neg);
    }
    let src = out.clone();
    let (ox, oy) = plan.crop.unwrap_or((0, 0));
    for y in 0..img.h {
        for x in 0..img.w {
            let sx = if plan.flip { img.w - 1 - x } else { x } as isize + ox;
            let sy = y as isize + oy;
            let inside = sx >= 0 && sy >= 0 && sx < img.w as isize && sy < img.h as isize;
            let cut = plan.cutout.is_some_and(|r| r.contains(sx, sy));
            for ch in 0..img.c {
                out.data[(y * img.w + x) * img.c + ch] =
                    if inside && !cut { src.at(sx as usize, sy as usize, ch) } else { FILL as u8 };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Img {
        Img { w, h, c: 1, data: (0..w * h).map(|i| ((i % w) * 255 / (w - 1)) as u8).collect() }
    }

    #[test]
    fn to_u8_rounds_as_round_clamp_does() {
        let mut values = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, -0.5, -0.49, 255.49, 255.5, 1e9];
        for k in 0..=256 {
            let half = k as f32 + 0.5;
            values.extend([k as f32, half, half.next_down(), half.next_up(), k as f32 - 0.5, (k as f32).next_down()]);
        }
        values.extend((0..100_000).map(|i| i as f32 * 0.002_61 - 3.0));
        for v in values {
            assert_eq!(to_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v:?}");
        }
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
}
