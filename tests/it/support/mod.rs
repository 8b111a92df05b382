//! Shared helpers for the integration tests: real and fake peers, fixture loading.
#![allow(dead_code)] // each test module uses a different subset

pub mod binary;
pub mod browser;
pub mod clamd;
pub mod dovecot;
pub mod env;
pub mod fake_clamd;
pub mod maildir_tree;
pub mod memory;
pub mod messages;
pub mod postfix;
pub mod postgres;
pub mod rdap;
pub mod smtp_sink;
pub mod tarpit;
pub mod tls;

use std::path::PathBuf;

/// `tests/fixtures/` of this crate.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A message from `tests/fixtures/messages/`, with its LF line ends turned into CRLF as it
/// arrives over LMTP. The files are stored with LF so that git and editors leave them alone.
pub fn load_message(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join("messages").join(name);
    let lf = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        !lf.contains(&b'\r'),
        "{name} must be stored with LF line ends"
    );
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 32);
    for &byte in &lf {
        if byte == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(byte);
    }
    crlf
}

/// A file from `tests/fixtures/samples/`, unchanged.
pub fn load_sample(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join("samples").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The 68-byte EICAR test string, taken from the plain fixture so that it is written down in
/// one place only (`tests/fixtures/generate.py`).
pub fn eicar() -> Vec<u8> {
    let message = load_message("eicar-plain.eml");
    let line = message
        .split(|&b| b == b'\n')
        .find(|line| line.starts_with(b"X5O!"))
        .expect("eicar-plain.eml holds the EICAR line");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    assert_eq!(line.len(), 68, "EICAR string is 68 bytes");
    line.to_vec()
}

/// Fixtures that clamd must flag (virustest 4 or 5).
/// The per-recipient log line's fields, in the order the pipeline writes them (besides, in
/// JSON, `timestamp`, `level`, `target`, `message` and `spans`; the book's Operations page,
/// "Logs").
pub const RECIPIENT_FIELDS: &[&str] = &[
    "id",
    "queue_id",
    "client",
    "from",
    "to",
    "mailbox",
    "message_id",
    "size",
    "verdict",
    "virustest",
    "virus",
    "actions",
    "notes",
    "delay_ms",
];

pub const INFECTED_FIXTURES: &[&str] = &[
    "eicar-plain.eml",
    "eicar-base64.eml",
    "eicar-zip.eml",
    "eicar-qp.eml",
    "eicar-nested-rfc822.eml",
    "eicar-uuencode.eml",
    "clamexe-attachment.eml",
    "heuristic.eml",
    "pua.eml",
];
