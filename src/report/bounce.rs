//! Is a message a bounce? The notion shared by the abuse report (a bounce carrying a virus
//! means the connecting MTA sends backscatter) and the quarantine's `backscatter` mark.

use mail_parser::{HeaderName, HeaderValue, Message, MessageParser};

/// True when the message is a bounce (a non-delivery or delivery status notification):
/// - the envelope sender is null (`""` or `"<>"`; RFC 5321 §4.5.5 requires it for DSNs);
/// - or the top-level `Content-Type` is `multipart/report; report-type=delivery-status`
///   (RFC 3464), whatever the envelope says;
/// - or the `From` address's local part is `MAILER-DAEMON` or `postmaster` (any case), as
///   bounces from MTAs that do not follow RFC 3464 are.
///
/// Pure: reads only the top-level header section of `message` (a header section alone
/// works too).
pub fn is_bounce(mail_from: &str, message: &[u8]) -> bool {
    let headers = super::header_section(message);
    match MessageParser::new().parse_headers(headers) {
        Some(parsed) => crate::delivery::classify::is_bounce(mail_from, &parsed),
        // Headers mail-parser cannot read: only the envelope can tell.
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
    let headers = super::header_section(message);
    MessageParser::new()
        .parse_headers(headers)
        .and_then(|parsed| report_type(&parsed))
        .is_some_and(|t| t.eq_ignore_ascii_case("feedback-report"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_table() {
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
            assert_eq!(is_bounce(from, msg), *want, "case {i}: {from:?}");
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
