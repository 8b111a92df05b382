//! `sievegate quarantine ...`: the command line around `sievegate::quarantine::admin` (open,
//! delete, purge, whom a release is for) and `sievegate::delivery::release` (the release's
//! delivery, through the front door), and everything printed: the table and JSON of
//! `list`, `show`, each field escaped for the admin's terminal.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use sievegate::config::Config;
use sievegate::delivery::{release, Services};
use sievegate::quarantine::admin::{self as qadmin, rfc3339, terminal, AdminError, EntryJson};
use sievegate::quarantine::{digest, Quarantine};
use sievegate::state::QuarantineFilter;

use crate::QuarantineAction;

/// Why a quarantine command failed; the text is what the admin reads.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operation failed (its own text).
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// `--since` is not a date.
    #[error("{0:?} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")]
    BadDate(String),
    /// A purge went through every entry but could not remove some (each one is named on
    /// stderr and tried again by the next purge).
    #[error("{0} entries or files could not be removed (see above); the rest was purged")]
    Incomplete(usize),
    /// The async runtime for the rescan could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    /// Some recipients' digests could not be built or queued (each one is in the log and
    /// tried again by the next run).
    #[error("{0} digests could not be sent (see above); the next run tries them again")]
    DigestsFailed(usize),
    /// A digest run failed as a whole.
    #[error("{0}")]
    Digest(#[from] sievegate::quarantine::digest::DigestError),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

impl From<sievegate::quarantine::QuarantineError> for CliError {
    fn from(e: sievegate::quarantine::QuarantineError) -> Self {
        CliError::Admin(AdminError::from(e))
    }
}

/// `sievegate quarantine ...`: every failure is one message on stderr and exit status 1.
pub fn quarantine(config: Option<PathBuf>, action: QuarantineAction) -> ExitCode {
    use std::io::IsTerminal;
    use std::io::Write;
    let Some(path) = config else {
        eprintln!("sievegate quarantine: -c/--config FILE is required");
        return ExitCode::FAILURE;
    };
    // Release runs the delivery pipeline, whose log lines (who released what, where it
    // went) belong on stderr like the server's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let services = match Services::open(config) {
        Ok(services) => Arc::new(services),
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = (|| -> Result<(), CliError> {
        let q = qadmin::open(&services.config, &services.state)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match action {
            QuarantineAction::List {
                json,
                since,
                virus,
                rcpt,
            } => {
                let filter = sievegate::state::QuarantineFilter {
                    since: since.as_deref().map(parse_date).transpose()?,
                    virus,
                    rcpt,
                    limit: None,
                };
                list(&q, &filter, json, &mut out)?;
            }
            QuarantineAction::Show { id, raw } => show(&q, &id, raw, &mut out)?,
            QuarantineAction::Release { id, rcpts, force } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(CliError::Runtime)?;
                let user = invoking_user();
                let released =
                    runtime.block_on(release::release(&services, &q, &id, &rcpts, force, &user))?;
                for r in &released {
                    writeln!(out, "{}: {}", r.rcpt, r.outcome.summary())?;
                }
                writeln!(out, "{id}: released by {user}")?;
            }
            QuarantineAction::Delete { id } => {
                qadmin::delete(&q, &id)?;
                writeln!(out, "{id}: deleted")?;
            }
            QuarantineAction::Purge { older_than } => {
                let tty = std::io::stderr().is_terminal();
                let summary = qadmin::purge(
                    &q,
                    older_than,
                    std::time::SystemTime::now(),
                    services.config.rate_keep(),
                    |done, total| {
                        if tty && (done % 100 == 0 || done == total) {
                            eprint!("\rpurging: {done}/{total}");
                            if done == total {
                                eprintln!();
                            }
                        }
                    },
                )?;
                writeln!(out, "{} entries purged", summary.purged.removed)?;
                let swept = summary.swept;
                if swept.orphan_files > 0 || swept.dangling_entries > 0 {
                    writeln!(
                        out,
                        "{} orphaned files and {} index entries without a file removed",
                        swept.orphan_files, swept.dangling_entries
                    )?;
                }
                writeln!(
                    out,
                    "{} cache and {} rate rows expired",
                    summary.expired.cache, summary.expired.rate
                )?;
                for (id, error) in &summary.purged.failed {
                    eprintln!(
                        "sievegate quarantine: cannot purge {}: {}",
                        terminal(id),
                        terminal(error)
                    );
                }
                let failures = summary.purged.failed.len() + swept.failed;
                if failures > 0 {
                    return Err(CliError::Incomplete(failures));
                }
            }
            QuarantineAction::Digest { force, now } => {
                let now = match now.as_deref() {
                    Some(text) => parse_date(text)?,
                    None => SystemTime::now(),
                };
                digest(&services, force, now, &mut out)?;
            }
        }
        out.flush()?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `quarantine digest`: the digests due at `now` (all of them with `force`) into the
/// outbox, then one bounded pass of the outbox, so they are in the users' INBOX when the
/// command returns (what it could not send stays queued for the server's sender).
fn digest(
    services: &Services,
    force: bool,
    now: SystemTime,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let links = digest::links(&services.config)?;
    let digester = digest::Digester {
        config: &services.config,
        state: services.state.as_ref(),
        users: &services.users,
        outbox: &services.outbox,
        links: links.as_ref(),
    };
    let report = digester.run(digest::Run { now, force })?;
    if report.already_done {
        if let Some(slot) = report.slot {
            writeln!(
                out,
                "the digests of the slot {} were sent already; nothing to do",
                rfc3339(slot)
            )?;
        }
        return Ok(());
    }
    for (rcpt, n) in &report.sent {
        writeln!(out, "{}: {n} entries", terminal(rcpt))?;
    }
    writeln!(
        out,
        "{} digests queued ({} external, {} unknown, {} opted out, {} already had one this period, {} failed)",
        report.sent.len(),
        report.external,
        report.unknown,
        report.opted_out,
        report.rate_limited,
        report.failed
    )?;
    if !report.sent.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?;
        let pass = runtime.block_on(async {
            tokio::time::timeout(DIGEST_SEND_TIMEOUT, services.outbox.send_due()).await
        });
        match pass {
            Ok(pass) if pass.retried + pass.dropped > 0 => eprintln!(
                "sievegate quarantine: {} queued messages not sent now (see the log); the server's outbox retries them",
                pass.retried + pass.dropped
            ),
            Ok(_) => {}
            Err(_) => eprintln!(
                "sievegate quarantine: the outbox pass took too long; the rest stays queued for the server"
            ),
        }
    }
    if report.failed > 0 {
        return Err(CliError::DigestsFailed(report.failed));
    }
    Ok(())
}

/// The longest `quarantine digest` waits for its outbox pass.
const DIGEST_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

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
        .map_err(sievegate::quarantine::QuarantineError::from)?;
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
    let headers = sievegate::mail::header::section(message);
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
    fn json_is_escaped_for_the_terminal() {
        let json = serde_json::to_vec(&"\u{1b}\u{7f}\u{9b}é").expect("json");
        let safe = json_for_terminal(json);
        assert_eq!(safe, r#""\u001b\u007f\u009bé""#.as_bytes());
        let back: String = serde_json::from_slice(&safe).expect("still JSON");
        assert_eq!(back, "\u{1b}\u{7f}\u{9b}é");
    }
}
