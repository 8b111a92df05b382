//! What a [`Filter`](super::Filter) is built from: [`FilterConfig`] (which scripts run,
//! and the limits they run under) and its [`ScriptSettings`] (script layout and limits,
//! with Dovecot/Pigeonhole defaults).

use std::path::PathBuf;
use std::time::Duration;

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
    /// Redirects per message over the whole chain (`[sieve] max_redirects`).
    pub max_redirects: usize,
    /// Vacation period bounds (`[sieve] vacation_*_days`).
    pub vacation: VacationPeriods,
    /// Include directories, the per-user error log and the limits (`[sieve]`).
    pub scripts: ScriptSettings,
}

/// The `[sieve]` settings of script layout and limits, with Dovecot/Pigeonhole defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSettings {
    /// Template of the user's script directory (`%u %n %d %h`): where `include :personal`
    /// looks (Pigeonhole's `sieve_dir`; ManageSieve's `sieve/` directory). `None`: personal
    /// includes find nothing.
    pub personal_dir: Option<String>,
    /// Where `include :global` looks (Pigeonhole's `sieve_global`).
    pub global_dir: Option<PathBuf>,
    /// Largest script file read and compiled (Pigeonhole's `sieve_max_script_size`, 1 MiB).
    pub max_script_size: u64,
    /// Actions one recipient's chain may collect (`sieve_max_actions`, 32).
    pub max_actions: usize,
    /// Include nesting below the chain script (`sieve_include_max_nesting_depth`, 10).
    pub max_include_depth: usize,
    /// Extensions no script may `require` (compile error), e.g. `redirect`.
    pub disabled_extensions: Vec<String>,
    /// Bytes the per-user error log (`<active script>.log`) may reach before it is rotated
    /// to `.log.0`; 0 turns the log off.
    pub user_log_size: u64,
}

impl Default for ScriptSettings {
    fn default() -> Self {
        ScriptSettings {
            personal_dir: None,
            global_dir: None,
            max_script_size: 1024 * 1024,
            max_actions: 32,
            max_include_depth: 10,
            disabled_extensions: Vec::new(),
            user_log_size: 64 * 1024,
        }
    }
}
