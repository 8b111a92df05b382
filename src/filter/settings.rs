//! What a [`Filter`](super::Filter) is built from: [`FilterConfig`] (which scripts run,
//! and the limits they run under) and its [`ScriptSettings`] (script layout and limits,
//! with Dovecot/Pigeonhole defaults).

use std::path::PathBuf;
use std::time::Duration;

pub use crate::mail::sieve::ScriptSettings;

use super::{SpamScore, VacationPeriods};

/// Which scripts run, and the limits they run under.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    /// Global scripts that run first, in order (Pigeonhole's `sieve_before`).
    pub before: Vec<PathBuf>,
    /// Template of the personal script path (`%u`, `%n`, `%d`), e.g.
    /// `/var/vmail/%d/%n/.dovecot.sieve`; a file or a symlink to one.
    pub personal: Option<String>,
    /// Global scripts that run last, in order (Pigeonhole's `sieve_after`).
    pub after: Vec<PathBuf>,
    /// Runs in the personal slot when the user has no personal script.
    pub default: Option<PathBuf>,
    /// This host's name: the `domain`/`host` environment items and generated Message-IDs.
    pub hostname: String,
    /// sieve-rs instruction budget for each script of the chain (as Pigeonhole's CPU limit
    /// is per script); past it, a runtime error.
    pub cpu_limit: usize,
    /// Wall-clock budget for one recipient's whole chain; past it, a runtime error (checked
    /// between instructions and inside the `:matches` glob matcher).
    pub max_run_time: Duration,
    /// The trusted spam score header (`[sieve] spam_score_header`); `None`: `spamtest` is
    /// always 0 (not tested).
    pub spam_score: Option<SpamScore>,
    /// Special-use flag → folder (`[mailbox] special_use`), for `fileinto :specialuse`.
    pub special_use: Vec<(String, String)>,
    /// `[mailbox] namespace_prefix`: how folder names map to Maildir++ directories.
    pub namespace_prefix: String,
    /// Redirects per message over the whole chain (`[sieve] max_redirects`).
    pub max_redirects: usize,
    /// Vacation period bounds (`[sieve] vacation_*_days`).
    pub vacation: VacationPeriods,
    /// Include directories, the per-user error log and the limits (`[sieve]`).
    pub scripts: ScriptSettings,
}
