//! The LMTP session (RFC 2033), generic over the byte stream so tests drive it in memory.
//!
//! Framing is ours (command lines, DATA via smtp-proto's `DataReceiver`, patched so only
//! `<CRLF>.<CRLF>` ends it); command parsing is smtp-proto's, except XFORWARD, which it does
//! not know. Replies to pipelined commands (RFC 2920) are collected and flushed before the
//! session would block on a read. Each verb lives in its own file; [`reply`] owns every
//! text the client sees.
//!
//! Deadlines are totals, so a client cannot stretch them by dripping bytes: a command line
//! must arrive whole within `idle_timeout`, DATA within `data_timeout` plus the time its
//! bytes need at `min_data_rate`, and every write of replies within `idle_timeout`.

mod data;
mod deliver;
mod lhlo;
mod mail;
mod rcpt;
pub mod reply;
mod xforward;

use std::sync::Arc;
use std::time::Instant;

use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::delivery::Services;
use crate::delivery::UserSlot;
use crate::mail::address::Recipient;
use reply::Reply;
pub use xforward::Xforward;

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
#[derive(Debug)]
pub(crate) struct Transaction {
    /// Unique per transaction (not per connection): the `Received` header's `id` and the
    /// id in the final replies, so two messages of one session can be told apart.
    pub id: String,
    pub mail_from: String,
    pub rcpts: Vec<Recipient>,
    /// Parallel to `rcpts`: true for a recipient missing from `[mailbox] users_file` that
    /// was accepted at RCPT to be refused after the scan (`unknown_users = "after-scan"`).
    pub unknown: Vec<bool>,
    /// When MAIL was accepted: the log's `delay` counts from here.
    pub started: Instant,
    /// The accepted recipients' places under `user_concurrency_limit`, freed when the
    /// transaction is dropped (after DATA's replies, RSET, or disconnect).
    pub slots: Vec<UserSlot>,
}

/// Why the session stops waiting for input. Expected conditions, not errors.
#[derive(Debug)]
enum Input {
    /// One command line, terminator included.
    Line(Vec<u8>),
    /// A line over the limit was read and dropped.
    TooLong,
    /// A line with a CR or LF other than its final CRLF (RFC 5321 §2.3.8).
    BareNewline,
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

/// A short id for logs and replies ([`crate::mail::envelope::new_id`]).
pub fn new_session_id() -> String {
    crate::mail::envelope::new_id()
}

/// One LMTP connection.
pub struct Session<S> {
    stream: S,
    services: Arc<Services>,
    /// Where reloaded services appear ([`Session::follow`]); taken up at each MAIL.
    current: Option<watch::Receiver<Arc<Services>>>,
    peer: Peer,
    /// A unix-socket peer's uid (`SO_PEERCRED`), when known.
    peer_uid: Option<u32>,
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
    /// Commands since the last message that did not move mail forward (NOOP, RSET, VRFY,
    /// HELP, errors): a client that only sends those would hold its slot forever while
    /// meeting every deadline.
    junk: usize,
    /// Error replies (4xx, 5xx) sent so far: each command that got one counts as junk.
    errors: usize,
    /// Messages received in this session (DATA completed).
    messages: usize,
}

/// Commands without a message before the session is closed, Postfix's
/// `smtpd_junk_command_limit`.
const JUNK_COMMAND_LIMIT: usize = 100;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// A session over `stream`. `shutdown` turns true on SIGTERM. A unix-socket peer
    /// counts as unknown (only a plain `unix` in `xforward_from` trusts it) until
    /// [`Session::peer_uid`] says who it is.
    pub fn new(
        stream: S,
        services: Arc<Services>,
        peer: Peer,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let xforward_allowed = is_trusted(&services.config, peer, None);
        Session {
            stream,
            services,
            current: None,
            peer,
            peer_uid: None,
            id: new_session_id(),
            shutdown,
            inbuf: Vec::with_capacity(8192),
            out: Vec::with_capacity(1024),
            lhlo: None,
            xforward: Xforward::default(),
            xforward_allowed,
            txn: None,
            junk: 0,
            errors: 0,
            messages: 0,
        }
    }

    /// Sets the unix-socket peer's uid (from `SO_PEERCRED`), which decides whether it is
    /// trusted (`unix:USER` in `xforward_from`).
    pub fn peer_uid(mut self, uid: Option<u32>) -> Self {
        self.peer_uid = uid;
        self.xforward_allowed = is_trusted(&self.services.config, self.peer, uid);
        self
    }

    /// Follows reloads: each new transaction uses the services last sent on `current`
    /// (a transaction in flight keeps the ones it started with).
    pub fn follow(mut self, current: watch::Receiver<Arc<Services>>) -> Self {
        self.current = Some(current);
        self
    }

