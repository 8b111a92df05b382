//! The bounded view of a message that Sieve (and the log line's Message-ID) parse.
//!
//! A full MIME parse costs memory per structure, not per byte: mail-parser keeps a record for
//! every header field and every body part, so 52 MB of `X:a` lines once cost 2.6 GB. Sieve
//! never needs all of that, so it sees at most `[sieve] max_header_fields` fields and
//! `max_header_size` bytes of the top-level header section, and, in a MIME message, the body
//! only up to [`MAX_STRUCTURE_LINES`] lines that could open a part or carry a part header.
//! The stored copy is always the whole message, byte for byte: only what Sieve *looks at* is
//! bounded, and every cut is noted in the recipient's log line.
//!
//! Parse memory is then bounded by the limits plus at most one copy of the message (made only
//! when something was cut).

use std::borrow::Cow;

use memchr::memchr_iter;

use crate::config::MessageLimits;

/// Lines in a MIME body that may start a part (`--boundary`) or be a part's header field,
/// before the view cuts the body. Each costs mail-parser a few hundred bytes at most; real
/// mail with hundreds of attachments stays far below this.
pub const MAX_STRUCTURE_LINES: usize = 20_000;

/// What Sieve parses: the message itself when it is within the limits, or a cut copy.
#[derive(Debug)]
pub struct SieveView<'a> {
    bytes: Cow<'a, [u8]>,
    /// Header fields dropped from the view (0 when the header section is whole).
    dropped_fields: usize,
    /// Body bytes dropped from the view (0 when the body is whole).
    dropped_body: usize,
}

impl<'a> SieveView<'a> {
    /// The view of `message` under `limits`.
    pub fn new(message: &'a [u8], limits: &MessageLimits) -> Self {
        let header = HeaderScan::new(message, limits);
        let body_start = header.section_end;
        let body = &message[body_start.min(message.len())..];
        let body_cut = if is_mime(&message[..header.kept_end]) {
            structure_cut(body, MAX_STRUCTURE_LINES)
        } else {
            None
        };
        if header.dropped_fields == 0 && body_cut.is_none() {
            return SieveView {
                bytes: Cow::Borrowed(message),
                dropped_fields: 0,
                dropped_body: 0,
            };
        }
        let body_kept = body_cut.unwrap_or(body.len());
        let mut bytes = Vec::with_capacity(header.kept_end + 2 + body_kept);
        bytes.extend_from_slice(&message[..header.kept_end]);
        if header.dropped_fields > 0 {
            // The kept fields end with their line break; a blank line separates the body.
            bytes.extend_from_slice(b"\r\n");
        } else {
            // The original separator (or nothing, for a message without a body).
            bytes.extend_from_slice(&message[header.kept_end..body_start]);
        }
        bytes.extend_from_slice(&body[..body_kept]);
        SieveView {
            bytes: Cow::Owned(bytes),
            dropped_fields: header.dropped_fields,
            dropped_body: body.len() - body_kept,
        }
    }

    /// The bytes to parse.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Log notes for what the view left out; empty when Sieve sees the whole message.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.dropped_fields > 0 {
            notes.push(format!(
                "header section over the Sieve limits: {} header fields not seen by Sieve",
                self.dropped_fields
            ));
        }
        if self.dropped_body > 0 {
            notes.push(format!(
                "MIME structure over {MAX_STRUCTURE_LINES} part lines: the last {} body bytes not seen by Sieve",
                self.dropped_body
            ));
        }
        notes
    }
}

/// One pass over the top-level header section.
struct HeaderScan {
    /// Where the kept fields end (just after the last kept field's line break).
    kept_end: usize,
    /// Where the header section ends: after the blank line, or the end of the message.
    section_end: usize,
    dropped_fields: usize,
}

