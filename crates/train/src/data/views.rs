//! The training views, each drawn as a [`Plan`] from the sample's seeded stream and rendered in one pass from
//! the decoded face straight into the model's input floats: the weak view (random crop after padding,
//! horizontal flip) and the strong view (RandAugment: 3 ops drawn with replacement from the 14, each at a
//! uniformly random magnitude, then Cutout, then the weak view).
//!
//! Rendering does per view what the op-by-op pipeline ([`super::augment::stepwise`], PIL's semantics) does in
//! up to seven passes: RandAugment's warps are composed into one resampling (a point that one warp pushes
//! out of the frame is grey, as there), the point ops are chained into one table per channel (the statistics
//! AutoContrast, Equalize and Contrast read are pushed through the tables, not recounted), and Cutout, the
//! crop, the flip, the grey-to-three-channel copy and the normalisation happen in the final pass that writes
//! the floats. Where the ops commute the result is the op-by-op one exactly; a point op drawn before a warp
//! is applied after it (so it also tones that warp's grey fill), and composed warps round once instead of
//! once per warp.

use std::borrow::Cow;

use rand::Rng;
use wide::{f32x8, CmpGe, CmpGt, CmpLt};

use super::augment::{
    enhance_factor, histograms, identity_luts, inverse_map, local, point_luts, to_u8, Action, Img, Luts, Op, FILL, OPS,
};
use super::batch::normalised;

/// RandAugment's ops per strong view.
const STRONG_OPS: usize = 3;

/// Cutout's square: columns `x0..x1`, rows `y0..y1` of the frame RandAugment leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    x0: isize,
    x1: isize,
    y0: isize,
    y1: isize,
}

#[cfg(test)]
impl Rect {
    pub(crate) fn contains(&self, x: isize, y: isize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// Everything random about one view, drawn before any pixel is touched.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// RandAugment's ops in the order drawn: (op, magnitude in [0, 1], negative sign). Empty for a weak view.
    pub(crate) ops: Vec<(Op, f32, bool)>,
    pub(crate) cutout: Option<Rect>,
    /// The weak view's crop after padding, as the shift it is (grey where it uncovers), when drawn.
    pub(crate) crop: Option<(isize, isize)>,
    pub(crate) flip: bool,
}

impl Plan {
    /// The weak view of a face: with probability 0.5 a random crop after `pad`-pixel grey padding, then a
    /// horizontal flip with probability 0.5.
    pub fn weak(pad: usize, rng: &mut impl Rng) -> Plan {
        let (crop, flip) = draw_crop_and_flip(pad, rng);
        Plan { ops: Vec::new(), cutout: None, crop, flip }
    }

