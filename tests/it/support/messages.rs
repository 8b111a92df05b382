//! Test messages built in code (CRLF line ends, ready for DATA).

pub use super::eicar;

/// A small clean message (about 400 bytes) with `subject`.
pub fn clean_message(subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <clean.{n}@remote.example>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nthis is a clean test message.\r\n",
        n = subject.len()
    )
    .into_bytes()
}

/// A message with EICAR as a plain text body.
pub fn infected_message() -> Vec<u8> {
    let mut m = b"From: Mallory <mallory@forged.example>\r\nTo: alice@example.test\r\nSubject: invoice\r\nMessage-ID: <virus.1@forged.example>\r\n\r\n".to_vec();
    m.extend_from_slice(&eicar());
    m.extend_from_slice(b"\r\n");
    m
}

/// Every infected fixture in tests/fixtures/messages, CRLF-converted.
pub fn infected_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("inline".to_string(), infected_message())];
    for name in super::INFECTED_FIXTURES {
        out.push((name.to_string(), super::load_message(name)));
    }
    out
}

/// Builds a complete pipelined transaction for `rcpts` carrying `message`, dot-stuffed
/// (RFC 5321 §4.5.2) as a client sends it.
pub fn transaction(rcpts: &[&str], message: &[u8]) -> Vec<u8> {
    transaction_as("", "sender@remote.example", rcpts, message)
}

/// [`transaction`] from `mail_from` (`""`: the null sender), with `before_mail` (e.g. an
/// `XFORWARD ...\r\n` line, as Postfix sends it) between LHLO and MAIL.
pub fn transaction_as(
    before_mail: &str,
    mail_from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Vec<u8> {
    let mut input =
        format!("LHLO client.example\r\n{before_mail}MAIL FROM:<{mail_from}>\r\n").into_bytes();
    for r in rcpts {
        input.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\n");
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            input.push(b'.');
        }
        input.push(b);
        at_line_start = b == b'\n';
    }
    // Like every real client, end the content with CRLF before the final dot.
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b".\r\nQUIT\r\n");
    input
}
