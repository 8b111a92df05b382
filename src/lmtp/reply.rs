//! Every reply text the client sees, with its RFC 3463 enhanced status code. Nothing else in
//! the crate writes to the wire, so paths, errno values and clamd messages stay in the log.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// One reply: `code esc text`, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 2034), e.g. `2.1.5`; empty for greeting/LHLO lines.
    pub esc: &'static str,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    fn new(code: u16, esc: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            code,
            esc,
            lines: vec![text.into()],
        }
    }

    /// True for 2xx and 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form (CRLF line ends) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing into a String cannot fail.
            let _ = if self.esc.is_empty() {
                write!(s, "{}{sep}{line}\r\n", self.code)
            } else {
                write!(s, "{}{sep}{} {line}\r\n", self.code, self.esc)
            };
        }
        out.extend_from_slice(s.as_bytes());
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

/// Keeps only printable ASCII so a value from the client or a script cannot break the reply
/// framing, and caps the length ([`crate::mail::text::sanitize`]).
pub fn sanitize(text: &str, max: usize) -> String {
    crate::mail::text::sanitize(text, max, crate::mail::text::Charset::Ascii).into_owned()
}

// Session-level replies.

pub fn greeting(hostname: &str) -> Reply {
    Reply::new(220, "", format!("{hostname} LMTP sievegate ready"))
}

pub fn lhlo(hostname: &str, max_size: usize, xforward: bool) -> Reply {
    let mut lines: Vec<Cow<'static, str>> = vec![
        hostname.to_string().into(),
        "PIPELINING".into(),
        "ENHANCEDSTATUSCODES".into(),
        "8BITMIME".into(),
        format!("SIZE {max_size}").into(),
        "SMTPUTF8".into(),
        // RFC 3461. Without it Postfix answers a sender's NOTIFY=SUCCESS itself with a
        // "relayed" notice once we reply 250, also for infected mail we discarded: to a
        // forged sender, that is backscatter. Advertised, the duty is ours, and we send no
        // success DSN (see the README, "What sievegate sends"); failures are Postfix's
        // bounces as before.
        "DSN".into(),
    ];
    if xforward {
        lines.push("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE".into());
    }
    Reply {
        code: 250,
        esc: "",
        lines,
    }
}

pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "Ok")
}

pub fn sender_ok() -> Reply {
    Reply::new(250, "2.1.0", "Sender ok")
}

pub fn recipient_ok() -> Reply {
    Reply::new(250, "2.1.5", "Recipient ok")
}

pub fn start_data() -> Reply {
    Reply::new(354, "", "Start mail input; end with <CRLF>.<CRLF>")
}

pub fn bye() -> Reply {
    Reply::new(221, "2.0.0", "Bye")
}

pub fn vrfy() -> Reply {
    Reply::new(
        252,
        "2.5.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

pub fn help() -> Reply {
    Reply::new(
        214,
        "2.0.0",
        "Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY XFORWARD",
    )
}

pub fn shutting_down() -> Reply {
    Reply::new(
        421,
        "4.3.2",
        "Service shutting down, closing transmission channel",
    )
}

pub fn idle_timeout() -> Reply {
    Reply::new(421, "4.4.2", "Timeout, closing transmission channel")
}

pub fn too_many_junk_commands() -> Reply {
    Reply::new(
        421,
        "4.7.0",
        "Too many commands without mail, closing transmission channel",
    )
}

pub fn too_many_connections() -> Reply {
    Reply::new(421, "4.3.2", "Too many connections, try again later")
}

pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long")
}

pub fn bare_newline() -> Reply {
    Reply::new(
        500,
        "5.5.2",
        "Bare CR or LF in command line, closing connection",
    )
}

pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.2", "Command unrecognized")
}

pub fn use_lhlo() -> Reply {
    Reply::new(500, "5.5.1", "This is an LMTP server: use LHLO")
}

pub fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "Command not implemented")
}

pub fn syntax(what: &'static str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax error: {what}"))
}

pub fn bad_sender_syntax() -> Reply {
    Reply::new(501, "5.1.7", "Bad sender address syntax")
}

pub fn bad_recipient_syntax() -> Reply {
    Reply::new(501, "5.1.3", "Bad recipient address syntax")
}

pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(
        555,
        "5.5.4",
        format!("Unsupported parameter {}", sanitize(param, 64)),
    )
}

pub fn need_lhlo() -> Reply {
    Reply::new(503, "5.5.1", "Send LHLO first")
}

pub fn nested_mail() -> Reply {
    Reply::new(503, "5.5.1", "Nested MAIL command")
}

pub fn need_mail() -> Reply {
    Reply::new(503, "5.5.1", "Need MAIL command")
}

pub fn need_rcpt() -> Reply {
    Reply::new(503, "5.5.1", "No valid recipients")
}

pub fn xforward_in_transaction() -> Reply {
    Reply::new(
        503,
        "5.5.1",
        "XFORWARD not allowed within a mail transaction",
    )
}

pub fn xforward_bad_addr() -> Reply {
    Reply::new(
        501,
        "5.5.4",
        "Syntax error: XFORWARD ADDR must be an IP address or [UNAVAILABLE]",
    )
}

