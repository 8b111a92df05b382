//! One ManageSieve connection: the greeting, then commands until LOGOUT, a fatal input, a
//! timeout or shutdown. Generic over the stream (a boxed TCP, unix or in-memory stream);
//! STARTTLS wraps it. Every read has a deadline (idle between commands, the command
//! timeout within one) and a shutdown branch. The session translates commands into
//! [`super::dir`] calls and their outcomes into [`super::reply`] responses; nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::auth::Authenticate;
use super::dir::ScriptDir;
use super::parse::{Command, Limits, Parsed, Parser};
use super::reply::{Capabilities, Response};
use super::tls::TlsCell;
use super::AsyncStream;
use crate::delivery::Services;

/// Bytes of command text (literals excluded) in one command.
pub const MAX_LINE: usize = 8 * 1024;
/// Largest literal before authentication (AUTHENTICATE's response).
const MAX_LITERAL_UNAUTHENTICATED: u64 = 8 * 1024;
/// Failed AUTHENTICATEs in one session before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// What every session of one server shares.
pub struct Shared {
    /// The current services (replaced by a reload).
    pub services: watch::Receiver<Arc<Services>>,
    /// Checks logins.
    pub auth: Arc<dyn Authenticate>,
    /// The STARTTLS acceptor (reloaded on SIGHUP).
    pub tls: TlsCell,
}

/// Who is logged in and where their scripts are.
pub(super) struct Login {
    pub user: String,
    pub dir: ScriptDir,
}

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Logout,
    PeerClosed,
    Timeout,
    Shutdown,
    /// Unusable input, too many commands or failed logins.
    Refused,
}

enum Input {
    Parsed(Parsed),
    End(End),
}

/// One connection's state.
pub struct Session {
    pub(super) stream: Box<dyn AsyncStream>,
    pub(super) shared: Arc<Shared>,
    /// The client's address (`None`: a unix socket).
    pub(super) peer: Option<SocketAddr>,
    /// This listener lets AUTHENTICATE run without TLS (loopback or unix, and allowed).
    pub(super) plaintext_ok: bool,
    pub(super) tls: bool,
    pub(super) login: Option<Login>,
    parser: Parser,
    buf: Vec<u8>,
    pub(super) out: Vec<u8>,
    stop: watch::Receiver<bool>,
    auth_failures: u32,
}

impl Session {
    /// A session on `stream`, not yet greeted.
    pub fn new(
        stream: Box<dyn AsyncStream>,
        shared: Arc<Shared>,
        peer: Option<SocketAddr>,
        plaintext_ok: bool,
        stop: watch::Receiver<bool>,
    ) -> Session {
        let mut session = Session {
            stream,
            shared,
            peer,
            plaintext_ok,
            tls: false,
            login: None,
            parser: Parser::new(Limits {
                max_line: MAX_LINE,
                max_literal: 0,
                max_skip: 0,
            }),
            buf: Vec::new(),
            out: Vec::new(),
            stop,
            auth_failures: 0,
        };
        session.set_limits();
        session
    }

    pub(super) fn services(&self) -> Arc<Services> {
        self.shared.services.borrow().clone()
    }

    /// Literal caps: small before login; after it, the script size limit (over it the
    /// literal is dropped and the command refused), and eight times that before the
    /// session is ended without reading further.
    pub(super) fn set_limits(&mut self) {
        let max = self.services().config.managesieve.max_script_size;
        self.parser.limits = if self.login.is_some() {
            Limits {
                max_line: MAX_LINE,
                max_literal: max,
                max_skip: max.saturating_mul(8).saturating_add(64 * 1024),
            }
        } else {
            Limits {
                max_line: MAX_LINE,
                max_literal: MAX_LITERAL_UNAUTHENTICATED,
                max_skip: MAX_LITERAL_UNAUTHENTICATED,
            }
        };
    }

