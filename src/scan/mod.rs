//! clamd client: one scan per message (FILDES on a unix socket, else INSTREAM), our own reply
//! parser, and the mapping of the verdict to RFC 5235 `virustest` values.
//!
//! - [`reply`]: the sans-IO parser of clamd's answer ([`parse_reply`]).
//! - [`health`]: is clamd up (every scan and a PING probe say), for gating MAIL.
//! - `fildes`: the FILDES exchange (a read-only descriptor of the message passed over the
//!   unix socket; clamd scans it in place, no copy, no temporary file).
//! - `transport`: adapts `clamav_client`'s transports so connect failures and clamd's
//!   early `ERROR` replies survive to [`ScanError`].
//!
//! Each call opens a fresh connection: clamd closes after every scan anyway, and this way a
//! clamd that was down is picked up again by the next scan with no state to reset.

mod fildes;
pub mod health;
pub mod reply;
mod transport;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clamav_client::tokio::{Socket, Tcp};

pub use crate::mail::net::{AddrParseError, ClamdAddr};
pub use reply::{parse_reply, ClamdReply};

use crate::spool::MessageBytes;
use fildes::Answer;
use transport::{into_scan_error, Tagged};

/// What the scan concluded about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// clamd answered `stream: OK` (`fd[N]: OK` to FILDES).
    Clean,
    /// clamd answered `stream: <name> FOUND` (`fd[N]: ...` to FILDES). `heuristic` is true when the name starts with
    /// one of the configured heuristic prefixes (`Heuristics.`, `PUA.` by default).
    Infected { name: String, heuristic: bool },
    /// The message was not scanned (clamd failed and `on_failure = "deliver-unscanned"`).
    Unscanned,
    /// The message is larger than `max_scan_size` (or clamd's own `StreamMaxLength`), so it
    /// was not scanned. Retrying cannot change that, so it is delivered with virustest 0.
    TooLarge,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Infected { name, .. } => write!(f, "infected ({name})"),
            other => f.write_str(other.word()),
        }
    }
}

impl Verdict {
    /// The RFC 5235 `virustest` value: 0 not scanned, 1 clean, 4 heuristic match, 5 virus.
    pub fn virustest(&self) -> u8 {
        match self {
            Verdict::Unscanned | Verdict::TooLarge => 0,
            Verdict::Clean => 1,
            Verdict::Infected {
                heuristic: true, ..
            } => 4,
            Verdict::Infected {
                heuristic: false, ..
            } => 5,
        }
    }

    /// The signature name for an infected message, for logs and trace headers.
    pub fn virus_name(&self) -> Option<&str> {
        match self {
            Verdict::Infected { name, .. } => Some(name),
            Verdict::Clean | Verdict::Unscanned | Verdict::TooLarge => None,
        }
    }

    /// One word for the log line: `clean`, `infected`, `unscanned`, `too-large`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Infected { .. } => "infected",
            Verdict::Unscanned => "unscanned",
            Verdict::TooLarge => "too-large",
        }
    }
}

/// Why a scan produced no verdict. The session decides what the client sees (per
/// `on_failure`); the text here is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached: socket missing, connection refused, DNS failure.
    #[error("cannot connect to clamd: {0}")]
    Connect(#[source] io::Error),
    /// The connection broke while sending the message or reading the reply.
    #[error("I/O error talking to clamd: {0}")]
    Io(#[source] io::Error),
    /// connect + send + reply did not finish within the configured timeout.
    #[error("clamd did not answer in time")]
    Timeout,
    /// clamd answered `... ERROR`, e.g. `INSTREAM size limit exceeded.` when the message is
    /// larger than its `StreamMaxLength`.
    #[error("clamd error: {0}")]
    Clamd(String),
    /// The peer answered something that is not a clamd reply.
    #[error("malformed clamd reply: {0}")]
    Malformed(String),
}

impl ScanError {
    /// True when clamd cannot be reached or does not answer at all (connect failure,
    /// timeout): what marks it down for health gating ([`health`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ScanError::Connect(_) | ScanError::Timeout)
    }
}

/// How many bytes go into one INSTREAM chunk. `clamav_client`'s default of 4 KiB costs two
/// writes per 4 KiB; 64 KiB keeps a 30 MB message to ~500 chunks and stays far below any
/// sane `StreamMaxLength`.
const CHUNK_SIZE: usize = 64 * 1024;

