//! Header work done at delivery time: removing scan headers a sender could forge, and the
//! trace headers (`Return-Path`, `Delivered-To`, `Received`, scan status) prepended to
//! every stored copy.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::mail::address::Recipient;
use crate::mail::envelope::Client;
use crate::scan::Verdict;

/// Header fields we set ourselves. An incoming copy would be a forgery (or an earlier hop's
/// opinion): the Sieve `virustest` configuration of a Dovecot reading this mailbox trusts
/// them.
const SCAN_HEADERS: [&[u8]; 2] = [b"X-Virus-Scanned", b"X-Virus-Status"];

/// Longest client-supplied value copied into a header, in bytes: keeps every line we write
/// far below RFC 5322's 998-character limit (§2.1.1).
const MAX_VALUE: usize = 255;

/// Removes every `X-Virus-Scanned` and `X-Virus-Status` field (any case, with its folded
/// continuation lines) from the header section. The body and every other byte are kept as
/// they are; without a match the input is returned borrowed.
///
/// The header section ends at the first empty line (CRLF or bare LF); a message without
/// that separator is all header.
pub fn strip_virus_headers(raw: &[u8]) -> Cow<'_, [u8]> {
    // Allocated only when there is something to remove: most messages carry no such header.
    if !has_virus_headers(raw) {
        return Cow::Borrowed(raw);
    }
    let mut buf = Vec::with_capacity(raw.len());
    // Writing into a Vec cannot fail.
    let _ = write_without_virus_headers(raw, &mut buf);
    Cow::Owned(buf)
}

/// True when [`strip_virus_headers`] would remove something.
pub fn has_virus_headers(raw: &[u8]) -> bool {
    let mut any = false;
    walk_header(raw, |_, scan_header| any |= scan_header);
    any
}

/// Writes what [`strip_virus_headers`] returns into `out`, without a copy in memory (for
/// a spooled message, whose copy goes to a file too).
pub fn write_without_virus_headers(
    raw: &[u8],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut result = Ok(());
    let end = walk_header(raw, |line, scan_header| {
        if !scan_header && result.is_ok() {
            result = out.write_all(line);
        }
    });
    result?;
    out.write_all(&raw[end..])
}

/// Calls `each` for every line of the header section (with its line break), with whether
/// it belongs to a scan header field; returns where the header section ends.
fn walk_header(raw: &[u8], mut each: impl FnMut(&[u8], bool)) -> usize {
    let mut removing = false;
    let mut pos = 0;
    while pos < raw.len() {
        let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if is_blank_line(line) {
            break;
        }
        // RFC 5322 §2.2.3: a line starting with WSP continues the previous field.
        if !matches!(line[0], b' ' | b'\t') {
            removing = field_name(line)
                .is_some_and(|name| SCAN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)));
        }
        each(line, removing);
        pos = end;
    }
    pos
}

/// The separator between header and body: `\r\n`, `\n` (or a lone `\r` at the very end).
fn is_blank_line(line: &[u8]) -> bool {
    matches!(line, b"\r\n" | b"\n" | b"\r")
}

/// The field name of a header line (RFC 5322 §3.6.8: printable ASCII but `:`), allowing the
/// obsolete white space before the colon (§4.5). `None` for anything else.
pub(crate) fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii_end();
    (!name.is_empty() && name.iter().all(|b| (33..=126).contains(b))).then_some(name)
}

/// What the trace headers say about one message; borrowed from the session.
#[derive(Debug, Clone, Copy)]
pub struct TraceInfo<'a> {
    /// The MAIL FROM address without brackets; empty for the null sender.
    pub return_path: &'a str,
    /// Our host name, as in the LHLO greeting.
    pub hostname: &'a str,
    /// The session (or transaction) id that also appears in our logs.
    pub session_id: &'a str,
    /// The LMTP client's LHLO name.
    pub helo: Option<&'a str>,
    /// The LMTP client's address (`None` on a unix socket).
    pub peer_addr: Option<&'a str>,
    /// The original client from XFORWARD; when present it replaces `helo`/`peer_addr`,
    /// which then describe only the local MTA.
    pub client: Option<&'a Client>,
    /// The scan result of this message.
    pub verdict: &'a Verdict,
    /// What `X-Virus-Scanned` names, e.g. `ClamAV via sievegate`.
    pub scanner_name: &'a str,
    /// When the message was received (end of DATA): the `Received` date.
    pub received_at: SystemTime,
}

