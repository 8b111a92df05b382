//! The RFC 5965 report: `multipart/report; report-type=feedback-report` with a text part for
//! people, the `message/feedback-report` part for machines, and the original header section
//! as `text/rfc822-headers` (never the body: it carries the virus).
//!
//! Built with mail-builder. It can express every part: `message/feedback-report` and
//! `text/rfc822-headers` are given an explicit `Content-Transfer-Encoding` (7bit or 8bit), so
//! mail-builder writes them as they are instead of choosing quoted-printable, which RFC 2046
//! §5.2 forbids for `message/*` and which would garble headers for the machines reading them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::mail::text::{sanitize, Charset};

/// What goes into one report.
#[derive(Debug, Clone)]
pub struct ArfReport<'a> {
    /// Envelope sender and `From` (`[abuse] report_from`).
    pub report_from: &'a str,
    /// The abuse contact.
    pub to: &'a str,
    /// Our host name (`Reporting-MTA`, the text).
    pub reporting_mta: &'a str,
    pub source_ip: IpAddr,
    /// When the message arrived.
    pub arrival: SystemTime,
    /// When the report is written (`Date`).
    pub date: SystemTime,
    /// MAIL FROM of the infected message (`""`: null sender).
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
    /// Virus names as clamd gave them.
    pub viruses: &'a [String],
    /// The client's HELO and reverse name, as our MTA saw them (text only).
    pub client_helo: Option<&'a str>,
    pub client_name: Option<&'a str>,
    /// Incidents this report stands for (1 + those the rate limit held back).
    pub incidents: u64,
    /// The infected message was a bounce: ask the MTA to stop bouncing infected mail.
    pub backscatter: bool,
    /// The infected message's top-level header section ([`crate::mail::header`]'s
    /// walk); `None` when it must not be sent (clamd found something in it, or could not
    /// scan it): the report then has no `text/rfc822-headers` part.
    pub original_headers: Option<&'a [u8]>,
}

/// The report could not be written (mail-builder's writer failed: a bug, not input).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the abuse report: {0}")]
pub struct ArfError(#[from] std::io::Error);

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Client text (addresses, names) made safe for a header field or a line of text.
fn clean(value: &str) -> String {
    sanitize(value, 512, Charset::Ascii).into_owned()
}

/// `Source-IP` value: RFC 5965 §3.2 uses RFC 5321's address literals, whose IPv6 form
/// carries the `IPv6:` tag.
fn source_ip_field(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    }
}

/// The `message/feedback-report` fields (RFC 5965 §3.1-3.3), CRLF-terminated.
pub fn feedback_fields(r: &ArfReport<'_>) -> String {
    let mut f = String::new();
    f.push_str("Feedback-Type: virus\r\n");
    f.push_str(concat!(
        "User-Agent: sievegate/",
        env!("CARGO_PKG_VERSION"),
        "\r\n"
    ));
    f.push_str("Version: 1\r\n");
    f.push_str(&format!("Source-IP: {}\r\n", source_ip_field(r.source_ip)));
    f.push_str(&format!(
        "Arrival-Date: {}\r\n",
        Date::new(unix(r.arrival)).to_rfc822()
    ));
    f.push_str(&format!("Original-Mail-From: <{}>\r\n", clean(r.mail_from)));
    for rcpt in r.rcpts {
        f.push_str(&format!("Original-Rcpt-To: <{}>\r\n", clean(rcpt)));
    }
    f.push_str(&format!(
        "Reporting-MTA: dns; {}\r\n",
        clean(r.reporting_mta)
    ));
    if r.incidents > 1 {
        f.push_str(&format!(
            "Incidents: {}\r\n",
            r.incidents.min(u32::MAX as u64)
        ));
    }
    f
}

