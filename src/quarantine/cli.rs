//! The logic of `sievegate quarantine ...`: list, show, release, delete, purge. `main`
//! parses the arguments and prints errors; everything here returns typed errors, and output
//! goes to the writer it is given.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Quarantine, QuarantineError};
use crate::address::Recipient;
use crate::delivery::{self, Client, Envelope, RcptOutcome, Route, Services};
use crate::scan::Verdict;
use crate::state::{QuarantineEntry, QuarantineFilter};

/// Why a quarantine command failed; the text is what the admin reads.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A quarantine or index operation failed (unknown id included).
    #[error("{0}")]
    Quarantine(#[from] QuarantineError),
    /// `--since` is not a date.
    #[error("{0:?} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")]
    BadDate(String),
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
    /// Some recipients could not be delivered to; the entry stays unreleased.
    #[error("{id}: delivery failed for {failed} of {total} recipient(s); the entry is not marked released, run release again")]
    Delivery {
        /// The entry.
        id: String,
        /// Recipients whose outcome is a temporary failure.
        failed: usize,
        /// Recipients tried.
        total: usize,
    },
    /// The async runtime for the rescan could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// `[quarantine]` and `[state]` of `services` as a [`Quarantine`], enabled or not, so an
/// admin can still list and release after turning it off.
pub fn open(services: &Services) -> Result<Quarantine, CliError> {
    let config = &services.config;
    if config.state.dir.is_none() {
        return Err(CliError::NotConfigured(format!(
            "{}: state.dir is not set, so there is no quarantine index",
            config.path.display()
        )));
    }
    if config.quarantine.dir.as_os_str().is_empty() {
        return Err(CliError::NotConfigured(format!(
            "{}: quarantine.dir is not set",
            config.path.display()
        )));
    }
    Ok(Quarantine::new(
        config.quarantine.dir.clone(),
        Arc::clone(&services.state),
    ))
}

/// Parses `--since`: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time in UTC.
pub fn parse_date(text: &str) -> Result<SystemTime, CliError> {
    let t = text.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    humantime::parse_rfc3339_weak(&full).map_err(|_| CliError::BadDate(text.to_string()))
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
    /// RFC 3339, UTC; `null` while not released.
    pub released_at: Option<String>,
    pub released_by: Option<&'a str>,
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
        }
    }
}

