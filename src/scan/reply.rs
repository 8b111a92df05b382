//! Our own parser for clamd's INSTREAM and FILDES replies. Sans-IO: it sees the complete bytes
//! clamd sent before closing the connection.
//!
//! clamd answers one line: `stream: OK`, `stream: <name> FOUND` or `<text> ERROR` to INSTREAM,
//! the same with `fd[N]: ` (N: clamd's number for the descriptor we passed) instead of
//! `stream: ` to FILDES, ended by NUL for `z`-prefixed commands and by newline for
//! `n`-prefixed ones. Anything else means
//! the peer is not the clamd we think it is, and is reported as malformed rather than guessed at.

use super::ScanError;

/// One parsed clamd reply to INSTREAM or FILDES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdReply {
    /// `stream: OK`: no signature matched.
    Ok,
    /// `stream: <name> FOUND`: the signature name as clamd reports it, including
    /// `.UNOFFICIAL` for unsigned databases; may contain spaces.
    Found(String),
    /// `<text> ERROR`: clamd could not scan, e.g. `INSTREAM size limit exceeded`.
    Error(String),
}

/// The prefix clamd puts before a reply about an INSTREAM scan.
const STREAM_PREFIX: &str = "stream: ";

/// How much of an unparseable reply goes into the error: enough to recognise it in a log,
/// bounded so a peer answering megabytes of junk cannot flood it.
const MALFORMED_EXCERPT: usize = 120;

/// Parses the complete bytes clamd sent in answer to INSTREAM or FILDES.
///
/// Accepts exactly one reply, optionally followed by its NUL or newline terminator (a
/// trailing `\r` is tolerated too). An empty reply, bytes after the terminator, non-UTF-8
/// text or an unknown shape yield [`ScanError::Malformed`].
pub fn parse_reply(raw: &[u8]) -> Result<ClamdReply, ScanError> {
    let body = strip_terminator(raw);
    if body.is_empty() {
        return Err(malformed("empty reply", raw));
    }
    if body.iter().any(|&b| b == 0 || b == b'\n') {
        return Err(malformed("more than one reply", raw));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(malformed("not UTF-8", raw));
    };
    // Error replies come with or without the prefix depending on where clamd failed
    // (`INSTREAM size limit exceeded. ERROR` has none), so the prefix is optional.
    let text = strip_subject(text);

    if text == "OK" {
        return Ok(ClamdReply::Ok);
    }
    if let Some(name) = text.strip_suffix(" FOUND") {
        let name = name.trim();
        if name.is_empty() {
            return Err(malformed("FOUND without a signature name", raw));
        }
        return Ok(ClamdReply::Found(name.to_owned()));
    }
    if text == "ERROR" {
        return Ok(ClamdReply::Error(String::new()));
    }
    if let Some(message) = text.strip_suffix(" ERROR") {
        return Ok(ClamdReply::Error(message.trim().to_owned()));
    }
    Err(malformed("unknown reply", raw))
}

/// Removes `stream: ` or `fd[N]: `, the name clamd gives what it scanned. Only digits are
/// accepted between the brackets: anything else is left in place and fails to parse.
fn strip_subject(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix(STREAM_PREFIX) {
        return rest;
    }
    let fd = text
        .strip_prefix("fd[")
        .and_then(|rest| rest.split_once("]: "))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match fd {
        Some((_, rest)) => rest,
        None => text,
    }
}

/// Removes the terminator(s) clamd appends: a NUL (`z` commands) or a newline (`n`
/// commands), plus a `\r` some proxies add.
fn strip_terminator(raw: &[u8]) -> &[u8] {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\0' | b'\n' | b'\r') {
        end -= 1;
    }
    &raw[..end]
}

