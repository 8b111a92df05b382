//! Sieve redirects in the outbox, and the failure keep when the relay refuses one for good.
//!
//! A redirect is answered (250) once it is durably queued (its state-store row committed),
//! not after the relay took it: a slow, hanging or refusing relay can never hold or defer a
//! delivery. Its row records the redirecting local recipient ([`RedirectOwner`]). When the
//! relay refuses it for good (a 5xx at any stage, or a local refusal such as an address
//! the relay client cannot write), or the retry period runs out, the outbox does a
//! **failure keep**, as Pigeonhole does: the message as it would have been redirected
//! (the recipient's trace fields and the content, without our loop mark) is stored into
//! that recipient's INBOX through [`super::LocalDelivery::keep`] with the `[mailbox]`
//! settings current at that moment, logged at warn with the relay's reply, and noted in
//! the user's Sieve log ([`UserNotes`]). Only when that store succeeded is the row
//! removed; a failed store leaves it queued and retried. Nothing is dropped, nothing
//! bounces (a redirect goes from the original envelope sender, so a bounce would go to a
//! possibly forged address).
//!
//! Redirects always go through the relay, even to one of our own domains: the MTA owns
//! aliases and the target user's own filtering.

use std::time::SystemTime;

use super::{Attempt, Outbox, OutboxError, Route};
use crate::mail::address::is_plain_address;
use crate::mail::address::Recipient;
use crate::state::{QueuedMail, RedirectOwner};

/// The log word and queue kind of a redirect.
pub const KIND: &str = "redirect";

/// Longest path we write into `MAIL FROM:<>`/`RCPT TO:<>` (RFC 5321 §4.5.3.1.3: 256 octets
/// with the brackets).
const MAX_PATH: usize = 254;

/// One redirect to queue: what [`Outbox::enqueue_redirect`] takes.
#[derive(Debug, Clone, Copy)]
pub struct Redirect<'a> {
    /// The original envelope sender (`""`: the null sender, which stays null).
    pub from: &'a str,
    /// The redirect's target.
    pub to: &'a str,
    /// The redirecting recipient, as given at RCPT.
    pub owner: &'a str,
    /// The delivery stored a copy into the owner's INBOX already (a failure keep then only
    /// logs).
    pub inbox_copy: bool,
    /// The loop mark field, one line without its CRLF (`X-Sievegate-Redirected-By: user`):
    /// sent first, left out of a failure keep.
    pub mark: &'a str,
    /// The owner's trace fields from this delivery (`Return-Path`, `Delivered-To`, ...).
    pub header: &'a [u8],
    /// The message as the script left it (editheader edits applied).
    pub content: &'a [u8],
}

/// Where the failure keep reports to the user: their Sieve log, when they have one. The
/// delivery layer implements it (the Sieve filter knows where the log is); the outbox
/// only calls it, from a blocking thread.
pub trait UserNotes: Send + Sync {
    /// Appends `text` to `rcpt`'s own Sieve log, if there is one; never fails.
    fn note(&self, rcpt: &Recipient, text: &str);
}

/// True when `address` can be written as an RFC 5321 §4.1.2 `Mailbox` between angle
/// brackets as it is: a plain address ([`is_plain_address`]) or a quoted local part of
/// printable ASCII (`qtextSMTP` / `quoted-pairSMTP`) at a plain domain; never CR, LF, NUL
/// or any other control character; at most 254 bytes (RFC 5321 §4.5.3.1.3: a path of 256
/// octets with its brackets).
pub fn is_smtp_mailbox(address: &str) -> bool {
    if address.len() > MAX_PATH || address.chars().any(char::is_control) {
        return false;
    }
    if is_plain_address(address) {
        return true;
    }
    let Some(rest) = address.strip_prefix('"') else {
        return false;
    };
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, ' '..='~')) => {}
                _ => return false,
            },
            '"' => {
                let domain = &rest[i + 1..];
                return domain
                    .strip_prefix('@')
                    .is_some_and(|d| is_plain_address(&format!("x@{d}")));
            }
            ' '..='~' => {}
            _ => return false,
        }
    }
    false
}

/// How [`Outbox::send_redirect_now`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentNow {
    /// The relay took it; its reply.
    Sent(String),
    /// Refused for good (a 5xx, or an address we cannot write): keep it instead.
    Refused(String),
    /// Not taken now (unreachable, 4xx, deadline).
    Failed(String),
}

/// The bytes we send for `redirect`: the mark line, the owner's trace fields, the
/// content. Refuses what cannot be written as SMTP paths or header lines.
fn build(redirect: &Redirect<'_>) -> Result<Vec<u8>, OutboxError> {
    // The null sender stays null; a target must be an address.
    if !redirect.from.is_empty() && !is_smtp_mailbox(redirect.from) {
        return Err(OutboxError::BadAddress(redirect.from.to_string()));
    }
    if !is_smtp_mailbox(redirect.to) {
        return Err(OutboxError::BadAddress(redirect.to.to_string()));
    }
    if redirect.mark.contains(['\r', '\n', '\0']) || !redirect.mark.contains(':') {
        return Err(OutboxError::BadAddress(redirect.mark.to_string()));
    }
    let mut message = Vec::with_capacity(
        redirect.mark.len() + 2 + redirect.header.len() + redirect.content.len(),
    );
    message.extend_from_slice(redirect.mark.as_bytes());
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(redirect.header);
    message.extend_from_slice(redirect.content);
    Ok(message)
}