    /// Serves the connection to its end.
    pub async fn run(mut self) -> std::io::Result<End> {
        self.capabilities();
        self.out
            .extend_from_slice(b"OK \"sievegate ManageSieve ready\"\r\n");
        self.flush().await?;
        let mut commands = 0usize;
        loop {
            let input = self.next().await?;
            let end = match input {
                Input::End(End::Shutdown) => {
                    Response::bye("Server shutting down").write_to(&mut self.out);
                    Some(End::Shutdown)
                }
                Input::End(End::Timeout) => {
                    Response::bye("Disconnected for inactivity").write_to(&mut self.out);
                    Some(End::Timeout)
                }
                Input::End(end) => Some(end),
                Input::Parsed(parsed) => {
                    commands += 1;
                    if commands > self.services().config.managesieve.max_commands {
                        Response::bye("Too many commands in one session").write_to(&mut self.out);
                        Some(End::Refused)
                    } else {
                        self.answer(parsed).await?
                    }
                }
            };
            self.flush().await?;
            if let Some(end) = end {
                self.close(end).await;
                return Ok(end);
            }
        }
    }

    async fn answer(&mut self, parsed: Parsed) -> std::io::Result<Option<End>> {
        match parsed {
            Parsed::Incomplete => Ok(None),
            Parsed::Command(command) => self.command(command).await,
            Parsed::Invalid(why) => {
                Response::no(&format!("Syntax error: {why}")).write_to(&mut self.out);
                Ok(None)
            }
            Parsed::TooLarge => {
                let max = self.services().config.managesieve.max_script_size;
                Response::no_code(
                    super::reply::Code::QuotaMaxSize,
                    &format!("Script too large (at most {max} bytes)"),
                )
                .write_to(&mut self.out);
                Ok(None)
            }
            Parsed::Fatal(why) => {
                tracing::info!(peer = ?self.peer, why, "managesieve: input refused, closing");
                Response::bye(&format!("Protocol error: {why}")).write_to(&mut self.out);
                Ok(Some(End::Refused))
            }
        }
    }

    async fn command(&mut self, command: Command) -> std::io::Result<Option<End>> {
        let Command { name, args } = command;
        let authed = self.login.is_some();
        let response = match name.as_str() {
            "CAPABILITY" if args.is_empty() => {
                self.capabilities();
                Response::ok("Capability completed")
            }
            "LOGOUT" if args.is_empty() => {
                Response::ok("Logout completed").write_to(&mut self.out);
                return Ok(Some(End::Logout));
            }
            "NOOP" if args.len() <= 1 => match args.first().map(|a| a.string()) {
                None => Response::ok("Done"),
                Some(Some(tag)) => Response {
                    code: Some(super::reply::Code::Tag),
                    tag: Some(tag.to_vec()),
                    ..Response::ok("Done")
                },
                Some(None) => Response::no("NOOP takes a string"),
            },
            "STARTTLS" if args.is_empty() => return self.starttls().await,
            "AUTHENTICATE" if !authed => return self.authenticate(args).await,
            "AUTHENTICATE" => Response::no("Already authenticated"),
            "UNAUTHENTICATE" if args.is_empty() && authed => {
                self.login = None;
                self.set_limits();
                Response::ok("Unauthenticate completed")
            }
            "UNAUTHENTICATE" => Response::no("Not authenticated"),
            "HAVESPACE" | "PUTSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
            | "DELETESCRIPT" | "RENAMESCRIPT" | "CHECKSCRIPT"
                if !authed =>
            {
                Response::no("Authenticate first")
            }
            "HAVESPACE" => self.havespace(&args).await,
            "PUTSCRIPT" => self.putscript(&args).await,
            "LISTSCRIPTS" => self.listscripts(&args).await,
            "SETACTIVE" => self.setactive(&args).await,
            "GETSCRIPT" => self.getscript(&args).await,
            "DELETESCRIPT" => self.deletescript(&args).await,
            "RENAMESCRIPT" => self.renamescript(&args).await,
            "CHECKSCRIPT" => self.checkscript(&args).await,
            "CAPABILITY" | "LOGOUT" | "NOOP" | "STARTTLS" => {
                Response::no("Wrong number of arguments")
            }
            _ => Response::no("Unknown command"),
        };
        response.write_to(&mut self.out);
        Ok(None)
    }

    /// AUTHENTICATE may run now: over TLS, or on a listener that allows it without.
    pub(super) fn may_authenticate(&self) -> bool {
        self.tls || self.plaintext_ok
    }

