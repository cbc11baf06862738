//! The SIT-FER trainer's library: the model ([`model`]) and the method ([`sitfer`]). The binary (`main.rs`)
//! drives them; tests use them directly.

pub mod amp;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distributed;
pub mod ema;
pub mod epoch_stats;
pub mod evaluate;
pub mod export;
pub mod model;
pub mod named_tensors;
pub mod optim;
pub mod readback;
pub mod resources;
pub mod run;
pub mod sitfer;
pub mod snapshot;
