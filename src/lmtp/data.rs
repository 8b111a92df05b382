//! DATA (RFC 5321 §4.1.1.4, RFC 2033 §4.2): receive the message, then answer once per
//! accepted recipient, in RCPT order — also when the whole message fails.

use std::time::Instant;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::{deliver, reply, Flow, ReadResult, Session};
use crate::spool::{MessageBytes, Spool, SpoolError};

/// How the DATA phase ended.
enum Received {
    Message(MessageBytes),
    /// Over `max_message_size`; the rest was read and dropped.
    TooBig,
    /// The message could not be spooled (disk full, spool directory unusable); the rest
    /// was read and dropped. The MTA keeps the message and retries.
    SpoolFailed(SpoolError),
    Closed,
    /// The DATA deadline passed (see [`crate::config::ServerConfig::data_allowance`]).
    Timeout,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn data(&mut self) -> std::io::Result<Flow> {
        match &self.txn {
            None => {
                self.push(reply::need_mail());
                return Ok(Flow::Continue);
            }
            Some(txn) if txn.rcpts.is_empty() => {
                self.push(reply::need_rcpt());
                return Ok(Flow::Continue);
            }
            Some(_) => {}
        }
        self.push(reply::start_data());
        let received = self.receive().await?;
        let Some(txn) = self.txn.take() else {
            return Ok(Flow::Continue);
        };
        let flow = match received {
            Received::Message(message) => {
                // A message moved mail forward: the junk count starts again.
                self.junk = 0;
                self.messages += 1;
                let ctx = deliver::Context {
                    lhlo: self.lhlo.clone(),
                    xforward: self.xforward.clone(),
                    peer: self.peer,
                    trusted: self.xforward_allowed,
                };
                let span = tracing::info_span!("transaction", id = %txn.id);
                let replies = deliver::deliver(&self.services, &ctx, &txn, message)
                    .instrument(span)
                    .await;
                for r in replies {
                    self.push(r);
                }
                Flow::Continue
            }
            Received::TooBig => {
                tracing::info!(
                    from = %txn.mail_from,
                    limit = self.services.config.server.max_message_size,
                    "message refused: too big"
                );
                for rcpt in &txn.rcpts {
                    self.push(reply::message_too_big(&rcpt.original));
                }
                Flow::Continue
            }
            Received::SpoolFailed(error) => {
                tracing::error!(
                    from = %txn.mail_from,
                    error = %error,
                    "message not received: cannot spool it to disk; every recipient is deferred"
                );
                for rcpt in &txn.rcpts {
                    self.push(if error.is_no_space() {
                        reply::spool_full(&rcpt.original)
                    } else {
                        reply::local_error(&rcpt.original)
                    });
                }
                Flow::Continue
            }
            Received::Closed => {
                tracing::info!("connection lost during DATA: nothing delivered");
                Flow::Quit
            }
            Received::Timeout => {
                tracing::info!(
                    txn = %txn.id,
                    "DATA deadline passed (data_timeout plus min_data_rate allowance): nothing delivered"
                );
                self.push(reply::idle_timeout());
                Flow::Quit
            }
        };
        self.end_transaction();
        Ok(flow)
    }

    /// Reads the message up to `<CRLF>.<CRLF>`, dot-unstuffed, into a [`Spool`]: in memory
    /// up to `spool_threshold`, on disk beyond it, never more than `max_message_size` (plus
    /// one read). The deadline is a total for the whole DATA, extended only in proportion to
    /// the bytes received, so dripping a byte now and then does not keep the session alive.
    async fn receive(&mut self) -> std::io::Result<Received> {
        let max = self.services.config.server.max_message_size;
        let started = Instant::now();
        let mut received: u64 = 0;
        let mut receiver = DataReceiver::new();
        // The receiver recognises "." only after a CRLF it has seen; DATA's own CRLF was
        // consumed as a command, so prime it with one (this also unstuffs a first "..").
        receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        let spool_config = self.services.config.server.spool.clone();
        let mut spool = Spool::new(spool_config, self.inbuf.len());
        // Once the message is refused (too big, spool failure), the rest is only framed.
        let mut refused: Option<(DummyDataReceiver, Received)> = None;
        loop {
            let mut bytes = self.inbuf.iter();
            let done = match refused.as_mut() {
                Some((dummy, _)) => dummy.ingest(&mut bytes),
                None => receiver.ingest(&mut bytes, spool.buffer()),
            };
            let consumed = self.inbuf.len() - bytes.len();
            self.inbuf.drain(..consumed);
            received += consumed as u64;
            if refused.is_none() {
                let why = if spool.len() > max {
                    Some(Received::TooBig)
                } else {
                    spool.settle().await.err().map(Received::SpoolFailed)
                };
                if let Some(why) = why {
                    spool.discard();
                    refused = Some((DummyDataReceiver::new_data(&receiver), why));
                }
            }
            if done {
                return Ok(match refused {
                    Some((_, why)) => why,
                    None => match spool.finish().await {
                        Ok(message) => Received::Message(message),
                        Err(e) => Received::SpoolFailed(e),
                    },
                });
            }
            self.flush().await?;
            let deadline = started + self.services.config.server.data_allowance(received);
            match self.read_some(deadline, false).await? {
                ReadResult::Data => {}
                ReadResult::Eof => return Ok(Received::Closed),
                ReadResult::Timeout | ReadResult::Shutdown => return Ok(Received::Timeout),
            }
        }
    }
}