/// A clamd client. Cheap to clone: clones share the configuration and hold no connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    addr: Arc<ClamdAddr>,
    /// Bounds connect + send + reply together, because a clamd that accepts but never
    /// answers must not hold an LMTP transaction open until Postfix gives up.
    timeout: Duration,
    /// Names starting with one of these are heuristic matches (virustest 4), not viruses (5).
    heuristic_prefixes: Arc<[String]>,
    /// Larger messages are not sent to clamd at all ([`Verdict::TooLarge`]).
    max_scan_size: usize,
    /// Whether clamd answered the last scan or PING; shared by every clone.
    health: Arc<health::Health>,
    /// `[scanner] enabled = false`: [`Scanner::scan`] never calls clamd.
    enabled: bool,
    /// Scan with FILDES (`[scanner] pass_fd`, unix sockets only). Shared by every clone and
    /// cleared for good when clamd turns out not to take descriptors, so that costs one
    /// failed attempt per process, not one per message.
    pass_fd: Arc<AtomicBool>,
}

/// The message as the scanner sees it: its bytes, and its spool file when it has one (then
/// clamd gets that file instead of a copy).
#[derive(Clone, Copy)]
struct Input<'a> {
    bytes: &'a [u8],
    file: Option<&'a File>,
}

impl Scanner {
    /// A scanner for the clamd at `addr`. `timeout` bounds each whole scan or ping;
    /// `heuristic_prefixes` (e.g. `Heuristics.`, `PUA.`) classify detections as heuristic.
    pub fn new(addr: ClamdAddr, timeout: Duration, heuristic_prefixes: Vec<String>) -> Self {
        Scanner {
            addr: Arc::new(addr),
            timeout,
            heuristic_prefixes: heuristic_prefixes.into(),
            max_scan_size: usize::MAX,
            health: Arc::default(),
            enabled: true,
            pass_fd: Arc::new(AtomicBool::new(false)),
        }
        .with_pass_fd(true)
    }

    /// False with `[scanner] enabled = false`: nothing goes to clamd.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// clamd's last known state (see [`health`]).
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    /// Messages larger than `max` bytes are not scanned: [`Verdict::TooLarge`].
    pub fn with_max_scan_size(mut self, max: usize) -> Self {
        self.max_scan_size = max;
        self
    }

    /// `false`: every [`Scanner::scan`] is [`Verdict::Unscanned`] without calling clamd
    /// (`[scanner] enabled = false`).
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// `true` (the default): scan by passing clamd a descriptor (FILDES) when it listens on a
    /// unix socket; TCP always streams (INSTREAM). `false`: always INSTREAM.
    pub fn with_pass_fd(self, pass_fd: bool) -> Self {
        let unix = matches!(*self.addr, ClamdAddr::Unix(_));
        self.pass_fd.store(pass_fd && unix, Ordering::Relaxed);
        self
    }

    /// True while scans go by FILDES: configured, a unix socket, and clamd has not refused it.
    pub fn passes_fd(&self) -> bool {
        self.pass_fd.load(Ordering::Relaxed)
    }

    /// The clamd address this scanner talks to, for logs.
    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// One scan of the whole message under the timeout (connect + send + reply): FILDES with
    /// a read-only in-memory copy of `message` (see [`Scanner::with_pass_fd`]), else INSTREAM.
    /// A message over `max_scan_size`, or one clamd refuses as over its `StreamMaxLength`,
    /// is [`Verdict::TooLarge`], not an error: a retry would fail the same way.
    pub async fn scan(&self, message: &[u8]) -> Result<Verdict, ScanError> {
        self.scan_input(Input {
            bytes: message,
            file: None,
        })
        .await
    }

    /// [`Scanner::scan`] for a received message: a spooled one is handed to clamd as a
    /// read-only descriptor of its spool file, with no copy at all.
    pub async fn scan_message(&self, message: &MessageBytes) -> Result<Verdict, ScanError> {
        self.scan_input(Input {
            bytes: message,
            file: message.spool_file(),
        })
        .await
    }

    async fn scan_input(&self, input: Input<'_>) -> Result<Verdict, ScanError> {
        if !self.enabled {
            return Ok(Verdict::Unscanned);
        }
        if input.bytes.len() > self.max_scan_size {
            return Ok(Verdict::TooLarge);
        }
        let result = self.scan_once(input).await;
        match &result {
            Ok(_) => self.health.record(Ok(()), &self.addr),
            // One slow scan (a huge archive, a stuck worker thread) says nothing about the
            // next message: clamd is down for everyone only when it does not answer PING
            // either (`ping` records its own result).
            Err(ScanError::Timeout) => {
                let _ = self.ping().await;
            }
            Err(e) if e.is_unreachable() => self.health.record(Err(e), &self.addr),
            // clamd answered, but not well for this message (a reset mid-stream, an ERROR
            // reply): the next message may scan fine, so MAIL is not refused over it.
            Err(_) => {}
        }
        result
    }

