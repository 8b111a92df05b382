//! Is a message a bounce, or a feedback report? The notion shared by the abuse report (a
//! bounce carrying a virus means the connecting MTA sends backscatter; a report is never
//! answered with a report), the quarantine's `backscatter` mark and Sieve's `reject` MDN.

use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};

/// True when the message is itself a bounce (a delivery status notification or what looks
/// like one): the null envelope sender (RFC 5321 §4.5.5), a `multipart/report` with
/// `report-type=delivery-status` (RFC 3462, RFC 3464), or a `From` whose local part is
/// `MAILER-DAEMON` or `postmaster`.
///
/// An *infected* bounce means the MTA that sent it bounces virus-infected mail to forged
/// senders: the quarantine marks such entries `backscatter`, and abuse reports say so.
pub fn is_bounce(mail_from: &str, message: &Message<'_>) -> bool {
    let mail_from = mail_from.trim();
    if mail_from.is_empty() || mail_from == "<>" {
        return true;
    }
    let dsn = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    if dsn {
        return true;
    }
    message
        .from()
        .into_iter()
        .flat_map(|from| from.iter())
        .filter_map(|addr| addr.address())
        .any(|address| {
            let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
            local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
        })
}

/// [`is_bounce`] on raw bytes: reads only the top-level header section of `message` (a
/// header section alone works too), with the one header walker's caps. Headers
/// mail-parser cannot read leave only the envelope to tell.
pub fn is_bounce_raw(mail_from: &str, message: &[u8]) -> bool {
    let headers = super::header::section(message);
    match MessageParser::new().parse_headers(headers) {
        Some(parsed) => is_bounce(mail_from, &parsed),
        None => {
            let mail_from = mail_from.trim();
            mail_from.is_empty() || mail_from == "<>"
        }
    }
}

/// The `report-type` of a top-level `multipart/report` (trimmed), else `None`.
fn report_type(parsed: &Message<'_>) -> Option<String> {
    let part = parsed.parts.first()?;
    part.headers.iter().find_map(|h| match (&h.name, &h.value) {
        (HeaderName::ContentType, HeaderValue::ContentType(ct))
            if ct.c_type.eq_ignore_ascii_case("multipart")
                && ct
                    .c_subtype
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report")) =>
        {
            ct.attribute("report-type").map(|t| t.trim().to_string())
        }
        _ => None,
    })
}

/// True when the message is itself a feedback report (RFC 5965): never
/// answer a report with a report, so two reporters cannot loop.
pub fn is_feedback_report(message: &[u8]) -> bool {
    let headers = super::header::section(message);
    MessageParser::new()
        .parse_headers(headers)
        .and_then(|parsed| report_type(&parsed))
        .is_some_and(|t| t.eq_ignore_ascii_case("feedback-report"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn bounce_table() {
        let plain = "From: Alice <alice@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";
        let cases: &[(&str, &str, bool)] = &[
            ("alice@example.org", plain, false),
            ("", plain, true),
            (
                "alice@example.org",
                "From: alice@example.org\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
                true,
            ),
            (
                "alice@example.org",
                "From: alice@example.org\r\nContent-Type: Multipart/Report; report-type=\"Delivery-Status\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
                true,
            ),
            (
                "alice@example.org",
                "From: alice@example.org\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
                false,
            ),
            ("x@example.org", "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n\r\nb\r\n", true),
            ("x@example.org", "From: postmaster@example.org\r\n\r\nb\r\n", true),
            ("x@example.org", "From: postmaster-team@example.org\r\n\r\nb\r\n", false),
            ("x@example.org", "Subject: no from\r\n\r\nb\r\n", false),
        ];
        for (mail_from, raw, want) in cases {
            let message = MessageParser::new().parse(raw.as_bytes()).expect("parse");
            assert_eq!(
                is_bounce(mail_from, &message),
                *want,
                "{mail_from:?} {raw:?}"
            );
        }
    }

    #[test]
    fn raw_bounce_table() {
        let plain = b"From: alice@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
        let dsn = b"From: Mail Delivery System <mailer@example.net>\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"b\"\r\n\r\n--b--\r\n";
        let mdn = b"From: bob@example.net\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n";
        let daemon = b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\r\n\r\n";
        let postmaster = b"From: postmaster@example.net\r\n\r\n";
        let display_only = b"From: \"MAILER-DAEMON\" <alice@example.net>\r\n\r\n";
        let lf = b"From: alice@example.net\nContent-Type: multipart/report; report-type=\"Delivery-Status\"; boundary=b\n\nx\n";
        let cases: &[(&str, &[u8], bool)] = &[
            ("", plain, true),
            ("<>", plain, true),
            ("alice@example.net", plain, false),
            ("alice@example.net", dsn, true),
            ("alice@example.net", mdn, false),
            ("alice@example.net", daemon, true),
            ("alice@example.net", postmaster, true),
            ("alice@example.net", display_only, false),
            ("alice@example.net", lf, true),
            ("alice@example.net", b"", false),
            ("alice@example.net", b"\xff\xfe garbage", false),
        ];
        for (i, (from, msg, want)) in cases.iter().enumerate() {
            assert_eq!(is_bounce_raw(from, msg), *want, "case {i}: {from:?}");
        }
    }

    #[test]
    fn feedback_reports_are_recognised() {
        assert!(is_feedback_report(
            b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n"
        ));
        assert!(!is_feedback_report(
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
        ));
    }
}
