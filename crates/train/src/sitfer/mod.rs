//! The method itself, one concern per file: the instance memory bank, the three levels, the temperatures
//! that turn their scores into probabilities, their fusion into pseudo-labels, the distribution alignment and
//! the threshold that select them, the losses, and the placebo control that shuffles the levels. Pure tensor functions: no data loading, no optimiser, no files.

pub(crate) mod alignment;
pub(crate) mod fusion;
pub(crate) mod levels;
pub(crate) mod losses;
pub(crate) mod memory_bank;
pub(crate) mod placebo;
pub(crate) mod propagation;
pub(crate) mod temperature;
pub(crate) mod threshold;
