//! `[state]`: where the embedded state store lives; [`RawState`] as written, [`StateConfig`]
//! validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::resolve;

/// `[state]`: the embedded state store (quarantine index, caches, rate limits, queue).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Directory of `sievegate.db`. Without it, state lives in memory and is lost at
    /// restart (and the quarantine cannot be enabled).
    pub dir: Option<String>,
    /// How often the server deletes expired cache and rate rows (and refreshes the size
    /// gauges).
    #[serde(default = "defaults::expire_interval_secs")]
    pub expire_interval_secs: u64,
    /// A rate-limit key whose last allowed event is older than this is forgotten. Raised
    /// at run time to the longest `min_interval` configured, so forgetting never allows an
    /// event early.
    #[serde(default = "defaults::rate_retention_secs")]
    pub rate_retention_secs: u64,
    /// Without `dir`: most cache and rate entries held in memory (expired ones are evicted
    /// first, then the oldest).
    #[serde(default = "defaults::memory_max_entries")]
    pub memory_max_entries: usize,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            dir: None,
            expire_interval_secs: defaults::expire_interval_secs(),
            rate_retention_secs: defaults::rate_retention_secs(),
            memory_max_entries: defaults::memory_max_entries(),
        }
    }
}

mod defaults {
    pub fn expire_interval_secs() -> u64 {
        300
    }
    pub fn rate_retention_secs() -> u64 {
        7 * 24 * 3600
    }
    pub fn memory_max_entries() -> usize {
        100_000
    }
}

/// Validated `[state]`.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory of the database; `None`: in memory only.
    pub dir: Option<PathBuf>,
    /// Period of the expiry pass (at least a second).
    pub expire_interval: Duration,
    /// Rate retention as configured (see [`RawState::rate_retention_secs`]).
    pub rate_retention: Duration,
    /// Bound on in-memory cache and rate entries.
    pub memory_max_entries: usize,
}

impl RawState {
    /// The validated section: `dir` resolved against the config file's directory.
    pub(super) fn validate(self, base: &Path) -> StateConfig {
        StateConfig {
            dir: self.dir.as_deref().map(|d| resolve(base, d)),
            expire_interval: Duration::from_secs(self.expire_interval_secs.max(1)),
            rate_retention: Duration::from_secs(self.rate_retention_secs),
            memory_max_entries: self.memory_max_entries,
        }
    }
}

impl super::Config {
    /// How long rate rows are kept: `[state] rate_retention_secs`, raised to the longest
    /// `min_interval` configured (a row forgotten earlier would allow an event too soon).
    /// Helpers adding a rate limit with its own interval add it here.
    pub fn rate_keep(&self) -> Duration {
        self.state
            .rate_retention
            .max(self.abuse.min_interval)
            .max(self.abuse.network_interval)
            .max(self.abuse.contact_interval)
            .max(self.sieve.notify_min_interval)
    }
}
