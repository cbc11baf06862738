//! The data path: loading shards by split role ([`loader`]), seeded samplers ([`sampler`]), the weak and
//! strong views ([`views`], drawn as plans and rendered in one pass; [`augment`] holds the ops) and the bounded queue that runs them ahead of the step ([`prefetch`]).
//! Everything here works on plain buffers so it can run on rayon threads ahead of the training step.

pub mod augment;
pub mod batch;
pub mod loader;
pub(crate) mod prefetch;
pub(crate) mod sampler;
pub mod views;
