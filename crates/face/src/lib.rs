//! Faces in uncropped pictures, the way dlib finds and aligns them, read from dlib's own model files and
//! checked against dlib itself (`tests/`): the 5-point landmark model ([`landmarks`]) and the geometry it
//! and the alignment share ([`geometry`]), and the aligned face chip ([`chip`]).

pub mod chip;
mod dlib_format;
pub mod geometry;
pub mod image;
pub mod landmarks;

pub use geometry::Point;
pub use image::Image;
pub use landmarks::{FaceBox, LandmarkError, ShapePredictor};
