//! `GET /q/{token}` with a list token ([`Action::List`]): every quarantine entry still held
//! for the link's recipient, newest first, at most [`MAX_ROWS`], each with a freshly minted
//! view link to its entry page. The digest's "... and N more" line links here.
//!
//! The page changes nothing and has no form; what a recipient does to one entry is done
//! from that entry's page, with that entry's own tokens. A list token names no entry
//! ([`link::LIST_ENTRY`]), so it can never act on one (`POST` refuses it, see
//! [`super::entry::act`]). Sender and subject are hostile text: stripped of control
//! characters and capped here, escaped by maud.

use std::sync::Arc;
use std::time::SystemTime;

use maud::{html, Markup};

use super::actions::{is_infected, Refused};
use super::entry::size;
use super::layout::page;
use super::WebState;
use crate::delivery::Services;
use crate::mail::text::{sanitize, Charset};
use crate::quarantine::admin::rfc3339;
use crate::quarantine::link::{self, Action, Claims};
use crate::state::{QuarantineEntry, QuarantineFilter};

/// Most entries on the page; the page says how many more there are.
pub const MAX_ROWS: usize = 500;

/// Longest sender or subject shown (bytes, after removing control characters).
const MAX_FIELD: usize = 200;

/// The entries held for one recipient.
#[derive(Debug, Clone)]
pub struct Held {
    /// Newest first, at most [`MAX_ROWS`]: each entry with the address its copy is held
    /// for, as given at RCPT (what its view link names, as the digest's links do).
    pub rows: Vec<(QuarantineEntry, String)>,
    /// Entries held for the recipient in all (more than `rows` when cut).
    pub total: usize,
}

/// The address as given at RCPT of `entry`'s first copy still held for `rcpt` (matched as
/// given or as resolved, case-insensitively, like [`super::actions::recipient_of`]);
/// `None` when every copy for them was released or deleted.
pub fn held_copy(entry: &QuarantineEntry, rcpt: &str) -> Option<String> {
    let held = entry.held();
    entry
        .recipient_matching(rcpt, |given| held.contains(&given))
        .map(str::to_string)
}

/// `entries` (as the state store lists them, oldest first) reduced to those still held for
/// `rcpt`, newest first, cut at [`MAX_ROWS`].
pub fn held_for(entries: Vec<QuarantineEntry>, rcpt: &str) -> Held {
    let mut rows: Vec<(QuarantineEntry, String)> = entries
        .into_iter()
        .rev()
        .filter_map(|e| held_copy(&e, rcpt).map(|given| (e, given)))
        .collect();
    let total = rows.len();
    rows.truncate(MAX_ROWS);
    Held { rows, total }
}

/// Reads the entries of `rcpt` from the state store, on a blocking thread.
async fn load(services: &Arc<Services>, rcpt: &str) -> Result<Held, Refused> {
    let q = services.quarantine.clone().ok_or(Refused::NoQuarantine)?;
    let rcpt = rcpt.to_string();
    let task = tokio::task::spawn_blocking(move || {
        let filter = QuarantineFilter {
            rcpt: Some(rcpt.clone()),
            ..QuarantineFilter::default()
        };
        match q.state().quarantine_list(&filter) {
            Ok(entries) => Ok(held_for(entries, &rcpt)),
            Err(e) => {
                tracing::error!(error = %e, "web: cannot list the recipient's entries");
                Err(Refused::Unavailable)
            }
        }
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "web: list lookup panicked");
        Err(Refused::Unavailable)
    })
}

/// The list page's content for a valid list token.
pub async fn show(state: &WebState, claims: &Claims) -> Result<Markup, Refused> {
    if claims.action != Action::List {
        return Err(Refused::NotFound);
    }
    let services = state.current.get();
    let held = load(&services, &claims.rcpt).await?;
    // The view links live as long as the list link, never longer than a digest's.
    let expires = claims
        .expires
        .min(SystemTime::now() + services.config.web.link_ttl);
    Ok(list_page(state, claims, &held, expires))
}

/// Hostile text as the page shows it: no control character, capped.
fn clean(text: &str) -> String {
    sanitize(text, MAX_FIELD, Charset::Utf8).into_owned()
}

/// `2026-12-05 17:10` (UTC).
fn short_date(time: SystemTime) -> String {
    let t = rfc3339(time);
    match (t.get(..10), t.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm}"),
        _ => t,
    }
}

