//! Sieve settings as plain values: what `[sieve]` and `[mailbox]` validate and the filter
//! runs with. Here, below both, so the configuration and the filter share them without
//! importing each other.

use std::path::PathBuf;

/// Dovecot's default special-use folders (its `15-mailboxes.conf`): used when the
/// configuration names none.
pub const DEFAULT_SPECIAL_USE: [(&str, &str); 4] = [
    ("\\Drafts", "Drafts"),
    ("\\Junk", "Junk"),
    ("\\Sent", "Sent"),
    ("\\Trash", "Trash"),
];

/// Where a trusted spam score comes from (`[sieve] spam_score_header`, `spam_score_max`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpamScore {
    /// The header field an upstream filter sets (e.g. `X-Spam-Score`).
    pub header: String,
    /// The score at and above which a message is spam (spamtest 10, spamtestplus 100).
    pub max: f64,
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