/// `message` without its first line (the loop mark [`Outbox::enqueue_redirect`] put
/// first).
fn without_mark(message: &[u8]) -> &[u8] {
    message
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(message, |end| &message[end + 2..])
}

impl Outbox {
    /// Queues one redirect (see the module doc) and wakes the sender. Refuses a sender or
    /// target that cannot be written as an SMTP path ([`OutboxError::BadAddress`]: the
    /// caller keeps the message instead) and a mark that is not one header line.
    pub fn enqueue_redirect(&self, redirect: &Redirect<'_>) -> Result<i64, OutboxError> {
        let mail = QueuedMail {
            id: 0,
            kind: KIND.to_string(),
            from: redirect.from.to_string(),
            to: vec![redirect.to.to_string()],
            message: build(redirect)?,
            attempts: 0,
            next_attempt: SystemTime::now(),
            last_error: None,
            redirect: Some(RedirectOwner {
                rcpt: redirect.owner.to_string(),
                inbox_copy: redirect.inbox_copy,
            }),
        };
        let id = self.inner.state.queue_push(&mail)?;
        tracing::debug!(queue_id = id, kind = KIND, to = %redirect.to, owner = %redirect.owner, "queued");
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Sends one redirect now, within `[sieve] redirect_timeout_secs`, without queueing
    /// it: only for a state store that is not durable (no `[state] dir`), where a queued
    /// row would not survive a restart and a 250 for it could lose the message.
    pub async fn send_redirect_now(&self, redirect: &Redirect<'_>) -> SentNow {
        let message = match build(redirect) {
            Ok(message) => message,
            Err(e) => return SentNow::Refused(e.to_string()),
        };
        let timeouts = self.settings().redirect_timeouts;
        let inner = &self.inner;
        match super::relay::send(
            &inner.relay,
            &inner.helo,
            redirect.from,
            &[redirect.to.to_string()],
            &message,
            timeouts,
        )
        .await
        {
            Ok(reply) => SentNow::Sent(reply),
            Err(e) if e.is_permanent() => SentNow::Refused(e.to_string()),
            Err(e) => SentNow::Failed(e.to_string()),
        }
    }

    /// The failure keep of a redirect the relay refused for good (`reason`): the message
    /// into its owner's INBOX with the current `[mailbox]` settings, and a line in the
    /// owner's Sieve log. [`Attempt::Kept`] when the message is safe (the row may go),
    /// [`Attempt::Retry`] when the store failed (the row stays).
    pub(super) async fn failure_keep(
        &self,
        mail: &QueuedMail,
        owner: &RedirectOwner,
        reason: String,
    ) -> Attempt {
        let settings = self.settings();
        let rcpt = match settings.local.route(&owner.rcpt) {
            Ok(Route::Local(rcpt)) => rcpt,
            Ok(Route::Relay) => {
                return keep_failed(
                    reason,
                    format!(
                        "{} is no longer in [mailbox] domains: cannot keep it there",
                        owner.rcpt
                    ),
                )
            }
            Err(e) => return keep_failed(reason, e.to_string()),
        };
        let to = mail.to.join(", ");
        let inbox_copy = owner.inbox_copy;
        let message = without_mark(&mail.message).to_vec();
        let why = reason.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let kept = if inbox_copy {
                Ok("a copy was already stored in INBOX".to_string())
            } else {
                settings
                    .local
                    .keep(&rcpt, &message)
                    .map(|stored| format!("kept in INBOX as {}", stored.path.display()))
                    .map_err(|e| e.to_string())
            };
            if let (Ok(_), Some(notes)) = (&kept, &settings.notes) {
                let what = if inbox_copy {
                    "your copy in INBOX stays"
                } else {
                    "the message was kept in INBOX instead"
                };
                notes.note(&rcpt, &format!("redirect to <{to}> failed: {why}; {what}"));
            }
            kept
        })
        .await;
        match kept {
            Ok(Ok(result)) => Attempt::Kept { reason, result },
            Ok(Err(error)) => keep_failed(reason, error),
            Err(e) => keep_failed(reason, format!("failure keep task failed: {e}")),
        }
    }
}

/// A failure keep that could not store: the row stays and is tried again (the relay is
/// asked again first; it may take it by then).
fn keep_failed(reason: String, error: String) -> Attempt {
    Attempt::Retry {
        error: format!("{reason}; failure keep failed: {error}"),
        relay_down: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_mailboxes() {
        let cases = [
            ("alice@example.test", true),
            ("a.b+c@sub.example.test", true),
            ("\"a b\"@example.test", true),
            ("\"a\\\"b\"@example.test", true),
            ("\"a\r\nRCPT TO:<x@y>\"@example.test", false),
            ("\"a\0\"@example.test", false),
            ("\"a\\\r\"@example.test", false),
            ("\"unterminated@example.test", false),
            ("\"a\"b@example.test", false),
            ("\"a\"@", false),
            ("a@b>c", false),
            ("a b@example.test", false),
            ("", false),
            ("noat", false),
        ];
        for (address, ok) in cases {
            assert_eq!(is_smtp_mailbox(address), ok, "{address:?}");
        }
        assert!(!is_smtp_mailbox(&format!(
            "{}@example.test",
            "a".repeat(250)
        )));
    }

    #[test]
    fn the_mark_line_is_left_out() {
        assert_eq!(
            without_mark(b"X-Mark: a\r\nReturn-Path: <>\r\n\r\nbody"),
            b"Return-Path: <>\r\n\r\nbody"
        );
        assert_eq!(without_mark(b"no line end"), b"no line end");
    }
}
