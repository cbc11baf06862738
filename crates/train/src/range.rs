//! The ranges numeric config values are checked against, shared by every section's `validate` (config/,
//! model/config.rs, optim.rs), so each message reads the same: the key, the value and what was expected.

use anyhow::bail;

/// The ranges config values are checked against.
#[derive(Clone, Copy)]
pub(crate) enum Range {
    /// `(0, ∞)`
    Positive,
    /// `[0, ∞)`
    NonNegative,
    /// `[0, 1)`
    ZeroToOneOpen,
}

impl Range {
    pub(crate) fn check(self, key: &str, v: f64) -> anyhow::Result<()> {
        let (ok, text) = match self {
            Range::Positive => (v > 0.0, "a finite number > 0"),
            Range::NonNegative => (v >= 0.0, "a finite number >= 0"),
            Range::ZeroToOneOpen => ((0.0..1.0).contains(&v), "a number in [0, 1)"),
        };
        if ok && v.is_finite() {
            Ok(())
        } else {
            bail!("{key} = {v}: expected {text}")
        }
    }
}
