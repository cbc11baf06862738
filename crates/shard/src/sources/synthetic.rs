//! The built-in synthetic face generator: the project's default data, deterministic by seed.
//!
//! Grey faces for the 8 FERPlus classes are drawn from facial action units (AUs) a FACS reader would
//! recognise — brows (AU1/2 raise, AU4 lower), lids (AU5 raise, AU6 cheek raise, AU7 tighten), nose
//! wrinkle (AU9), upper-lip raise (AU10), lip corners (AU12 pull, AU14 one-sided dimpler, AU15 depress), lip
//! stretch (AU20), lip press (AU24) and jaw drop (AU26) — at a random intensity, on faces whose identity
//! (shape, feature placement, skin, hair), pose, scale, lighting, blur, noise and occlusion vary. At low
//! intensity an expression blends with its confusable partner (fear/surprise, anger/disgust,
//! sadness/neutral, contempt/happiness). Ten simulated annotators then vote from what they can see (an
//! occluded mouth hides the mouth AUs), so some faces are ambiguous exactly as in FER+.
//!
//! The output is the FER+ folder layout (`FER2013{Train,Valid,Test}/` + `label.csv`), so it goes through the
//! real FERPlus reader and protocol. This module only generates; it never writes shards.

use std::f32::consts::PI;
use std::path::Path;

use anyhow::Context;
use exchange::atomic::StagingDir;
use image::GrayImage;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Number of action-unit parameters.
const N_AU: usize = 14;
// Indices into the AU vector.
const AU1: usize = 0; // inner brow raiser
const AU2: usize = 1; // outer brow raiser
const AU4: usize = 2; // brow lowerer
const AU5: usize = 3; // upper lid raiser
const AU6: usize = 4; // cheek raiser
const AU7: usize = 5; // lid tightener
const AU9: usize = 6; // nose wrinkler
const AU10: usize = 7; // upper lip raiser
const AU12: usize = 8; // lip corner puller
const AU14: usize = 9; // dimpler, one side (contempt)
const AU15: usize = 10; // lip corner depressor
const AU20: usize = 11; // lip stretcher
const AU24: usize = 12; // lip presser
const AU26: usize = 13; // jaw drop

/// AUs read from the upper face (hidden by an eye occluder) and from the lower face (hidden by a mouth one).
const UPPER: [usize; 6] = [AU1, AU2, AU4, AU5, AU6, AU7];
const LOWER: [usize; 8] = [AU9, AU10, AU12, AU14, AU15, AU20, AU24, AU26];

/// EMFACS-style prototypes at full intensity, in FERPlus class order.
fn prototype(class: usize) -> [f32; N_AU] {
    let mut p = [0.0; N_AU];
    let set = |p: &mut [f32; N_AU], v: &[(usize, f32)]| v.iter().for_each(|&(i, x)| p[i] = x);
    match class {
        0 => {}                                                                                        // neutral
        1 => set(&mut p, &[(AU6, 0.9), (AU12, 1.0), (AU26, 0.3)]),                                     // happiness
        2 => set(&mut p, &[(AU1, 1.0), (AU2, 1.0), (AU5, 1.0), (AU26, 1.0)]),                          // surprise
        3 => set(&mut p, &[(AU1, 0.9), (AU4, 0.6), (AU7, 0.3), (AU15, 1.0)]),                          // sadness
        4 => set(&mut p, &[(AU4, 1.0), (AU5, 0.4), (AU7, 0.8), (AU24, 1.0)]),                          // anger
        5 => set(&mut p, &[(AU4, 0.4), (AU9, 1.0), (AU10, 1.0), (AU15, 0.4)]),                         // disgust
        6 => set(&mut p, &[(AU1, 0.9), (AU2, 0.6), (AU4, 0.6), (AU5, 1.0), (AU20, 1.0), (AU26, 0.5)]), // fear
        7 => set(&mut p, &[(AU14, 1.0), (AU7, 0.2)]),                                                  // contempt
        _ => unreachable!("8 classes"),
    }
    p
}

