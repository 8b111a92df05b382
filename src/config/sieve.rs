//! `[sieve]`: the script chain, its limits and the actions that send, as written
//! ([`RawSieve`]) and validated ([`SieveConfig`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve, resolve_template};

/// `[sieve]`: the script chain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSieve {
    #[serde(default)]
    pub before: Vec<String>,
    pub personal: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub default: Option<String>,
    /// Instructions each script of the chain may execute before it is stopped (implicit keep).
    #[serde(default = "defaults::cpu_limit")]
    pub cpu_limit: usize,
    /// Top-level header fields Sieve sees; later ones are not parsed (still stored).
    #[serde(default = "defaults::max_header_fields")]
    pub max_header_fields: usize,
    /// Bytes of the top-level header section Sieve sees.
    #[serde(default = "defaults::max_header_size")]
    pub max_header_size: usize,
    /// Wall-clock seconds one recipient's whole chain may run before it is stopped (implicit
    /// keep). Keep it well under Postfix's `lmtp_data_done_timeout` (600 s) divided by the
    /// recipients per transaction (`lmtp_destination_recipient_limit`, 50).
    #[serde(default = "defaults::max_run_time_secs")]
    pub max_run_time_secs: u64,
    /// Redirects per message over the whole chain (Pigeonhole's `sieve_max_redirects`).
    #[serde(default = "defaults::max_redirects")]
    pub max_redirects: usize,
    /// Seconds one redirect's relay transaction may take (connect to the reply after DATA).
    /// Redirects are sent by the outbox after the reply, so this bounds how long a hanging
    /// relay holds the outbox's sender, not a delivery; only without `[state] dir` (no
    /// durable queue) is a redirect sent during the delivery, within this deadline.
    #[serde(default = "defaults::redirect_timeout_secs")]
    pub redirect_timeout_secs: u64,
    /// Vacation `:days` bounds and default (Pigeonhole's `sieve_vacation_min_period`,
    /// `sieve_vacation_max_period`, `sieve_vacation_default_period`), in days.
    #[serde(default = "defaults::vacation_min_days")]
    pub vacation_min_days: u64,
    #[serde(default = "defaults::vacation_max_days")]
    pub vacation_max_days: u64,
    #[serde(default = "defaults::vacation_default_days")]
    pub vacation_default_days: u64,
    /// Seconds between two `notify` messages of one user; more are dropped (logged).
    #[serde(default = "defaults::notify_min_interval_secs")]
    pub notify_min_interval_secs: u64,
    /// Sieve `reject` of clean mail: `false` refuses in the protocol (`550 5.7.1`); `true`
    /// accepts and mails an RFC 5429 rejection to the envelope sender (backscatter risk).
    #[serde(default)]
    pub allow_reject_mdn: bool,
    /// Header field an upstream spam filter sets with a numeric score (e.g. `X-Spam-Score`),
    /// for `spamtest`/`spamtestplus`. Only its topmost instance is trusted. Unset: spamtest
    /// is 0 (not tested).
    pub spam_score_header: Option<String>,
    /// The score at and above which a message counts as spam (spamtest 10).
    #[serde(default = "defaults::spam_score_max")]
    pub spam_score_max: f64,
    /// Template (`%u %n %d %h`) of the user's script directory, where `include :personal`
    /// looks (Dovecot's `sieve/` directory of ManageSieve).
    pub personal_dir: Option<String>,
    /// Directory where `include :global` looks.
    pub global_dir: Option<String>,
    /// Largest script file compiled, in bytes (Pigeonhole's `sieve_max_script_size`).
    #[serde(default = "defaults::max_script_size")]
    pub max_script_size: u64,
    /// Actions one recipient's chain may collect (Pigeonhole's `sieve_max_actions`).
    #[serde(default = "defaults::max_actions")]
    pub max_actions: usize,
    /// Include nesting depth (Pigeonhole's `sieve_include_max_nesting_depth`).
    #[serde(default = "defaults::max_include_depth")]
    pub max_include_depth: usize,
    /// Extensions no script may `require`, e.g. `["redirect"]`.
    #[serde(default)]
    pub disabled_extensions: Vec<String>,
    /// Bytes of the per-user error log (`<personal script>.log`) before it is rotated; 0: off.
    #[serde(default = "defaults::user_log_size")]
    pub user_log_size: u64,
}

