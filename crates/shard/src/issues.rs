//! The bad-input policy: every malformed row, unreadable image or duplicate id either stops the run with a
//! message naming the file and line (`--on-error fail`, the default) or is skipped and counted by reason
//! (`--on-error skip`). Protocol drops (no majority, not a face …) are not issues: they are counted apart,
//! in [`crate::sources::Scan::dropped`].

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnError {
    /// Stop at the first bad row; nothing is written.
    Fail,
    /// Skip bad rows, count them by reason in the manifest and summary.
    Skip,
}

#[derive(Debug)]
pub(crate) struct Issues {
    pub(crate) policy: OnError,
    /// reason -> rows skipped.
    pub(crate) skipped: BTreeMap<String, u64>,
    /// The first few messages, shown as warnings.
    pub(crate) examples: Vec<String>,
}

impl Issues {
    pub(crate) fn new(policy: OnError) -> Self {
        Self { policy, skipped: BTreeMap::new(), examples: Vec::new() }
    }

    /// Reports one bad row: an error under `fail`, a counted skip under `skip`.
    pub(crate) fn bad(&mut self, reason: &str, message: String) -> anyhow::Result<()> {
        match self.policy {
            OnError::Fail => anyhow::bail!("{message}\n(rerun with --on-error skip to skip such rows and count them)"),
            OnError::Skip => {
                *self.skipped.entry(reason.to_string()).or_default() += 1;
                if self.examples.len() < 5 {
                    self.examples.push(message);
                }
                Ok(())
            }
        }
    }
}
