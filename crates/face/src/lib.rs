//! Faces in uncropped pictures, the way dlib finds and aligns them, read from dlib's own model files and
//! checked against dlib itself (`tests/`): the 5-point landmark model ([`landmarks`]) and the geometry it
//! and the alignment share ([`geometry`]), the aligned face chip ([`chip`]), and the CNN face detector's weights ([`mmod`]; its forward pass and box
//! mapping are still to come).

pub mod chip;
pub mod dlib_format;
pub mod geometry;
pub mod image;
pub mod landmarks;
pub mod mmod;

pub use geometry::Point;
pub use image::Image;
pub use landmarks::{FaceBox, LandmarkError, ShapePredictor};