impl Default for RawSieve {
    fn default() -> Self {
        RawSieve {
            before: Vec::new(),
            personal: None,
            after: Vec::new(),
            default: None,
            cpu_limit: defaults::cpu_limit(),
            max_header_fields: defaults::max_header_fields(),
            max_header_size: defaults::max_header_size(),
            max_run_time_secs: defaults::max_run_time_secs(),
            max_redirects: defaults::max_redirects(),
            redirect_timeout_secs: defaults::redirect_timeout_secs(),
            vacation_min_days: defaults::vacation_min_days(),
            vacation_max_days: defaults::vacation_max_days(),
            vacation_default_days: defaults::vacation_default_days(),
            notify_min_interval_secs: defaults::notify_min_interval_secs(),
            allow_reject_mdn: false,
            spam_score_header: None,
            spam_score_max: defaults::spam_score_max(),
            personal_dir: None,
            global_dir: None,
            max_script_size: defaults::max_script_size(),
            max_actions: defaults::max_actions(),
            max_include_depth: defaults::max_include_depth(),
            disabled_extensions: Vec::new(),
            user_log_size: defaults::user_log_size(),
        }
    }
}

/// Validated `[sieve]`, paths absolute.
#[derive(Debug, Clone)]
pub struct SieveConfig {
    pub before: Vec<PathBuf>,
    pub personal: Option<String>,
    pub after: Vec<PathBuf>,
    pub default: Option<PathBuf>,
    pub cpu_limit: usize,
    /// Wall-clock budget of one recipient's chain.
    pub max_run_time: Duration,
    pub limits: MessageLimits,
    /// Redirects per message over the whole chain.
    pub max_redirects: usize,
    /// Deadline of one redirect's relay transaction (in the outbox).
    pub redirect_timeout: Duration,
    /// Vacation periods in days: (minimum, default, maximum).
    pub vacation_days: (u64, u64, u64),
    /// Least time between two notifications of one user.
    pub notify_min_interval: Duration,
    /// `reject` mails an RFC 5429 MDN instead of a protocol-level 550.
    pub allow_reject_mdn: bool,
    /// The trusted spam score header and its maximum.
    pub spam_score: Option<crate::mail::sieve::SpamScore>,
    /// `[mailbox] special_use`: special-use flag (`\Junk`) → Sieve folder name.
    pub special_use: Vec<(String, String)>,
    /// `[mailbox] namespace_prefix`: how `fileinto` names map to Maildir++ folders.
    pub namespace_prefix: String,
    /// Include directories, per-user log, script limits.
    pub scripts: crate::mail::sieve::ScriptSettings,
}

/// How much of a message's header section Sieve parses (see `delivery::view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Top-level header fields (a folded field counts once).
    pub max_header_fields: usize,
    /// Bytes of the top-level header section.
    pub max_header_size: usize,
}

