//! The data path: loading shards by split role ([`loader`]), seeded samplers ([`sampler`]) and the weak and
//! strong augmentations ([`augment`]). Everything here works on plain buffers so it can run on rayon
//! threads ahead of the training step.

pub mod augment;
pub mod batch;
pub mod loader;
pub mod sampler;
