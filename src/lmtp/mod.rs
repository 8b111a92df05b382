//! The LMTP session (RFC 2033), generic over the byte stream so tests drive it in memory.
//!
//! Framing is ours (command lines, DATA via smtp-proto's `DataReceiver`); command parsing
//! is smtp-proto's, except XFORWARD, which it does not know. Replies to pipelined commands
//! (RFC 2920) are collected and flushed before the session would block on a read. Each verb
//! lives in its own file; [`reply`] owns every text the client sees.

mod data;
mod deliver;
mod lhlo;
mod mail;
mod rcpt;
pub mod reply;
mod xforward;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::address::Recipient;
use crate::config::Config;
use crate::filter::{Filter, FilterConfig};
use crate::scan::Scanner;
use reply::Reply;
pub use xforward::Xforward;

/// What every session shares: configuration and the long-lived clients.
pub struct Services {
    pub config: Config,
    pub scanner: Scanner,
    pub filter: Filter,
}

impl Services {
    /// Builds the scanner and the Sieve filter from a validated configuration.
    pub fn new(config: Config) -> Self {
        let scanner = Scanner::new(
            config.scanner.clamd.clone(),
            config.scanner.timeout,
            config.scanner.heuristic_prefixes.clone(),
        );
        let filter = Filter::new(FilterConfig {
            before: config.sieve.before.clone(),
            personal: config.sieve.personal.clone(),
            after: config.sieve.after.clone(),
            default: config.sieve.default.clone(),
            hostname: config.server.hostname.clone(),
            cpu_limit: config.sieve.cpu_limit,
            max_run_time: config.sieve.max_run_time,
        });
        Services {
            config,
            scanner,
            filter,
        }
    }
}

/// Who is on the other end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(std::net::SocketAddr),
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A mail transaction between MAIL and the end of DATA (or RSET).
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub mail_from: String,
    pub rcpts: Vec<Recipient>,
    /// When MAIL was accepted: the log's `delay` counts from here.
    pub started: Instant,
}

/// Why the session stops waiting for input. Expected conditions, not errors.
#[derive(Debug)]
enum Input {
    /// One command line, terminator included.
    Line(Vec<u8>),
    /// A line over the limit was read and dropped.
    TooLong,
    Closed,
    Timeout,
    Shutdown,
}

/// What the session does after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A short id for logs and replies, unique within this process and unlikely to repeat
/// across restarts (it starts with the time).
pub fn new_session_id() -> String {
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:07X}{:05X}", secs & 0xFFF_FFFF, n & 0xF_FFFF)
}

/// One LMTP connection.
pub struct Session<S> {
    stream: S,
    services: Arc<Services>,
    peer: Peer,
    id: String,
    shutdown: watch::Receiver<bool>,
    /// Bytes read but not consumed yet (pipelined commands, DATA).
    inbuf: Vec<u8>,
    /// Replies not flushed yet.
    out: Vec<u8>,
    lhlo: Option<String>,
    xforward: Xforward,
    xforward_allowed: bool,
    txn: Option<Transaction>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// A session over `stream`. `shutdown` turns true on SIGTERM.
    pub fn new(
        stream: S,
        services: Arc<Services>,
        peer: Peer,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let acl = &services.config.server.xforward_from;
        let xforward_allowed = match peer {
            Peer::Tcp(addr) => acl.allows_ip(addr.ip()),
            Peer::Unix => acl.allows_unix(),
        };
        Session {
            stream,
            services,
            peer,
            id: new_session_id(),
            shutdown,
            inbuf: Vec::with_capacity(8192),
            out: Vec::with_capacity(1024),
            lhlo: None,
            xforward: Xforward::default(),
            xforward_allowed,
            txn: None,
        }
    }

    /// The session id used in logs and replies.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the session to its end. Errors are I/O failures of the stream only.
    pub async fn run(mut self) -> std::io::Result<()> {
        // `instrument`, not `span.enter()`: an entered guard held across awaits would leak
        // this session's span into whatever else runs on the worker thread meanwhile.
        let span = tracing::info_span!("session", id = %self.id, peer = %self.peer);
        async move {
            tracing::debug!("connected");
            let hostname = self.services.config.server.hostname.clone();
            self.push(reply::greeting(&hostname));
            let result = self.command_loop().await;
            // Whatever ended the session, send what is pending; the peer may be gone already.
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
            tracing::debug!("disconnected");
            result
        }
        .instrument(span)
        .await
    }

    async fn command_loop(&mut self) -> std::io::Result<()> {
        loop {
            let line = match self.next_line().await? {
                Input::Line(line) => line,
                Input::TooLong => {
                    self.push(reply::line_too_long());
                    continue;
                }
                Input::Closed => return Ok(()),
                Input::Timeout => {
                    tracing::info!("idle timeout");
                    self.push(reply::idle_timeout());
                    return Ok(());
                }
                Input::Shutdown => {
                    self.push(reply::shutting_down());
                    return Ok(());
                }
            };
            if self.command(&line).await? == Flow::Quit {
                return Ok(());
            }
        }
    }