fn malformed(what: &str, raw: &[u8]) -> ScanError {
    let excerpt: String = raw
        .iter()
        .take(MALFORMED_EXCERPT)
        .copied()
        .flat_map(std::ascii::escape_default)
        .map(char::from)
        .collect();
    let more = if raw.len() > MALFORMED_EXCERPT {
        "..."
    } else {
        ""
    };
    ScanError::Malformed(format!("{what} ({} bytes): \"{excerpt}{more}\"", raw.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str) -> Option<ClamdReply> {
        Some(ClamdReply::Found(name.to_owned()))
    }

    fn error(text: &str) -> Option<ClamdReply> {
        Some(ClamdReply::Error(text.to_owned()))
    }

    #[test]
    fn parse_reply_table() {
        // None = must be Malformed.
        let cases: &[(&[u8], Option<ClamdReply>)] = &[
            (b"stream: OK\0", Some(ClamdReply::Ok)),
            (b"stream: OK\n", Some(ClamdReply::Ok)),
            (b"stream: OK\r\n", Some(ClamdReply::Ok)),
            (b"stream: OK", Some(ClamdReply::Ok)),
            (b"OK\0", Some(ClamdReply::Ok)),
            (b"stream: Eicar-Signature FOUND\0", found("Eicar-Signature")),
            (
                b"stream: Sievegate.Test.EICAR.UNOFFICIAL FOUND\0",
                found("Sievegate.Test.EICAR.UNOFFICIAL"),
            ),
            (
                b"stream: Win.Test.EICAR_HDB-1 FOUND\n",
                found("Win.Test.EICAR_HDB-1"),
            ),
            (
                b"stream: Heuristics.Phishing.Email.SpoofedDomain FOUND\0",
                found("Heuristics.Phishing.Email.SpoofedDomain"),
            ),
            (
                b"stream: Some Name With Spaces.UNOFFICIAL FOUND\0",
                found("Some Name With Spaces.UNOFFICIAL"),
            ),
            // A name that itself ends in FOUND-like text: only the last token is the status.
            (b"stream: Not FOUND FOUND\0", found("Not FOUND")),
            (
                b"INSTREAM size limit exceeded. ERROR\0",
                error("INSTREAM size limit exceeded."),
            ),
            (
                b"INSTREAM size limit exceeded. ERROR\n",
                error("INSTREAM size limit exceeded."),
            ),
            (
                b"stream: Can't allocate memory ERROR\0",
                error("Can't allocate memory"),
            ),
            (b"ERROR\0", error("")),
            // FILDES replies name the descriptor instead of `stream`.
            (b"fd[11]: OK\0", Some(ClamdReply::Ok)),
            (b"fd[7]: OK\n", Some(ClamdReply::Ok)),
            (
                b"fd[11]: Sievegate.Test.EICAR.UNOFFICIAL FOUND\0",
                found("Sievegate.Test.EICAR.UNOFFICIAL"),
            ),
            (
                b"fd[1023]: Some Name With Spaces FOUND\0",
                found("Some Name With Spaces"),
            ),
            (
                b"fd[11]: Can't allocate memory ERROR\0",
                error("Can't allocate memory"),
            ),
            (b"fd[]: OK\0", None),
            (b"fd[x]: OK\0", None),
            (b"fd[11] OK\0", None),
            (b"fd[11]: ok\0", None),
            (b"fd[11]: \0", None),
            (b"fd[11]: FOUND\0", None),
            (b"", None),
            (b"\0", None),
            (b"\n", None),
            (b"stream: \0", None),
            (b"stream: FOUND\0", None),
            (b"stream:  FOUND\0", None),
            (b"PONG\0", None),
            (b"stream: ok\0", None),
            (b"stream: OK\0stream: OK\0", None),
            (b"stream: OK\nstream: Eicar FOUND\n", None),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", None),
            (b"stream: \xff\xfe FOUND\0", None),
            (b"garbage garbage garbage", None),
            (b"HTTP/1.1 400 Bad Request\r\n", None),
        ];
        for (raw, expected) in cases {
            let got = parse_reply(raw);
            match (expected, got) {
                (Some(want), Ok(got)) => assert_eq!(&got, want, "{:?}", raw.escape_ascii()),
                (None, Err(ScanError::Malformed(_))) => {}
                (want, got) => panic!(
                    "{:?}: expected {want:?}, got {got:?}",
                    raw.escape_ascii().to_string()
                ),
            }
        }
    }

    #[test]
    fn malformed_excerpt_is_bounded_and_escaped() {
        let junk = vec![0x07u8; 10_000];
        let Err(ScanError::Malformed(text)) = parse_reply(&junk) else {
            panic!("junk must be malformed");
        };
        assert!(text.len() < 1000, "{text}");
        assert!(text.contains("\\x07"), "{text}");
        assert!(text.contains("10000 bytes"), "{text}");
    }
}
