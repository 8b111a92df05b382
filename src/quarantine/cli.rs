//! The logic of `sievegate quarantine ...`: list, show, release, delete, purge. `main`
//! parses the arguments and prints errors; everything here returns typed errors, and output
//! goes to the writer it is given.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Quarantine, QuarantineError};
use crate::delivery::Services;
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
    /// A purge went through every entry but could not remove some (each one is named on
    /// stderr and tried again by the next purge).
    #[error("{0} entries or files could not be removed (see above); the rest was purged")]
    Incomplete(usize),
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
        let json = serde_json::to_vec(&array).map_err(io::Error::from)?;
        out.write_all(&json_for_terminal(json))?;
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
        } else if !e.releases.is_empty() {
            flags.push_str(&format!(
                " [released {}/{}]",
                e.releases.len(),
                e.recipients.len()
            ));
        }
        let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
        // Every field is escaped before it is clipped, so a cut never splits an escape.
        writeln!(
            out,
            "{:<24} {:<20} {:>8} {:<32} {:<28} {:<28} {}{}",
            terminal(&e.id),
            rfc3339(e.received_at),
            e.size,
            clip(&terminal(&e.viruses.join(",")), 32),
            clip(&terminal(sender), 28),
            clip(&terminal(&e.recipients.join(",")), 28),
            clip(&terminal(&e.subject), 40),
            flags
        )?;
    }
    writeln!(out, "{} entries", entries.len())?;
    Ok(entries.len())
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

/// `list --json` for a terminal: serde_json escapes C0 controls already; DEL and the C1
/// controls (U+0080..U+009F, which some terminals obey) become `\u00XX` escapes too. The
/// JSON means the same; only its bytes are safe to print.
fn json_for_terminal(json: Vec<u8>) -> Vec<u8> {
    if !json.iter().enumerate().any(|(i, &b)| {
        b == 0x7f || (b == 0xc2 && json.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
    }) {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        if b == 0x7f {
            out.extend_from_slice(b"\\u007f");
        } else if b == 0xc2 && json.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)) {
            out.extend_from_slice(format!("\\u{:04x}", json[i + 1]).as_bytes());
            i += 1;
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
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
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map(terminal)
            .unwrap_or_else(|| "-".to_string())
    };
    let sender = if entry.sender.is_empty() {
        "<>"
    } else {
        &entry.sender
    };
    writeln!(out, "id:           {}", entry.id)?;
    writeln!(out, "received:     {}", rfc3339(entry.received_at))?;
    writeln!(out, "sender:       {}", terminal(sender))?;
    writeln!(
        out,
        "recipients:   {}",
        terminal(&entry.recipients.join(", "))
    )?;
    writeln!(
        out,
        "resolved:     {}",
        terminal(&entry.resolved.join(", "))
    )?;
    writeln!(out, "client ip:    {}", opt(&entry.client_ip))?;
    writeln!(out, "client helo:  {}", opt(&entry.client_helo))?;
    writeln!(out, "queue id:     {}", opt(&entry.queue_id))?;
    writeln!(
        out,
        "verdict:      {} (virustest {})",
        terminal(&entry.verdict),
        entry.virustest
    )?;
    writeln!(out, "viruses:      {}", terminal(&entry.viruses.join(", ")))?;
    writeln!(out, "message-id:   {}", terminal(&entry.message_id))?;
    writeln!(out, "from:         {}", terminal(&entry.from))?;
    writeln!(out, "subject:      {}", terminal(&entry.subject))?;
    writeln!(out, "size:         {}", entry.size)?;
    writeln!(out, "backscatter:  {}", entry.backscatter)?;
    match (&entry.released_at, &entry.released_by) {
        (Some(at), by) => writeln!(
            out,
            "released:     {} by {}",
            rfc3339(*at),
            terminal(by.as_deref().unwrap_or("?"))
        )?,
        (None, _) => writeln!(
            out,
            "released:     no (held: {})",
            terminal(&entry.held().join(", "))
        )?,
    }
    for r in &entry.releases {
        writeln!(
            out,
            "released rcpt: {} at {} by {}",
            terminal(&r.rcpt),
            rfc3339(r.at),
            terminal(&r.by)
        )?;
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

pub use super::release::{release, Released};

/// `quarantine delete ID`.
pub fn delete(q: &Quarantine, id: &str) -> Result<(), CliError> {
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
) -> Result<PurgeSummary, CliError> {
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
        let json = serde_json::to_vec(&"\u{1b}\u{7f}\u{9b}é").expect("json");
        let safe = json_for_terminal(json);
        assert_eq!(safe, r#""\u001b\u007f\u009bé""#.as_bytes());
        let back: String = serde_json::from_slice(&safe).expect("still JSON");
        assert_eq!(back, "\u{1b}\u{7f}\u{9b}é");
    }
}
