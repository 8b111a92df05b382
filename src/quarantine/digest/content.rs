//! A digest's content: one line per entry, every value from held mail sanitised and capped,
//! rendered as text and as HTML (escaped there).

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{Links, MAX_FIELD};
use crate::config::Config;
use crate::mail::text::{sanitize, Charset};
use crate::outbound::compose;
use crate::state::QuarantineEntry;

/// One entry as a digest shows it: every value sanitised, none escaped yet.
struct Line {
    date: String,
    sender: String,
    subject: String,
    verdict: String,
    size: String,
    link: Option<String>,
}

/// A digest's content, rendered as text and as HTML.
pub(super) struct Content {
    rcpt: String,
    lines: Vec<Line>,
    /// Entries beyond `max_entries`.
    more: usize,
    /// Where the rest are (the recipient's list page), when links are made.
    more_link: Option<String>,
    retention_days: u64,
}

impl Content {
    pub(super) fn new(
        rcpt: &str,
        new: &[&QuarantineEntry],
        max_entries: usize,
        config: &Config,
        links: Option<&Links>,
        now: SystemTime,
    ) -> Content {
        let lines = new
            .iter()
            .take(max_entries)
            .map(|e| {
                // The copy the link acts on: the address as given at RCPT (what release
                // records), the first one still held for this mailbox.
                let given = e
                    .recipients
                    .iter()
                    .zip(&e.resolved)
                    .filter(|(g, _)| e.held().contains(&g.as_str()))
                    .find(|(_, r)| r.eq_ignore_ascii_case(rcpt))
                    .map_or(rcpt, |(g, _)| g.as_str());
                Line::new(e, links.map(|l| l.view(&e.id, given, now)))
            })
            .collect();
        Content {
            rcpt: clean(rcpt),
            lines,
            more: new.len().saturating_sub(max_entries),
            more_link: links.map(|l| l.list(rcpt, now)),
            retention_days: config.quarantine.retention.as_secs() / 86_400,
        }
    }

    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        let n = self.lines.len() + self.more;
        let _ = writeln!(
            out,
            "The quarantine holds {n} new message{} for {}.\nThey were not delivered because they looked dangerous; the list says why.\n",
            if n == 1 { "" } else { "s" },
            self.rcpt
        );
        for line in &self.lines {
            let _ = writeln!(out, "Date:    {}", line.date);
            let _ = writeln!(out, "From:    {}", line.sender);
            let _ = writeln!(out, "Subject: {}", line.subject);
            let _ = writeln!(out, "Verdict: {}", line.verdict);
            let _ = writeln!(out, "Size:    {}", line.size);
            if let Some(link) = &line.link {
                let _ = writeln!(out, "View:    {link}");
            }
            out.push('\n');
        }
        if self.more > 0 {
            let _ = write!(out, "... and {} more", self.more);
            match &self.more_link {
                Some(link) => {
                    let _ = writeln!(out, ": {link}");
                }
                None => out.push_str(".\n"),
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Held messages are deleted after {} days. Ask your postmaster if one of them is a message you need.",
            self.retention_days
        );
        out
    }

    pub(super) fn html(&self) -> String {
        let mut out = String::new();
        let n = self.lines.len() + self.more;
        out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Quarantine</title></head><body>\n");
        let _ = writeln!(
            out,
            "<p>The quarantine holds {n} new message{} for {}. They were not delivered because they looked dangerous; the list says why.</p>",
            if n == 1 { "" } else { "s" },
            escape(&self.rcpt)
        );
        out.push_str("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n<tr><th>Date</th><th>From</th><th>Subject</th><th>Verdict</th><th>Size</th><th></th></tr>\n");
        for line in &self.lines {
            let link = line.link.as_deref().map_or(String::new(), |l| {
                format!("<a href=\"{}\">View</a>", escape(l))
            });
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
                escape(&line.date),
                escape(&line.sender),
                escape(&line.subject),
                escape(&line.verdict),
                escape(&line.size),
            );
        }
        out.push_str("</table>\n");
        if self.more > 0 {
            match &self.more_link {
                Some(link) => {
                    let _ = writeln!(
                        out,
                        "<p>... and <a href=\"{}\">{} more</a>.</p>",
                        escape(link),
                        self.more
                    );
                }
                None => {
                    let _ = writeln!(out, "<p>... and {} more.</p>", self.more);
                }
            }
        }
        let _ = writeln!(
            out,
            "<p>Held messages are deleted after {} days. Ask your postmaster if one of them is a message you need.</p>\n</body></html>",
            self.retention_days
        );
        out
    }
}

impl Line {
    fn new(e: &QuarantineEntry, link: Option<String>) -> Line {
        let sender = match (e.from.as_str(), e.sender.as_str()) {
            ("", "") => "<>".to_string(),
            ("", sender) => sender.to_string(),
            (from, _) => from.to_string(),
        };
        let subject = if e.subject.is_empty() {
            "(no subject)".to_string()
        } else {
            e.subject.clone()
        };
        let verdict = match e.viruses.first() {
            Some(name) => format!("{} ({name})", e.verdict),
            None => e.verdict.clone(),
        };
        Line {
            date: date(e.received_at),
            sender: clean(&sender),
            subject: clean(&subject),
            verdict: clean(&verdict),
            size: size(e.size),
            link,
        }
    }
}

/// Hostile text as a digest may show it: no control character (CR, LF, NUL, ESC...),
/// capped.
fn clean(text: &str) -> String {
    sanitize(text, MAX_FIELD, Charset::Utf8).into_owned()
}

/// `text` safe as HTML element content and as a double-quoted attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-05 17:10 UTC`.
fn date(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    // YYYY-MM-DDTHH:MM:SSZ → YYYY-MM-DD HH:MM UTC
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => text,
    }
}

/// A size for people: `512 B`, `12.3 kB`, `4.5 MB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1000 => format!("{bytes} B"),
        1000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// An address for the log.
pub(super) fn shown(text: &str) -> String {
    compose::Mailbox::new(text, None)
        .map(|m| m.address().to_string())
        .unwrap_or_else(|_| clean(text))
}