/// The text part: what happened, and for a bounce, why to stop bouncing.
pub fn human_text(r: &ArfReport<'_>) -> String {
    let viruses = if r.viruses.is_empty() {
        "(unnamed)".to_string()
    } else {
        r.viruses
            .iter()
            .map(|v| clean(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut t = String::new();
    t.push_str(&format!(
        "This is an automated abuse report from {mta} (RFC 5965 format).\r\n\r\n\
         A host at {ip}, in a network you are the abuse contact for, sent us\r\n\
         a message that carries a virus. We did not deliver it.\r\n\r\n\
         \x20 Source IP:    {ip}\r\n\
         \x20 Virus:        {viruses}\r\n\
         \x20 Arrived:      {arrived}\r\n",
        mta = clean(r.reporting_mta),
        ip = r.source_ip,
        arrived = Date::new(unix(r.arrival)).to_rfc822(),
    ));
    if let Some(helo) = r.client_helo {
        t.push_str(&format!("  Client HELO:  {}\r\n", clean(helo)));
    }
    if let Some(name) = r.client_name {
        t.push_str(&format!("  Client name:  {}\r\n", clean(name)));
    }
    t.push_str(&format!(
        "  Envelope:     MAIL FROM:<{}> to {} recipient(s) here\r\n",
        clean(r.mail_from),
        r.rcpts.len()
    ));
    if r.incidents > 1 {
        t.push_str(&format!(
            "  Incidents:    {} from this address since our last report\r\n",
            r.incidents
        ));
    }
    t.push_str("\r\n");
    if r.backscatter {
        t.push_str(
            "The infected message was a bounce (a delivery status notification) that\r\n\
             your server generated: it accepted virus-infected mail, then bounced it,\r\n\
             virus included, to the sender address written in that mail. Please stop\r\n\
             bouncing virus-infected mail. Reject it during the SMTP dialogue, or\r\n\
             quarantine or drop it, but do not send it back:\r\n\
             \r\n\
             - Virus mail almost never comes from the address it claims. The bounce\r\n\
             \x20 goes to a bystander whose address was forged, not to the sender.\r\n\
             - A bounce that carries the original message carries the virus: your\r\n\
             \x20 server delivers it to someone new.\r\n\
             - When the forged address does not exist, your bounce bounces too, and\r\n\
             \x20 the double bounce lands at your own postmaster.\r\n\
             - It wastes your resources and ours, and servers that send this kind of\r\n\
             \x20 backscatter end up on blocklists.\r\n\
             \r\n",
        );
    } else {
        t.push_str(
            "The sender address in the message is most likely forged, so we report to\r\n\
             you, the network's abuse contact, not to it. The host at the address\r\n\
             above is probably infected, or relays mail for one that is.\r\n\r\n",
        );
    }
    if r.original_headers.is_some() {
        t.push_str(
            "The header section of the message is attached; its body, which holds the\r\n\
             virus, is not.\r\n",
        );
    } else {
        t.push_str(
            "Neither the message nor its header section is attached: the header\r\n\
             section itself matched a virus signature.\r\n",
        );
    }
    t
}

/// `7bit`, or `8bit` when the header section has 8-bit bytes (UTF-8 in headers, RFC 6532).
fn header_encoding(headers: &[u8]) -> &'static str {
    if headers.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}

/// The header section with every line ending in CRLF and no lone CR, as MIME text wants;
/// lines past RFC 5322's 998 octets are cut (the report is about the source, not them).
fn normalized_headers(headers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() + 64);
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let line: Vec<u8> = line
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != 0)
            .take(998)
            .collect();
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The whole report, ready to send (CRLF line ends).
pub fn build(r: &ArfReport<'_>) -> Result<Vec<u8>, ArfError> {
    let subject = if r.backscatter {
        format!(
            "Abuse report: virus-infected bounce (backscatter) from {}",
            r.source_ip
        )
    } else {
        format!("Abuse report: virus from {}", r.source_ip)
    };
    let mut parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "us-ascii"),
            human_text(r),
        )
        .transfer_encoding("7bit"),
        // Bytes, not text: mail-builder would add a charset parameter to a text body.
        MimePart::new(
            ContentType::new("message/feedback-report"),
            feedback_fields(r).into_bytes(),
        )
        .transfer_encoding("7bit"),
    ];
    if let Some(original) = r.original_headers {
        // Walked again: whoever built `r`, only whole field lines within the caps go out.
        let headers = normalized_headers(crate::mail::header::section(original));
        let encoding = header_encoding(&headers);
        parts.push(
            MimePart::new(ContentType::new("text/rfc822-headers"), headers)
                .transfer_encoding(encoding),
        );
    }
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "feedback-report"),
        parts,
    );
    let host = clean(r.reporting_mta);
    // Unique enough: time, process and a per-process counter.
    let message_id = format!(
        "{}.{}.{}.abuse@{}",
        r.date
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        host
    );
    let message = MessageBuilder::new()
        .from(r.report_from)
        .to(r.to)
        .subject(subject)
        .date(Date::new(unix(r.date)))
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .body(body);
    Ok(message.write_to_vec()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    use std::time::Duration;

    const ORIGINAL: &[u8] = b"Received: from a (a.example.net [203.0.113.7]) by mx (Postfix) id 1\r\nFrom: \"Jos\xc3\xa9\" <jose@example.org>\r\nSubject: invoice\r\nMessage-ID: <1@example.org>\r\nContent-Type: multipart/mixed; boundary=x\r\n";

    fn report(backscatter: bool, incidents: u64, ip: &str) -> Vec<u8> {
        let rcpts = vec![
            "alice@example.test".to_string(),
            "bob@example.test".to_string(),
        ];
        let viruses = vec!["Eicar-Signature".to_string()];
        let r = ArfReport {
            report_from: "abuse-reports@example.test",
            to: "abuse@example.net",
            reporting_mta: "mx.example.test",
            source_ip: ip.parse().unwrap(),
            arrival: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            date: SystemTime::now(),
            mail_from: if backscatter {
                ""
            } else {
                "forged@example.org"
            },
            rcpts: &rcpts,
            viruses: &viruses,
            client_helo: Some("a.example.net"),
            client_name: Some("a.example.net"),
            incidents,
            backscatter,
            original_headers: Some(ORIGINAL),
        };
        build(&r).unwrap()
    }

    #[test]
    fn arf_structure() {
        let raw = report(false, 1, "203.0.113.7");
        let msg = MessageParser::default().parse(&raw).unwrap();
        let ct = msg.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("feedback-report"));
        assert_eq!(
            msg.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        assert!(msg.subject().unwrap().contains("203.0.113.7"));
        let types: Vec<String> = msg.parts[1..]
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/feedback-report",
                "text/rfc822-headers"
            ]
        );
        let text = String::from_utf8_lossy(&raw);
        let fields = &text[text.find("Feedback-Type:").unwrap()..];
        let fields = &fields[..fields.find("\r\n\r\n").unwrap()];
        let lines: Vec<&str> = fields.lines().collect();
        assert_eq!(
            lines,
            [
                "Feedback-Type: virus",
                concat!("User-Agent: sievegate/", env!("CARGO_PKG_VERSION")),
                "Version: 1",
                "Source-IP: 203.0.113.7",
                "Arrival-Date: Fri, 15 Jan 2027 08:00:00 +0000",
                "Original-Mail-From: <forged@example.org>",
                "Original-Rcpt-To: <alice@example.test>",
                "Original-Rcpt-To: <bob@example.test>",
                "Reporting-MTA: dns; mx.example.test",
            ]
        );
        // The third part is the header section exactly (8-bit kept), not the body.
        let third = &msg.parts[3];
        let body = match &third.body {
            PartType::Text(t) => t.as_bytes().to_vec(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            String::from_utf8_lossy(&body).trim_end(),
            String::from_utf8_lossy(ORIGINAL).trim_end()
        );
        assert!(text.contains("Content-Transfer-Encoding: 8bit"));
        assert!(!text.contains("quoted-printable") && !text.contains("base64"));
        assert!(!text.contains("stop bouncing"));
    }

    #[test]
    fn incidents_ipv6_and_backscatter_text() {
        let raw = report(true, 3, "2001:db8::7");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("\r\nIncidents: 3\r\n"), "{text}");
        assert!(text.contains("\r\nSource-IP: IPv6:2001:db8::7\r\n"));
        assert!(text.contains("\r\nOriginal-Mail-From: <>\r\n"));
        assert!(
            text.contains("Please stop\r\nbouncing virus-infected mail"),
            "{text}"
        );
        for reason in [
            "forged",
            "carries the virus",
            "double bounce",
            "wastes your resources",
        ] {
            assert!(text.contains(reason), "{reason}");
        }
        assert!(text.contains("backscatter"));
        // Every line fits SMTP's limit and ends in CRLF.
        for line in raw.split(|&b| b == b'\n') {
            assert!(line.len() <= 1000);
        }
        assert!(!raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }
}
