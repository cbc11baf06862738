//! Face chips: the aligned square crop a face's five landmarks define, as dlib's `get_face_chip` makes it
//! (`get_face_chip_details` + `extract_image_chip`), so a chip here equals dlib's to the pixel.
//!
//! The chip's frame comes from the similarity that carries dlib's mean 5-point face (padded by `padding` of
//! its width on every side, scaled to `size`) onto the landmarks: it gives a rotated rectangle in the picture.
//! When that rectangle is much larger than the chip, the picture is first halved (dlib's `pyramid_down<2>`: a
//! 5 × 5 binomial filter, every other pixel) until one more halving would make it smaller than the chip, so
//! that bilinear sampling does not skip pixels; the chip is then sampled bilinearly from that level, black
//! where the sample leaves the picture.

use crate::geometry::{similarity, Affine, Point};
use crate::image::Image;

/// dlib's mean 5-point face in its unit square: the outer and inner corner of one eye, then of the other,
/// then the point under the nose (the landmark model's order).
const MEAN_FACE: [(f64, f64); 5] = [
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
];

/// A rectangle with real corners, inclusive (dlib's `drectangle`: width `r − l + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    const EMPTY: DRect = DRect { l: 0.0, t: 0.0, r: -1.0, b: -1.0 };

    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }
    fn area(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
        }
    }
    fn center(&self) -> Point {
        Point::new((self.l + self.r) / 2.0, (self.t + self.b) / 2.0)
    }
    /// The smallest rectangle holding both (an empty one holds nothing).
    fn union(self, o: DRect) -> DRect {
        if o.is_empty() {
            return self;
        }
        if self.is_empty() {
            return o;
        }
        DRect { l: self.l.min(o.l), t: self.t.min(o.t), r: self.r.max(o.r), b: self.b.max(o.b) }
    }
    fn intersect(self, o: DRect) -> DRect {
        DRect { l: self.l.max(o.l), t: self.t.max(o.t), r: self.r.min(o.r), b: self.b.min(o.b) }
    }
    fn grow(self, g: f64) -> DRect {
        DRect { l: self.l - g, t: self.t - g, r: self.r + g, b: self.b + g }
    }
    /// dlib's conversion to a whole-pixel rectangle: each side rounded half away from zero.
    fn round(self) -> DRect {
        DRect { l: self.l.round(), t: self.t.round(), r: self.r.round(), b: self.b.round() }
    }
    /// `pyramid_down<2>`'s map of a rectangle onto the next level: `p/2 − (1.25, 0.75)` per corner.
    fn down(self) -> DRect {
        DRect { l: self.l / 2.0 - 1.25, t: self.t / 2.0 - 0.75, r: self.r / 2.0 - 1.25, b: self.b / 2.0 - 0.75 }
    }
}

/// `p` turned by `angle` about `c`.
fn rotate(c: Point, p: Point, angle: f64) -> Point {
    let (s, co) = angle.sin_cos();
    let (x, y) = (p.x - c.x, p.y - c.y);
    Point::new(co * x - s * y + c.x, s * x + co * y + c.y)
}

/// Where a chip lies in the picture: a rectangle turned by `angle` about its centre, sampled onto
/// `size × size` pixels (dlib's `chip_details`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipFrame {
    rect: DRect,
    angle: f64,
    size: usize,
}

/// The frame of a `size`-pixel chip with `padding` (a share of the face's width on each side; dlib's default
/// 0.2, `get_face_chip`'s 0.25) from the five landmarks, in whole pixels as the landmark model gives them.
pub fn frame(landmarks: &[(i64, i64); 5], size: usize, padding: f64) -> ChipFrame {
    let s = size as f64;
    let from: Vec<Point> = MEAN_FACE
        .iter()
        .map(|&(x, y)| Point::new((padding + x) / (2.0 * padding + 1.0) * s, (padding + y) / (2.0 * padding + 1.0) * s))
        .collect();
    let to: Vec<Point> = landmarks.iter().map(|&(x, y)| Point::new(x as f64, y as f64)).collect();
    let t = similarity(&from, &to);
    let (px, py) = (t.m[0][0], t.m[1][0]);
    let scale = px.hypot(py);
    let c = t.apply(Point::new(s / 2.0, s / 2.0));
    // dlib's centered_drect: a width of w spans w − 1 between the corners.
    let (w, h) = (s * scale - 1.0, s * scale - 1.0);
    let rect = DRect { l: c.x - w / 2.0, t: c.y - h / 2.0, r: c.x + w / 2.0, b: c.y + h / 2.0 };
    ChipFrame { rect, angle: py.atan2(px), size }
}

