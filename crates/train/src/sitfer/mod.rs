//! The method itself, one concern per file: the instance memory bank, the three levels, their fusion into
//! pseudo-labels, and the losses. Pure tensor functions: no data loading, no optimiser, no files.

pub mod fusion;
pub mod levels;
pub mod losses;
pub mod memory_bank;
