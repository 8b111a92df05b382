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