/// The class an expression drifts towards at low intensity.
fn confusable(class: usize) -> usize {
    [3, 7, 6, 0, 5, 4, 2, 1][class]
}

/// Class frequencies: imbalanced like FER+, less extremely (FER+ has <1 % disgust and contempt).
const PRIOR: [f32; 8] = [0.25, 0.20, 0.12, 0.12, 0.10, 0.07, 0.07, 0.07];

/// Bump whenever the generator's drawing or voting changes, so earlier generated data counts as stale.
pub(crate) const GENERATOR_VERSION: u32 = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct GenConfig {
    /// [`GENERATOR_VERSION`] of the code that made (or is to make) the faces.
    pub(crate) version: u32,
    pub(crate) seed: u64,
    /// Image side in pixels.
    pub(crate) size: u32,
    pub(crate) train: usize,
    pub(crate) valid: usize,
    pub(crate) test: usize,
    pub(crate) annotators: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self { version: GENERATOR_VERSION, seed: 7, size: 48, train: 6000, valid: 2000, test: 3000, annotators: 10 }
    }
}

/// Everything drawn for one face.
#[derive(Clone, Debug)]
struct Face {
    au: [f32; N_AU],
    // identity
    face_w: f32,
    face_h: f32,
    eye_y: f32,
    eye_dx: f32,
    eye_size: f32,
    brow_gap: f32,
    nose_y: f32,
    mouth_y: f32,
    mouth_w: f32,
    skin: f32,
    hair: f32,
    bg: f32,
    // pose and imaging
    angle: f32,
    shift: (f32, f32),
    scale: f32,
    light: (f32, f32),
    blur: f32,
    noise: f32,
    /// Occluder: 0 none, 1 over the eyes, 2 over the mouth, 3 a corner patch.
    occluder: u8,
    occ_level: f32,
    occ_shift: f32,
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller; rand_distr is not worth a dependency for this.
    let u1: f32 = rng.random_range(1e-7..1.0);
    let u2: f32 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn sample_class(rng: &mut ChaCha8Rng) -> usize {
    let mut x = rng.random::<f32>() * PRIOR.iter().sum::<f32>();
    for (i, p) in PRIOR.iter().enumerate() {
        if x < *p {
            return i;
        }
        x -= p;
    }
    PRIOR.len() - 1
}

fn sample_face(rng: &mut ChaCha8Rng, class: usize) -> Face {
    // Intensity skewed low so a good share of faces are subtle.
    let intensity = 0.15 + 0.85 * rng.random::<f32>().powf(0.8);
    let partner = prototype(confusable(class));
    // A neutral face only hints at its partner (sadness); expressions drift further at low intensity.
    let drift = if class == 0 { 0.3 } else { 0.7 };
    let blend = (1.0 - intensity) * rng.random_range(0.0..drift);
    let proto = prototype(class);
    let mut au = [0.0f32; N_AU];
    for i in 0..N_AU {
        let natural = 0.08 * gauss(rng); // resting faces are never exactly neutral
        au[i] = (intensity * proto[i] + blend * partner[i] + natural).clamp(-0.2, 1.3);
    }
    let occluder = match rng.random::<f32>() {
        x if x < 0.06 => 1,
        x if x < 0.12 => 2,
        x if x < 0.18 => 3,
        _ => 0,
    };
    Face {
        au,
        face_w: rng.random_range(0.62..0.78),
        face_h: rng.random_range(0.80..0.95),
        eye_y: rng.random_range(-0.22..-0.10),
        eye_dx: rng.random_range(0.24..0.33),
        eye_size: rng.random_range(0.07..0.10),
        brow_gap: rng.random_range(0.13..0.19),
        nose_y: rng.random_range(0.14..0.24),
        mouth_y: rng.random_range(0.38..0.50),
        mouth_w: rng.random_range(0.20..0.29),
        skin: rng.random_range(0.45..0.85),
        hair: rng.random_range(0.05..0.55),
        bg: rng.random_range(0.1..0.9),
        angle: 0.16 * gauss(rng),
        shift: (0.06 * gauss(rng), 0.06 * gauss(rng)),
        scale: rng.random_range(0.85..1.12),
        light: (rng.random_range(-0.45..0.45), rng.random_range(-0.3..0.3)),
        blur: rng.random_range(0.0..1.1),
        noise: rng.random_range(0.0..0.07),
        occluder,
        occ_level: rng.random_range(0.0..1.0),
        occ_shift: rng.random_range(-0.25..0.25),
    }
}

/// A float canvas at `ss`× the output resolution, drawn in face coordinates ([-1, 1]², y down).
struct Canvas {
    n: usize,
    px: Vec<f32>,
    // face -> canvas transform
    cos: f32,
    sin: f32,
    s: f32,
    cx: f32,
    cy: f32,
}

impl Canvas {
    fn new(n: usize, f: &Face) -> Self {
        let s = n as f32 / 2.0 * 0.92 * f.scale;
        Self {
            n,
            px: vec![f.bg; n * n],
            cos: f.angle.cos(),
            sin: f.angle.sin(),
            s,
            cx: n as f32 / 2.0 + f.shift.0 * n as f32 / 2.0,
            cy: n as f32 / 2.0 + f.shift.1 * n as f32 / 2.0,
        }
    }

