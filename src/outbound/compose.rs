//! The one builder for mail that sievegate generates (vacation replies, notifications,
//! rejection MDNs, quarantine digests): typed parts in, mail-builder bytes out.
//!
//! The rules, whatever the part came from (the incoming message, a match variable, a
//! `mailto:` URI, the script):
//! - an address is a plain addr-spec ([`crate::mail::address::is_addr_spec`]): no quoted local part, no route, no
//!   comment, no white space or control character; anything else is refused, never repaired;
//! - a display name or subject loses every control character (CR, LF, NUL, TAB, DEL, C1),
//!   is capped, and mail-builder writes it as RFC 2047 encoded-words when it is not ASCII;
//! - `In-Reply-To`/`References` hold only ids that are valid `msg-id`s ([`MsgId`]);
//! - Message-ID, Date, `Auto-Submitted` and `MIME-Version` are ours, written once;
//! - the body is `text/plain` text with line ends made CRLF and other control characters
//!   removed, or (vacation `:mime`) an entity whose header section holds only `Content-*`
//!   fields, rewritten one per line ([`Body::from_mime`]), or (digests) a text and an HTML
//!   alternative, each cleaned like the text ([`Body::alternative`]; the HTML's caller
//!   escapes what it interpolates).
//!
//! So no value can end a header field or the header section early, whatever it holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::mail::text::{sanitize, sanitize_body, Charset};

/// Longest display name we write (bytes, after sanitising).
pub const MAX_NAME: usize = 128;
/// Longest subject we write (bytes, after sanitising): a little over sieve-rs's 256 chars
/// of ASCII, so its own cut with `…` survives.
pub const MAX_SUBJECT: usize = 400;
/// Longest body we write (bytes); a longer one is cut.
pub const MAX_BODY: usize = 64 * 1024;
/// Most ids kept in `References` (the newest ones).
pub const MAX_REFERENCES: usize = 20;
/// Longest msg-id we keep (without brackets); RFC 5322 lines are at most 998 octets.
const MAX_MSG_ID: usize = 250;

/// Why a generated message cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// An address is not a plain addr-spec (shown sanitised, for the log).
    #[error("{0:?} is not a plain address")]
    Address(String),
    /// No recipient is left after the invalid ones were refused.
    #[error("no valid recipient")]
    NoRecipient,
    /// mail-builder failed to write (it writes into memory, so this is not expected).
    #[error("cannot write the message: {0}")]
    Write(String),
}

/// An address for `From`/`To`/`Cc`: a validated addr-spec and an optional, sanitised
/// display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    name: Option<String>,
    address: String,
}

impl Mailbox {
    /// `address` with the display name `name` (sanitised; dropped when nothing is left).
    /// Refused unless `address` is a plain addr-spec.
    pub fn new(address: &str, name: Option<&str>) -> Result<Self, ComposeError> {
        let address = address.trim();
        if !crate::mail::address::is_addr_spec(address) {
            return Err(ComposeError::Address(shown(address)));
        }
        let name = name
            .map(|n| sanitize(n.trim_matches('"'), MAX_NAME, Charset::Utf8).into_owned())
            .filter(|n| !n.is_empty());
        Ok(Mailbox {
            name,
            address: address.to_string(),
        })
    }

    /// Parses `address`, `<address>` or `Name <address>` (a quoted name loses its quotes),
    /// as sieve-rs and scripts write a `From` value. Refused unless the address inside is a
    /// plain addr-spec.
    pub fn parse(value: &str) -> Result<Self, ComposeError> {
        let value = value.trim();
        match value.strip_suffix('>').and_then(|v| v.rsplit_once('<')) {
            Some((name, address)) => {
                let name = name.trim();
                Mailbox::new(address, (!name.is_empty()).then_some(name))
            }
            None => Mailbox::new(value, None),
        }
    }

    /// The addr-spec.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn to_builder(&self) -> Address<'static> {
        Address::new_address(self.name.clone(), self.address.clone())
    }
}

/// A `msg-id` without its angle brackets: `id-left@id-right`, each a dot-atom (or the
/// right one a `[...]` literal without specials), at most 250 bytes, ASCII only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgId(String);

