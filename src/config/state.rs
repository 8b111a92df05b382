//! `[state]`: where the embedded state store lives; [`RawState`] as written, [`StateConfig`]
//! validated.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::resolve;

/// `[state]`: the embedded state store (quarantine index, caches, rate limits, queue).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Directory of `sievegate.db`. Without it, state lives in memory and is lost at
    /// restart (and the quarantine cannot be enabled).
    pub dir: Option<String>,
}

/// Validated `[state]`.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory of the database; `None`: in memory only.
    pub dir: Option<PathBuf>,
}

impl RawState {
    /// The validated section: `dir` resolved against the config file's directory.
    pub(super) fn validate(self, base: &Path) -> StateConfig {
        StateConfig {
            dir: self.dir.as_deref().map(|d| resolve(base, d)),
        }
    }
}