    /// The capability lines (RFC 5804 §1.7), as they stand now.
    pub(super) fn capabilities(&mut self) {
        let services = self.services();
        let sieve = crate::filter::tools::extensions(&services.config.sieve.scripts).join(" ");
        let sasl = if self.may_authenticate() && self.login.is_none() {
            "PLAIN"
        } else {
            ""
        };
        Capabilities {
            sieve: &sieve,
            sasl,
            starttls: !self.tls && self.login.is_none() && self.shared.tls.get().is_some(),
            owner: self.login.as_ref().map(|l| l.user.as_str()),
        }
        .write_to(&mut self.out);
    }

    /// RFC 5804 §2.2: TLS now, then the capabilities again. Bytes the client sent after
    /// the command in the clear are dropped (they could be an injection).
    async fn starttls(&mut self) -> std::io::Result<Option<End>> {
        let acceptor = match (self.tls, self.login.is_some(), self.shared.tls.get()) {
            (false, false, Some(acceptor)) => acceptor,
            (true, _, _) => {
                Response::no("TLS is already active").write_to(&mut self.out);
                return Ok(None);
            }
            _ => {
                Response::no("STARTTLS is not available").write_to(&mut self.out);
                return Ok(None);
            }
        };
        Response::ok("Begin TLS negotiation now").write_to(&mut self.out);
        self.flush().await?;
        self.buf.clear();
        let timeout = self.services().config.managesieve.command_timeout;
        let plain = std::mem::replace(
            &mut self.stream,
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())),
        );
        match tokio::time::timeout(timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => {
                self.stream = Box::new(tls);
                self.tls = true;
            }
            Ok(Err(e)) => {
                tracing::info!(peer = ?self.peer, error = %e, "managesieve: TLS handshake failed");
                return Ok(Some(End::Refused));
            }
            Err(_) => return Ok(Some(End::Timeout)),
        }
        self.capabilities();
        Response::ok("TLS negotiation successful").write_to(&mut self.out);
        Ok(None)
    }

    /// Reads until the parser has something, a deadline passes, the peer goes or the
    /// server stops.
    async fn next(&mut self) -> std::io::Result<Input> {
        let config = self.services().config.managesieve.clone();
        let idle_since = Instant::now();
        let mut command_since: Option<Instant> = None;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match self.parser.parse(&mut self.buf) {
                Parsed::Incomplete => {}
                parsed => return Ok(Input::Parsed(parsed)),
            }
            if self.parser.in_command() && command_since.is_none() {
                command_since = Some(Instant::now());
            }
            let deadline = match command_since {
                Some(at) => at + config.command_timeout,
                None => idle_since + config.idle_timeout,
            };
            let read = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => return Ok(Input::End(End::Shutdown)),
                read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk)) => read,
            };
            match read {
                Err(_) => return Ok(Input::End(End::Timeout)),
                Ok(Ok(0)) => return Ok(Input::End(End::PeerClosed)),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(Input::End(End::PeerClosed))
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Reads one client response to an AUTHENTICATE challenge: a string line.
    pub(super) async fn read_data_line(&mut self) -> std::io::Result<Result<Vec<u8>, End>> {
        self.parser.data_line = true;
        let input = self.next().await;
        self.parser.data_line = false;
        Ok(match input? {
            Input::Parsed(Parsed::Command(c)) if c.args.len() == 1 => match c.args[0].string() {
                Some(s) => Ok(s.to_vec()),
                None => Ok(Vec::new()),
            },
            Input::Parsed(_) => Ok(b"*".to_vec()),
            Input::End(end) => Err(end),
        })
    }

    /// Counts a failed login; `true` when the session should end.
    pub(super) fn auth_failed(&mut self) -> bool {
        self.auth_failures += 1;
        self.auth_failures >= MAX_AUTH_FAILURES
    }

    /// Closes our side, then, after refusing input, reads and drops what the client still
    /// sends for a moment (bounded): closing with unread input would reset the connection
    /// and could destroy the `BYE` before the client reads it.
    async fn close(&mut self, end: End) {
        let limit = std::time::Duration::from_secs(2);
        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
        if end != End::Refused {
            return;
        }
        let mut sink = vec![0u8; 16 * 1024];
        let mut left: usize = 4 * 1024 * 1024;
        let _ = tokio::time::timeout(limit, async {
            while left > 0 {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.services().config.managesieve.command_timeout;
        let out = std::mem::take(&mut self.out);
        match tokio::time::timeout(timeout, async {
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client does not read",
            )),
        }
    }
}