impl MsgId {
    /// Validates `id` (with or without `<>`); `None` for anything else.
    pub fn parse(id: &str) -> Option<MsgId> {
        let id = id.trim();
        let id = id
            .strip_prefix('<')
            .and_then(|i| i.strip_suffix('>'))
            .unwrap_or(id);
        let (left, right) = id.rsplit_once('@')?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let dot_atom =
            |s: &str| !s.is_empty() && s.split('.').all(|a| !a.is_empty() && a.chars().all(atext));
        let literal = right
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|r| {
                !r.is_empty()
                    && r.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
            });
        (id.len() <= MAX_MSG_ID && dot_atom(left) && (dot_atom(right) || literal))
            .then(|| MsgId(id.to_string()))
    }

    /// The id without brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Auto-Submitted` value (RFC 3834 §5): every message we generate has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoSubmitted {
    /// A reply to a message: vacation, rejection MDN.
    Replied,
    /// A notification (RFC 5435 §8.1: `auto-notified`).
    Notified,
    /// Sent on a schedule, not in answer to a message (RFC 3834 §5: `auto-generated`):
    /// the quarantine digest.
    Generated,
}

impl AutoSubmitted {
    fn as_str(self) -> &'static str {
        match self {
            AutoSubmitted::Replied => "auto-replied",
            AutoSubmitted::Notified => "auto-notified",
            AutoSubmitted::Generated => "auto-generated",
        }
    }
}

/// A notification's importance (RFC 5435 §3.6), written as `Importance` and `X-Priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// `:importance "1"`.
    High,
    /// `:importance "2"`, or none given.
    Normal,
    /// `:importance "3"`.
    Low,
}

/// What follows the header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `text/plain; charset=utf-8`, encoded by mail-builder as it needs.
    Text(String),
    /// A MIME entity checked by [`Body::from_mime`]: its `Content-*` fields (one line
    /// each), a blank line, its content. Written as it is after our header fields.
    Mime(Vec<u8>),
    /// `multipart/alternative` (RFC 2046 §5.1.4): the same content as `text/plain` and,
    /// preferred by readers that can show it, `text/html`; both UTF-8.
    Alternative {
        /// The plain text, cleaned as [`Body::text`].
        text: String,
        /// The HTML document, cleaned as [`Body::text`]; every value interpolated into it
        /// was escaped by the caller.
        html: String,
    },
}

impl Body {
    /// A text body: control characters other than line ends and TAB removed, line ends
    /// made CRLF, cut to [`MAX_BODY`].
    pub fn text(text: &str) -> Body {
        Body::Text(sanitize_body(text, MAX_BODY))
    }

    /// A text and an HTML rendering of the same content, each cleaned as [`Body::text`]
    /// (no control characters but line ends and TAB, CRLF, cut to [`MAX_BODY`]).
    pub fn alternative(text: &str, html: &str) -> Body {
        Body::Alternative {
            text: sanitize_body(text, MAX_BODY),
            html: sanitize_body(html, MAX_BODY),
        }
    }

    /// The body for vacation `:mime` (RFC 5230 §4.8): `entity` must be a MIME entity whose
    /// header section holds only `Content-*` fields (parsed by mail-parser) and is ended by
    /// a blank line. Each field is written again on one line without control characters;
    /// the content is kept with its line ends made CRLF and NUL removed. Anything else, or
    /// an entity over [`MAX_BODY`], is sent as `text/plain` of the whole text instead.
    pub fn from_mime(entity: &str) -> Body {
        let normal = sanitize_body(entity, usize::MAX);
        if normal.len() > MAX_BODY {
            return Body::text(entity);
        }
        mime_entity(normal.as_bytes()).map_or_else(|| Body::text(entity), Body::Mime)
    }
}

