//! The RFC 5429 §2.1 rejection message: what Sieve `reject` sends to the envelope sender when
//! the refusal cannot be given in the protocol, an RFC 3798/8098 MDN with the disposition
//! `deleted`. sievegate refuses in the protocol (`550 5.7.1`) unless `[sieve]
//! allow_reject_mdn` is on: a message sent after the MTA accepted the mail goes to the
//! envelope sender, which may be forged (backscatter), so it is the admin's choice.
//!
//! Like the other reports: `multipart/report; report-type=disposition-notification`, a text
//! part with the script's reason, the `message/disposition-notification` fields, and the
//! original header section as `text/rfc822-headers` (never the body).

use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::mail::text::{sanitize, Charset};

/// What goes into one rejection message.
#[derive(Debug, Clone, Copy)]
pub struct Rejection<'a> {
    /// Our host name: `From: MAILER-DAEMON@host`, `Reporting-UA`, the Message-ID.
    pub hostname: &'a str,
    /// The envelope sender of the rejected message: the MDN's recipient.
    pub to: &'a str,
    /// The recipient whose script rejected it (`Final-Recipient`).
    pub rcpt: &'a str,
    /// The script's reason.
    pub reason: &'a str,
    /// The rejected message's `<Message-ID>`, or `""`.
    pub original_message_id: &'a str,
    /// Its top-level header section.
    pub original_headers: &'a [u8],
}

/// Why no MDN may be sent for a message (RFC 5429 §2.1, RFC 3834 §2): to nobody, or to an
/// automatic sender that might answer again.
pub fn must_not_answer(mail_from: &str, message: &[u8]) -> Option<&'static str> {
    if crate::mail::bounce::is_bounce_raw(mail_from, message) {
        return Some("the message is a bounce (null sender or delivery report)");
    }
    // The MDN's only recipient: it goes into `To` and `RCPT TO`, so only a plain addr-spec
    // (no quoted local part that could hold CR/LF).
    if !crate::mail::address::is_addr_spec(mail_from) {
        return Some("the envelope sender is not a plain address");
    }
    let headers = crate::report::header_section(message);
    let auto = mail_parser::MessageParser::new()
        .parse_headers(headers)
        .and_then(|m| {
            m.header("Auto-Submitted")
                .and_then(|v| v.as_text().map(|t| t.trim().to_ascii_lowercase()))
        })
        .is_some_and(|value| !value.starts_with("no"));
    auto.then_some("the message was sent automatically (Auto-Submitted)")
}

