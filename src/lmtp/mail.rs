//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY (RFC 6152) and SMTPUTF8
//! (RFC 6531) parameters, which smtp-proto parses.

use smtp_proto::MailFrom;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{reply, reply::Reply, Session, Transaction};
use crate::config::OnScanFailure;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn mail(&mut self, from: MailFrom<String>) -> Reply {
        if self.lhlo.is_none() {
            return reply::need_lhlo();
        }
        if self.txn.is_some() {
            return reply::nested_mail();
        }
        self.take_reloaded();
        // BINARYMIME needs CHUNKING (RFC 3030), which we do not offer.
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return reply::unsupported_parameter("BODY=BINARYMIME");
        }
        if from.size > self.services.config.server.max_message_size {
            return reply::size_exceeded();
        }
        if self.scanner_down() {
            tracing::info!(from = %from.address, "MAIL deferred: clamd is down");
            return reply::scanner_down();
        }
        if self.state_down() {
            tracing::info!(from = %from.address, "MAIL deferred: the state store is unreachable");
            return reply::state_down();
        }
        let id = crate::mail::envelope::new_id();
        tracing::debug!(txn = %id, from = %from.address, "transaction started");
        self.txn = Some(Transaction {
            id,
            mail_from: from.address,
            rcpts: Vec::new(),
            unknown: Vec::new(),
            started: std::time::Instant::now(),
            slots: Vec::new(),
        });
        reply::sender_ok()
    }

    /// True when a DATA now could only end in "scan failed" for every recipient: clamd is
    /// known to be down, the probe runs (it is what notices recovery; without it nothing
    /// would scan again), and a failed scan defers (with `deliver-unscanned` the mail
    /// goes through anyway, so refusing it would be wrong).
    fn scanner_down(&self) -> bool {
        let health = self.services.scanner.health();
        self.services.config.scanner.on_failure == OnScanFailure::Tempfail
            && health.is_watched()
            && !health.is_up()
    }

    /// True when the state store is a server known to be unreachable (and probed, so the
    /// refusal lifts by itself) and a delivery needs it: the quarantine keeps infected
    /// mail in it, and a durable store holds the outbox every Sieve reply or redirect
    /// goes through. Only PostgreSQL has a health; SQLite and memory never refuse here.
    fn state_down(&self) -> bool {
        let config = &self.services.config;
        let needed = config.quarantine.enabled || config.state.is_durable();
        needed
            && self
                .services
                .state
                .health()
                .is_some_and(|health| health.refuses_mail())
    }
}