/// `bytes` (CRLF line ends) rewritten as a safe entity, or `None` when its header section
/// is empty, not ended by a blank line, or holds a field that is not `Content-*`.
fn mime_entity(bytes: &[u8]) -> Option<Vec<u8>> {
    let header_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let message = mail_parser::MessageParser::new().parse(bytes)?;
    let root = message.parts.first()?;
    if root.headers.is_empty() || root.offset_body as usize != header_end {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    for header in &root.headers {
        let name = header.name.as_str();
        let is_content = name.len() > 8
            && name.is_char_boundary(8)
            && name[..8].eq_ignore_ascii_case("content-")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !is_content {
            return None;
        }
        let raw = bytes.get(header.offset_start as usize..header.offset_end as usize)?;
        // Unfolded and without control characters: the field is one line of ours.
        let value = String::from_utf8_lossy(raw).replace(['\r', '\n', '\t'], " ");
        let value = sanitize(&value, 900, Charset::Utf8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes[header_end..]);
    Some(out)
}

/// One message we generate, from typed parts.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `From`.
    pub from: Mailbox,
    /// `To` (at least one).
    pub to: Vec<Mailbox>,
    /// `Cc` (shown only; who receives the message is the envelope's business).
    pub cc: Vec<Mailbox>,
    /// `Subject`, sanitised and capped when written.
    pub subject: String,
    /// `In-Reply-To`.
    pub in_reply_to: Option<MsgId>,
    /// `References`, oldest first; only the last [`MAX_REFERENCES`] are written.
    pub references: Vec<MsgId>,
    /// `Auto-Submitted`.
    pub auto_submitted: AutoSubmitted,
    /// `Importance`/`X-Priority`, for notifications.
    pub importance: Option<Importance>,
    /// The body.
    pub body: Body,
    /// The right side of our Message-ID (sanitised; `localhost` when unusable).
    pub hostname: String,
}

impl Generated {
    /// The whole message, CRLF line ends, ending in CRLF.
    pub fn build(&self) -> Result<Vec<u8>, ComposeError> {
        if self.to.is_empty() {
            return Err(ComposeError::NoRecipient);
        }
        let list =
            |boxes: &[Mailbox]| Address::new_list(boxes.iter().map(Mailbox::to_builder).collect());
        let mut builder = MessageBuilder::new()
            .from(self.from.to_builder())
            .to(list(&self.to))
            .subject(Text::new(
                sanitize(&self.subject, MAX_SUBJECT, Charset::Utf8).into_owned(),
            ))
            .date(Date::now())
            .message_id(new_message_id(&self.hostname));
        if !self.cc.is_empty() {
            builder = builder.cc(list(&self.cc));
        }
        if let Some(id) = &self.in_reply_to {
            builder = builder.in_reply_to(MessageId::new(id.0.clone()));
        }
        if !self.references.is_empty() {
            let skip = self.references.len().saturating_sub(MAX_REFERENCES);
            let ids: Vec<String> = self.references[skip..]
                .iter()
                .map(|r| r.0.clone())
                .collect();
            builder = builder.references(MessageId::new_list(ids.into_iter()));
        }
        builder = builder.header("Auto-Submitted", Raw::new(self.auto_submitted.as_str()));
        if let Some(importance) = self.importance {
            let (label, priority) = match importance {
                Importance::High => ("High", "1 (High)"),
                Importance::Normal => ("Normal", "3 (Normal)"),
                Importance::Low => ("Low", "5 (Low)"),
            };
            builder = builder
                .header("Importance", Raw::new(label))
                .header("X-Priority", Raw::new(priority));
        }
        let body = match &self.body {
            Body::Text(text) => MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                text.clone(),
            ),
            // Starts with our rewritten Content-* lines: mail-builder writes a part without
            // headers as it is.
            Body::Mime(entity) => MimePart::raw(entity.clone()),
            Body::Alternative { text, html } => MimePart::new(
                ContentType::new("multipart/alternative"),
                vec![
                    MimePart::new(
                        ContentType::new("text/plain").attribute("charset", "utf-8"),
                        text.clone(),
                    ),
                    MimePart::new(
                        ContentType::new("text/html").attribute("charset", "utf-8"),
                        html.clone(),
                    ),
                ],
            ),
        };
        let mut bytes = builder
            .body(body)
            .write_to_vec()
            .map_err(|e| ComposeError::Write(e.to_string()))?;
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        Ok(bytes)
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new, unique Message-ID (without brackets) at `hostname` (sanitised to a host name;
/// `localhost` when nothing usable is left).
pub fn new_message_id(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
        .take(253)
        .collect();
    let host = host.trim_matches('.');
    let host = if host.is_empty() { "localhost" } else { host };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:09}.{}.{}.sievegate@{host}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `value` as it may appear in a log line or an error.
fn shown(value: &str) -> String {
    sanitize(value, 100, Charset::Utf8).into_owned()
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