impl HeaderScan {
    fn new(message: &[u8], limits: &MessageLimits) -> Self {
        let mut fields = 0usize;
        let mut kept_end = 0usize;
        let mut dropped_fields = 0usize;
        let mut line_start = 0usize;
        let mut field_start = 0usize;
        let mut cut = false;
        let mut ends = memchr_iter(b'\n', message).map(|i| i + 1);
        loop {
            let line_end = ends.next().unwrap_or(message.len());
            if line_start >= message.len() {
                break;
            }
            let line = &message[line_start..line_end];
            if matches!(line, b"\r\n" | b"\n") {
                let section_end = line_end;
                return HeaderScan {
                    kept_end: if cut { kept_end } else { line_start },
                    section_end,
                    dropped_fields,
                };
            }
            // RFC 5322 §2.2.3: a line starting with white space continues the field before.
            let starts_field = !matches!(line[0], b' ' | b'\t');
            if starts_field {
                fields += 1;
                field_start = line_start;
            }
            if !cut && (fields > limits.max_header_fields || line_end > limits.max_header_size) {
                cut = true;
                // A continuation that crosses the size limit drops its whole field.
                if !starts_field {
                    dropped_fields += 1;
                    kept_end = field_start;
                }
            }
            if cut {
                dropped_fields += usize::from(starts_field);
            } else {
                kept_end = line_end;
            }
            line_start = line_end;
        }
        // No blank line: the whole message is header.
        HeaderScan {
            kept_end: if cut { kept_end } else { message.len() },
            section_end: message.len(),
            dropped_fields,
        }
    }
}

/// True when the (kept) header section declares a MIME type that mail-parser descends into:
/// `multipart/*` or `message/*`. Only the top-level `Content-Type` field counts.
fn is_mime(header: &[u8]) -> bool {
    let mut lines = header.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-type")
        {
            continue;
        }
        let mut value = line[colon + 1..].trim_ascii().to_ascii_lowercase();
        while let Some(next) = lines.peek() {
            if !matches!(next.first(), Some(b' ' | b'\t')) {
                break;
            }
            value.extend(next.trim_ascii().to_ascii_lowercase());
            lines.next();
        }
        return value.starts_with(b"multipart/") || value.starts_with(b"message/");
    }
    false
}