    /// The strong view of a `w × h` face: 3 RandAugment ops (with replacement, random magnitude and sign),
    /// Cutout (a grey square of side U(0, 0.5)·width at a uniformly random centre, clipped at the borders),
    /// then the weak view.
    pub fn strong(w: usize, h: usize, pad: usize, rng: &mut impl Rng) -> Plan {
        let ops = (0..STRONG_OPS)
            .map(|_| {
                let op = OPS[rng.random_range(0..OPS.len())];
                let m = rng.random::<f32>();
                (op, m, rng.random_bool(0.5))
            })
            .collect();
        let cutout = draw_cutout(w, h, rng);
        let (crop, flip) = draw_crop_and_flip(pad, rng);
        Plan { ops, cutout, crop, flip }
    }
}

fn draw_crop_and_flip(pad: usize, rng: &mut impl Rng) -> (Option<(isize, isize)>, bool) {
    let crop = (pad > 0 && rng.random_bool(0.5)).then(|| {
        let ox = rng.random_range(0..=2 * pad) as isize - pad as isize;
        let oy = rng.random_range(0..=2 * pad) as isize - pad as isize;
        (ox, oy)
    });
    (crop, rng.random_bool(0.5))
}

fn draw_cutout(w: usize, h: usize, rng: &mut impl Rng) -> Option<Rect> {
    let side = (rng.random::<f32>() * 0.5 * w as f32).round() as isize;
    if side == 0 {
        return None;
    }
    let cx = rng.random_range(0..w) as isize;
    let cy = rng.random_range(0..h) as isize;
    Some(Rect {
        x0: (cx - side / 2).max(0),
        x1: (cx + (side + 1) / 2).min(w as isize),
        y0: (cy - side / 2).max(0),
        y1: (cy + (side + 1) / 2).min(h as isize),
    })
}

/// Renders `plan` on `img` into `out`: the model's input, planar and normalised, `3 × h × w` floats (a grey
/// face copied to the three channels), as [`super::batch::planar`] would give for the op-by-op view.
pub fn render(img: &Img, plan: &Plan, out: &mut [f32]) {
    let (w, h) = (img.w, img.h);
    assert_eq!(out.len(), 3 * w * h, "a {w} × {h} view is 3 planes of floats");
    let (base, luts) = warp_and_tone(img, plan);
    view_rows(&base, plan, &luts, |y, ch, row| {
        let planes = if img.c == 1 { 0..3 } else { ch..ch + 1 };
        for k in planes {
            for (o, &v) in out[(k * h + y) * w..(k * h + y + 1) * w].iter_mut().zip(row) {
                *o = normalised(v, k);
            }
        }
    });
}

/// The same view as an image (for previews, and the tests).
pub fn render_image(img: &Img, plan: &Plan) -> Img {
    let (base, luts) = warp_and_tone(img, plan);
    let mut data = vec![0u8; img.data.len()];
    let c = img.c;
    view_rows(&base, plan, &luts, |y, ch, row| {
        for (x, &v) in row.iter().enumerate() {
            data[(y * img.w + x) * c + ch] = v;
        }
    });
    Img { data, ..*img }
}

/// The face after RandAugment's warps (one resampling) and its neighbourhood ops, and the chained tables of
/// the point ops still to apply.
fn warp_and_tone<'a>(img: &'a Img, plan: &Plan) -> (Cow<'a, Img>, Luts) {
    let maps: Vec<[f32; 6]> = plan
        .ops
        .iter()
        .filter(|(op, ..)| op.action(img.c) == Action::Warp)
        .map(|&(op, m, neg)| inverse_map(op, m, neg, img.w, img.h))
        .collect();
    let mut base = if maps.is_empty() { Cow::Borrowed(img) } else { Cow::Owned(warp(img, &maps)) };
    let mut luts = identity_luts(img.c);
    // The histograms of `base`, counted once when a statistics op first needs them.
    let mut counted: Option<Vec<[u32; 256]>> = None;
    for &(op, m, neg) in &plan.ops {
        match op.action(img.c) {
            Action::Warp => {}
            Action::Point => {
                let next = point_luts(op, m, neg, img.c, || {
                    let h = counted.get_or_insert_with(|| histograms(&base));
                    through(h, &luts)
                });
                luts = chain(&luts, &next);
            }
            Action::Local => {
                base = Cow::Owned(local(&base.map_luts(&luts), op, enhance_factor(m, neg)));
                luts = identity_luts(img.c);
                counted = None;
            }
        }
    }
    (base, luts)
}

/// The histograms of an image's values after its tables `luts`, from the histograms `hist` before them.
fn through(hist: &[[u32; 256]], luts: &[[u8; 256]]) -> Vec<[u32; 256]> {
    hist.iter()
        .zip(luts)
        .map(|(h, lut)| {
            let mut after = [0u32; 256];
            for (v, &n) in h.iter().enumerate() {
                after[lut[v] as usize] += n;
            }
            after
        })
        .collect()
}

/// `first`, then `then`, as one table per channel.
fn chain(first: &[[u8; 256]], then: &[[u8; 256]]) -> Luts {
    first.iter().zip(then).map(|(a, b)| std::array::from_fn(|v| b[a[v] as usize])).collect()
}