    /// Dispatches one command line.
    async fn command(&mut self, line: &[u8]) -> std::io::Result<Flow> {
        if xforward::is_xforward(line) {
            let r = self.xforward(line);
            self.push(r);
            return Ok(Flow::Continue);
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(ProtoError::InvalidRecipientAddress) if self.txn.is_some() => {
                let r = self.rcpt_unparsable(line);
                self.push(r);
                return Ok(Flow::Continue);
            }
            Err(e) => {
                self.push(parse_error_reply(&e));
                return Ok(Flow::Continue);
            }
        };
        let r = match request {
            Request::Lhlo { host } => self.lhlo(host),
            Request::Ehlo { .. } | Request::Helo { .. } => reply::use_lhlo(),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => return self.data().await,
            Request::Rset => {
                self.end_transaction();
                reply::ok()
            }
            Request::Noop { .. } => reply::ok(),
            Request::Vrfy { .. } => reply::vrfy(),
            Request::Help { .. } => reply::help(),
            Request::Quit => {
                self.push(reply::bye());
                return Ok(Flow::Quit);
            }
            Request::Expn { .. }
            | Request::Bdat { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::StartTls => reply::not_implemented(),
        };
        self.push(r);
        Ok(Flow::Continue)
    }

    /// Ends the transaction; XFORWARD attributes belong to one transaction (Postfix sends
    /// them again before each MAIL).
    fn end_transaction(&mut self) {
        self.txn = None;
        self.xforward = Xforward::default();
    }

    fn push(&mut self, reply: Reply) {
        reply.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next command line, reading (after flushing pending replies) when none is
    /// buffered. Reads race the idle timeout and shutdown.
    async fn next_line(&mut self) -> std::io::Result<Input> {
        let max = self.services.config.server.max_line_length;
        let idle = self.services.config.server.idle_timeout;
        let mut discarding = false;
        loop {
            if let Some(pos) = memchr(b'\n', &self.inbuf) {
                let line: Vec<u8> = self.inbuf.drain(..=pos).collect();
                if discarding || line.len() > max {
                    return Ok(Input::TooLong);
                }
                return Ok(Input::Line(line));
            }
            if self.inbuf.len() > max {
                // Keep the tail small while skipping the rest of an overlong line.
                self.inbuf.clear();
                discarding = true;
            }
            self.flush().await?;
            if *self.shutdown.borrow() {
                return Ok(Input::Shutdown);
            }
            match self.read_some(idle, true).await? {
                ReadResult::Data => {}
                ReadResult::Eof => return Ok(Input::Closed),
                ReadResult::Timeout => return Ok(Input::Timeout),
                ReadResult::Shutdown => return Ok(Input::Shutdown),
            }
        }
    }

    /// Reads more bytes into `inbuf`. With `interruptible`, shutdown wins the race (idle
    /// sessions get 421); during DATA it does not (in-flight messages finish).
    async fn read_some(
        &mut self,
        timeout: Duration,
        interruptible: bool,
    ) -> std::io::Result<ReadResult> {
        self.inbuf.reserve(8192);
        let deadline = Instant::now() + timeout;
        let read = tokio::time::timeout_at(deadline.into(), self.stream.read_buf(&mut self.inbuf));
        let result = if interruptible {
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                r = read => r,
                _ = wait_true(&mut shutdown) => return Ok(ReadResult::Shutdown),
            }
        } else {
            read.await
        };
        match result {
            Err(_) => Ok(ReadResult::Timeout),
            Ok(Ok(0)) => Ok(ReadResult::Eof),
            Ok(Ok(_)) => Ok(ReadResult::Data),
            Ok(Err(e)) if is_disconnect(&e) => Ok(ReadResult::Eof),
            Ok(Err(e)) => Err(e),
        }
    }
}

enum ReadResult {
    Data,
    Eof,
    Timeout,
    Shutdown,
}

/// Resolves once the shutdown flag is true (or its sender is gone, which also means exit).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

/// Maps smtp-proto's parse errors to replies (RFC 5321 §4.2.4: 500 unknown command, 501
/// bad arguments, 555 unsupported MAIL/RCPT parameter).
fn parse_error_reply(error: &ProtoError) -> Reply {
    match error {
        ProtoError::UnknownCommand => reply::unknown_command(),
        ProtoError::InvalidSenderAddress => reply::bad_sender_syntax(),
        ProtoError::InvalidRecipientAddress => reply::bad_recipient_syntax(),
        ProtoError::SyntaxError { syntax } => reply::syntax(syntax),
        ProtoError::InvalidParameter { param } => reply::syntax(param),
        ProtoError::UnsupportedParameter { param } => reply::unsupported_parameter(param),
        ProtoError::ResponseTooLong => reply::line_too_long(),
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            reply::syntax("incomplete command")
        }
    }
}