    fn to_px(&self, u: f32, v: f32) -> (f32, f32) {
        (self.cx + self.s * (self.cos * u - self.sin * v), self.cy + self.s * (self.sin * u + self.cos * v))
    }

    fn to_face(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = ((x - self.cx) / self.s, (y - self.cy) / self.s);
        (self.cos * dx + self.sin * dy, -self.sin * dx + self.cos * dy)
    }

    /// Pixels whose centre may lie within `r` (face units) of the face-space box.
    fn bbox(&self, u0: f32, v0: f32, u1: f32, v1: f32, r: f32) -> (usize, usize, usize, usize) {
        let corners = [
            self.to_px(u0 - r, v0 - r),
            self.to_px(u1 + r, v0 - r),
            self.to_px(u0 - r, v1 + r),
            self.to_px(u1 + r, v1 + r),
        ];
        let lo_x = corners.iter().map(|c| c.0).fold(f32::MAX, f32::min).floor().max(0.0) as usize;
        let hi_x = (corners.iter().map(|c| c.0).fold(f32::MIN, f32::max).ceil().max(0.0) as usize).min(self.n);
        let lo_y = corners.iter().map(|c| c.1).fold(f32::MAX, f32::min).floor().max(0.0) as usize;
        let hi_y = (corners.iter().map(|c| c.1).fold(f32::MIN, f32::max).ceil().max(0.0) as usize).min(self.n);
        (lo_x, hi_x, lo_y, hi_y)
    }

    /// Calls `f(u, v, pixel)` for the pixels near a face-space box.
    fn each(&mut self, b: (f32, f32, f32, f32), r: f32, mut f: impl FnMut(f32, f32, &mut f32)) {
        let (x0, x1, y0, y1) = self.bbox(b.0, b.1, b.2, b.3, r);
        for y in y0..y1 {
            for x in x0..x1 {
                let (u, v) = self.to_face(x as f32 + 0.5, y as f32 + 0.5);
                let i = y * self.n + x;
                f(u, v, &mut self.px[i]);
            }
        }
    }

    /// Filled ellipse with a soft edge, blending towards `value` with opacity `alpha`.
    fn ellipse(&mut self, cu: f32, cv: f32, ru: f32, rv: f32, value: f32, alpha: f32) {
        if ru <= 1e-4 || rv <= 1e-4 {
            return;
        }
        let edge = 1.5 / self.s;
        self.each((cu - ru, cv - rv, cu + ru, cv + rv), edge, |u, v, p| {
            let d = (((u - cu) / ru).powi(2) + ((v - cv) / rv).powi(2)).sqrt();
            let a = ((1.0 - d) * ru.min(rv) / edge + 0.5).clamp(0.0, 1.0) * alpha;
            *p += (value - *p) * a;
        });
    }

