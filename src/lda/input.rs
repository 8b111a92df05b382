//! The message on stdin, read the way the LMTP session receives one: the mbox `From ` line
//! local(8) puts first dropped (its address returned: dovecot-lda takes it as the sender
//! when there is no `-f`), a bare LF turned into CRLF as the MTA sends it over LMTP, and the
//! bytes kept on the heap up to `[server] spool_threshold`, in an unnamed spool file beyond
//! ([`crate::spool`]): a 50 MB message costs page cache, not 100 MB of heap.

use std::io::{self, Read};

use crate::config::SpoolConfig;
use crate::spool::{MessageBytes, Spool, SpoolError};

/// How much of stdin is read at a time.
const CHUNK: usize = 64 * 1024;

/// Why the message could not be read.
#[derive(thiserror::Error, Debug)]
pub enum InputError {
    /// Reading stdin failed.
    #[error("cannot read the message: {0}")]
    Read(#[from] io::Error),
    /// The spool file could not be created or written.
    #[error("{0}")]
    Spool(#[from] SpoolError),
}

/// The message read from `input`, with the mbox sender if there was a `From ` line;
/// `Ok(None)` as soon as it is larger than `max` bytes (as LMTP stores it).
pub async fn read_message<R: Read>(
    mut input: R,
    max: usize,
    spool: SpoolConfig,
) -> Result<Option<(Option<String>, MessageBytes)>, InputError> {
    let mut spool = Spool::new(spool, CHUNK);
    let mut normalizer = Normalizer::default();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        normalizer.feed(&chunk[..n], spool.buffer());
        // The held-back first line counts too: a `From ` line without a newline must not
        // grow past the limit either.
        if spool.len() + normalizer.held() > max {
            spool.discard();
            return Ok(None);
        }
        spool.settle().await?;
    }
    let from = normalizer.finish(spool.buffer());
    if spool.len() > max {
        spool.discard();
        return Ok(None);
    }
    Ok(Some((from, spool.finish().await?)))
}

/// The streaming form of the normalisation: fed chunk by chunk, split anywhere.
#[derive(Default)]
pub(super) struct Normalizer {
    /// Still looking at the first line (is it an mbox `From ` line?).
    past_first_line: bool,
    /// The first line so far, while it may be a `From ` line.
    head: Vec<u8>,
    /// The last byte written to the body (a LF after it needs no CR).
    prev: u8,
    /// The `From ` line's address.
    from: Option<String>,
}

impl Normalizer {
    /// Appends what `chunk` contributes to the message to `out`.
    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.past_first_line {
            self.body(chunk, out);
            return;
        }
        // Only the new bytes are searched for the newline: a long first line costs one
        // pass, not one per chunk.
        let searched = self.head.len();
        self.head.extend_from_slice(chunk);
        let prefix = &self.head[..self.head.len().min(5)];
        if !b"From ".starts_with(prefix) {
            // Not a `From ` line: everything so far is message.
            self.past_first_line = true;
            let head = std::mem::take(&mut self.head);
            self.body(&head, out);
            return;
        }
        if self.head.len() < 5 {
            return;
        }
        if let Some(end) = memchr::memchr(b'\n', &self.head[searched..]).map(|i| searched + i) {
            self.past_first_line = true;
            let head = std::mem::take(&mut self.head);
            self.take_from_line(&head[..end + 1]);
            self.body(&head[end + 1..], out);
        }
    }

    /// Bytes held back while the first line may still be a `From ` line.
    pub(super) fn held(&self) -> usize {
        self.head.len()
    }

    /// Flushes what is still held back and returns the `From ` line's address.
    pub(super) fn finish(mut self, out: &mut Vec<u8>) -> Option<String> {
        if !self.past_first_line {
            let head = std::mem::take(&mut self.head);
            if head.starts_with(b"From ") {
                // Only a `From ` line, without a newline: an empty message.
                self.take_from_line(&head);
            } else {
                self.body(&head, out);
            }
        }
        self.from
    }

    fn take_from_line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(&line[5..]);
        self.from = line.split_whitespace().next().map(str::to_string);
    }

    fn body(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.reserve(bytes.len() + bytes.len() / 32);
        for &b in bytes {
            if b == b'\n' && self.prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            self.prev = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[(&[u8], Option<&str>, &[u8])] = &[
        (b"a\nb\n", None, b"a\r\nb\r\n"),
        (b"a\r\nb\r\n", None, b"a\r\nb\r\n"),
        (b"a\r\nb\nc", None, b"a\r\nb\r\nc"),
        (b"a\rb\n", None, b"a\rb\r\n"),
        (
            b"From bob@example.org  Sat Nov 28 10:00:00 2026\nSubject: x\n\nhi\n",
            Some("bob@example.org"),
            b"Subject: x\r\n\r\nhi\r\n",
        ),
        (b"From: a@b\n", None, b"From: a@b\r\n"),
        (b"Fro", None, b"Fro"),
        (b"From bob@x", Some("bob@x"), b""),
        (b"", None, b""),
        (b"\n\n", None, b"\r\n\r\n"),
    ];

    #[test]
    fn normalize_table_split_at_every_byte() {
        for (raw, from, want) in CASES {
            for k in 0..=raw.len() {
                let mut n = Normalizer::default();
                let mut out = Vec::new();
                n.feed(&raw[..k], &mut out);
                n.feed(&raw[k..], &mut out);
                let got_from = n.finish(&mut out);
                assert_eq!(got_from.as_deref(), *from, "{raw:?} split at {k}");
                assert_eq!(out, *want, "{raw:?} split at {k}");
            }
        }
    }

    fn spool_config(dir: &std::path::Path, threshold: usize) -> SpoolConfig {
        SpoolConfig {
            threshold,
            dir: dir.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn bounded_and_spooled_above_the_threshold() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut message = b"From s@x Sat\nSubject: big\n\n".to_vec();
        message.extend(std::iter::repeat_n(b'x', 300_000));
        message.push(b'\n');
        // The From line goes; the three bare LFs left gain a CR each.
        let want_len = message.len() - b"From s@x Sat\n".len() + 3;

        let (from, bytes) = read_message(&message[..], want_len, spool_config(tmp.path(), 1024))
            .await
            .expect("read")
            .expect("not too big");
        assert_eq!(from.as_deref(), Some("s@x"));
        assert_eq!(bytes.len(), want_len);
        assert!(bytes.is_spooled(), "300 KB over a 1 KB threshold");
        assert!(bytes.starts_with(b"Subject: big\r\n\r\nxxx"));

        let small = read_message(&b"a\nb\n"[..], 6, spool_config(tmp.path(), 1024))
            .await
            .expect("read")
            .expect("fits");
        assert_eq!(&small.1[..], b"a\r\nb\r\n");
        assert!(!small.1.is_spooled());

        let over = read_message(&message[..], want_len - 1, spool_config(tmp.path(), 1024))
            .await
            .expect("read");
        assert!(over.is_none(), "one byte over max");

        // A `From ` line that never ends is held back, and still bounded.
        let mut endless = b"From ".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 300_000));
        let held = read_message(&endless[..], 1000, spool_config(tmp.path(), 1024))
            .await
            .expect("read");
        assert!(held.is_none(), "an endless From line is too big");
    }
}
