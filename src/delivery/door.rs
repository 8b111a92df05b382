//! The front door: every message that is delivered enters here, whoever received it (the
//! LMTP session after DATA, LDA mode after reading stdin). It scans the message once,
//! applies the one scan-failure policy, decides the recipients that the users file does not
//! know (after the scan, so infected mail never bounces), and hands the rest to the
//! [`pipeline`](super::pipeline). Every recipient gets one log line and its metrics, also
//! when a failed scan defers them all.
//!
//! The other entry points share parts of it: `quarantine release` rescans with its own rule
//! (a failed rescan releases nothing) and enters at [`deliver_scanned`]; `sieve test`
//! shares admission ([`super::admit()`]) and the chain-to-Plan step
//! ([`super::pipeline::plan_for`]) but executes nothing.
//!
//! # The scan-failure policy
//! clamd down, a timeout or an error: with `[scanner] on_failure = "tempfail"` every
//! recipient is [`RcptOutcome::Deferred`] ([`Deferral::ScanFailed`]) and nothing is stored;
//! with `"deliver-unscanned"` the message goes on with `virustest` 0
//! ([`Verdict::Unscanned`]).

use std::sync::Arc;
use std::time::Instant;

use super::log::LogLine;
use super::pipeline::{defer_all, deliver_scanned, Route};
use super::{Deferral, Envelope, RcptOutcome, Services};
use crate::config::OnScanFailure;
use crate::scan::Verdict;
use crate::spool::MessageBytes;

/// What the front door did with one message.
#[derive(Debug)]
pub struct Delivered {
    /// The verdict the recipients were handled with; `None` when the scan failed and the
    /// policy deferred everyone. A caller that refused some addresses before the door (LDA
    /// mode's addresses at no domain of ours) needs it: infected mail never bounces.
    pub verdict: Option<Verdict>,
    /// One outcome per recipient of the envelope, in order.
    pub outcomes: Vec<RcptOutcome>,
}

/// Scans and delivers `message` (a `Vec<u8>`, or a spooled message the session received);
/// returns one outcome per recipient of `envelope`, in order.
pub async fn deliver(
    services: &Arc<Services>,
    envelope: &Envelope,
    message: impl Into<MessageBytes>,
) -> Vec<RcptOutcome> {
    deliver_admitted(services, envelope, &[], message).await
}

/// [`deliver`] where `unknown[i]` marks recipient `i` as missing from `[mailbox]
/// users_file` (see [`enter`]).
pub async fn deliver_admitted(
    services: &Arc<Services>,
    envelope: &Envelope,
    unknown: &[bool],
    message: impl Into<MessageBytes>,
) -> Vec<RcptOutcome> {
    enter(services, envelope, unknown, message).await.outcomes
}

/// The front door. `unknown[i]` marks recipient `i` as missing from `[mailbox] users_file`
/// (LMTP's `unknown_users = "after-scan"`, every unknown user in LDA mode; a shorter slice
/// means the rest are known). The message is scanned once for all; then an unknown
/// recipient gets [`RcptOutcome::Discarded`] when clamd named a virus (never a bounce for
/// infected mail) and [`RcptOutcome::UnknownUser`] otherwise; the known ones go through the
/// pipeline. A failed scan under `tempfail` defers everyone, unknown ones included.
pub async fn enter(
    services: &Arc<Services>,
    envelope: &Envelope,
    unknown: &[bool],
    message: impl Into<MessageBytes>,
) -> Delivered {
    let message = message.into();
    let Some(verdict) = scan(services, &message).await else {
        let log = LogLine::new(envelope, &message, &Verdict::Unscanned);
        return Delivered {
            verdict: None,
            outcomes: defer_all(envelope, &log, Deferral::ScanFailed),
        };
    };
    let is_unknown = |i: usize| unknown.get(i).copied().unwrap_or(false);
    if !(0..envelope.rcpts.len()).any(is_unknown) {
        let outcomes = if envelope.rcpts.is_empty() {
            Vec::new()
        } else {
            deliver_scanned(services, envelope, message, verdict.clone(), Route::Sieve).await
        };
        return Delivered {
            verdict: Some(verdict),
            outcomes,
        };
    }
    let log = LogLine::new(envelope, &message, &verdict);
    let known = Envelope {
        rcpts: (envelope.rcpts.iter().enumerate())
            .filter(|(i, _)| !is_unknown(*i))
            .map(|(_, r)| r.clone())
            .collect(),
        ..envelope.clone()
    };
    let unknown_outcome = || match verdict.virus_name() {
        Some(_) => RcptOutcome::Discarded,
        None => RcptOutcome::UnknownUser,
    };
    let mut unknown_outcomes: Vec<RcptOutcome> = Vec::new();
    for (i, rcpt) in envelope.rcpts.iter().enumerate() {
        if is_unknown(i) {
            let outcome = unknown_outcome();
            log.emit(rcpt, &outcome, &["no such user in mailbox.users_file"]);
            unknown_outcomes.push(outcome);
        }
    }
    drop(log);
    let mut known_outcomes = if known.rcpts.is_empty() {
        Vec::new()
    } else {
        deliver_scanned(services, &known, message, verdict.clone(), Route::Sieve).await
    }
    .into_iter();
    let mut unknown_outcomes = unknown_outcomes.into_iter();
    let outcomes = (0..envelope.rcpts.len())
        .map(|i| {
            let next = if is_unknown(i) {
                unknown_outcomes.next()
            } else {
                known_outcomes.next()
            };
            // One outcome per recipient by construction; a missing one would be a bug,
            // and a deferral is the answer that loses nothing.
            next.unwrap_or(RcptOutcome::Deferred(Deferral::Internal))
        })
        .collect();
    Delivered {
        verdict: Some(verdict),
        outcomes,
    }
}

/// Scans once and applies the scan-failure policy (module docs): `None` when every
/// recipient is to be deferred. Counts the message and the scan in the metrics.
async fn scan(services: &Services, message: &MessageBytes) -> Option<Verdict> {
    crate::metrics::received(message.len());
    let started = Instant::now();
    let scanned = services.scanner.scan_message(message).await;
    crate::metrics::scanned(scanned.as_ref().map(Verdict::virus_name), started.elapsed());
    let verdict = match scanned {
        Ok(verdict) => verdict,
        Err(error) => match services.config.scanner.on_failure {
            OnScanFailure::Tempfail => {
                tracing::warn!(error = %error, "virus scan failed: every recipient is deferred, the MTA retries");
                return None;
            }
            OnScanFailure::DeliverUnscanned => {
                tracing::warn!(error = %error, "virus scan failed: delivering unscanned (on_failure = deliver-unscanned)");
                Verdict::Unscanned
            }
        },
    };
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, %verdict, "scanned");
    Some(verdict)
}