/// `quarantine list`: one JSON array, or a table for people.
pub fn list(
    q: &Quarantine,
    filter: &QuarantineFilter,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, CliError> {
    let entries = q
        .state()
        .quarantine_list(filter)
        .map_err(QuarantineError::from)?;
    if json {
        let array: Vec<EntryJson<'_>> = entries.iter().map(EntryJson::new).collect();
        serde_json::to_writer(&mut *out, &array).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(entries.len());
    }
    writeln!(
        out,
        "{:<24} {:<20} {:>8} {:<32} {:<28} {:<28} SUBJECT",
        "ID", "RECEIVED", "SIZE", "VIRUS", "SENDER", "RECIPIENTS"
    )?;
    for e in &entries {
        let mut flags = String::new();
        if e.backscatter {
            flags.push_str(" [backscatter]");
        }
        if e.released_at.is_some() {
            flags.push_str(" [released]");
        }
        let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
        writeln!(
            out,
            "{:<24} {:<20} {:>8} {:<32} {:<28} {:<28} {}{}",
            e.id,
            rfc3339(e.received_at),
            e.size,
            clip(&e.viruses.join(","), 32),
            clip(sender, 28),
            clip(&e.recipients.join(","), 28),
            clip(&e.subject, 40),
            flags
        )?;
    }
    writeln!(out, "{} entries", entries.len())?;
    Ok(entries.len())
}

/// At most `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// `quarantine show ID [--raw]`: the original bytes, or the metadata and the header section.
pub fn show(q: &Quarantine, id: &str, raw: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let entry = q.get(id)?;
    let bytes = q.raw(id)?;
    if raw {
        out.write_all(&bytes)?;
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let sender = if entry.sender.is_empty() {
        "<>"
    } else {
        &entry.sender
    };
    writeln!(out, "id:           {}", entry.id)?;
    writeln!(out, "received:     {}", rfc3339(entry.received_at))?;
    writeln!(out, "sender:       {sender}")?;
    writeln!(out, "recipients:   {}", entry.recipients.join(", "))?;
    writeln!(out, "resolved:     {}", entry.resolved.join(", "))?;
    writeln!(out, "client ip:    {}", opt(&entry.client_ip))?;
    writeln!(out, "client helo:  {}", opt(&entry.client_helo))?;
    writeln!(out, "queue id:     {}", opt(&entry.queue_id))?;
    writeln!(
        out,
        "verdict:      {} (virustest {})",
        entry.verdict, entry.virustest
    )?;
    writeln!(out, "viruses:      {}", entry.viruses.join(", "))?;
    writeln!(out, "message-id:   {}", entry.message_id)?;
    writeln!(out, "from:         {}", entry.from)?;
    writeln!(out, "subject:      {}", entry.subject)?;
    writeln!(out, "size:         {}", entry.size)?;
    writeln!(out, "backscatter:  {}", entry.backscatter)?;
    match (&entry.released_at, &entry.released_by) {
        (Some(at), by) => writeln!(
            out,
            "released:     {} by {}",
            rfc3339(*at),
            by.as_deref().unwrap_or("?")
        )?,
        (None, _) => writeln!(out, "released:     no")?,
    }
    writeln!(out)?;
    out.write_all(&printable(header_section(&bytes)))?;
    Ok(())
}

/// The header section of `message` as the one header walker reads it (whole, well-formed
/// fields, capped: [`crate::mail::header`]), with the empty line after it when there is one.
fn header_section(message: &[u8]) -> &[u8] {
    let headers = crate::mail::header::section(message);
    let rest = &message[headers.len()..];
    let blank = if rest.starts_with(b"\r\n") {
        2
    } else {
        usize::from(rest.starts_with(b"\n"))
    };
    &message[..headers.len() + blank]
}

/// Headers for a terminal: control characters other than tab and line ends become `?`, so
/// a hostile header cannot drive the admin's terminal.
fn printable(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| {
            if b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n') || b == 0x7f {
                b'?'
            } else {
                b
            }
        })
        .collect()
}

/// What `release` did for one recipient.
#[derive(Debug)]
pub struct Released {
    /// The address.
    pub rcpt: String,
    /// Its outcome.
    pub outcome: RcptOutcome,
}

/// `quarantine release ID [--rcpt ADDR]... [--force]`: rescans; clean → the full pipeline
/// (Sieve included); still infected → refused, or with `force` stored into INBOX without
/// Sieve. The entry is marked released (by `user`) once every recipient has a final outcome.
pub async fn release(
    services: &Arc<Services>,
    q: &Quarantine,
    id: &str,
    only: &[String],
    force: bool,
    user: &str,
) -> Result<Vec<Released>, CliError> {
    let entry = q.get(id)?;
    let message = q.raw(id)?;
    let rcpts = release_recipients(services, &entry, only)?;
    let verdict = services
        .scanner
        .scan(&message)
        .await
        .map_err(|e| CliError::Rescan {
            id: id.to_string(),
            message: e.to_string(),
        })?;
    let route = match verdict {
        Verdict::Clean => Route::Sieve,
        _ if force => {
            tracing::warn!(quarantine_id = %id, user, %verdict, "forced release of a message that is not clean: INBOX without Sieve");
            Route::Inbox {
                released_by: user.to_string(),
            }
        }
        other => {
            return Err(CliError::StillInfected {
                id: id.to_string(),
                verdict: other.to_string(),
            })
        }
    };
    let envelope = Envelope {
        id: crate::lmtp::new_transaction_id(),
        mail_from: entry.sender.clone(),
        rcpts,
        helo: None,
        peer_addr: None,
        client: Client {
            name: None,
            addr: entry.client_ip.clone(),
            helo: entry.client_helo.clone(),
            queue_id: entry.queue_id.clone(),
        },
        // A release is not a new incident: no abuse report.
        client_trusted: false,
        started: Instant::now(),
        default_mailbox: None,
    };
    tracing::info!(quarantine_id = %id, user, rcpts = envelope.rcpts.len(), %verdict, "releasing from quarantine");
    let outcomes = delivery::deliver_scanned(services, &envelope, message, verdict, route).await;
    let failed = outcomes.iter().filter(|o| o.is_temporary_failure()).count();
    let total = outcomes.len();
    let released: Vec<Released> = envelope
        .rcpts
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| Released {
            rcpt: r.original.clone(),
            outcome,
        })
        .collect();
    if failed > 0 {
        for r in &released {
            tracing::warn!(quarantine_id = %id, to = %r.rcpt, outcome = %r.outcome.summary(), "release outcome");
        }
        return Err(CliError::Delivery {
            id: id.to_string(),
            failed,
            total,
        });
    }
    q.state()
        .quarantine_mark_released(id, SystemTime::now(), user)
        .map_err(QuarantineError::from)?;
    Ok(released)
}

