//! dlib's landmark model (`shape_predictor`, Kazemi & Sullivan 2014): a cascade of regression-tree forests
//! that moves a mean face shape, placed in a face's box, onto the face. Read from dlib's own file
//! (`shape_predictor_5_face_landmarks.dat`: 5 points, two per eye corner pair and one under the nose) and run
//! as dlib runs it, so the points agree with dlib's to rounding.
//!
//! Shapes live in the box's unit square: (0, 0) is the box's top-left pixel, (1, 1) its bottom-right one.
//! At each stage of the cascade, the stage's feature pixels (each an offset from one point of the mean shape)
//! are carried onto the current shape by the similarity between mean and current shape, read from the image
//! (grey: the value; RGB: the mean of the three channels, rounded down; 0 outside the image), and every tree
//! of the stage adds the leaf its pixel-difference tests lead to.

use std::path::Path;

use crate::dlib_format::{Failure, Reader};
use crate::geometry::{similarity, Affine, Point};
use crate::image::Image;

/// A face's box in pixels, corners inclusive (dlib's `rectangle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceBox {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

impl FaceBox {
    /// The map from the box's unit square to the image: (0, 0) → top-left, (1, 1) → bottom-right.
    fn unit_to_image(&self) -> Affine {
        Affine {
            m: [[(self.right - self.left) as f64, 0.0], [0.0, (self.bottom - self.top) as f64]],
            b: [self.left as f64, self.top as f64],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LandmarkError {
    #[error("{path}: {what}")]
    Read { path: String, what: String },
    #[error("{path}: byte {offset}: {what}")]
    Format { path: String, offset: usize, what: String },
}

struct Split {
    a: usize,
    b: usize,
    threshold: f32,
}

/// A complete binary tree: node i's children are 2i+1 (the difference is above the threshold) and 2i+2.
struct Tree {
    splits: Vec<Split>,
    /// `splits.len() + 1` leaves, each a shape increment of `dim` numbers, one after the other (one
    /// allocation per tree: the cascade visits thousands of trees per face).
    leaves: Vec<f32>,
    dim: usize,
}

impl Tree {
    fn leaf(&self, pixels: &[f32]) -> &[f32] {
        let mut i = 0;
        while i < self.splits.len() {
            let s = &self.splits[i];
            i = if pixels[s.a] - pixels[s.b] > s.threshold { 2 * i + 1 } else { 2 * i + 2 };
        }
        let leaf = i - self.splits.len();
        &self.leaves[leaf * self.dim..(leaf + 1) * self.dim]
    }
}

/// One stage's feature pixels: an anchor point of the mean shape and an offset from it.
struct Stage {
    trees: Vec<Tree>,
    anchors: Vec<usize>,
    offsets: Vec<[f32; 2]>,
}

pub struct ShapePredictor {
    /// The mean shape, `[x0, y0, x1, y1, …]` in the unit square.
    mean: Vec<f32>,
    stages: Vec<Stage>,
}

impl ShapePredictor {
    pub fn open(path: &Path) -> Result<Self, LandmarkError> {
        let shown = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| LandmarkError::Read { path: shown.clone(), what: e.to_string() })?;
        Self::parse(&bytes).map_err(|(offset, what)| LandmarkError::Format {
            path: shown,
            offset,
            what: what.to_string(),
        })
    }

    /// dlib's `serialize(shape_predictor)`: version 1, the mean shape, the forests, then per stage the
    /// anchors and the offsets; every index is checked against what it indexes.
    fn parse(bytes: &[u8]) -> Result<Self, Failure> {
        let mut r = Reader::new(bytes);
        let at = r.pos();
        let version = r.int()?;
        if version != 1 {
            return Err((at, format!("shape predictor version {version}, expected 1 (dlib's shape_predictor)")));
        }
        let mean = r.column()?;
        if mean.is_empty() || mean.len() % 2 != 0 {
            return Err((at, format!("a mean shape of {} numbers, expected x, y pairs", mean.len())));
        }
        let forests = r.vec("forests", |r| r.vec("trees", tree))?;
        let anchors = r.vec("anchor lists", |r| r.vec("anchors", |r| r.count("an anchor")))?;
        let offsets = r.vec("offset lists", |r| r.vec("offsets", |r| Ok([r.float()?, r.float()?])))?;
        if !r.at_end() {
            return Err(r.fail("bytes after the model's end"));
        }
        if anchors.len() != forests.len() || offsets.len() != forests.len() {
            return Err(r.fail(format!(
                "{} forests but {} anchor lists and {} offset lists",
                forests.len(),
                anchors.len(),
                offsets.len()
            )));
        }
        let points = mean.len() / 2;
        let mut stages = Vec::with_capacity(forests.len());
        for (k, ((trees, anchors), offsets)) in forests.into_iter().zip(anchors).zip(offsets).enumerate() {
            if anchors.len() != offsets.len() || anchors.iter().any(|&a| a >= points) {
                return Err(r.fail(format!("stage {k}: anchors do not match its offsets or the {points} points")));
            }
            let bad = trees.iter().any(|t| {
                t.dim != mean.len()
                    || t.leaves.len() != (t.splits.len() + 1) * t.dim
                    || t.splits.iter().any(|s| s.a >= anchors.len() || s.b >= anchors.len())
            });
            if bad {
                return Err(r.fail(format!("stage {k}: a tree's splits or leaves do not fit its pixels and shape")));
            }
            stages.push(Stage { trees, anchors, offsets });
        }
        Ok(ShapePredictor { mean, stages })
    }

    pub fn points(&self) -> usize {
        self.mean.len() / 2
    }

    /// The landmarks of the face in `face` of `img`, in image pixels (dlib rounds them to whole pixels:
    /// [`Point::pixel`]).
    pub fn predict(&self, img: &Image, face: FaceBox) -> Vec<Point> {
        let to_image = face.unit_to_image();
        let mut shape = self.mean.clone();
        let mut pixels = Vec::new();
        for stage in &self.stages {
            self.read_pixels(img, &to_image, &shape, stage, &mut pixels);
            for tree in &stage.trees {
                shape.iter_mut().zip(tree.leaf(&pixels)).for_each(|(s, d)| *s += d);
            }
        }
        (0..self.points()).map(|i| to_image.apply(location(&shape, i))).collect()
    }

    /// The stage's feature pixels under the current shape.
    fn read_pixels(&self, img: &Image, to_image: &Affine, shape: &[f32], stage: &Stage, out: &mut Vec<f32>) {
        // Only the linear part carries the offsets: they are relative to their anchor.
        let m = similarity(&points_of(&self.mean), &points_of(shape)).m;
        let m = [[m[0][0] as f32, m[0][1] as f32], [m[1][0] as f32, m[1][1] as f32]];
        out.clear();
        out.extend(stage.anchors.iter().zip(&stage.offsets).map(|(&a, d)| {
            let x = m[0][0] * d[0] + m[0][1] * d[1] + shape[2 * a];
            let y = m[1][0] * d[0] + m[1][1] * d[1] + shape[2 * a + 1];
            let (px, py) = to_image.apply(Point::new(f64::from(x), f64::from(y))).pixel();
            img.intensity(px, py).map_or(0.0, f32::from)
        }));
    }
}

fn location(shape: &[f32], i: usize) -> Point {
    Point::new(f64::from(shape[2 * i]), f64::from(shape[2 * i + 1]))
}

fn points_of(shape: &[f32]) -> Vec<Point> {
    (0..shape.len() / 2).map(|i| location(shape, i)).collect()
}

fn tree(r: &mut Reader) -> Result<Tree, Failure> {
    let splits = r.vec("splits", |r| {
        Ok(Split { a: r.count("a split's first pixel")?, b: r.count("a split's second pixel")?, threshold: r.float()? })
    })?;
    let leaves = r.vec("leaves", Reader::column)?;
    let dim = leaves.first().map_or(0, Vec::len);
    if leaves.iter().any(|l| l.len() != dim) {
        return Err(r.fail("a tree's leaves differ in length"));
    }
    Ok(Tree { splits, leaves: leaves.concat(), dim })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes dlib's integer and float encodings (the reader's inverse), for hand-made models.
    struct Writer(Vec<u8>);

    impl Writer {
        fn int(&mut self, v: i64) -> &mut Self {
            let mag = v.unsigned_abs();
            let n = (8 - mag.leading_zeros() / 8) as usize;
            self.0.push(n as u8 | if v < 0 { 0x80 } else { 0 });
            self.0.extend_from_slice(&mag.to_le_bytes()[..n]);
            self
        }
        /// `v` must be k / 256 for an integer k.
        fn float(&mut self, v: f32) -> &mut Self {
            self.int((v * 256.0) as i64).int(-8)
        }
        fn column(&mut self, v: &[f32]) -> &mut Self {
            self.int(-(v.len() as i64)).int(-1);
            v.iter().for_each(|x| {
                self.float(*x);
            });
            self
        }
    }

    /// One point, one stage, one tree of depth 1 reading two pixels: if the pixel left of the point is
    /// brighter than the one right of it by more than 10, the point moves left by 0.25, else right by 0.25.
    fn model() -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.int(1).column(&[0.5, 0.5]);
        w.int(1).int(1); // one forest of one tree
        w.int(1).int(0).int(1).float(10.0); // one split: pixel 0 − pixel 1 > 10
        w.int(2).column(&[-0.25, 0.0]).column(&[0.25, 0.0]);
        w.int(1).int(2).int(0).int(0); // anchors: both pixels at point 0
        w.int(1).int(2).float(-0.25).float(0.0).float(0.25).float(0.0); // offsets ∓0.25 in x
        w.0
    }