/// The chip of `frame` in `img`, `size × size` with `img`'s channels.
pub fn extract(img: &Image, frame: &ChipFrame) -> Image {
    let size = (frame.size * frame.size) as f64;
    let (rect, angle) = (frame.rect, frame.angle);
    // How many halvings the rectangle needs, and with the border each needs, which part of the picture.
    let (mut depth, mut grow, mut down) = (0, 2.0, rect.down());
    while down.area() > size {
        down = down.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let c = rect.center();
    let corners = [(rect.l, rect.t), (rect.r, rect.t), (rect.l, rect.b), (rect.r, rect.b)];
    let turned = corners.iter().fold(DRect::EMPTY, |acc, &(x, y)| {
        let p = rotate(c, Point::new(x, y), angle);
        acc.union(DRect { l: p.x, t: p.y, r: p.x, b: p.y })
    });
    let whole = DRect { l: 0.0, t: 0.0, r: img.w as f64 - 1.0, b: img.h as f64 - 1.0 };
    let bounds = DRect::EMPTY.union(turned.grow(grow).intersect(whole).round());
    let mut source = crop(img, bounds);
    // The level to sample from: halve while one more halving still leaves more pixels than the chip has.
    let mut rect = DRect { l: rect.l - bounds.l, t: rect.t - bounds.t, r: rect.r - bounds.l, b: rect.b - bounds.t };
    let mut level = 0;
    while rect.down().area() > size && level <= depth {
        source = halve(&source);
        rect = rect.down();
        level += 1;
    }
    let n = frame.size as f64 - 1.0;
    let c = rect.center();
    let (a, b, d) = (
        rotate(c, Point::new(rect.l, rect.t), angle),
        rotate(c, Point::new(rect.r, rect.t), angle),
        rotate(c, Point::new(rect.l, rect.b), angle),
    );
    // Chip corners (0, 0), (n, 0), (0, n) onto the turned rectangle's top-left, top-right, bottom-left.
    let map = Affine { m: [[(b.x - a.x) / n, (d.x - a.x) / n], [(b.y - a.y) / n, (d.y - a.y) / n]], b: [a.x, a.y] };
    sample(&source, &map, frame.size)
}

/// The pixels of `r` (whole, inside `img`; empty gives an empty image).
fn crop(img: &Image, r: DRect) -> Image {
    if r.is_empty() {
        return Image::new(0, 0, img.c);
    }
    let (l, t) = (r.l as usize, r.t as usize);
    let (w, h) = ((r.r - r.l) as usize + 1, (r.b - r.t) as usize + 1);
    let mut out = Image::new(w, h, img.c);
    for y in 0..h {
        let from = ((t + y) * img.w + l) * img.c;
        out.data[y * w * img.c..(y + 1) * w * img.c].copy_from_slice(&img.data[from..from + w * img.c]);
    }
    out
}

/// dlib's `pyramid_down<2>`: the 1-4-6-4-1 filter along rows, every other column, then along columns,
/// every other row, divided by 256 (integer). `(h − 3)/2 × (w − 3)/2`; empty at 8 pixels or fewer a side.
fn halve(img: &Image) -> Image {
    let c = img.c;
    if img.w <= 8 || img.h <= 8 {
        return Image::new(0, 0, c);
    }
    let (tw, oh) = ((img.w - 3) / 2, (img.h - 3) / 2);
    let mut rows = vec![0u32; img.h * tw * c];
    for (src, dst) in img.data.chunks_exact(img.w * c).zip(rows.chunks_exact_mut(tw * c)) {
        for (x, out) in dst.chunks_exact_mut(c).enumerate() {
            let tap = |k: usize, ch: usize| u32::from(src[(2 * x + k) * c + ch]);
            for (ch, o) in out.iter_mut().enumerate() {
                *o = tap(0, ch) + 4 * tap(1, ch) + 6 * tap(2, ch) + 4 * tap(3, ch) + tap(4, ch);
            }
        }
    }
    let mut out = Image::new(tw, oh, c);
    let line = tw * c;
    for (oy, dst) in out.data.chunks_exact_mut(line).enumerate() {
        let y = 2 * oy + 2;
        let r: Vec<&[u32]> = (y - 2..=y + 2).map(|yy| &rows[yy * line..(yy + 1) * line]).collect();
        for (i, o) in dst.iter_mut().enumerate() {
            *o = ((r[0][i] + 4 * r[1][i] + 6 * r[2][i] + 4 * r[3][i] + r[4][i]) / 256) as u8;
        }
    }
    out
}

/// Bilinear samples of `img` at `map(x, y)` for every chip pixel, truncated to `u8` as dlib assigns them;
/// black where the 2 × 2 neighbourhood leaves `img` (its last row and column included).
fn sample(img: &Image, map: &Affine, size: usize) -> Image {
    let c = img.c;
    let mut out = Image::new(size, size, c);
    for y in 0..size {
        for x in 0..size {
            let p = map.apply(Point::new(x as f64, y as f64));
            let (left, top) = (p.x.floor(), p.y.floor());
            if !(left >= 0.0 && top >= 0.0 && left + 1.0 < img.w as f64 && top + 1.0 < img.h as f64) {
                continue;
            }
            let (fx, fy) = (p.x - left, p.y - top);
            let (l, t) = (left as usize, top as usize);
            for ch in 0..c {
                let at = |xx: usize, yy: usize| f64::from(img.data[(yy * img.w + xx) * c + ch]);
                let v = (1.0 - fy) * ((1.0 - fx) * at(l, t) + fx * at(l + 1, t))
                    + fy * ((1.0 - fx) * at(l, t + 1) + fx * at(l + 1, t + 1));
                out.data[(y * size + x) * c + ch] = v as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_by_hand() {
        // A constant picture stays constant: 16 · 16 · v / 256 = v. 9 × 9 → 3 × 3.
        let img = Image { w: 9, h: 9, c: 1, data: vec![100; 81] };
        let h = halve(&img);
        assert_eq!((h.w, h.h), (3, 3));
        assert!(h.data.iter().all(|&v| v == 100));
        // One bright pixel at (4, 4): output (1, 1) reads rows 2..6 and columns 2..6, its weight 6 · 6 = 36:
        // 255 · 36 / 256 = 35.86 → 35.
        let mut img = Image::new(9, 9, 1);
        img.data[4 * 9 + 4] = 255;
        assert_eq!(halve(&img).data[4], 35);
        assert_eq!(halve(&Image::new(8, 20, 3)).data.len(), 0);
    }

    #[test]
    fn the_frame_of_the_mean_face_itself_is_the_chip() {
        // Landmarks exactly where the mean face puts them in a 100-px chip without padding (rounded to whole
        // pixels): the frame is close to the chip's own square, unturned.
        let lm: Vec<(i64, i64)> =
            MEAN_FACE.iter().map(|&(x, y)| ((x * 100.0).round() as i64, (y * 100.0).round() as i64)).collect();
        let f = frame(&[lm[0], lm[1], lm[2], lm[3], lm[4]], 100, 0.0);
        assert!(f.angle.abs() < 0.01, "{f:?}");
        assert!((f.rect.l).abs() < 1.0 && (f.rect.r - 99.0).abs() < 1.0, "{f:?}");
    }
}