    /// Switches to reloaded services, if any arrived since the last transaction.
    fn take_reloaded(&mut self) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if current.has_changed().unwrap_or(false) {
            self.services = Arc::clone(&current.borrow_and_update());
            self.xforward_allowed = is_trusted(&self.services.config, self.peer, self.peer_uid);
        }
    }

    /// The session id used in logs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the session to its end. Errors are I/O failures of the stream only.
    pub async fn run(mut self) -> std::io::Result<()> {
        // `instrument`, not `span.enter()`: an entered guard held across awaits would leak
        // this session's span into whatever else runs on the worker thread meanwhile.
        let span = match self.peer_uid {
            Some(uid) => tracing::info_span!("session", id = %self.id, peer = %self.peer, uid),
            None => tracing::info_span!("session", id = %self.id, peer = %self.peer),
        };
        async move {
            tracing::debug!("connected");
            let hostname = self.services.config.server.hostname.clone();
            self.push(reply::greeting(&hostname));
            let result = self.command_loop().await;
            // Whatever ended the session, send what is pending; the peer may be gone already
            // (both bounded: a peer that does not read must not hold the slot).
            if result.is_ok() {
                let _ = self.flush().await;
            }
            let idle = self.services.config.server.idle_timeout;
            let _ = tokio::time::timeout(idle, self.stream.shutdown()).await;
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
                Input::BareNewline => {
                    // The client's framing is not ours: what follows (e.g. after "DATA\n")
                    // may be message text, so nothing more is read or executed.
                    tracing::info!("bare CR or LF in a command line: closing");
                    self.push(reply::bare_newline());
                    return Ok(());
                }
                Input::Closed => return Ok(()),
                Input::Timeout => {
                    tracing::info!("command timeout: no complete command line in time");
                    self.push(reply::idle_timeout());
                    return Ok(());
                }
                Input::Shutdown => {
                    self.push(reply::shutting_down());
                    return Ok(());
                }
            };
            let (errors, messages) = (self.errors, self.messages);
            if self.command(&line).await? == Flow::Quit {
                return Ok(());
            }
            // A command that only earned an error moved no mail either (a received message
            // resets the count instead, whatever its recipients' replies).
            let failed = self.errors > errors && self.messages == messages;
            if failed && self.count_junk() == Flow::Quit {
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
        let junk = matches!(
            request,
            Request::Noop { .. }
                | Request::Rset
                | Request::Vrfy { .. }
                | Request::Help { .. }
                | Request::Expn { .. }
                | Request::Ehlo { .. }
                | Request::Helo { .. }
        );
        if junk && self.count_junk() == Flow::Quit {
            return Ok(Flow::Quit);
        }
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

    /// Counts a command that moves no mail; past [`JUNK_COMMAND_LIMIT`] since the last
    /// message, the session is closed with 421 instead of answering it.
    fn count_junk(&mut self) -> Flow {
        if self.junk >= JUNK_COMMAND_LIMIT {
            tracing::info!(
                limit = JUNK_COMMAND_LIMIT,
                "too many commands without a message: closing"
            );
            self.push(reply::too_many_junk_commands());
            return Flow::Quit;
        }
        self.junk += 1;
        Flow::Continue
    }

    /// Ends the transaction; XFORWARD attributes belong to one transaction (Postfix sends
    /// them again before each MAIL).
    fn end_transaction(&mut self) {
        self.txn = None;
        self.xforward = Xforward::default();
    }

    fn push(&mut self, reply: Reply) {
        if reply.code >= 400 {
            self.errors += 1;
        }
        reply.write_to(&mut self.out);
    }

    /// Writes pending replies. A peer that stops reading gets `idle_timeout` for the whole
    /// write, then the session ends with `TimedOut`.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let idle = self.services.config.server.idle_timeout;
            let write = async {
                self.stream.write_all(&self.out).await?;
                self.stream.flush().await
            };
            match tokio::time::timeout(idle, write).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "peer did not read our replies in time",
                    ))
                }
            }
            self.out.clear();
        }
        Ok(())
    }

    /// The next command line, reading (after flushing pending replies) when none is
    /// buffered. The whole line must arrive within `idle_timeout` from when we start
    /// waiting for it: each byte does not restart the clock. Reads race shutdown.
    async fn next_line(&mut self) -> std::io::Result<Input> {
        let max = self.services.config.server.max_line_length;
        let deadline = Instant::now() + self.services.config.server.idle_timeout;
        let mut discarding = false;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.inbuf) {
                let line: Vec<u8> = self.inbuf.drain(..=pos).collect();
                if discarding || line.len() > max {
                    return Ok(Input::TooLong);
                }
                if has_bare_newline(&line) {
                    return Ok(Input::BareNewline);
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
            match self.read_some(deadline, true).await? {
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
        deadline: Instant,
        interruptible: bool,
    ) -> std::io::Result<ReadResult> {
        self.inbuf.reserve(8192);
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

/// True when `peer` (with `uid` for a unix-socket peer) is in `xforward_from`: it may send
/// XFORWARD and use the reserved connections.
pub fn is_trusted(config: &crate::config::Config, peer: Peer, uid: Option<u32>) -> bool {
    let acl = &config.server.xforward_from;
    match peer {
        Peer::Tcp(addr) => acl.allows_ip(addr.ip()),
        Peer::Unix => acl.allows_unix(uid),
    }
}

/// True unless `line` ends in CRLF with no other CR or LF in it.
fn has_bare_newline(line: &[u8]) -> bool {
    match line.strip_suffix(b"\r\n") {
        Some(body) => body.iter().any(|b| matches!(b, b'\r' | b'\n')),
        None => true,
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