    #[test]
    fn a_hand_made_cascade_moves_its_point_as_its_tree_says() {
        let sp = ShapePredictor::parse(&model()).unwrap();
        assert_eq!(sp.points(), 1);
        // A 9 × 9 grey image, the box its whole extent (0..8): the point starts at (4, 4); the pixels read
        // are (2, 4) and (6, 4).
        let face = FaceBox { left: 0, top: 0, right: 8, bottom: 8 };
        let mut img = Image::new(9, 9, 1);
        img.data[4 * 9 + 2] = 200;
        assert_eq!(sp.predict(&img, face), vec![Point::new(2.0, 4.0)]);
        img.data[4 * 9 + 6] = 255;
        assert_eq!(sp.predict(&img, face), vec![Point::new(6.0, 4.0)]);
        // RGB reads the channels' mean: (200 + 200 + 201) / 3 = 200 against 0.
        let mut rgb = Image::new(9, 9, 3);
        rgb.data[(4 * 9 + 2) * 3..(4 * 9 + 2) * 3 + 3].copy_from_slice(&[200, 200, 201]);
        assert_eq!(sp.predict(&rgb, face), vec![Point::new(2.0, 4.0)]);
    }

    fn refused(bytes: &[u8]) -> String {
        ShapePredictor::parse(bytes).err().expect("a damaged model is refused").1
    }

    #[test]
    fn damaged_models_are_refused_with_the_offset() {
        let mut bytes = model();
        bytes[1] = 2; // version 2
        assert!(refused(&bytes).contains("version 2, expected 1"));
        let mut bytes = model();
        bytes.push(0);
        assert!(refused(&bytes).contains("bytes after the model's end"));
        let bytes = model();
        let e = refused(&bytes[..bytes.len() - 3]);
        assert!(e.contains("file ends"), "{e}");
    }
}