    async fn scan_once(&self, input: Input<'_>) -> Result<Verdict, ScanError> {
        let message = input.bytes;
        if let Some(raw) = self.try_fildes(input).await? {
            return self.verdict(&raw, message);
        }
        let raw = match self.with_timeout(self.instream(message)).await {
            Err(ScanError::Clamd(text)) if is_size_limit(&text) => {
                return Ok(self.over_stream_max_length(message, &text))
            }
            Err(ScanError::Io(err)) if transport::peer_stopped_reading(&err) => {
                return self.hung_up_mid_stream(message, err).await
            }
            other => other?,
        };
        self.verdict(&raw, message)
    }

    /// clamd hung up while the message was streaming and left no reply. Either it died, or
    /// the stream passed its `StreamMaxLength` and the kernel dropped its `size limit
    /// exceeded` answer with the reset (see [`transport::stream_limit_probe`]). One probe
    /// that sends no message bytes tells the two apart: over the limit the message is
    /// [`Verdict::TooLarge`], as if the reply had arrived; otherwise the original error
    /// stands (a 4xx: the MTA retries).
    async fn hung_up_mid_stream(
        &self,
        message: &[u8],
        err: io::Error,
    ) -> Result<Verdict, ScanError> {
        let probe = self.with_timeout(transport::stream_limit_probe(&self.addr, message.len()));
        if let Ok(raw) = probe.await {
            if let Ok(ClamdReply::Error(text)) = parse_reply(&raw) {
                if is_size_limit(&text) {
                    return Ok(self.over_stream_max_length(message, &text));
                }
            }
        }
        Err(ScanError::Io(err))
    }

    /// FILDES when it applies. `Ok(None)`: it does not (TCP, `pass_fd = false`, clamd refused
    /// it, or no descriptor could be made), so the caller streams the message instead.
    async fn try_fildes(&self, input: Input<'_>) -> Result<Option<Vec<u8>>, ScanError> {
        let ClamdAddr::Unix(socket) = &*self.addr else {
            return Ok(None);
        };
        if !self.passes_fd() {
            return Ok(None);
        }
        // Local work, not clamd's: outside the timeout. The memory copy runs at memcpy speed,
        // as the socket writes of INSTREAM would.
        let file = match input.file {
            Some(file) => fildes::reopen_read_only(file.as_fd()),
            None => fildes::read_only_copy(input.bytes),
        };
        let file = match file {
            Ok(file) => file,
            Err(error) => {
                // Not clamd's fault (no /proc, out of descriptors): stream this one.
                tracing::warn!(%error, "cannot make a read-only descriptor of the message for clamd; streaming it (INSTREAM) instead");
                return Ok(None);
            }
        };
        let answer = tokio::time::timeout(self.timeout, fildes::exchange(socket, &file))
            .await
            .map_err(|_elapsed| ScanError::Timeout)??;
        match answer {
            Answer::Reply(raw) => Ok(Some(raw)),
            Answer::Unsupported(text) => {
                if self.pass_fd.swap(false, Ordering::Relaxed) {
                    tracing::warn!(clamd = %text, "clamd does not take a descriptor here (FILDES): this and every later message is streamed (INSTREAM); set [scanner] pass_fd = false to skip the attempt");
                }
                Ok(None)
            }
        }
    }

    /// The verdict from clamd's raw reply to either command.
    fn verdict(&self, raw: &[u8], message: &[u8]) -> Result<Verdict, ScanError> {
        match parse_reply(raw)? {
            ClamdReply::Ok => Ok(Verdict::Clean),
            ClamdReply::Found(name) => {
                let heuristic = self.is_heuristic(&name);
                Ok(Verdict::Infected { name, heuristic })
            }
            ClamdReply::Error(text) if is_size_limit(&text) => {
                Ok(self.over_stream_max_length(message, &text))
            }
            ClamdReply::Error(text) => Err(ScanError::Clamd(text)),
        }
    }

    fn over_stream_max_length(&self, message: &[u8], text: &str) -> Verdict {
        tracing::warn!(
            size = message.len(),
            max_scan_size = self.max_scan_size,
            clamd = %text,
            "clamd's StreamMaxLength is below [scanner] max_scan_size: message not scanned; raise StreamMaxLength or lower max_scan_size"
        );
        Verdict::TooLarge
    }

    /// Sends PING and expects PONG, under the timeout. For startup logging and health checks.
    /// The result is recorded in [`Scanner::health`].
    pub async fn ping(&self) -> Result<(), ScanError> {
        let result = match self.with_timeout(self.send_ping()).await {
            Ok(raw) if raw.strip_suffix(b"\0").unwrap_or(&raw) == b"PONG" => Ok(()),
            Ok(raw) => Err(ScanError::Malformed(format!(
                "expected PONG, got \"{}\"",
                raw.escape_ascii()
            ))),
            Err(e) => Err(e),
        };
        self.health.record(result.as_ref().copied(), &self.addr);
        result
    }