    /// A stroked polyline of half-width `w`.
    fn stroke(&mut self, pts: &[(f32, f32)], w: f32, value: f32, alpha: f32) {
        let edge = 1.0 / self.s;
        for seg in pts.windows(2) {
            let ((a0, b0), (a1, b1)) = (seg[0], seg[1]);
            let bb = (a0.min(a1), b0.min(b1), a0.max(a1), b0.max(b1));
            self.each(bb, w + edge, |u, v, p| {
                let (du, dv) = (a1 - a0, b1 - b0);
                let len2 = (du * du + dv * dv).max(1e-9);
                let t = (((u - a0) * du + (v - b0) * dv) / len2).clamp(0.0, 1.0);
                let d = ((u - a0 - t * du).powi(2) + (v - b0 - t * dv).powi(2)).sqrt();
                let a = ((w - d) / edge + 0.5).clamp(0.0, 1.0) * alpha;
                // max-blend so overlapping segments of one stroke do not darken their joints
                let target = *p + (value - *p) * a;
                if (value < *p && target < *p) || (value > *p && target > *p) {
                    *p = target;
                }
            });
        }
    }

    /// Quadratic curve from `a` to `b` through control `c`, as a polyline.
    fn curve(a: (f32, f32), c: (f32, f32), b: (f32, f32)) -> Vec<(f32, f32)> {
        (0..=8)
            .map(|i| {
                let t = i as f32 / 8.0;
                let m = 1.0 - t;
                (m * m * a.0 + 2.0 * m * t * c.0 + t * t * b.0, m * m * a.1 + 2.0 * m * t * c.1 + t * t * b.1)
            })
            .collect()
    }
}

/// One face at `size` px: drawn at twice the size, feature by feature (each in its own function, in painting
/// order), then downsampled, blurred and given sensor noise.
fn render(f: &Face, size: u32, rng: &mut ChaCha8Rng) -> GrayImage {
    let mut c = Canvas::new(size as usize * SUPERSAMPLE, f);
    draw_head(&mut c, f);
    draw_forehead(&mut c, f);
    draw_eyes_and_brows(&mut c, f);
    draw_nose(&mut c, f);
    draw_mouth(&mut c, f);
    draw_occluder(&mut c, f);
    finish(&c, f, size, rng)
}

/// The canvas is drawn at this multiple of the output size, then averaged down (anti-aliasing).
const SUPERSAMPLE: usize = 2;

/// Background gradient, hair, and the face with directional light.
fn draw_head(c: &mut Canvas, f: &Face) {
    let bg = f.bg;
    c.each((-3.0, -3.0, 3.0, 3.0), 0.0, |u, v, p| *p = (bg + 0.15 * (u * 0.3 + v * 0.2)).clamp(0.0, 1.0));
    c.ellipse(0.0, -0.12, f.face_w * 1.12, f.face_h * 0.98, f.hair, 1.0);
    let (skin, light) = (f.skin, f.light);
    let (fw, fh) = (f.face_w, f.face_h);
    let edge = 1.5 / c.s;
    c.each((-fw, -fh, fw, fh), edge, |u, v, p| {
        let d = ((u / fw).powi(2) + (v / fh).powi(2)).sqrt();
        let alpha = ((1.0 - d) * fw / edge + 0.5).clamp(0.0, 1.0);
        let shade = skin * (1.0 + light.0 * u + light.1 * v - 0.25 * d * d);
        *p += (shade.clamp(0.0, 1.0) - *p) * alpha;
    });
}

/// Forehead wrinkles (AU1+2).
fn draw_forehead(c: &mut Canvas, f: &Face) {
    let a = &f.au;
    let dark = f.skin * 0.25;
    let fore = ((a[AU1] + a[AU2]) * 0.5).max(0.0);
    if fore > 0.25 {
        for k in 0..2 {
            let y = f.eye_y - f.brow_gap - 0.13 - 0.07 * k as f32;
            c.stroke(
                &Canvas::curve((-0.3, y + 0.02), (0.0, y - 0.02), (0.3, y + 0.02)),
                0.012,
                dark,
                (fore - 0.25) * 0.9,
            );
        }
    }
}

/// Eyes, brows and cheeks, mirrored; AU14 acts on the right corner only.
fn draw_eyes_and_brows(c: &mut Canvas, f: &Face) {
    let a = &f.au;
    let dark = f.skin * 0.25;
    let skin = f.skin;
    for side in [-1.0f32, 1.0] {
        let ex = side * f.eye_dx;
        let open = (1.0 + 0.8 * a[AU5] - 0.55 * a[AU7] - 0.45 * a[AU6]).clamp(0.15, 2.0);
        let (ew, eh) = (f.eye_size * 1.7, f.eye_size * 0.75 * open);
        c.ellipse(ex, f.eye_y, ew, eh, (skin * 1.25).min(1.0), 0.9); // sclera
        c.ellipse(ex, f.eye_y, eh.min(ew * 0.45), eh, dark * 0.6, 1.0); // iris
        c.stroke(&Canvas::curve((ex - ew, f.eye_y), (ex, f.eye_y - 2.0 * eh), (ex + ew, f.eye_y)), 0.014, dark, 0.9);
        // brows: inner end near the nose
        let base = f.eye_y - f.brow_gap;
        let inner_x = side * (f.eye_dx - 0.13 - 0.04 * a[AU4].max(0.0));
        let outer_x = side * (f.eye_dx + 0.15);
        let inner_y = base - 0.12 * a[AU1] + 0.07 * a[AU4] + 0.03 * a[AU9];
        let outer_y = base - 0.10 * a[AU2] + 0.03 * a[AU4] + 0.02;
        let mid = ((inner_x + outer_x) / 2.0, (inner_y + outer_y) / 2.0 - 0.035);
        c.stroke(&Canvas::curve((inner_x, inner_y), mid, (outer_x, outer_y)), 0.028, dark * 0.8, 0.95);
        // glabella furrow with AU4
        if a[AU4] > 0.3 {
            let x = side * 0.04;
            c.stroke(&[(x, base + 0.01), (x * 0.7, base + 0.09)], 0.010, dark, (a[AU4] - 0.3) * 0.8);
        }
        // cheek raise: bulge line under the eye (AU6)
        if a[AU6] > 0.2 {
            let y = f.eye_y + eh + 0.05;
            c.stroke(&Canvas::curve((ex - ew, y), (ex, y + 0.05), (ex + ew, y)), 0.011, dark, (a[AU6] - 0.2) * 0.8);
        }
    }
}

/// Nose, nostrils, wrinkles (AU9) and nasolabial folds (AU9/AU10/AU12).
fn draw_nose(c: &mut Canvas, f: &Face) {
    let a = &f.au;
    let dark = f.skin * 0.25;
    c.stroke(&[(0.0, f.eye_y + 0.08), (0.02, f.nose_y)], 0.012, dark, 0.35);
    for side in [-1.0f32, 1.0] {
        c.ellipse(side * 0.06, f.nose_y + 0.02, 0.03, 0.016 * (1.0 + 0.6 * a[AU9].max(0.0)), dark * 0.5, 0.9);
        if a[AU9] > 0.2 {
            let y = f.eye_y + 0.10;
            c.stroke(&[(side * 0.02, y), (side * 0.09, y + 0.03)], 0.010, dark, (a[AU9] - 0.2) * 0.9);
            c.stroke(&[(side * 0.02, y + 0.04), (side * 0.08, y + 0.07)], 0.010, dark, (a[AU9] - 0.2) * 0.7);
        }
        let fold = (0.6 * a[AU9] + 0.8 * a[AU10] + 0.5 * a[AU12]).max(0.0);
        if fold > 0.15 {
            let top = (side * 0.11, f.nose_y - 0.01);
            let bottom = (side * (f.mouth_w + 0.06), f.mouth_y + 0.02);
            c.stroke(
                &Canvas::curve(top, (side * (f.mouth_w + 0.08), f.nose_y + 0.08), bottom),
                0.011,
                dark,
                (fold - 0.15).min(0.8),
            );
        }
    }
}

/// Lips and, when open, the mouth's interior.
fn draw_mouth(c: &mut Canvas, f: &Face) {
    let a = &f.au;
    let dark = f.skin * 0.25;
    let half_w = f.mouth_w * (1.0 + 0.40 * a[AU20] + 0.12 * a[AU12] - 0.18 * a[AU24]);
    let corner = |side: f32| {
        let lift = 0.13 * a[AU12] - 0.11 * a[AU15] - 0.03 * a[AU20] + if side > 0.0 { 0.14 * a[AU14] } else { 0.0 };
        (side * half_w, f.mouth_y - lift)
    };
    let (l, r) = (corner(-1.0), corner(1.0));
    let opening = (0.24 * a[AU26] + 0.04 * a[AU20] + 0.03 * a[AU12] - 0.03 * a[AU24]).max(0.0);
    let upper_c = (0.0, f.mouth_y - 0.05 * a[AU10].max(0.0) - opening * 0.4 - 0.015);
    let lower_c = (0.0, f.mouth_y + opening * 1.1 + 0.02 + 0.04 * a[AU12].max(0.0));
    let lip = 0.018 * (1.0 - 0.45 * a[AU24].clamp(0.0, 1.0));
    if opening > 0.02 {
        // mouth interior: fill between the two lip curves
        let up = Canvas::curve(l, upper_c, r);
        let lo = Canvas::curve(l, lower_c, r);
        for (p, q) in up.iter().zip(&lo) {
            let cv = (p.1 + q.1) / 2.0;
            let rv = ((q.1 - p.1) / 2.0).max(0.0);
            c.ellipse(p.0, cv, 0.04, rv, dark * 0.3, 0.95);
        }
        c.stroke(&lo, lip, dark * 0.9, 0.9);
    }
    c.stroke(&Canvas::curve(l, upper_c, r), lip * 1.2, dark * (0.9 - 0.3 * a[AU24].clamp(0.0, 1.0)), 0.95);
}

/// The occluder (hand, hair, scarf, sunglasses…).
fn draw_occluder(c: &mut Canvas, f: &Face) {
    let occ = f.occ_level * 0.9;
    match f.occluder {
        1 => c.ellipse(f.occ_shift * 0.3, f.eye_y, 0.75, 0.13, occ, 1.0),
        2 => c.ellipse(f.occ_shift, f.mouth_y + 0.05, 0.45, 0.22, occ, 1.0),
        3 => c.ellipse(f.occ_shift.signum() * 0.65, f.occ_shift * 2.0, 0.4, 0.5, occ, 1.0),
        _ => {}
    }
}

/// Averages the canvas down to `size` px, blurs it and adds sensor noise.
fn finish(c: &Canvas, f: &Face, size: u32, rng: &mut ChaCha8Rng) -> GrayImage {
    let n = size as usize;
    let mut small = vec![0.0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let mut s = 0.0;
            for dy in 0..SUPERSAMPLE {
                for dx in 0..SUPERSAMPLE {
                    s += c.px[(y * SUPERSAMPLE + dy) * c.n + x * SUPERSAMPLE + dx];
                }
            }
            small[y * n + x] = s / (SUPERSAMPLE * SUPERSAMPLE) as f32;
        }
    }
    let img = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(size, size, small).expect("n*n buffer");
    let img = if f.blur > 0.3 { image::imageops::blur(&img, f.blur * size as f32 / 48.0) } else { img };
    let mut out = GrayImage::new(size, size);
    for (o, p) in out.pixels_mut().zip(img.pixels()) {
        let v = p.0[0] + f.noise * gauss(rng);
        o.0[0] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    out
}

/// What the annotators can see: AUs hidden by an occluder carry no evidence.
fn visibility(f: &Face) -> [f32; N_AU] {
    let mut w = [1.0f32; N_AU];
    let hidden: &[usize] = match f.occluder {
        1 => &UPPER,
        2 => &LOWER,
        _ => &[],
    };
    for &i in hidden {
        w[i] = 0.15;
    }
    w
}

/// Squared AU energy an annotator needs to see before voting for an expression rather than neutral.
const EXPRESSION_EVIDENCE: f32 = 0.06;

/// Ten FER+-style vote counts (8 classes, unknown, NF).
fn votes(f: &Face, annotators: usize, rng: &mut ChaCha8Rng) -> [i32; 10] {
    let w = visibility(f);
    let mut dist = [0.0f32; 8];
    for (k, d) in dist.iter_mut().enumerate() {
        let p = prototype(k);
        let pp: f32 = p.iter().zip(&w).map(|(x, w)| w * x * x).sum();
        let scale = if pp > 0.0 {
            (p.iter().zip(&f.au).zip(&w).map(|((x, a), w)| w * x * a).sum::<f32>() / pp).clamp(0.0, 1.3)
        } else {
            0.0
        };
        // residual after explaining the face as class k at its best-fitting intensity, plus the evidence an
        // annotator wants before calling anything but neutral (small resting asymmetries are not expressions)
        let prior = if k == 0 { 0.0 } else { EXPRESSION_EVIDENCE };
        *d = p.iter().zip(&f.au).zip(&w).map(|((x, a), w)| w * (a - scale * x).powi(2)).sum::<f32>() + prior;
    }
    // image quality: heavy blur/noise makes "unknown" and "not a face" votes likelier
    let quality_issue = (f.blur / 1.1) * 0.5 + (f.noise / 0.07) * 0.5;
    let mut v = [0i32; 10];
    for _ in 0..annotators {
        let temp: f32 = rng.random_range(0.01..0.04);
        let r: f32 = rng.random();
        if r < 0.02 + 0.05 * quality_issue {
            v[8] += 1;
            continue;
        }
        if r < 0.025 + 0.06 * quality_issue && f.occluder != 0 {
            v[9] += 1;
            continue;
        }
        // Gumbel-max = a sample from softmax(-d / temp)
        let k = (0..8)
            .map(|k| {
                let g = -(-(rng.random_range(1e-7f32..1.0)).ln()).ln();
                (k, -dist[k] / temp + g)
            })
            .fold((0, f32::MIN), |best, x| if x.1 > best.1 { x } else { best })
            .0;
        v[k] += 1;
    }
    v
}

fn split_seed(seed: u64, split: usize, i: usize) -> u64 {
    // one independent stream per face, so the set is the same whatever the thread count
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((split as u64) << 48) ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// One face: its image, votes and the class it was drawn as (kept for previews and tests, never written).
pub(crate) fn face(cfg: &GenConfig, split: usize, i: usize) -> (GrayImage, [i32; 10], usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(split_seed(cfg.seed, split, i));
    let class = sample_class(&mut rng);
    let f = sample_face(&mut rng, class);
    let img = render(&f, cfg.size, &mut rng);
    let v = votes(&f, cfg.annotators, &mut rng);
    (img, v, class)
}

const GEN_FILE: &str = "generator.json";
/// The stage name in the raw folder's manifest: the mark that lets a later run replace the folder.
const STAGE: &str = "synthetic";

/// Writes the FER+ folder layout to `raw_dir` unless it already holds this exact configuration.
/// Returns whether it (re)generated.
/// A raw folder written before raw folders carried a manifest holds `generator.json`: it is ours, so it is
/// marked as such and may be replaced.
fn adopt_unmarked(raw_dir: &Path) -> anyhow::Result<()> {
    let manifest = raw_dir.join(exchange::manifest::MANIFEST_FILE);
    let gen: Option<GenConfig> =
        std::fs::read(raw_dir.join(GEN_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let (false, Some(gen)) = (manifest.exists(), gen) {
        exchange::manifest::Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), &gen, Vec::new())?.write(&manifest)?;
    }
    Ok(())
}

pub(crate) fn generate(raw_dir: &Path, cfg: &GenConfig, force: bool, quiet: bool) -> anyhow::Result<bool> {
    if cfg.size < 16 || cfg.annotators == 0 || cfg.train + cfg.valid + cfg.test == 0 {
        anyhow::bail!("synthetic: need size >= 16, at least one annotator and at least one face");
    }
    let existing: Option<GenConfig> =
        std::fs::read(raw_dir.join(GEN_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if !force && existing.as_ref() == Some(cfg) {
        return Ok(false);
    }
    adopt_unmarked(raw_dir)?;
    let staging = StagingDir::create(raw_dir, STAGE)?;
    let total = (cfg.train + cfg.valid + cfg.test) as u64;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_message("generating synthetic faces");
    for (s, (folder, n)) in
        [("FER2013Train", cfg.train), ("FER2013Valid", cfg.valid), ("FER2013Test", cfg.test)].into_iter().enumerate()
    {
        let dir = staging.path().join(folder);
        std::fs::create_dir_all(&dir)?;
        let rows: Vec<String> = (0..n)
            .into_par_iter()
            .map(|i| -> anyhow::Result<String> {
                let (img, v, _) = face(cfg, s, i);
                let name = format!("syn{s}{i:06}.png");
                img.save(dir.join(&name)).with_context(|| format!("writing {}", dir.join(&name).display()))?;
                bar.inc(1);
                let votes: Vec<String> = v.iter().map(i32::to_string).collect();
                Ok(format!("{name},\"(0, 0, {0}, {0})\",{1}\n", cfg.size, votes.join(",")))
            })
            .collect::<anyhow::Result<_>>()?;
        exchange::atomic::write_bytes(dir.join("label.csv"), rows.concat().as_bytes())?;
    }
    exchange::atomic::write_json(staging.path().join(GEN_FILE), cfg)?;
    exchange::manifest::Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), cfg, Vec::new())?
        .write(staging.path().join(exchange::manifest::MANIFEST_FILE))?;
    staging.commit()?;
    bar.finish_and_clear();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> GenConfig {
        GenConfig { version: GENERATOR_VERSION, seed: 3, size: 32, train: 40, valid: 8, test: 8, annotators: 10 }
    }

    #[test]
    fn same_seed_same_faces_other_seed_other_faces() {
        let a = face(&tiny(), 0, 5);
        let b = face(&tiny(), 0, 5);
        assert_eq!(a.0.as_raw(), b.0.as_raw());
        assert_eq!(a.1, b.1);
        let c = face(&GenConfig { seed: 4, ..tiny() }, 0, 5);
        assert_ne!(a.0.as_raw(), c.0.as_raw());
    }

    #[test]
    fn votes_mostly_agree_with_the_drawn_class_but_not_always() {
        let cfg = GenConfig { train: 400, ..tiny() };
        let (mut agree, mut unanimous) = (0, 0);
        for i in 0..cfg.train {
            let (_, v, class) = face(&cfg, 0, i);
            assert_eq!(v.iter().sum::<i32>(), 10);
            let top = (0..10).max_by_key(|&k| (v[k], -(k as i32))).unwrap();
            agree += (top == class) as usize;
            unanimous += v.contains(&10) as usize;
        }
        let n = cfg.train as f64;
        assert!(agree as f64 / n > 0.55, "annotators should mostly see the drawn class: {agree}/{n}");
        assert!((agree as f64 / n) < 0.97, "some faces must be ambiguous: {agree}/{n}");
        assert!(unanimous < cfg.train, "not every face can be unanimous");
    }

    #[test]
    fn generation_is_a_no_op_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("synthetic");
        assert!(generate(&raw, &tiny(), false, true).unwrap());
        let label = std::fs::read_to_string(raw.join("FER2013Train/label.csv")).unwrap();
        assert_eq!(label.lines().count(), 40);
        assert!(label.starts_with("syn0000000.png,\"(0, 0, 32, 32)\","));
        assert!(!generate(&raw, &tiny(), false, true).unwrap());
        assert!(generate(&raw, &GenConfig { seed: 9, ..tiny() }, false, true).unwrap());
    }
}
