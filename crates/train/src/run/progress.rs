//! What a user sees while a run trains: the progress bar of each epoch (its message is
//! [`crate::epoch_stats::Running::message`]).

use indicatif::{ProgressBar, ProgressStyle};

/// The bar of one epoch (hidden with `--quiet`), starting at `done` of `len` steps.
pub(crate) fn bar(quiet: bool, epoch: u32, epochs: u32, len: u64, done: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len).with_position(done);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {msg} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("epoch {epoch}/{epochs}"));
    pb
}
