//! A client of Dovecot's auth service (its auth-client protocol on a unix socket, the one
//! Dovecot's own imap and managesieve processes use), so passwords stay wherever the admin's
//! Dovecot keeps them (passwd-file, SQL, LDAP, PAM...).
//!
//! One connection per login: handshake (`VERSION 1 2`, `CPID`; the server's `VERSION`,
//! `MECH`, `SPID`, `CUID`, `COOKIE`, `DONE`), then one `AUTH` request with the SASL PLAIN
//! response, answered by `OK`, `FAIL` or `CONT`. Logins are rare enough that a connection
//! each costs nothing and needs no request multiplexing. Every line is bounded
//! ([`MAX_LINE`]) and the whole exchange has one deadline; Dovecot down, slow or speaking
//! something else is [`Reply::Unavailable`], a temporary failure, never a crash.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The longest line we read from the auth service. Its lines are a few hundred bytes (the
/// `MECH` list, an `OK` with a user name and a few fields).
pub const MAX_LINE: usize = 16 * 1024;

/// How many handshake lines before `DONE` we accept: a few `MECH` lines and five others.
const MAX_HANDSHAKE_LINES: usize = 64;

/// The protocol major version we speak (Dovecot 2.x: `VERSION 1 2`).
const MAJOR: &str = "1";

/// Where a login comes from, as the auth service wants it (`lip`, `rip`, `secured`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address (`rip`): Dovecot's own penalty and logs use it.
    pub remote: Option<IpAddr>,
    /// Our address the client connected to (`lip`).
    pub local: Option<IpAddr>,
    /// The connection is TLS (or otherwise trusted): Dovecot's `disable_plaintext_auth`
    /// refuses PLAIN on a connection not marked `secured` unless it comes from the host itself.
    pub secured: bool,
}

/// The auth service's answer to one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK`: the user as Dovecot names it (`user=`, after its `auth_username_format`).
    Ok {
        /// The canonical user name.
        user: String,
    },
    /// `FAIL` without `temp`: wrong password, unknown user, refused mechanism...
    Failed {
        /// Dovecot's `reason=`, sanitised; for the log only (it may say more than a client
        /// should learn).
        reason: Option<String>,
    },
    /// No answer we can use: socket missing or refused, timeout, `FAIL ... temp`, a protocol
    /// error. A temporary failure (the client may retry later).
    Unavailable {
        /// What went wrong, for the log.
        why: String,
    },
}

/// The auth-client socket and how long one login may take.
#[derive(Debug, Clone)]
pub struct DovecotAuth {
    socket: PathBuf,
    service: String,
    timeout: Duration,
}

