//! The loop's cadence: after step N, what happens — draw the progress bar, print a log line, save a
//! checkpoint, read the losses back? One function of the step counts, so the loop asks instead of braiding
//! five conditions, and the answers are tested by hand.

/// What the loop does after a step, besides the step itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct After {
    /// Refresh the visible progress bar's message.
    pub(crate) bar: bool,
    /// Print a plain progress line (logs, where the bar draws nothing).
    pub(crate) log: bool,
    /// Write a mid-epoch checkpoint (the epoch's last step is checkpointed by the epoch's end instead).
    pub(crate) save: bool,
    /// Read the pending loss terms back to the host (one read; where a non-finite loss stops the run). Every
    /// other answer needs them, and so does the epoch's end.
    pub(crate) read_back: bool,
}

/// How often each thing happens, in steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cadence {
    pub(crate) steps_per_epoch: u64,
    /// Whether the progress bar is drawn (a terminal, not `--quiet`).
    pub(crate) bar_visible: bool,
    /// Whether plain log lines are printed (not a terminal, not `--quiet`).
    pub(crate) log_lines: bool,
    /// `run.checkpoint_every`; 0: only at epoch ends (and when asked to stop).
    pub(crate) checkpoint_every: u64,
}

/// The bar's message is refreshed this often: a read-back costs a host synchronisation.
const BAR_EVERY: u64 = 10;
/// Log lines per epoch.
const LOG_LINES_PER_EPOCH: u64 = 5;

impl Cadence {
    /// After the step that brought the run to `done` steps; `stop`: the run is asked to stop there.
    pub(crate) fn after(&self, done: u64, stop: bool) -> After {
        let spe = self.steps_per_epoch.max(1);
        let in_epoch = match done % spe {
            0 => spe,
            n => n,
        };
        let epoch_end = in_epoch == spe;
        let bar = self.bar_visible && (in_epoch.is_multiple_of(BAR_EVERY) || epoch_end);
        let log_every = (spe / LOG_LINES_PER_EPOCH).max(1);
        let log = self.log_lines && in_epoch.is_multiple_of(log_every) && !epoch_end;
        let periodic = self.checkpoint_every > 0 && done.is_multiple_of(self.checkpoint_every);
        let save = (stop || periodic) && !epoch_end;
        After { bar, log, save, read_back: bar || log || save || epoch_end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: Cadence = Cadence { steps_per_epoch: 39, bar_visible: false, log_lines: true, checkpoint_every: 0 };

    #[test]
    fn logs_five_times_an_epoch_but_not_at_its_end() {
        // 39 steps: a line every 7 steps (39 / 5 = 7), at 7, 14, 21, 28, 35 of each epoch.
        let at: Vec<u64> = (1..=78).filter(|&s| LOGS.after(s, false).log).collect();
        assert_eq!(at, [7, 14, 21, 28, 35, 46, 53, 60, 67, 74]);
        // The epoch's end reads back (for its summary) but neither logs nor saves.
        assert_eq!(LOGS.after(39, false), After { read_back: true, ..After::default() });
        assert_eq!(LOGS.after(40, false), After::default());
    }

    #[test]
    fn the_bar_refreshes_every_ten_steps_and_at_the_epoch_end() {
        let bar = Cadence { bar_visible: true, log_lines: false, ..LOGS };
        let at: Vec<u64> = (1..=39).filter(|&s| bar.after(s, false).bar).collect();
        assert_eq!(at, [10, 20, 30, 39]);
    }

    #[test]
    fn saves_periodically_and_on_a_stop_but_leaves_epoch_ends_to_the_epoch() {
        let every = Cadence { checkpoint_every: 13, ..LOGS };
        let at: Vec<u64> = (1..=78).filter(|&s| every.after(s, false).save).collect();
        // 39 and 78 are multiples of 13 too, but epoch ends.
        assert_eq!(at, [13, 26, 52, 65]);
        assert_eq!(LOGS.after(5, true), After { save: true, read_back: true, ..After::default() });
        assert!(!LOGS.after(39, true).save);
    }

    #[test]
    fn one_step_epochs_end_at_every_step() {
        let one = Cadence { steps_per_epoch: 1, bar_visible: true, log_lines: true, checkpoint_every: 1 };
        assert_eq!(one.after(3, true), After { bar: true, read_back: true, ..After::default() });
    }
}
