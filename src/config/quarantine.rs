//! `[quarantine]`: whole-message quarantine of infected mail; [`RawQuarantine`] as written,
//! [`QuarantineConfig`] validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve, StateConfig};

/// `[quarantine]`: whole-message quarantine of infected mail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Keep a copy of every message whose virustest reaches `min_virustest`.
    #[serde(default)]
    pub enabled: bool,
    /// Where the copies go, one `<id>.eml` file each; required when enabled, unless the
    /// state store holds the messages itself (PostgreSQL), where it is unused.
    pub dir: Option<String>,
    /// The lowest virustest quarantined: 4 also keeps heuristic hits (the false positives
    /// an admin wants back), 5 only named viruses.
    #[serde(default = "defaults::min_virustest")]
    pub min_virustest: u8,
    /// Entries older than this are purged by the server (file and index).
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u64,
    /// Sample mailboxes (abuse desks): infected mail to them becomes a quarantine entry
    /// addressed to them, never a Maildir delivery.
    #[serde(default)]
    pub sample_recipients: Vec<String>,
}

impl Default for RawQuarantine {
    fn default() -> Self {
        RawQuarantine {
            enabled: false,
            dir: None,
            min_virustest: defaults::min_virustest(),
            retention_days: defaults::retention_days(),
            sample_recipients: Vec::new(),
        }
    }
}

/// Validated `[quarantine]`.
#[derive(Debug, Clone)]
pub struct QuarantineConfig {
    pub enabled: bool,
    /// Absolute; meaningful only when `enabled` with a SQLite store. Empty when unset,
    /// which only a PostgreSQL store allows (it keeps the messages in the database).
    pub dir: PathBuf,
    /// 4 or 5.
    pub min_virustest: u8,
    /// How long entries are kept before the server purges them.
    pub retention: Duration,
    /// `[quarantine] sample_recipients`: mailbox addresses (`user@domain`, lowercased,
    /// no `+detail`) whose infected mail is only ever a quarantine entry.
    pub sample_recipients: Vec<String>,
}

impl QuarantineConfig {
    /// True when `mailbox` (a resolved `user@domain`, as `Recipient::user` gives it) is a
    /// sample recipient: infected mail to it is held in the quarantine for it to fetch,
    /// and the admin view lets it log in to read its entries.
    pub fn is_sample_recipient(&self, mailbox: &str) -> bool {
        self.sample_recipients
            .iter()
            .any(|s| s.eq_ignore_ascii_case(mailbox))
    }
}

impl RawQuarantine {
    /// Checks `[quarantine]`; enabled, it needs a durable state store (its index), and a
    /// `dir` for the message files unless that store is PostgreSQL, which holds the
    /// messages too (one transaction with the entry, readable from every host).
    pub(super) fn validate(
        self,
        base: &Path,
        state: &StateConfig,
        domains: &[String],
        problems: &mut Vec<String>,
    ) -> QuarantineConfig {
        let q = self;
        let quarantine_dir = q.dir.as_deref().map(|d| resolve(base, d));
        if q.enabled && quarantine_dir.is_none() && state.postgres.is_none() {
            problems.push(
                "quarantine.dir: needed when quarantine.enabled = true (unless [state] backend = \"postgres\", which keeps the messages)"
                    .to_string(),
            );
        }
        // Below 4 the message is not infected (RFC 5235: 1 clean, 2-3 unused by clamd):
        // quarantining clean mail would fill the quarantine with delivered messages.
        if !(4..=5).contains(&q.min_virustest) {
            problems.push(format!(
                "quarantine.min_virustest: {} must be 4 (heuristic matches too) or 5 (named viruses only)",
                q.min_virustest
            ));
        }
        if q.retention_days == 0 {
            problems.push("quarantine.retention_days: must be greater than 0".to_string());
        }
        if q.enabled && !state.is_durable() {
            problems.push(
                "state.dir: needed when quarantine.enabled = true (the quarantine index lives there), or backend = \"postgres\""
                    .to_string(),
            );
        }
        let sample_recipients = sample_recipients(&q, domains, problems);
        QuarantineConfig {
            sample_recipients,
            enabled: q.enabled,
            dir: quarantine_dir.unwrap_or_default(),
            min_virustest: q.min_virustest,
            retention: Duration::from_secs(q.retention_days.saturating_mul(86_400)),
        }
    }
}

/// `[quarantine] sample_recipients` checked: plain addresses at one of our `domains`.
/// Without `enabled` their infected mail is discarded like everyone's ([`warnings`]).
fn sample_recipients(
    q: &RawQuarantine,
    domains: &[String],
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    for address in &q.sample_recipients {
        let lower = address.to_lowercase();
        let domain = lower.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !crate::mail::address::is_plain_address(address) {
            problems.push(format!(
                "quarantine.sample_recipients: {address:?} is not a plain address (user@domain)"
            ));
        } else if !domains.iter().any(|d| d == domain) {
            problems.push(format!(
                "quarantine.sample_recipients: {address:?} is not at one of mailbox.domains"
            ));
        } else if !addresses.contains(&lower) {
            addresses.push(lower);
        }
    }
    addresses
}

/// Valid but probably not meant: sample mailboxes without a quarantine to hold their samples.
pub(super) fn warnings(q: &QuarantineConfig) -> Vec<String> {
    if q.enabled || q.sample_recipients.is_empty() {
        return Vec::new();
    }
    vec!["quarantine.sample_recipients is set but quarantine.enabled = false: their infected mail is discarded like everyone's, no sample is kept".to_string()]
}

/// Defaults of the `[quarantine]` keys.
mod defaults {
    pub fn min_virustest() -> u8 {
        4
    }
    pub fn retention_days() -> u64 {
        30
    }
}
