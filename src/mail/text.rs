//! The one sanitizer for text that comes from a client, a script or a message and goes into
//! something we write: header fields (UTF-8 allowed) and LMTP replies (ASCII only).

use std::borrow::Cow;

/// Which characters a sanitized value may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Printable ASCII: LMTP replies (RFC 5321 §4.2 reply text).
    Ascii,
    /// Any non-control character: header field values (RFC 6532 allows UTF-8 there).
    Utf8,
}

/// Makes `value` safe to write: control characters (CR, LF, NUL, TAB, DEL, C1) are dropped so
/// nothing can start a line of its own, with [`Charset::Ascii`] every non-ASCII character is
/// dropped too, surrounding white space is trimmed, and the result is cut to `max` bytes at a
/// character boundary. Borrowed when nothing had to change.
pub fn sanitize(value: &str, max: usize, charset: Charset) -> Cow<'_, str> {
    let keep = |c: char| !c.is_control() && (charset == Charset::Utf8 || c.is_ascii());
    let trimmed = value.trim();
    if trimmed.len() <= max && trimmed.chars().all(keep) {
        return Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len().min(max));
    for c in trimmed.chars().filter(|c| keep(*c)) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    let kept = out.trim().len();
    if kept != out.len() {
        out = out.trim().to_string();
    }
    Cow::Owned(out)
}

/// Makes `text` safe as a message body we write: line ends (CRLF, bare LF, bare CR) become
/// CRLF, TAB stays, every other control character (NUL, ESC, DEL, C1, ...) is dropped, and the
/// result is cut to `max` bytes at a character boundary. A body cannot end a header section
/// (it comes after ours), but a bare CR or LF or a NUL would break SMTP's line rules
/// (RFC 5321 §2.3.8).
pub fn sanitize_body(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let piece: &str = match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                "\r\n"
            }
            '\n' => "\r\n",
            '\t' => "\t",
            c if c.is_control() => continue,
            _ => {
                if out.len() + c.len_utf8() > max {
                    break;
                }
                out.push(c);
                continue;
            }
        };
        if out.len() + piece.len() > max {
            break;
        }
        out.push_str(piece);
    }
    out
}

/// The first `Message-ID` header's value of a parsed message, for logs and the quarantine
/// index: `<id>` as written, sanitized to printable ASCII, or `""` when there is none.
pub fn message_id(message: &mail_parser::Message<'_>) -> String {
    message
        .message_id()
        .map(|id| format!("<{}>", sanitize(id, 253, Charset::Ascii)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        use Charset::*;
        let cases: &[(&str, usize, Charset, &str)] = &[
            ("plain", 255, Utf8, "plain"),
            ("  padded \t", 255, Utf8, "padded"),
            ("a\r\nb", 255, Utf8, "ab"),
            ("a\r\nBcc: x", 255, Ascii, "aBcc: x"),
            ("a\0b\x1bc\x7fd\u{85}e", 255, Utf8, "abcde"),
            ("tab\tinside", 255, Utf8, "tabinside"),
            ("Grüße", 255, Utf8, "Grüße"),
            ("Grüße", 255, Ascii, "Gre"),
            ("abcdef", 3, Ascii, "abc"),
            ("ab  cd", 3, Ascii, "ab"),
        ];
        for (input, max, charset, want) in cases {
            assert_eq!(
                sanitize(input, *max, *charset),
                *want,
                "{input:?} {charset:?}"
            );
        }
        assert_eq!(sanitize(&"x".repeat(1000), 255, Utf8).len(), 255);
        // A cut never splits a character.
        let euros = "€".repeat(100);
        let cut = sanitize(&euros, 255, Utf8);
        assert!(cut.len() <= 255 && cut.chars().all(|c| c == '€'));
    }

    #[test]
    fn sanitize_body_table() {
        let cases: &[(&str, usize, &str)] = &[
            ("plain", 100, "plain"),
            ("a\r\nb", 100, "a\r\nb"),
            ("a\nb\rc", 100, "a\r\nb\r\nc"),
            ("a\r\r\nb", 100, "a\r\n\r\nb"),
            ("nul\0esc\x1bdel\x7fc1\u{85}.", 100, "nulescdelc1."),
            ("tab\tkept", 100, "tab\tkept"),
            ("Grüße", 100, "Grüße"),
            ("abcdef", 3, "abc"),
            // A line end is never cut in half.
            ("ab\ncd", 3, "ab"),
            ("€€", 5, "€"),
        ];
        for (input, max, want) in cases {
            assert_eq!(sanitize_body(input, *max), *want, "{input:?}");
        }
    }
}
