//! The checker of what an LMTP session wrote: every line well-formed, and after each DATA
//! exactly one reply per accepted recipient (RFC 2033 §4.2), with the never-bounce rule
//! for the messages the fake clamd called infected.
//!
//! It reads only the replies, not the input: each command gets exactly one reply, so
//! counting `250 2.1.5` replies since the last `250 2.1.0` (MAIL) gives the recipients a
//! 354 opens the message for. The per-recipient replies are the ones whose text starts
//! with `<address>`.

use crate::Scan;

/// One reply: its code, and the text of each line after `code` and the separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// The enhanced status code and the rest of the last line: `("2.1.5", "Recipient ok")`;
    /// `("", text)` when the line has none.
    fn esc_and_text(&self) -> (&str, &str) {
        let last = self.lines.last().map(String::as_str).unwrap_or("");
        match last.split_once(' ') {
            Some((esc, rest)) if is_esc(esc) => (esc, rest),
            _ => ("", last),
        }
    }

    /// A reply after the final dot names its recipient first: `250 2.0.0 <rcpt> ...`.
    fn is_per_recipient(&self) -> bool {
        let (esc, text) = self.esc_and_text();
        !esc.is_empty() && text.starts_with('<')
    }

    fn is(&self, code: u16, esc: &str) -> bool {
        self.code == code && self.esc_and_text().0 == esc
    }

    /// Whole replies after which the session must say nothing more.
    fn closes(&self) -> bool {
        self.code == 421 || self.code == 221 || self.is(500, "5.5.2") && self.mentions("closing")
    }

    fn mentions(&self, word: &str) -> bool {
        self.lines.iter().any(|l| l.contains(word))
    }
}

/// `class.subject.detail` (RFC 3463), class 2, 4 or 5.
fn is_esc(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits the server's output into replies; every line must be `DDD<sp or ->text<CRLF>`
/// with printable ASCII text, a multi-line reply keeps its code, and the output ends at the
/// end of a reply.
pub fn parse(out: &[u8]) -> Result<Vec<Reply>, String> {
    let mut replies = Vec::new();
    let mut open: Option<Reply> = None;
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("output does not end in CRLF: {:?}", show(rest)))?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.len() < 4 {
            return Err(format!("reply line too short: {:?}", show(line)));
        }
        if let Some(b) = line.iter().find(|b| !(0x20..0x7f).contains(*b)) {
            return Err(format!(
                "reply line with byte {b:#04x} (bare CR/LF or not printable ASCII): {:?}",
                show(line)
            ));
        }
        let digits = &line[..3];
        if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
            return Err(format!("reply line without a code: {:?}", show(line)));
        }
        // The digits are ASCII, checked above.
        let code: u16 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("bad code in {:?}", show(line)))?;
        let text = String::from_utf8_lossy(&line[4..]).into_owned();
        let reply = open.get_or_insert_with(|| Reply {
            code,
            lines: Vec::new(),
        });
        if reply.code != code {
            return Err(format!(
                "multi-line reply changes its code from {} to {code}: {:?}",
                reply.code,
                show(line)
            ));
        }
        reply.lines.push(text);
        match line[3] {
            b' ' => replies.extend(open.take()),
            b'-' => {}
            _ => return Err(format!("reply line without ' ' or '-': {:?}", show(line))),
        }
    }
    if let Some(reply) = open {
        return Err(format!("output ends inside a multi-line reply: {reply:?}"));
    }
    Ok(replies)
}

/// Checks a whole session's output against the RFC 2033 reply rules; `scans` are the fake
/// clamd's verdicts for this session, in order.
pub fn check(out: &[u8], scans: &[Scan]) -> Result<(), String> {
    let replies = parse(out)?;
    let Some(first) = replies.first() else {
        return Err("no greeting".into());
    };
    if first.code != 220 {
        return Err(format!("first reply is not the greeting: {first:?}"));
    }
    let mut accepted = 0usize;
    let mut scans = scans.iter();
    let mut i = 1;
    while i < replies.len() {
        let reply = &replies[i];
        if replies[i - 1].closes() {
            return Err(format!(
                "reply after the session closed: {:?} then {reply:?}",
                replies[i - 1]
            ));
        }
        i += 1;
        if reply.is(250, "2.1.0") {
            accepted = 0;
        } else if reply.is(250, "2.1.5") {
            accepted += 1;
        } else if reply.code == 354 {
            if accepted == 0 {
                return Err("354 without an accepted recipient".into());
            }
            let finals = &replies[i..replies.len().min(i + accepted)];
            let counted = finals.iter().take_while(|r| r.is_per_recipient()).count();
            if counted == 0 && (finals.is_empty() || finals[0].code == 421) {
                // The client went away, or the DATA deadline passed: nothing was received.
                continue;
            }
            if counted != accepted {
                return Err(format!(
                    "after DATA: {accepted} recipient(s) accepted but {counted} per-recipient \
                     replies, then {:?}",
                    replies.get(i + counted)
                ));
            }
            check_finals(finals, &mut scans)?;
            i += accepted;
            accepted = 0;
        }
    }
    if let Some(extra) = scans.next() {
        return Err(format!(
            "clamd scanned a message ({extra:?}) whose replies were not found"
        ));
    }
    Ok(())
}

