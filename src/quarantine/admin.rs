//! The library part of `sievegate quarantine ...`: opening the quarantine from the
//! configuration, choosing whom a release delivers to, delete and purge, and the escaping
//! of fields for an admin's terminal. The command (`cli/quarantine.rs` in the binary) parses
//! the arguments and prints; the release's delivery is [`crate::delivery::release`],
//! through the front door.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Quarantine, QuarantineError};
use crate::config::Config;
use crate::state::{QuarantineEntry, StateStore};

/// Why a quarantine operation failed; the text is what the admin reads.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A quarantine or index operation failed (unknown id included).
    #[error("{0}")]
    Quarantine(#[from] QuarantineError),
    /// The config has no `[state] dir` (or no `[quarantine] dir`): there is no quarantine.
    #[error("{0}")]
    NotConfigured(String),
    /// `--rcpt` names an address the entry was not for, or one that cannot be resolved.
    #[error("{0}")]
    BadRecipient(String),
    /// The rescan failed: we cannot tell whether the message is clean now.
    #[error("rescan of {id} failed, nothing released: {message}")]
    Rescan {
        /// The entry.
        id: String,
        /// The scanner's error.
        message: String,
    },
    /// Still infected (or not confirmed clean) and no `--force`.
    #[error("{id} is still {verdict}: not released (use --force to store it into the recipients' INBOX without Sieve)")]
    StillInfected {
        /// The entry.
        id: String,
        /// The rescan's verdict.
        verdict: String,
    },
    /// Some recipients could not be delivered to; they stay held (the others are recorded
    /// as released).
    #[error("{id}: delivery failed for {failed} of {total} recipient(s); they are still held, run release again to retry them")]
    Delivery {
        /// The entry.
        id: String,
        /// Recipients whose outcome is a temporary failure.
        failed: usize,
        /// Recipients tried.
        total: usize,
    },
    /// A recipient named by `--rcpt` was released before, or no recipient is held any more:
    /// a release delivers each recipient once.
    #[error("{0}")]
    AlreadyReleased(String),
    /// Another process (another host, the web page, a second CLI run) is releasing one of
    /// the recipients right now; nothing was done.
    #[error("{0}")]
    InProgress(String),
}

/// `[quarantine]` of `config`, indexed in `state` (the store of `[state] dir`), as a
/// [`Quarantine`], enabled or not, so an admin can still list and release after turning it
/// off.
pub fn open(config: &Config, state: &Arc<dyn StateStore>) -> Result<Quarantine, AdminError> {
    if !config.state.is_durable() {
        return Err(AdminError::NotConfigured(format!(
            "{}: state.dir is not set (nor backend = \"postgres\"), so there is no quarantine index",
            config.path.display()
        )));
    }
    // A PostgreSQL store keeps the messages: no directory needed there.
    if config.quarantine.dir.as_os_str().is_empty() && config.state.postgres.is_none() {
        return Err(AdminError::NotConfigured(format!(
            "{}: quarantine.dir is not set",
            config.path.display()
        )));
    }
    Ok(Quarantine::new(
        config.quarantine.dir.clone(),
        Arc::clone(state),
    ))
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The JSON object of one entry (`list --json`): the public shape, field by field.
/// Serialized straight from the entry (no intermediate `serde_json::Value`), which halves
/// the time for 100 000 entries.
#[derive(Debug, serde::Serialize)]
pub struct EntryJson<'a> {
    pub id: &'a str,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub resolved_recipients: &'a [String],
    pub client_ip: Option<&'a str>,
    pub client_helo: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    pub verdict: &'a str,
    pub virustest: u8,
    pub viruses: &'a [String],
    pub message_id: &'a str,
    pub subject: &'a str,
    pub from: &'a str,
    pub size: u64,
    pub backscatter: bool,
    /// RFC 3339, UTC; `null` while some recipient is held.
    pub released_at: Option<String>,
    pub released_by: Option<&'a str>,
    /// The recipients (as given) not released yet.
    pub held: Vec<&'a str>,
    /// One object per released recipient: `rcpt`, `released_at`, `released_by`.
    pub releases: Vec<ReleaseJson<'a>>,
}

/// The JSON object of one recipient's release.
#[derive(Debug, serde::Serialize)]
pub struct ReleaseJson<'a> {
    pub rcpt: &'a str,
    /// RFC 3339, UTC.
    pub released_at: String,
    pub released_by: &'a str,
}