/// Where to cut a MIME body so that at most `max` lines that could be structure (a line
/// starting with `--`, or a `name:` header field line) remain; `None` when it has fewer.
fn structure_cut(body: &[u8], max: usize) -> Option<usize> {
    let mut count = 0usize;
    let mut line_start = 0usize;
    for end in memchr_iter(b'\n', body).map(|i| i + 1).chain([body.len()]) {
        if line_start >= body.len() {
            break;
        }
        let line = &body[line_start..end];
        // A line mail-parser could take for a part's header field counts too.
        if line.starts_with(b"--") || super::headers::field_name(line).is_some() {
            count += 1;
            if count > max {
                return Some(line_start);
            }
        }
        line_start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(fields: usize, size: usize) -> MessageLimits {
        MessageLimits {
            max_header_fields: fields,
            max_header_size: size,
        }
    }

    /// mail-parser patch #1 (patches/mail-parser/PATCHES.md): this message, found by
    /// `fuzz/` (lmtp_session), hit a `debug_assert!(false)` in the parser.
    #[test]
    fn broken_rfc822_in_multipart_parses() {
        let message: &[u8] =
            b"Retur\x000\r\nContent-Type: multipart; boundary=\"outer-boundary\"\r\n\r\n\
            Td--outer-boundary\r\nContent-Type: message/rfc822;e=ii\r\n\r\nrwary\r\n\
            Content-Type: message/rfc822\r\n\r\nRAA\n\r\n--outer-boundary--US\r\n";
        let parsed = mail_parser::MessageParser::default().parse(message);
        assert!(parsed.is_some());
    }

    #[test]
    fn view_table() {
        struct Case {
            what: &'static str,
            message: Vec<u8>,
            limits: MessageLimits,
            want: &'static [u8],
            dropped_fields: usize,
            borrowed: bool,
        }
        let cases = [
            Case {
                what: "within limits",
                message: b"A: 1\r\nB: 2\r\n\r\nbody\r\n".to_vec(),
                limits: limits(2, 1000),
                want: b"A: 1\r\nB: 2\r\n\r\nbody\r\n",
                dropped_fields: 0,
                borrowed: true,
            },
            Case {
                what: "too many fields",
                message: b"A: 1\r\nB: 2\r\nC: 3\r\n\r\nbody\r\n".to_vec(),
                limits: limits(2, 1000),
                want: b"A: 1\r\nB: 2\r\n\r\nbody\r\n",
                dropped_fields: 1,
                borrowed: false,
            },
            Case {
                what: "folded field counts once",
                message: b"A: 1\r\n more\r\n more\r\nB: 2\r\n\r\nbody".to_vec(),
                limits: limits(2, 1000),
                want: b"A: 1\r\n more\r\n more\r\nB: 2\r\n\r\nbody",
                dropped_fields: 0,
                borrowed: true,
            },
            Case {
                what: "size limit inside a continuation drops the field",
                message: b"A: 1\r\nB: 2\r\n 3333333333\r\nC: 4\r\n\r\nbody".to_vec(),
                limits: limits(10, 16),
                want: b"A: 1\r\n\r\nbody",
                dropped_fields: 2,
                borrowed: false,
            },
            Case {
                what: "bare LF header bomb",
                message: b"X:\nX:\nX:\nX:\n\nbody".to_vec(),
                limits: limits(2, 1000),
                want: b"X:\nX:\n\r\nbody",
                dropped_fields: 2,
                borrowed: false,
            },
            Case {
                what: "header only, no blank line",
                message: b"A: 1\r\nB: 2\r\nC: 3\r\n".to_vec(),
                limits: limits(1, 1000),
                want: b"A: 1\r\n\r\n",
                dropped_fields: 2,
                borrowed: false,
            },
            Case {
                what: "header only, within limits",
                message: b"A: 1\r\nB: 2".to_vec(),
                limits: limits(5, 1000),
                want: b"A: 1\r\nB: 2",
                dropped_fields: 0,
                borrowed: true,
            },
            Case {
                what: "empty",
                message: Vec::new(),
                limits: limits(5, 1000),
                want: b"",
                dropped_fields: 0,
                borrowed: true,
            },
            Case {
                what: "no header section",
                message: b"\r\nbody only\r\n".to_vec(),
                limits: limits(5, 1000),
                want: b"\r\nbody only\r\n",
                dropped_fields: 0,
                borrowed: true,
            },
        ];
        for case in cases {
            let view = SieveView::new(&case.message, &case.limits);
            assert_eq!(
                String::from_utf8_lossy(view.bytes()),
                String::from_utf8_lossy(case.want),
                "{}",
                case.what
            );
            assert_eq!(view.dropped_fields, case.dropped_fields, "{}", case.what);
            assert_eq!(
                matches!(view.bytes, Cow::Borrowed(_)),
                case.borrowed,
                "{}",
                case.what
            );
            assert_eq!(view.notes().is_empty(), case.borrowed, "{}", case.what);
        }
    }

    #[test]
    fn mime_bodies_are_cut_after_the_structure_budget() {
        let mut message =
            b"Content-Type: multipart/mixed;\r\n boundary=b\r\n\r\npreamble\r\n".to_vec();
        for _ in 0..MAX_STRUCTURE_LINES {
            message.extend_from_slice(b"--b\r\nX: y\r\n\r\ntext\r\n");
        }
        let lim = limits(100, 10_000);
        let view = SieveView::new(&message, &lim);
        // Two structure lines per part: the cut falls in the middle of the parts.
        let kept = view.bytes().len();
        assert!(
            kept < message.len() / 2 + 100,
            "{kept} of {}",
            message.len()
        );
        assert!(view.dropped_body > 0);
        assert_eq!(view.notes().len(), 1);

        // The same body under a non-MIME type is one text part for mail-parser: not cut.
        let plain = String::from_utf8_lossy(&message)
            .replacen("multipart/mixed", "text/plain", 1)
            .into_bytes();
        let view = SieveView::new(&plain, &lim);
        assert!(matches!(view.bytes, Cow::Borrowed(_)));
    }

    #[test]
    fn mime_detection_table() {
        let cases: &[(&[u8], bool)] = &[
            (b"Content-Type: multipart/mixed; boundary=x\r\n", true),
            (b"content-type:\r\n Message/RFC822\r\n", true),
            (b"Content-Type: text/plain\r\n", false),
            (b"Subject: multipart/mixed\r\n", false),
            (b"", false),
        ];
        for (header, want) in cases {
            assert_eq!(
                is_mime(header),
                *want,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }
}