/// The whole message, ready to queue from the null sender (CRLF line ends).
pub fn build(r: &Rejection<'_>) -> Result<Vec<u8>, std::io::Error> {
    let to = crate::outbound::compose::Mailbox::new(r.to, None)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let host = sanitize(r.hostname, 255, Charset::Ascii);
    let rcpt = sanitize(r.rcpt, 255, Charset::Ascii);
    // The reason may come from match variables: text only, in the body, never in a field.
    let reason = sanitize(r.reason, 1000, Charset::Utf8);
    let text = format!(
        "Your message to <{rcpt}> was automatically rejected by the recipient's mail filter.\r\n\
         \r\n\
         The reason given:\r\n\
         \r\n\
         {reason}\r\n"
    );
    let mut fields = format!(
        "Reporting-UA: {host}; sievegate {}\r\nFinal-Recipient: rfc822; {rcpt}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    // Only a valid msg-id is repeated (RFC 8098 §3.2.5), never free text.
    if let Some(id) = crate::outbound::compose::MsgId::parse(r.original_message_id) {
        fields.push_str(&format!("Original-Message-ID: <{}>\r\n", id.as_str()));
    }
    fields.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\r\n");
    let headers = crate::report::notice::original_headers(r.original_headers).to_vec();
    let encoding = if headers.is_ascii() { "7bit" } else { "8bit" };
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "disposition-notification"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                text.into_bytes(),
            )
            .transfer_encoding("8bit"),
            MimePart::new(
                ContentType::new("message/disposition-notification"),
                fields.into_bytes(),
            )
            .transfer_encoding("7bit"),
            MimePart::new(ContentType::new("text/rfc822-headers"), headers)
                .transfer_encoding(encoding),
        ],
    );
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let message_id = crate::outbound::compose::new_message_id(&host);
    MessageBuilder::new()
        .from(format!("MAILER-DAEMON@{host}"))
        .to(to.address().to_string())
        .subject("Automatically rejected mail")
        .date(Date::new(i64::try_from(secs).unwrap_or(i64::MAX)))
        .message_id(message_id)
        // RFC 5429 §2.1.1 and RFC 3834: an automatic reply, never answered in turn.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(body)
        .write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    const ORIGINAL: &[u8] =
        b"From: Alice <alice@example.org>\r\nSubject: offer\r\nMessage-ID: <1@example.org>\r\n\r\nbody text\r\n";

    #[test]
    fn mdn_structure() {
        let bytes = build(&Rejection {
            hostname: "mx.example.test",
            to: "alice@example.org",
            rcpt: "bob@example.test",
            reason: "I don't want your offers\r\nBcc: x@y",
            original_message_id: "<1@example.org>",
            original_headers: ORIGINAL,
        })
        .expect("build");
        let text = String::from_utf8_lossy(&bytes);
        let parsed = MessageParser::new().parse(&bytes).expect("parses");
        let ct = parsed.content_type().expect("content type");
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(
            ct.attribute("report-type"),
            Some("disposition-notification")
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("Disposition: automatic-action/MDN-sent-automatically; deleted"));
        assert!(text.contains("Final-Recipient: rfc822; bob@example.test"));
        assert!(text.contains("Original-Message-ID: <1@example.org>"));
        assert!(text.contains("I don't want your offersBcc: x@y"), "{text}");
        assert!(!text.contains("body text"), "headers only, never the body");
    }

    /// Hostile values in every field that comes from the message or the script: no line of
    /// them starts a header field; an unusable recipient is refused.
    #[test]
    fn mdn_hostile_fields() {
        let hostile = "x\r\nX-Injected: yes\r\n\r\n<a href=x>\0";
        let bytes = build(&Rejection {
            hostname: "mx.example.test",
            to: "alice@example.org",
            rcpt: hostile,
            reason: hostile,
            original_message_id: hostile,
            original_headers: ORIGINAL,
        })
        .expect("build");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("\nX-Injected"), "{text}");
        assert!(!text.contains('\0'));
        assert!(!text.contains("Original-Message-ID"), "{text}");
        // Ours, once each, in the top header section.
        let top = text.split("\r\n\r\n").next().unwrap_or_default();
        for field in ["Auto-Submitted: ", "Message-ID: ", "MIME-Version: "] {
            assert_eq!(top.matches(&format!("\r\n{field}")).count(), 1, "{top}");
        }
        for to in ["\"a\r\nRCPT TO:<i@x>\"@x.test", "a@x\r\nBcc: y@z", ""] {
            let r = Rejection {
                hostname: "mx.example.test",
                to,
                rcpt: "bob@example.test",
                reason: "r",
                original_message_id: "",
                original_headers: ORIGINAL,
            };
            assert!(build(&r).is_err(), "{to:?}");
            assert!(must_not_answer(to, ORIGINAL).is_some(), "{to:?}");
        }
    }

    #[test]
    fn who_gets_no_mdn() {
        let auto = b"From: a@example.org\r\nAuto-Submitted: auto-replied\r\n\r\nx\r\n";
        let manual = b"From: a@example.org\r\nAuto-Submitted: no\r\n\r\nx\r\n";
        assert!(must_not_answer("", ORIGINAL).is_some());
        assert!(must_not_answer("a@example.org", auto).is_some());
        assert!(must_not_answer("a@example.org", manual).is_none());
        assert!(must_not_answer("a@example.org", ORIGINAL).is_none());
    }
}