pub fn xforward_denied() -> Reply {
    Reply::new(550, "5.7.0", "XFORWARD not permitted from this client")
}

/// MAIL while clamd is known to be down (health gating): the MTA keeps the message and
/// retries, instead of sending a DATA that could only be deferred.
pub fn scanner_down() -> Reply {
    Reply::new(451, "4.7.1", "Virus scanner unavailable, try again later")
}

/// MAIL while the state store a delivery needs (PostgreSQL: the quarantine, the outbox) is
/// known to be unreachable: the MTA keeps the message and retries.
pub fn state_down() -> Reply {
    Reply::new(451, "4.3.0", "Temporary local problem, try again later")
}

/// RCPT for a user who already has `user_concurrency_limit` deliveries in progress
/// (Dovecot's wording for `lmtp_user_concurrency_limit`).
pub fn user_busy(rcpt: &str) -> Reply {
    Reply::new(
        451,
        "4.3.0",
        format!(
            "<{}> Too many concurrent deliveries for user",
            sanitize(rcpt, 256)
        ),
    )
}

pub fn size_exceeded() -> Reply {
    Reply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    )
}

pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "Too many recipients")
}

pub fn unknown_domain(rcpt: &str) -> Reply {
    Reply::new(
        550,
        "5.1.1",
        format!(
            "<{}> User unknown in local recipient table",
            sanitize(rcpt, 256)
        ),
    )
}

/// A recipient missing from `[mailbox] users_file`: at RCPT (`unknown_users = "at-rcpt"`),
/// or after DATA for mail that is not infected (`"after-scan"`). The same text either way.
pub fn unknown_user(rcpt: &str) -> Reply {
    unknown_domain(rcpt)
}

pub fn unsafe_recipient(rcpt: &str) -> Reply {
    Reply::new(
        550,
        "5.1.3",
        format!("<{}> Invalid local part", sanitize(rcpt, 256)),
    )
}

// Per-recipient replies after the final dot: one per accepted RCPT, in RCPT order.

pub fn delivered(rcpt: &str, session_id: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!("<{}> {session_id} Saved", sanitize(rcpt, 256)),
    )
}

pub fn discarded(rcpt: &str, session_id: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!("<{}> {session_id} Ok", sanitize(rcpt, 256)),
    )
}

pub fn rejected(rcpt: &str, reason: &str) -> Reply {
    let reason = sanitize(reason, 200);
    let reason = if reason.trim().is_empty() {
        "Message rejected by recipient's filter".to_string()
    } else {
        reason
    };
    Reply::new(550, "5.7.1", format!("<{}> {reason}", sanitize(rcpt, 256)))
}

pub fn mailbox_full(rcpt: &str) -> Reply {
    Reply::new(
        452,
        "4.2.2",
        format!(
            "<{}> Mailbox full or disk full, try again later",
            sanitize(rcpt, 256)
        ),
    )
}

/// The message could not be spooled for lack of disk space: RFC 3463 4.3.1, mail system
/// full (the recipient's mailbox is not the problem).
pub fn spool_full(rcpt: &str) -> Reply {
    Reply::new(
        452,
        "4.3.1",
        format!(
            "<{}> Insufficient system storage, try again later",
            sanitize(rcpt, 256)
        ),
    )
}

pub fn local_error(rcpt: &str) -> Reply {
    Reply::new(
        451,
        "4.3.0",
        format!(
            "<{}> Temporary local problem, try again later",
            sanitize(rcpt, 256)
        ),
    )
}

/// A Sieve redirect the relay refused or could not take, and nothing stored: 451 4.4.0 so
/// the MTA retries (RFC 3463 4.4.0: routing/network status, undefined).
pub fn redirect_failed(rcpt: &str) -> Reply {
    Reply::new(
        451,
        "4.4.0",
        format!(
            "<{}> Redirect could not be sent, try again later",
            sanitize(rcpt, 256)
        ),
    )
}

pub fn scan_failed(rcpt: &str) -> Reply {
    Reply::new(
        451,
        "4.7.0",
        format!(
            "<{}> Virus scan unavailable, try again later",
            sanitize(rcpt, 256)
        ),
    )
}

pub fn message_too_big(rcpt: &str) -> Reply {
    Reply::new(
        552,
        "5.3.4",
        format!(
            "<{}> Message size exceeds fixed maximum message size",
            sanitize(rcpt, 256)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let cases = [
            (ok(), "250 2.0.0 Ok\r\n"),
            (greeting("mx.test"), "220 mx.test LMTP sievegate ready\r\n"),
            (
                lhlo("mx.test", 100, false),
                "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SIZE 100\r\n250-SMTPUTF8\r\n250 DSN\r\n",
            ),
            (rejected("a@b", "no\r\n250 fake"), "550 5.7.1 <a@b> no250 fake\r\n"),
            (rejected("a@b", ""), "550 5.7.1 <a@b> Message rejected by recipient's filter\r\n"),
        ];
        for (reply, want) in cases {
            let mut out = Vec::new();
            reply.write_to(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }
}