impl DovecotAuth {
    /// `socket`: Dovecot's auth-client listener (`/run/dovecot/auth-client` by default,
    /// or a `service auth { unix_listener ... }` of its own); `service`: what Dovecot's
    /// `protocol` blocks and logs see (`managesieve`, `sievegate-admin`...); `timeout`: for
    /// the whole exchange, which includes Dovecot's `auth_failure_delay` (2 s by default).
    pub fn new(socket: impl Into<PathBuf>, service: &str, timeout: Duration) -> DovecotAuth {
        DovecotAuth {
            socket: socket.into(),
            service: service.to_string(),
            timeout,
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Asks the auth service about one SASL PLAIN response (the decoded bytes
    /// `authzid NUL authcid NUL password`).
    pub async fn plain(&self, response: &[u8], origin: Origin) -> Reply {
        match tokio::time::timeout(self.timeout, self.exchange(response, origin)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Reply::Unavailable {
                why: format!("auth service {}: {e}", self.socket.display()),
            },
            Err(_) => Reply::Unavailable {
                why: format!(
                    "auth service {}: no answer within {:?}",
                    self.socket.display(),
                    self.timeout
                ),
            },
        }
    }

    async fn exchange(&self, response: &[u8], origin: Origin) -> io::Result<Reply> {
        let stream = UnixStream::connect(&self.socket).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write
            .write_all(format!("VERSION\t{MAJOR}\t2\nCPID\t{}\n", std::process::id()).as_bytes())
            .await?;
        let mut plain = false;
        let mut version = false;
        let mut lines = 0;
        loop {
            lines += 1;
            if lines > MAX_HANDSHAKE_LINES {
                return Err(protocol("handshake too long"));
            }
            let line = read_line(&mut read).await?;
            let mut fields = line.split('\t');
            match fields.next() {
                Some("VERSION") => {
                    if fields.next() != Some(MAJOR) {
                        return Err(protocol("auth protocol major version is not 1"));
                    }
                    version = true;
                }
                Some("MECH") => plain |= fields.next().is_some_and(|m| m == "PLAIN"),
                Some("DONE") => break,
                // SPID, CUID, COOKIE and anything a newer Dovecot adds.
                _ => {}
            }
        }
        if !version {
            return Err(protocol("no VERSION before DONE"));
        }
        if !plain {
            return Err(protocol(
                "the auth service does not offer PLAIN (auth_mechanisms)",
            ));
        }
        let mut request = format!("AUTH\t1\tPLAIN\tservice={}", tab_escape(&self.service));
        if let Some(ip) = origin.local {
            request.push_str(&format!("\tlip={ip}"));
        }
        if let Some(ip) = origin.remote {
            request.push_str(&format!("\trip={ip}"));
        }
        if origin.secured {
            request.push_str("\tsecured");
        }
        request.push_str("\tresp=");
        request.push_str(&BASE64.encode(response));
        request.push('\n');
        write.write_all(request.as_bytes()).await?;
        // Dovecot answers our one request; anything else on the way is skipped, boundedly.
        for _ in 0..MAX_HANDSHAKE_LINES {
            let line = read_line(&mut read).await?;
            let mut fields = line.split('\t');
            let verb = fields.next();
            if fields.next() != Some("1") {
                continue;
            }
            let params: Vec<&str> = fields.collect();
            let param = |name: &str| {
                params.iter().find_map(|p| {
                    p.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(tab_unescape)
                })
            };
            return Ok(match verb {
                Some("OK") => match param("user") {
                    Some(user) if !user.is_empty() => Reply::Ok { user },
                    _ => return Err(protocol("OK without a user")),
                },
                Some("FAIL") if params.contains(&"temp") => Reply::Unavailable {
                    why: format!(
                        "auth service {}: temporary failure: {}",
                        self.socket.display(),
                        param("reason").map(|r| clean(&r)).unwrap_or_default()
                    ),
                },
                Some("FAIL") => Reply::Failed {
                    reason: param("reason").map(|r| clean(&r)),
                },
                // PLAIN with an initial response needs no second round.
                Some("CONT") => return Err(protocol("unexpected CONT for PLAIN")),
                _ => return Err(protocol("unexpected reply")),
            });
        }
        Err(protocol("no reply to AUTH"))
    }
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One `\n`-terminated line of at most [`MAX_LINE`] bytes; end of stream is an error.
async fn read_line<R: AsyncBufRead + Unpin>(read: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let buf = read.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the auth service closed the connection",
            ));
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE + 1 {
            return Err(protocol("line too long"));
        }
        line.extend_from_slice(&buf[..take]);
        read.consume(take);
        if done {
            line.pop();
            return String::from_utf8(line).map_err(|_| protocol("line is not UTF-8"));
        }
    }
}

/// Dovecot's `str_tabescape`: the bytes that would break a TAB-separated line.
fn tab_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    out
}

/// Dovecot's `str_tabunescape`.
fn tab_unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Text from the auth service made safe for one log field.
fn clean(text: &str) -> String {
    crate::mail::text::sanitize(text, 200, crate::mail::text::Charset::Utf8).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_escaping_round_trips() {
        for s in ["plain", "a\tb", "x\x01y\r\nz", ""] {
            assert_eq!(tab_unescape(&tab_escape(s)), s);
            assert!(!tab_escape(s).contains(['\t', '\n']));
        }
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let long = vec![b'a'; MAX_LINE + 10];
        let mut read = &long[..];
        assert!(read_line(&mut read).await.is_err());
        let mut read = &b"VERSION\t1\t2\nDONE"[..];
        assert_eq!(
            read_line(&mut read).await.ok().as_deref(),
            Some("VERSION\t1\t2")
        );
        assert!(
            read_line(&mut read).await.is_err(),
            "no newline: end of stream"
        );
    }
}