/// One message's per-recipient replies against its scan.
fn check_finals<'a>(
    finals: &[Reply],
    scans: &mut impl Iterator<Item = &'a Scan>,
) -> Result<(), String> {
    // Too big: refused before any scan, every recipient the same 552.
    if finals.iter().all(|r| r.is(552, "5.3.4")) {
        return Ok(());
    }
    let Some(scan) = scans.next() else {
        return Err(format!("replies after DATA without a scan: {finals:?}"));
    };
    match scan {
        // Never a bounce (no 5xx), and with the quarantine off the message is discarded.
        Scan::Virus | Scan::Heuristic => {
            if let Some(r) = finals.iter().find(|r| r.code != 250) {
                return Err(format!("infected message ({scan:?}) answered {r:?}"));
            }
        }
        // on_failure = "tempfail": nothing is lost, the MTA retries.
        Scan::Error => {
            if let Some(r) = finals.iter().find(|r| r.code / 100 != 4) {
                return Err(format!("scan failure answered {r:?}"));
            }
        }
        Scan::Clean => {}
    }
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(200)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "220 mx LMTP ready\r\n250-mx\r\n250 PIPELINING\r\n250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n250 2.1.5 Recipient ok\r\n354 Go\r\n";

    #[test]
    fn table() {
        let ok = |s: &str, scans: &[Scan]| check(s.as_bytes(), scans);
        let cases: &[(String, &[Scan], bool)] = &[
            (
                format!(
                    "{HEAD}250 2.0.0 <a> X Saved\r\n250 2.0.0 <b> X Saved\r\n221 2.0.0 Bye\r\n"
                ),
                &[Scan::Clean],
                true,
            ),
            // One reply missing.
            (
                format!("{HEAD}250 2.0.0 <a> X Saved\r\n221 2.0.0 Bye\r\n"),
                &[Scan::Clean],
                false,
            ),
            // Infected mail refused: a bounce.
            (
                format!("{HEAD}250 2.0.0 <a> X Ok\r\n550 5.7.1 <b> no\r\n"),
                &[Scan::Virus],
                false,
            ),
            (
                format!("{HEAD}250 2.0.0 <a> X Ok\r\n250 2.0.0 <b> X Ok\r\n"),
                &[Scan::Heuristic],
                true,
            ),
            (
                format!("{HEAD}451 4.7.0 <a> later\r\n451 4.7.0 <b> later\r\n"),
                &[Scan::Error],
                true,
            ),
            (
                format!("{HEAD}451 4.7.0 <a> later\r\n250 2.0.0 <b> X Saved\r\n"),
                &[Scan::Error],
                false,
            ),
            (
                format!("{HEAD}552 5.3.4 <a> big\r\n552 5.3.4 <b> big\r\n"),
                &[],
                true,
            ),
            // Closed during DATA, or its deadline.
            (HEAD.to_string(), &[], true),
            (format!("{HEAD}421 4.4.2 Timeout\r\n"), &[], true),
            (
                format!("{HEAD}421 4.4.2 Timeout\r\n250 2.0.0 Ok\r\n"),
                &[],
                false,
            ),
            // A scan nobody answered for.
            (
                format!("{HEAD}552 5.3.4 <a> big\r\n552 5.3.4 <b> big\r\n"),
                &[Scan::Clean],
                false,
            ),
            // Framing.
            ("220 mx\r\n250 2.0.0 O\nk\r\n".to_string(), &[], false),
            ("220 mx\r\n250-a\r\n".to_string(), &[], false),
            ("220 mx\r\n250-a\r\n251 b\r\n".to_string(), &[], false),
            ("220 mx\r\n250 ok".to_string(), &[], false),
            ("220 mx\r\n25 ok\r\n".to_string(), &[], false),
        ];
        for (out, scans, want) in cases {
            assert_eq!(
                ok(out, scans).is_ok(),
                *want,
                "{out:?}: {:?}",
                ok(out, scans)
            );
        }
    }
}
