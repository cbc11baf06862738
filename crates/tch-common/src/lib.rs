//! Helpers shared by the libtorch stages (embed-text, train). Not a stage: it reads and writes no files.

pub mod device;
pub mod models;