fn list_page(state: &WebState, claims: &Claims, held: &Held, expires: SystemTime) -> Markup {
    let rcpt = clean(&claims.rcpt);
    let body = html! {
        @if held.total == 0 {
            p class="status ok" { "Nothing is held for " (rcpt) " right now." }
        } @else {
            p class="status" {
                (held.total) " message" @if held.total != 1 { "s are" } @else { " is" }
                " held for " (rcpt) ". Open one to see it and to release or delete it."
            }
            @if held.total > held.rows.len() {
                p class="status bad" {
                    "Showing the newest " (held.rows.len()) " of " (held.total)
                    ". The older ones are in your earlier digests, or ask your postmaster."
                }
            }
            table class="held" {
                thead { tr {
                    th { "Received (UTC)" } th { "From" } th { "Subject" }
                    th { "Verdict" } th { "Size" } th {}
                } }
                tbody {
                    @for (e, given) in &held.rows {
                        @let view = link::sign(&state.key, &e.id, given, Action::View, expires);
                        tr {
                            td { (short_date(e.received_at)) }
                            td { (clean(&sender(e))) }
                            td { @if e.subject.is_empty() { "(no subject)" } @else { (clean(&e.subject)) } }
                            td {
                                @if is_infected(e) {
                                    span class="virus" { "infected" }
                                    @if let Some(v) = e.viruses.first() { ": " (clean(v)) }
                                } @else {
                                    "held by a filter rule"
                                }
                            }
                            td class="num" { (size(e.size)) }
                            td { a href=(view) { "View" } }
                        }
                    }
                }
            }
        }
        p class="note" { "This list link is valid until " (rfc3339(claims.expires)) "." }
    };
    page(super::entry::ROOT, "Held messages", body)
}

/// Who sent it, as the digest says: the `From`, else the envelope sender, else `<>`.
fn sender(e: &QuarantineEntry) -> String {
    match (e.from.as_str(), e.sender.as_str()) {
        ("", "") => "<>".to_string(),
        ("", sender) => sender.to_string(),
        (from, _) => from.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RcptRelease;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(n: u64, rcpts: &[(&str, &str)], released: &[&str]) -> QuarantineEntry {
        QuarantineEntry {
            id: format!("e{n}"),
            received_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n),
            sender: "s@x.example".into(),
            recipients: rcpts.iter().map(|(g, _)| g.to_string()).collect(),
            resolved: rcpts.iter().map(|(_, r)| r.to_string()).collect(),
            client_ip: None,
            client_helo: None,
            queue_id: None,
            verdict: "clean".into(),
            virustest: 0,
            viruses: Vec::new(),
            message_id: String::new(),
            subject: format!("s{n}"),
            from: String::new(),
            size: 1,
            backscatter: false,
            released_at: None,
            released_by: None,
            releases: released
                .iter()
                .map(|r| RcptRelease {
                    rcpt: r.to_string(),
                    at: UNIX_EPOCH,
                    by: "web:x".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn only_held_copies_newest_first_capped() {
        let carol = ("Carol+tag@example.org", "carol@example.org");
        let dave = ("dave@example.org", "dave@example.org");
        let entries = vec![
            entry(0, &[carol], &[]),
            entry(1, &[dave], &[]),
            entry(2, &[carol, dave], &["Carol+tag@example.org"]),
            entry(3, &[dave, carol], &["dave@example.org"]),
        ];
        let held = held_for(entries, "CAROL@example.org");
        let ids: Vec<&str> = held.rows.iter().map(|(e, _)| e.id.as_str()).collect();
        assert_eq!(ids, ["e3", "e0"], "released and others' entries left out");
        assert_eq!(
            held.rows[0].1, "Carol+tag@example.org",
            "the address as given"
        );
        assert_eq!(held.total, 2);
        let many: Vec<_> = (0..MAX_ROWS as u64 + 7)
            .map(|n| entry(n, &[carol], &[]))
            .collect();
        let held = held_for(many, "carol@example.org");
        assert_eq!((held.rows.len(), held.total), (MAX_ROWS, MAX_ROWS + 7));
        assert_eq!(held.rows[0].0.id, format!("e{}", MAX_ROWS + 6));
    }

    #[test]
    fn hostile_text_is_cleaned_and_capped() {
        assert_eq!(clean("a\r\nb\0<i>"), "ab<i>");
        assert!(clean(&"x".repeat(1000)).len() <= MAX_FIELD);
        assert_eq!(short_date(UNIX_EPOCH), "1970-01-01 00:00");
    }
}