/// The trace headers for one recipient, CRLF-terminated, in the order they are prepended:
/// `Return-Path`, `Delivered-To`, `Received` (RFC 5321 §4.4), `X-Virus-Scanned`,
/// `X-Virus-Status`. Every client-supplied value is sanitized so it cannot start a header
/// line of its own.
pub fn trace_headers(info: &TraceInfo<'_>, rcpt: &Recipient) -> Vec<u8> {
    build(info, Some(rcpt))
}

/// The trace headers every recipient of a message can share: those of [`trace_headers`]
/// without `Delivered-To` and without the `for` clause of `Received`, as Dovecot's LMTP
/// writes them for a message with several recipients. The stored copies of such a message
/// can then be hard links of one file.
pub fn shared_trace_headers(info: &TraceInfo<'_>) -> Vec<u8> {
    build(info, None)
}

fn build(info: &TraceInfo<'_>, rcpt: Option<&Recipient>) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    // Writing into a String cannot fail; the results are ignored for that reason only.
    let _ = write!(out, "Return-Path: <{}>\r\n", clean(info.return_path));
    if let Some(rcpt) = rcpt {
        // As given in RCPT TO, `+detail` included, as Postfix's local(8) and Dovecot write it.
        let _ = write!(out, "Delivered-To: {}\r\n", clean(&rcpt.original));
    }

    // Beyond control characters, each part of the `from` clause keeps only what its kind
    // can hold, so a client cannot write a `(name [addr])` of its choosing into our
    // Received line (which the abuse reporting reads back as a trusted hop).
    let (helo, name, addr) = match &info.client {
        Some(c) => (
            present_as(c.helo.as_deref(), Part::Helo),
            present_as(c.name.as_deref(), Part::Name),
            c.addr.map(|ip| Cow::Owned(ip.to_string())),
        ),
        None => (
            present_as(info.helo, Part::Helo),
            None,
            present_as(info.peer_addr, Part::Addr),
        ),
    };
    out.push_str("Received:");
    if helo.is_some() || name.is_some() || addr.is_some() {
        out.push_str(" from ");
        // Postfix style: `from helo (name [addr])`, `unknown` for a client without rDNS.
        out.push_str(helo.as_deref().unwrap_or("unknown"));
        match (name, addr) {
            (Some(n), Some(a)) => {
                let _ = write!(out, " ({n} [{a}])");
            }
            // The LMTP peer has no looked-up name; an XFORWARD client without one is
            // `unknown`, as Postfix writes it.
            (None, Some(a)) if info.client.is_some() => {
                let _ = write!(out, " (unknown [{a}])");
            }
            (None, Some(a)) => {
                let _ = write!(out, " ([{a}])");
            }
            (Some(n), None) => {
                let _ = write!(out, " ({n})");
            }
            (None, None) => {}
        }
        out.push_str("\r\n\t");
    } else {
        out.push(' ');
    }
    let _ = write!(
        out,
        "by {} (sievegate) with LMTP id {}",
        clean(info.hostname),
        clean(info.session_id)
    );
    match rcpt {
        Some(rcpt) => {
            let _ = write!(out, "\r\n\tfor <{}>;", clean(&rcpt.original));
        }
        None => out.push(';'),
    }
    let _ = write!(
        out,
        " {}\r\n",
        crate::mail::date::rfc5322_date(info.received_at)
    );

    let _ = write!(
        out,
        "X-Virus-Scanned: {} on {}\r\n",
        clean(info.scanner_name),
        clean(info.hostname)
    );
    let status: Cow<'_, str> = match info.verdict {
        Verdict::Clean => "Clean".into(),
        Verdict::Unscanned => "Not scanned".into(),
        Verdict::TooLarge => "Not scanned (too large)".into(),
        Verdict::Infected { name, .. } => format!("Infected ({})", clean(name)).into(),
    };
    let _ = write!(out, "X-Virus-Status: {status}\r\n");
    out.into_bytes()
}