/// `img` through the warps `maps` (inverse maps about the centre, in the order applied), resampled once:
/// each output pixel is traced back through every warp, and is grey where one of them took it from outside
/// the frame.
fn warp(img: &Img, maps: &[[f32; 6]]) -> Img {
    let (first, later) = maps.split_first().expect("a warp has at least one map");
    let frame = Frame::of(img);
    let mut out = Img::new(img.w, img.h, img.c);
    for (y, row) in out.data.chunks_exact_mut(img.w * img.c).enumerate() {
        let dy = y as f32 - frame.cy;
        let mut x = 0;
        while x < img.w {
            // Eight pixels at a time where each lane's four neighbours are all inside or all outside.
            if x + LANES <= img.w {
                let dx = f32x8::new(std::array::from_fn(|l| (x + l) as f32 - frame.cx));
                let (dx, dy, gone) = trace8(&frame, later, dx, f32x8::splat(dy));
                let m = |k: usize| f32x8::splat(first[k]);
                let sx = m(0) * dx + m(1) * dy + m(2) + frame.cx;
                let sy = m(3) * dx + m(4) * dy + m(5) + frame.cy;
                if sample8(img, sx, sy, gone, &mut row[x * img.c..(x + LANES) * img.c]) {
                    x += LANES;
                    continue;
                }
            }
            let end = (x + LANES).min(img.w);
            for (x, px) in row.chunks_exact_mut(img.c).enumerate().take(end).skip(x) {
                warp_pixel(img, &frame, first, later, x as f32 - frame.cx, dy, px);
            }
            x = end;
        }
    }
    out
}

/// An image's size and centre, as the warps see them.
struct Frame {
    w: f32,
    h: f32,
    cx: f32,
    cy: f32,
}

impl Frame {
    fn of(img: &Img) -> Frame {
        let (w, h) = (img.w as f32, img.h as f32);
        Frame { w, h, cx: (w - 1.0) / 2.0, cy: (h - 1.0) / 2.0 }
    }
}

/// One output pixel at (dx, dy) from the centre, traced back through `later` (last applied first), each
/// checked against the frame, then sampled through `first`.
fn warp_pixel(img: &Img, f: &Frame, first: &[f32; 6], later: &[[f32; 6]], dx: f32, dy: f32, px: &mut [u8]) {
    let (mut dx, mut dy) = (dx, dy);
    for m in later.iter().rev() {
        let (sx, sy) = (m[0] * dx + m[1] * dy + m[2], m[3] * dx + m[4] * dy + m[5]);
        // Wholly outside the frame of the image this warp read: grey there, whatever came before.
        if !(sx + f.cx > -1.0 && sx + f.cx < f.w && sy + f.cy > -1.0 && sy + f.cy < f.h) {
            px.fill(FILL as u8);
            return;
        }
        (dx, dy) = (sx, sy);
    }
    // The same arithmetic as one warp of the op-by-op pipeline, so a single warp is bit-identical.
    let sx = first[0] * dx + first[1] * dy + first[2] + f.cx;
    let sy = first[3] * dx + first[4] * dy + first[5] + f.cy;
    sample_into(img, sx, sy, px);
}

const LANES: usize = 8;

/// [`warp_pixel`]'s tracing for eight pixels at once: their offsets from the centre before the first warp,
/// and which lanes a later warp read from outside its frame (grey).
fn trace8(f: &Frame, later: &[[f32; 6]], dx: f32x8, dy: f32x8) -> (f32x8, f32x8, f32x8) {
    let (mut dx, mut dy, mut gone) = (dx, dy, f32x8::ZERO);
    let (cx, cy, w, h, minus_one) =
        (f32x8::splat(f.cx), f32x8::splat(f.cy), f32x8::splat(f.w), f32x8::splat(f.h), f32x8::splat(-1.0));
    for m in later.iter().rev() {
        let k = |i: usize| f32x8::splat(m[i]);
        let (sx, sy) = (k(0) * dx + k(1) * dy + k(2), k(3) * dx + k(4) * dy + k(5));
        let (ax, ay) = (sx + cx, sy + cy);
        let framed = ax.cmp_gt(minus_one) & ax.cmp_lt(w) & ay.cmp_gt(minus_one) & ay.cmp_lt(h);
        gone |= !framed;
        (dx, dy) = (sx, sy);
    }
    (dx, dy, gone)
}