    /// True when `name` starts with one of the configured heuristic prefixes.
    pub fn is_heuristic(&self, name: &str) -> bool {
        self.heuristic_prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }

    async fn with_timeout<F>(&self, exchange: F) -> Result<Vec<u8>, ScanError>
    where
        F: std::future::Future<Output = io::Result<Vec<u8>>>,
    {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(raw)) => Ok(raw),
            Ok(Err(err)) => Err(into_scan_error(err)),
            Err(_elapsed) => Err(ScanError::Timeout),
        }
    }

    async fn instream(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        use clamav_client::tokio::scan_buffer;
        match &*self.addr {
            ClamdAddr::Unix(path) => {
                let socket = Tagged(Socket {
                    socket_path: path.as_path(),
                });
                scan_buffer(message, socket, Some(CHUNK_SIZE)).await
            }
            ClamdAddr::Tcp(host_port) => {
                let tcp = Tagged(Tcp {
                    host_address: host_port.as_str(),
                });
                scan_buffer(message, tcp, Some(CHUNK_SIZE)).await
            }
        }
    }

    async fn send_ping(&self) -> io::Result<Vec<u8>> {
        use clamav_client::tokio::ping;
        match &*self.addr {
            ClamdAddr::Unix(path) => {
                ping(Tagged(Socket {
                    socket_path: path.as_path(),
                }))
                .await
            }
            ClamdAddr::Tcp(host_port) => {
                ping(Tagged(Tcp {
                    host_address: host_port.as_str(),
                }))
                .await
            }
        }
    }
}

/// clamd's answer to an INSTREAM longer than its `StreamMaxLength`:
/// `INSTREAM size limit exceeded. ERROR`.
fn is_size_limit(text: &str) -> bool {
    text.contains("size limit exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(prefixes: &[&str]) -> Scanner {
        Scanner::new(
            ClamdAddr::Unix("/nonexistent/clamd.sock".into()),
            Duration::from_secs(1),
            prefixes.iter().map(|p| p.to_string()).collect(),
        )
    }

    #[tokio::test]
    async fn a_disabled_scanner_never_calls_clamd() {
        // The address does not exist: an enabled scanner fails to connect.
        let on = scanner(&[]);
        assert!(matches!(on.scan(b"x").await, Err(ScanError::Connect(_))));
        let off = scanner(&[]).with_enabled(false);
        assert_eq!(
            off.scan(b"x").await.expect("no clamd needed"),
            Verdict::Unscanned
        );
        assert!(off.health().is_up(), "nothing recorded");
    }

    #[test]
    fn heuristic_prefixes_decide_virustest_4_or_5() {
        let s = scanner(&["Heuristics.", "PUA."]);
        let cases = [
            ("Heuristics.Phishing.Email.SpoofedDomain", true),
            ("PUA.Win.Packer.Upx", true),
            ("Win.Test.EICAR_HDB-1", false),
            ("Sievegate.Test.EICAR.UNOFFICIAL", false),
            // Prefixes are case-sensitive, as clamd's names are.
            ("heuristics.lowercase", false),
            ("PUAX.NotAPrefixMatch", false),
        ];
        for (name, heuristic) in cases {
            assert_eq!(s.is_heuristic(name), heuristic, "{name}");
            let verdict = Verdict::Infected {
                name: name.to_owned(),
                heuristic: s.is_heuristic(name),
            };
            assert_eq!(verdict.virustest(), if heuristic { 4 } else { 5 }, "{name}");
            assert_eq!(verdict.virus_name(), Some(name));
        }
        assert!(!scanner(&[]).is_heuristic("Heuristics.Anything"));
        assert_eq!(Verdict::Clean.virustest(), 1);
        assert_eq!(Verdict::Unscanned.virustest(), 0);
        assert_eq!(Verdict::TooLarge.virustest(), 0);
        assert_eq!(Verdict::Clean.virus_name(), None);
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error() {
        let err = scanner(&[]).scan(b"hello").await.expect_err("no clamd");
        assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
        let err = scanner(&[]).ping().await.expect_err("no clamd");
        assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
    }

    #[test]
    fn scan_future_is_send() {
        // The LMTP session runs on a multi-threaded runtime; a !Send scan future would only
        // show up there as a confusing compile error.
        fn assert_send<T: Send>(_: T) {}
        let s = scanner(&[]);
        assert_send(s.scan(b""));
        let message = MessageBytes::from(Vec::new());
        assert_send(s.scan_message(&message));
        assert_send(s.ping());
    }
}
