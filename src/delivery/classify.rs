//! What kind of message this is, for policies that do not depend on the recipient.

use mail_parser::{Message, MimeHeaders};

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
}