/// The entry's recipients (as given), or those of them named by `--rcpt` (matched
/// case-insensitively against the given and resolved forms), resolved for delivery.
fn release_recipients(
    services: &Services,
    entry: &QuarantineEntry,
    only: &[String],
) -> Result<Vec<Recipient>, CliError> {
    let mut chosen: Vec<&str> = Vec::new();
    if only.is_empty() {
        chosen.extend(entry.recipients.iter().map(String::as_str));
    } else {
        for want in only {
            let found = entry
                .recipients
                .iter()
                .zip(
                    entry
                        .resolved
                        .iter()
                        .chain(std::iter::repeat(&String::new())),
                )
                .find(|(given, resolved)| {
                    given.eq_ignore_ascii_case(want) || resolved.eq_ignore_ascii_case(want)
                })
                .map(|(given, _)| given.as_str());
            match found {
                Some(given) if !chosen.contains(&given) => chosen.push(given),
                Some(_) => {}
                None => {
                    return Err(CliError::BadRecipient(format!(
                        "{want} is not a recipient of {} (its recipients: {})",
                        entry.id,
                        entry.recipients.join(", ")
                    )))
                }
            }
        }
    }
    let mailbox = &services.config.mailbox;
    chosen
        .into_iter()
        .map(|address| {
            let mut rcpt =
                Recipient::resolve(address, &mailbox.domains, &mailbox.recipient_delimiter)
                    .map_err(|e| {
                        CliError::BadRecipient(format!(
                            "{address}: not deliverable here any more ({e:?})"
                        ))
                    })?;
            services
                .users
                .admit(&mut rcpt, mailbox.needs_home)
                .map_err(|e| CliError::BadRecipient(format!("{address}: {e}")))?;
            Ok(rcpt)
        })
        .collect()
}

/// `quarantine delete ID`.
pub fn delete(q: &Quarantine, id: &str) -> Result<(), CliError> {
    q.delete(id)?;
    Ok(())
}

/// `quarantine purge --older-than DAYS`; `progress(done, total)` after each entry.
pub fn purge(
    q: &Quarantine,
    older_than_days: u64,
    now: SystemTime,
    progress: impl FnMut(usize, usize),
) -> Result<usize, CliError> {
    let age = Duration::from_secs(older_than_days.saturating_mul(86_400));
    let before = now.checked_sub(age).unwrap_or(std::time::UNIX_EPOCH);
    Ok(q.purge(before, progress)?)
}

/// Who runs the command, for the release log: `$SUDO_USER` when run through sudo, else the
/// name of the real uid (its number when it has no name).
pub fn invoking_user() -> String {
    if let Ok(user) = std::env::var("SUDO_USER") {
        if !user.is_empty() {
            return user;
        }
    }
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            rfc3339(parse_date("2026-11-28").expect("date")),
            "2026-11-28T00:00:00Z"
        );
        assert_eq!(
            rfc3339(parse_date("2026-11-28T06:40:19Z").expect("date")),
            "2026-11-28T06:40:19Z"
        );
        for bad in ["", "yesterday", "2026-13-01", "28.11.2026"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_section_and_printable() {
        assert_eq!(header_section(b"A: b\r\n\r\nbody"), b"A: b\r\n\r\n");
        assert_eq!(header_section(b"A: b\n\nbody"), b"A: b\n\n");
        assert_eq!(header_section(b"A: b\r\n"), b"A: b\r\n");
        assert_eq!(header_section(b"A: b\r\nbody\r\n"), b"A: b\r\n");
        assert_eq!(printable(b"S: \x1b[31mx\r\n"), b"S: ?[31mx\r\n");
    }
}
