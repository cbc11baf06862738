//! The crate's integration tests, one binary (each test binary links the whole dependency tree).

mod doctor;
mod faults;
mod onnx;
mod plan;
mod run;
mod use_model;
