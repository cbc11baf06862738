//! The crate's integration tests, one binary (each test binary links the whole dependency tree).

mod exchange_readers;
mod pipeline;