/// A sanitized optional value; empty after cleaning, or an XFORWARD placeholder, is absent.
fn present(value: Option<&str>) -> Option<Cow<'_, str>> {
    let v = clean(value?);
    (!v.is_empty() && v != "[UNAVAILABLE]" && v != "[TEMPUNAVAIL]").then_some(v)
}

/// Which part of a Received `from` clause a value fills.
#[derive(Clone, Copy)]
enum Part {
    /// HELO/EHLO name: a host name or an address literal (`[192.0.2.1]`); no white space,
    /// no parentheses.
    Helo,
    /// Reverse-DNS name: host name characters only.
    Name,
    /// IP address (`IPv6:` prefix allowed): hex digits, letters of the prefix, `.` and `:`.
    Addr,
}

/// [`present`], then only the characters `part` may hold.
fn present_as(value: Option<&str>, part: Part) -> Option<Cow<'_, str>> {
    let v = present(value)?;
    let keep = |c: char| match part {
        Part::Helo => !c.is_whitespace() && !"()".contains(c),
        Part::Name => c.is_alphanumeric() || ".-_".contains(c),
        Part::Addr => c.is_ascii_alphanumeric() || ".:".contains(c),
    };
    if v.chars().all(keep) {
        return Some(v);
    }
    let kept: String = v.chars().filter(|c| keep(*c)).collect();
    (!kept.is_empty()).then_some(Cow::Owned(kept))
}