/// [`sample_into`] for eight pixels at once, lane by lane the same arithmetic, lanes in `gone` grey; false
/// (and nothing written) where a lane's neighbours are partly inside the image (the frame's edge: left to the
/// scalar path).
fn sample8(img: &Img, x: f32x8, y: f32x8, gone: f32x8, out: &mut [u8]) -> bool {
    let (xi, yi) = (x.trunc_int(), y.trunc_int());
    let (x0, y0) = (f32x8::from_i32x8(xi), f32x8::from_i32x8(yi));
    let one = f32x8::splat(1.0);
    let zero = f32x8::ZERO;
    let (w, h) = (f32x8::splat(img.w as f32), f32x8::splat(img.h as f32));
    let inside = x.cmp_ge(zero) & y.cmp_ge(zero) & (x0 + one).cmp_lt(w) & (y0 + one).cmp_lt(h) & !gone;
    // All four neighbours outside: grey (the bilinear blend of four greys, rounded).
    let outside = x.cmp_lt(-one) | y.cmp_lt(-one) | x.cmp_ge(w) | y.cmp_ge(h) | gone;
    if !(inside | outside).all() {
        return false;
    }
    let (fx, fy) = (x - x0, y - y0);
    let (xa, ya, lanes_in) = (xi.to_array(), yi.to_array(), inside.move_mask());
    let (c, stride, d) = (img.c, img.w * img.c, &img.data);
    let at: [usize; LANES] =
        std::array::from_fn(
            |l| {
                if lanes_in & (1 << l) != 0 {
                    (ya[l] as usize * img.w + xa[l] as usize) * c
                } else {
                    0
                }
            },
        );
    for ch in 0..c {
        let load = |off: usize| f32x8::new(std::array::from_fn(|l| f32::from(d[at[l] + ch + off])));
        let top = load(0) * (one - fx) + load(c) * fx;
        let bottom = load(stride) * (one - fx) + load(stride + c) * fx;
        // to_u8, lane by lane: the value is never negative here, so clamp above, then round half up.
        let v = (top * (one - fy) + bottom * fy).min(f32x8::splat(255.0));
        let t = f32x8::from_i32x8(v.trunc_int());
        let r = inside.blend(t + (v - t).cmp_ge(f32x8::splat(0.5)).blend(one, zero), f32x8::splat(FILL));
        for (l, &r) in r.to_array().iter().enumerate() {
            out[l * c + ch] = r as u8;
        }
    }
    true
}

/// `img`'s bilinear sample at (x, y) into `px` (one value per channel), grey outside: [`Img::sample`]'s
/// arithmetic, with its four neighbours read directly where they are all inside (nearly every pixel).
fn sample_into(img: &Img, x: f32, y: f32, px: &mut [u8]) {
    // Non-negative, so truncation is the floor (and no `floorf` call).
    let (x0, y0) = (x as usize as f32, y as usize as f32);
    if !(x >= 0.0 && y >= 0.0 && x0 + 1.0 < img.w as f32 && y0 + 1.0 < img.h as f32) {
        for (ch, v) in px.iter_mut().enumerate() {
            *v = to_u8(img.sample(x, y, ch));
        }
        return;
    }
    let (fx, fy) = (x - x0, y - y0);
    let (c, stride) = (img.c, img.w * img.c);
    let at = (y0 as usize * img.w + x0 as usize) * c;
    let d = &img.data;
    for (ch, v) in px.iter_mut().enumerate() {
        let (i, get) = (at + ch, |i: usize| f32::from(d[i]));
        let top = get(i) * (1.0 - fx) + get(i + c) * fx;
        let bottom = get(i + stride) * (1.0 - fx) + get(i + stride + c) * fx;
        *v = to_u8(top * (1.0 - fy) + bottom * fy);
    }
}