impl<'a> EntryJson<'a> {
    /// The JSON view of `e`.
    pub fn new(e: &'a QuarantineEntry) -> Self {
        EntryJson {
            id: &e.id,
            received_at: rfc3339(e.received_at),
            sender: &e.sender,
            recipients: &e.recipients,
            resolved_recipients: &e.resolved,
            client_ip: e.client_ip.as_deref(),
            client_helo: e.client_helo.as_deref(),
            queue_id: e.queue_id.as_deref(),
            verdict: &e.verdict,
            virustest: e.virustest,
            viruses: &e.viruses,
            message_id: &e.message_id,
            subject: &e.subject,
            from: &e.from,
            size: e.size,
            backscatter: e.backscatter,
            released_at: e.released_at.map(rfc3339),
            released_by: e.released_by.as_deref(),
            held: e.held(),
            releases: e
                .releases
                .iter()
                .map(|r| ReleaseJson {
                    rcpt: &r.rcpt,
                    released_at: rfc3339(r.at),
                    released_by: &r.by,
                })
                .collect(),
        }
    }
}

/// `text` for a terminal: control characters (C0, DEL, C1), invisible direction marks and
/// the backslash are shown as escapes (`\x1b`, `\r`, `\0`, `\u{202e}`, `\\`), so a
/// hostile field (an envelope sender may hold any byte inside its quotes) can neither drive
/// the admin's terminal nor pass for other text.
pub fn terminal(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `quarantine delete ID`.
pub fn delete(q: &Quarantine, id: &str) -> Result<(), AdminError> {
    q.delete(id)?;
    Ok(())
}

/// What `quarantine purge` did.
#[derive(Debug, Default)]
pub struct PurgeSummary {
    /// Entries past the age, removed or not.
    pub purged: super::Purged,
    /// Orphaned files and index entries without a file.
    pub swept: super::Swept,
    /// Cache and rate rows expired in the same run.
    pub expired: crate::state::Expired,
}

/// `quarantine purge --older-than DAYS`; `progress(done, total)` after each entry. Also
/// what the server does periodically: sweeps orphans (files older than
/// [`super::SWEEP_GRACE`]) and expires cache and rate rows (rate rows after `rate_keep`),
/// so a host whose server is stopped can be cleaned by hand or cron.
pub fn purge(
    q: &Quarantine,
    older_than_days: u64,
    now: SystemTime,
    rate_keep: Duration,
    progress: impl FnMut(usize, usize),
) -> Result<PurgeSummary, AdminError> {
    let age = Duration::from_secs(older_than_days.saturating_mul(86_400));
    let before = now.checked_sub(age).unwrap_or(std::time::UNIX_EPOCH);
    let purged = q.purge(before, progress)?;
    let swept = q.sweep(now, super::SWEEP_GRACE)?;
    let expired = q
        .state()
        .expire(now, rate_keep)
        .map_err(QuarantineError::from)?;
    Ok(PurgeSummary {
        purged,
        swept,
        expired,
    })
}

/// The recipients (as given) this release delivers to: every one still held, or those named
/// by `only` (matched case-insensitively against the given and resolved forms), each of
/// which must be a recipient of the entry and still held.
pub fn release_choice(entry: &QuarantineEntry, only: &[String]) -> Result<Vec<String>, AdminError> {
    let released_before = |given: &str| entry.releases.iter().find(|r| r.rcpt == given);
    if only.is_empty() {
        let held: Vec<String> = entry.held().into_iter().map(str::to_string).collect();
        if held.is_empty() {
            let last = entry.releases.last();
            return Err(AdminError::AlreadyReleased(format!(
                "{}: every recipient was already released{}: nothing delivered",
                entry.id,
                last.map(|r| format!(
                    " (last: {} by {} at {})",
                    terminal(&r.rcpt),
                    terminal(&r.by),
                    rfc3339(r.at)
                ))
                .unwrap_or_default()
            )));
        }
        return Ok(held);
    }
    let mut chosen: Vec<String> = Vec::new();
    for want in only {
        let found = entry.recipient_matching(want, |_| true);
        let Some(given) = found else {
            return Err(AdminError::BadRecipient(format!(
                "{} is not a recipient of {} (its recipients: {})",
                terminal(want),
                entry.id,
                terminal(&entry.recipients.join(", "))
            )));
        };
        if let Some(before) = released_before(given) {
            return Err(AdminError::AlreadyReleased(format!(
                "{} was already released from {} by {} at {}: not delivered again",
                terminal(given),
                entry.id,
                terminal(&before.by),
                rfc3339(before.at)
            )));
        }
        if !chosen.iter().any(|c| c == given) {
            chosen.push(given.to_string());
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped_for_the_terminal() {
        for (field, shown) in [
            ("a@b.example", "a@b.example"),
            (
                "\"x\x1b]0;owned\x07\r\n\0y\"@evil",
                "\"x\\x1b]0;owned\\x07\\r\\n\\0y\"@evil",
            ),
            ("\"a\\\\x1b\"@e", "\"a\\\\\\\\x1b\"@e"),
            ("\u{9b}31m\u{7f}", "\\x9b31m\\x7f"),
            ("\u{202e}moc.live", "\\u{202e}moc.live"),
            ("Grüße\t", "Grüße\\t"),
        ] {
            assert_eq!(terminal(field), shown, "{field:?}");
        }
    }
}