/// A client-supplied value made safe inside a header ([`crate::mail::text::sanitize`]).
fn clean(value: &str) -> Cow<'_, str> {
    crate::mail::text::sanitize(value, MAX_VALUE, crate::mail::text::Charset::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    #[test]
    fn strip_table() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            (
                "nothing to do",
                b"Subject: a\r\n\r\nbody\r\n",
                b"Subject: a\r\n\r\nbody\r\n",
            ),
            (
                "both, any case",
                b"x-virus-scanned: fake\r\nSubject: a\r\nX-VIRUS-STATUS: Clean\r\n\r\nb\r\n",
                b"Subject: a\r\n\r\nb\r\n",
            ),
            (
                "folded status",
                b"A: 1\r\nX-Virus-Status: Clean\r\n\tand more\r\n  even more\r\nB: 2\r\n\r\nb",
                b"A: 1\r\nB: 2\r\n\r\nb",
            ),
            (
                "similar names stay",
                b"X-Virus-Scanned-Extra: x\r\nX-Virus-Statuses: y\r\n\r\n",
                b"X-Virus-Scanned-Extra: x\r\nX-Virus-Statuses: y\r\n\r\n",
            ),
            (
                "obsolete space before colon",
                b"X-Virus-Status : Clean\r\nA: 1\r\n\r\n",
                b"A: 1\r\n\r\n",
            ),
            (
                "body untouched",
                b"A: 1\r\n\r\nX-Virus-Status: Clean\r\n",
                b"A: 1\r\n\r\nX-Virus-Status: Clean\r\n",
            ),
            (
                "bare LF",
                b"A: 1\nX-Virus-Status: Clean\n x\nB: 2\n\nX-Virus-Status: body\n",
                b"A: 1\nB: 2\n\nX-Virus-Status: body\n",
            ),
            (
                "no body, no separator",
                b"A: 1\r\nX-Virus-Scanned: by me\r\n",
                b"A: 1\r\n",
            ),
            (
                "last line unterminated",
                b"A: 1\r\nX-Virus-Status: x",
                b"A: 1\r\n",
            ),
            ("first line", b"X-Virus-Status: x\r\n\r\n", b"\r\n"),
            ("empty", b"", b""),
            (
                "continuation of a kept field",
                b"Subject: a\r\n X-Virus-Status: no\r\n\r\n",
                b"Subject: a\r\n X-Virus-Status: no\r\n\r\n",
            ),
            (
                "non-header line ends removal",
                b"X-Virus-Status: x\r\ngarbage\r\n\r\n",
                b"garbage\r\n\r\n",
            ),
        ];
        for (what, input, want) in cases {
            let got = strip_virus_headers(input);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "{what}"
            );
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                input == want,
                "{what}: borrowed iff unchanged"
            );
            assert_eq!(has_virus_headers(input), input != want, "{what}");
            let mut written = Vec::new();
            write_without_virus_headers(input, &mut written).expect("write to a Vec");
            assert_eq!(&written[..], &got[..], "{what}: the writer agrees");
        }
    }

    fn rcpt(original: &str) -> Recipient {
        Recipient::resolve(original, &["example.test".to_string()], "+").expect("recipient")
    }

    fn info<'a>(verdict: &'a Verdict, client: Option<&'a Client>) -> TraceInfo<'a> {
        TraceInfo {
            return_path: "alice@sender.test",
            hostname: "mx.example.test",
            session_id: "S1a2b",
            helo: Some("postfix.example.test"),
            peer_addr: Some("127.0.0.1"),
            client,
            verdict,
            scanner_name: "ClamAV via sievegate",
            received_at: UNIX_EPOCH + Duration::from_secs(1_795_771_519),
        }
    }

    const DATE: &str = "Fri, 27 Nov 2026 09:25:19 +0000";

    #[test]
    fn trace_table() {
        let clean = Verdict::Clean;
        let unscanned = Verdict::Unscanned;
        let infected = Verdict::Infected {
            name: "Eicar-Signature\r\nBcc: x".to_string(),
            heuristic: false,
        };
        let xf = Client {
            name: Some("mail.sender.test".into()),
            addr: "192.0.2.7".parse().ok(),
            helo: Some("helo.sender.test".into()),
            queue_id: None,
        };
        let no_rdns = Client {
            name: Some("[UNAVAILABLE]".into()),
            addr: "2001:db8::1".parse().ok(),
            ..Client::default()
        };
        let evil = Client {
            name: Some("n\0ame\x7f".into()),
            addr: "1.2.3.4".parse().ok(),
            helo: Some("evil\r\nBcc: victim@example.test".into()),
            queue_id: None,
        };
        let cases: Vec<(&str, TraceInfo<'_>, String)> = vec![
            (
                "no XFORWARD: LHLO and peer",
                info(&clean, None),
                format!(
                    "Received: from postfix.example.test ([127.0.0.1])\r\n\tby mx.example.test \
                     (sievegate) with LMTP id S1a2b\r\n\tfor <Bob+x@Example.test>; {DATE}\r\n\
                     X-Virus-Scanned: ClamAV via sievegate on mx.example.test\r\n\
                     X-Virus-Status: Clean\r\n"
                ),
            ),
            (
                "XFORWARD",
                info(&unscanned, Some(&xf)),
                format!(
                    "Received: from helo.sender.test (mail.sender.test [192.0.2.7])\r\n\tby \
                     mx.example.test (sievegate) with LMTP id S1a2b\r\n\tfor \
                     <Bob+x@Example.test>; {DATE}\r\n\
                     X-Virus-Scanned: ClamAV via sievegate on mx.example.test\r\n\
                     X-Virus-Status: Not scanned\r\n"
                ),
            ),
            (
                "XFORWARD without rDNS and HELO",
                info(&clean, Some(&no_rdns)),
                format!(
                    "Received: from unknown (unknown [2001:db8::1])\r\n\tby \
                     mx.example.test (sievegate) with LMTP id S1a2b\r\n\tfor \
                     <Bob+x@Example.test>; {DATE}\r\n\
                     X-Virus-Scanned: ClamAV via sievegate on mx.example.test\r\n\
                     X-Virus-Status: Clean\r\n"
                ),
            ),
            (
                "injection attempts",
                info(&infected, Some(&evil)),
                format!(
                    "Received: from evilBcc:victim@example.test (name [1.2.3.4])\r\n\tby \
                     mx.example.test (sievegate) with LMTP id S1a2b\r\n\tfor \
                     <Bob+x@Example.test>; {DATE}\r\n\
                     X-Virus-Scanned: ClamAV via sievegate on mx.example.test\r\n\
                     X-Virus-Status: Infected (Eicar-SignatureBcc: x)\r\n"
                ),
            ),
            (
                "unix socket, no LHLO",
                TraceInfo {
                    helo: None,
                    peer_addr: None,
                    ..info(&clean, None)
                },
                format!(
                    "Received: by mx.example.test (sievegate) with LMTP id S1a2b\r\n\tfor \
                     <Bob+x@Example.test>; {DATE}\r\n\
                     X-Virus-Scanned: ClamAV via sievegate on mx.example.test\r\n\
                     X-Virus-Status: Clean\r\n"
                ),
            ),
        ];
        let r = rcpt("Bob+x@Example.test");
        for (what, info, want_tail) in cases {
            let got = String::from_utf8(trace_headers(&info, &r)).expect("utf-8");
            let want = format!(
                "Return-Path: <alice@sender.test>\r\nDelivered-To: Bob+x@Example.test\r\n{want_tail}"
            );
            assert_eq!(got, want, "{what}");
            assert_no_injection(&got);
        }
    }

    /// Every line is a known field or a tab-folded continuation; no bare CR or LF.
    fn assert_no_injection(headers: &str) {
        assert!(headers.ends_with("\r\n"));
        for line in headers.trim_end_matches("\r\n").split("\r\n") {
            assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
            let known = [
                "Return-Path:",
                "Delivered-To:",
                "Received:",
                "X-Virus-Scanned:",
                "X-Virus-Status:",
                "\t",
            ];
            assert!(known.iter().any(|k| line.starts_with(k)), "{line:?}");
        }
    }

    /// Hostile HELO, XFORWARD NAME/ADDR/HELO, sender and virus name: no injected line, and
    /// no `(name [addr])` of the client's making in the `from` clause.
    #[test]
    fn client_values_cannot_forge_lines_or_the_from_clause() {
        let hostile = "x (evil.test [198.51.100.99])\r\nX-Injected: yes\0";
        let infected = Verdict::Infected {
            name: hostile.to_string(),
            heuristic: false,
        };
        // The address is an `IpAddr` by its type: a hostile one cannot reach this far.
        let evil = Client {
            name: Some(hostile.into()),
            addr: None,
            helo: Some(hostile.into()),
            queue_id: Some(hostile.into()),
        };
        for client in [None, Some(&evil)] {
            let i = TraceInfo {
                return_path: hostile,
                helo: Some(hostile),
                peer_addr: Some(hostile),
                session_id: hostile,
                ..info(&infected, client)
            };
            let got =
                String::from_utf8(trace_headers(&i, &rcpt("bob@example.test"))).expect("utf-8");
            assert_no_injection(&got);
            let received = got
                .split("Received:")
                .nth(1)
                .and_then(|r| r.split("\tby ").next())
                .unwrap_or_default();
            assert!(!received.contains("evil.test ["), "{got}");
        }
    }

    #[test]
    fn sender_sanitized_and_capped() {
        let clean_verdict = Verdict::Clean;
        let long = "a".repeat(300) + "@x.test";
        for sender in [
            "",
            "evil@x\r\nBcc: y@z",
            long.as_str(),
            "ü".repeat(200).as_str(),
        ] {
            let i = TraceInfo {
                return_path: sender,
                ..info(&clean_verdict, None)
            };
            let got =
                String::from_utf8(trace_headers(&i, &rcpt("bob@example.test"))).expect("utf-8");
            assert_no_injection(&got);
            let first = got.split("\r\n").next().unwrap_or_default();
            assert!(
                first.len() <= "Return-Path: <>".len() + MAX_VALUE,
                "{first}"
            );
        }
    }
}