/// The final pass, row by row and channel by channel: the crop's shift (grey where it uncovers), Cutout's
/// square, the chained tables, the flip; `emit(y, channel, values)` takes each finished row.
fn view_rows(base: &Img, plan: &Plan, luts: &[[u8; 256]], mut emit: impl FnMut(usize, usize, &[u8])) {
    let (w, h, c) = (base.w, base.h, base.c);
    let untoned = luts == identity_luts(c).as_slice();
    let (ox, oy) = plan.crop.unwrap_or((0, 0));
    // Output columns whose source column `x + ox` is inside the frame.
    let (lo, hi) = ((-ox).clamp(0, w as isize) as usize, (w as isize - ox).clamp(0, w as isize) as usize);
    let mut row = vec![FILL as u8; w];
    for y in 0..h {
        let sy = y as isize + oy;
        let cut = plan.cutout.filter(|r| (r.y0..r.y1).contains(&sy));
        for (ch, lut) in luts.iter().enumerate() {
            row.fill(FILL as u8);
            if (0..h as isize).contains(&sy) && lo < hi {
                let line = &base.data[sy as usize * w * c..(sy as usize + 1) * w * c];
                let src = (lo as isize + ox) as usize;
                if c == 1 && untoned {
                    row[lo..hi].copy_from_slice(&line[src..src + hi - lo]);
                } else {
                    for (v, px) in row[lo..hi].iter_mut().zip(line[src * c..].chunks_exact(c)) {
                        *v = lut[px[ch] as usize];
                    }
                }
                if let Some(r) = cut {
                    let (x0, x1) =
                        ((r.x0 - ox).clamp(0, w as isize) as usize, (r.x1 - ox).clamp(0, w as isize) as usize);
                    row[x0..x1.max(x0)].fill(FILL as u8);
                }
                if plan.flip {
                    row.reverse();
                }
            }
            emit(y, ch, &row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::stepwise;
    use crate::data::batch::planar;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A face-like test image: smooth gradients plus a bright blob, so every op changes something.
    fn face(w: usize, h: usize, c: usize) -> Img {
        let data = (0..w * h * c)
            .map(|i| {
                let (p, ch) = (i / c, i % c);
                let (x, y) = ((p % w) as f32, (p / w) as f32);
                let blob = 90.0 * (-((x - 0.6 * w as f32).powi(2) + (y - 0.4 * h as f32).powi(2)) / 40.0).exp();
                (20.0 + 150.0 * x / w as f32 + 40.0 * y / h as f32 + blob + 13.0 * ch as f32).min(255.0) as u8
            })
            .collect();
        Img { w, h, c, data }
    }

    fn plan(ops: &[(Op, f32, bool)], cutout: Option<Rect>, crop: Option<(isize, isize)>, flip: bool) -> Plan {
        Plan { ops: ops.to_vec(), cutout, crop, flip }
    }

    #[test]
    fn draws_are_seeded_and_skip_what_is_not_drawn() {
        let a = Plan::strong(32, 32, 2, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, Plan::strong(32, 32, 2, &mut ChaCha8Rng::seed_from_u64(1)));
        assert_eq!(a.ops.len(), 3);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let weak: Vec<Plan> = (0..400).map(|_| Plan::weak(2, &mut rng)).collect();
        let flips = weak.iter().filter(|p| p.flip).count();
        let crops = weak.iter().filter(|p| p.crop.is_some()).count();
        assert!((160..240).contains(&flips) && (160..240).contains(&crops), "about half: {flips} flips, {crops} crops");
        assert!(weak.iter().filter_map(|p| p.crop).all(|(x, y)| (-2..=2).contains(&x) && (-2..=2).contains(&y)));
        // No padding: no crop is drawn, and nothing is consumed for it.
        assert!((0..50).all(|_| Plan::weak(0, &mut rng).crop.is_none()));
    }

    #[test]
    fn weak_views_are_the_op_by_op_crop_and_flip_exactly() {
        let img = face(16, 12, 1);
        // A hand-computed pixel: shift (2, -1) then flip: output (0, 0) reads (15 + 2, -1): outside → grey;
        // output (3, 5) reads (12 + 2, 4) = (14, 4).
        let p = plan(&[], None, Some((2, -1)), true);
        let v = render_image(&img, &p);
        assert_eq!(v.data[0], 128);
        assert_eq!(v.data[5 * 16 + 3], img.data[4 * 16 + 14]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let p = Plan::weak(3, &mut rng);
            assert_eq!(render_image(&img, &p), stepwise(&img, &p));
        }
    }

    #[test]
    fn chained_point_ops_equal_their_op_by_op_application() {
        // Point ops (the statistics ops among them), any order, grey and colour: exact, since the statistics are
        // pushed through the tables.
        use Op::*;
        let chains: [&[(Op, f32, bool)]; 5] = [
            &[(Brightness, 0.7, true), (AutoContrast, 0.0, false), (Equalize, 0.0, false)],
            &[(Posterize, 0.9, false), (Contrast, 0.6, true), (Solarize, 0.4, false)],
            &[(Equalize, 0.0, false), (Contrast, 0.8, false), (AutoContrast, 0.0, false)],
            &[(Solarize, 0.2, false), (Color, 0.5, true), (Brightness, 0.3, false)],
            &[(Contrast, 0.3, false), (Sharpness, 0.9, false), (Equalize, 0.0, false)],
        ];
        for c in [1, 3] {
            let img = face(20, 20, c);
            for ops in chains {
                let p = plan(ops, Some(Rect { x0: 3, x1: 9, y0: 12, y1: 20 }), Some((-2, 1)), true);
                assert_eq!(render_image(&img, &p), stepwise(&img, &p), "{ops:?} on {c} channels");
            }
        }
    }

    #[test]
    fn one_warp_is_exact_and_composed_warps_differ_by_rounding_only() {
        let img = face(24, 24, 1);
        for op in [Op::Rotate, Op::ShearX, Op::ShearY, Op::TranslateX, Op::TranslateY] {
            let p = plan(&[(op, 0.8, true), (Op::Equalize, 0.0, false)], None, Some((1, 2)), false);
            assert_eq!(render_image(&img, &p), stepwise(&img, &p), "{op:?}");
        }
        // Two and three warps: the op-by-op pipeline rounds to u8 after each, the composed one once; a pixel
        // differs by at most a couple of grey levels away from the frame's edge.
        let p =
            plan(&[(Op::Rotate, 0.5, false), (Op::ShearX, 0.4, true), (Op::TranslateY, 0.2, false)], None, None, false);
        let (a, b) = (render_image(&img, &p), stepwise(&img, &p));
        let mut worst = 0;
        for y in 4..20 {
            for x in 4..20 {
                worst = worst.max(a.data[y * 24 + x].abs_diff(b.data[y * 24 + x]));
            }
        }
        assert!(worst <= 3, "composed vs op-by-op warps: {worst} grey levels");
        // A shift of 7.2 px to the left, then 7.2 px back: op by op the left 7 columns stay grey (the second
        // shift reads them from outside its frame); the composed map, the identity, must not bring the face back.
        let p = plan(&[(Op::TranslateX, 1.0, false), (Op::TranslateX, 1.0, true)], None, None, false);
        let (a, b) = (render_image(&img, &p), stepwise(&img, &p));
        for y in 0..24 {
            let (ra, rb) = (&a.data[y * 24..][..24], &b.data[y * 24..][..24]);
            assert!(ra[..6].iter().chain(&rb[..6]).all(|&v| v == 128), "row {y}: {ra:?}");
            assert!((8..15).all(|x| ra[x].abs_diff(rb[x]) <= 3 && ra[x] != 128), "row {y}: {ra:?} vs {rb:?}");
        }
    }

    #[test]
    fn eight_lanes_at_once_equal_the_pixel_by_pixel_warp() {
        // A width that leaves a tail, one to three warps, grey and colour: the SIMD blocks and the scalar
        // tracing must agree bit for bit (the frame's edges go through both).
        for c in [1, 3] {
            let img = face(37, 29, c);
            let frame = Frame::of(&img);
            let map = |op, m, neg| inverse_map(op, m, neg, img.w, img.h);
            let chains = [
                vec![map(Op::Rotate, 0.9, false)],
                vec![map(Op::Rotate, 0.6, true), map(Op::ShearX, 0.8, false)],
                vec![map(Op::TranslateX, 0.7, false), map(Op::Rotate, 1.0, false), map(Op::ShearY, 0.5, true)],
            ];
            for maps in chains {
                let got = warp(&img, &maps);
                let (first, later) = maps.split_first().unwrap();
                for (i, px) in got.data.chunks_exact(c).enumerate() {
                    let mut want = vec![0u8; c];
                    let (x, y) = ((i % img.w) as f32 - frame.cx, (i / img.w) as f32 - frame.cy);
                    warp_pixel(&img, &frame, first, later, x, y, &mut want);
                    assert_eq!(px, &want[..], "pixel {i} of {} warps, {c} channels", maps.len());
                }
            }
        }
    }

    #[test]
    fn the_floats_are_the_planar_normalised_view() {
        for c in [1, 3] {
            let img = face(18, 18, c);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            for _ in 0..30 {
                let p = Plan::strong(18, 18, 2, &mut rng);
                let mut out = vec![0f32; 3 * 18 * 18];
                render(&img, &p, &mut out);
                assert_eq!(out, planar(&render_image(&img, &p)));
            }
        }
    }
}