impl RawSieve {
    /// Checks `[sieve]`, pushing every problem onto `problems`; paths resolve against
    /// `base`. `special_use` comes from `[mailbox]`.
    pub(super) fn validate(
        self,
        base: &Path,
        special_use: Vec<(String, String)>,
        problems: &mut Vec<String>,
    ) -> SieveConfig {
        let sv = self;
        let check_file = |key: &str, path: &PathBuf, problems: &mut Vec<String>| {
            if !path.is_file() {
                problems.push(format!("{key}: {} is not a readable file", path.display()));
            }
        };
        let before: Vec<PathBuf> = sv.before.iter().map(|p| resolve(base, p)).collect();
        let after: Vec<PathBuf> = sv.after.iter().map(|p| resolve(base, p)).collect();
        let default = sv.default.as_deref().map(|p| resolve(base, p));
        for p in &before {
            check_file("sieve.before", p, problems);
        }
        for p in &after {
            check_file("sieve.after", p, problems);
        }
        if let Some(p) = &default {
            check_file("sieve.default", p, problems);
        }
        let personal = sv.personal.as_deref().map(|p| resolve_template(base, p));
        let spam_score = match sv.spam_score_header {
            Some(header) => {
                let name_ok =
                    !header.is_empty() && header.bytes().all(|b| b.is_ascii_graphic() && b != b':');
                if !name_ok {
                    problems.push(format!(
                        "sieve.spam_score_header: {header:?} is not a header field name"
                    ));
                }
                if !(sv.spam_score_max.is_finite() && sv.spam_score_max > 0.0) {
                    problems.push(format!(
                        "sieve.spam_score_max: {} must be a number above 0",
                        sv.spam_score_max
                    ));
                }
                Some(crate::mail::sieve::SpamScore {
                    header,
                    max: sv.spam_score_max,
                })
            }
            None => None,
        };
        for name in &sv.disabled_extensions {
            use sieve::compiler::grammar::Capability;
            // `redirect` is a base command, not an extension, but sites want to turn it off
            // too (sieve-rs patch #10 refuses the command itself).
            if name != "redirect" && matches!(Capability::parse(name), Capability::Other(_)) {
                problems.push(format!(
                    "sieve.disabled_extensions: {name:?} is not a Sieve extension sievegate knows"
                ));
            }
        }
        for (key, value) in [
            ("sieve.max_script_size", sv.max_script_size as usize),
            ("sieve.max_actions", sv.max_actions),
            ("sieve.max_include_depth", sv.max_include_depth),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        let global_dir = sv.global_dir.as_deref().map(|p| resolve(base, p));
        if let Some(dir) = &global_dir {
            if !dir.is_dir() {
                problems.push(format!(
                    "sieve.global_dir: {} is not a directory",
                    dir.display()
                ));
            }
        }
        let scripts = crate::mail::sieve::ScriptSettings {
            personal_dir: sv
                .personal_dir
                .as_deref()
                .map(|p| resolve_template(base, p)),
            global_dir,
            max_script_size: sv.max_script_size,
            max_actions: sv.max_actions,
            max_include_depth: sv.max_include_depth,
            disabled_extensions: sv.disabled_extensions.clone(),
            user_log_size: sv.user_log_size,
        };

        let sieve = SieveConfig {
            spam_score,
            special_use,
            namespace_prefix: String::new(),
            before,
            personal,
            after,
            default,
            cpu_limit: sv.cpu_limit,
            limits: MessageLimits {
                max_header_fields: sv.max_header_fields,
                max_header_size: sv.max_header_size,
            },
            max_run_time: Duration::from_secs(sv.max_run_time_secs),
            max_redirects: sv.max_redirects,
            redirect_timeout: Duration::from_secs(sv.redirect_timeout_secs),
            vacation_days: (
                sv.vacation_min_days,
                sv.vacation_default_days,
                sv.vacation_max_days,
            ),
            notify_min_interval: Duration::from_secs(sv.notify_min_interval_secs),
            allow_reject_mdn: sv.allow_reject_mdn,
            scripts,
        };
        if !(sv.vacation_min_days <= sv.vacation_default_days
            && sv.vacation_default_days <= sv.vacation_max_days)
        {
            problems.push(
                "sieve.vacation_default_days: must lie between vacation_min_days and vacation_max_days"
                    .to_string(),
            );
        }
        if sv.max_redirects > 32 {
            // More than sieve_max_actions could never be reached; a typo, not a policy.
            problems.push("sieve.max_redirects: at most 32".to_string());
        }
        sieve
    }
}

/// Defaults of the `[sieve]` keys.
mod defaults {
    pub fn spam_score_max() -> f64 {
        15.0
    }
    pub fn cpu_limit() -> usize {
        10_000
    }
    pub fn max_header_fields() -> usize {
        1000
    }
    pub fn max_header_size() -> usize {
        256 * 1024
    }
    pub fn max_run_time_secs() -> u64 {
        10
    }
    /// Pigeonhole's `sieve_max_redirects` default.
    pub fn max_redirects() -> usize {
        4
    }
    pub fn redirect_timeout_secs() -> u64 {
        30
    }
    /// Pigeonhole's vacation periods: at least 1 day, at most 60, 7 by default.
    pub fn vacation_min_days() -> u64 {
        1
    }
    pub fn vacation_max_days() -> u64 {
        60
    }
    pub fn vacation_default_days() -> u64 {
        7
    }
    pub fn notify_min_interval_secs() -> u64 {
        60
    }
    pub fn max_script_size() -> u64 {
        1024 * 1024
    }
    pub fn max_actions() -> usize {
        32
    }
    pub fn max_include_depth() -> usize {
        10
    }
    pub fn user_log_size() -> u64 {
        64 * 1024
    }
}
