//! `quarantine release`: per recipient. Each recipient of an entry is delivered once; the
//! entry records who was released, when and by whom (see [`release`]).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::cli::{rfc3339, terminal, CliError};
use super::{Quarantine, QuarantineError};
use crate::delivery::{self, Client, Envelope, RcptOutcome, Route, Services};
use crate::mail::address::Recipient;
use crate::scan::Verdict;
use crate::state::QuarantineEntry;

/// What `release` did for one recipient.
#[derive(Debug)]
pub struct Released {
    /// The address.
    pub rcpt: String,
    /// Its outcome.
    pub outcome: RcptOutcome,
}

/// `quarantine release ID [--rcpt ADDR]... [--force]`: rescans; clean → the full pipeline
/// (Sieve included); still infected → refused, or with `force` stored into INBOX without
/// Sieve. Release is per recipient: without `--rcpt`, every recipient still held; a
/// recipient released before is refused (named by `--rcpt`) or skipped, so no one gets the
/// message twice. Each recipient with a final outcome is recorded as released (when, by
/// `user`); one that failed stays held for the next run.
///
/// The delivery comes before the record: a crash in between may deliver a recipient twice
/// on the next run, but never marks one released that was not delivered.
pub async fn release(
    services: &Arc<Services>,
    q: &Quarantine,
    id: &str,
    only: &[String],
    force: bool,
    user: &str,
) -> Result<Vec<Released>, CliError> {
    let entry = q.get(id)?;
    let chosen = release_choice(&entry, only)?;
    let rcpts = release_recipients(services, &chosen)?;
    let message = q.raw(id)?;
    let verdict = services
        .scanner
        .scan(&message)
        .await
        .map_err(|e| CliError::Rescan {
            id: id.to_string(),
            message: e.to_string(),
        })?;
    let route = match verdict {
        Verdict::Clean => Route::Sieve,
        _ if force => {
            tracing::warn!(quarantine_id = %id, user, %verdict, "forced release of a message that is not clean: INBOX without Sieve");
            Route::Inbox {
                released_by: user.to_string(),
            }
        }
        other => {
            return Err(CliError::StillInfected {
                id: id.to_string(),
                verdict: other.to_string(),
            })
        }
    };
    let envelope = Envelope {
        id: crate::lmtp::new_transaction_id(),
        mail_from: entry.sender.clone(),
        rcpts,
        helo: None,
        peer_addr: None,
        client: Client {
            name: None,
            addr: entry
                .client_ip
                .as_deref()
                .and_then(crate::mail::envelope::parse_ip),
            helo: entry.client_helo.clone(),
            queue_id: entry.queue_id.clone(),
        },
        // A release is not a new incident: no abuse report.
        client_trusted: false,
        started: Instant::now(),
        default_mailbox: None,
    };
    tracing::info!(quarantine_id = %id, user, rcpts = envelope.rcpts.len(), %verdict, "releasing from quarantine");
    let outcomes = delivery::deliver_scanned(services, &envelope, message, verdict, route).await;
    let failed = outcomes.iter().filter(|o| o.is_temporary_failure()).count();
    let total = outcomes.len();
    let released: Vec<Released> = chosen
        .iter()
        .zip(outcomes)
        .map(|(rcpt, outcome)| Released {
            rcpt: rcpt.clone(),
            outcome,
        })
        .collect();
    let done: Vec<String> = released
        .iter()
        .filter(|r| !r.outcome.is_temporary_failure())
        .map(|r| r.rcpt.clone())
        .collect();
    if !done.is_empty() {
        q.state()
            .quarantine_release_rcpts(id, &done, SystemTime::now(), user)
            .map_err(QuarantineError::from)?;
    }
    if failed > 0 {
        for r in &released {
            tracing::warn!(quarantine_id = %id, to = %r.rcpt, outcome = %r.outcome.summary(), "release outcome");
        }
        return Err(CliError::Delivery {
            id: id.to_string(),
            failed,
            total,
        });
    }
    Ok(released)
}

/// The recipients (as given) this release delivers to: every one still held, or those named
/// by `only` (matched case-insensitively against the given and resolved forms), each of
/// which must be a recipient of the entry and still held.
fn release_choice(entry: &QuarantineEntry, only: &[String]) -> Result<Vec<String>, CliError> {
    let released_before = |given: &str| entry.releases.iter().find(|r| r.rcpt == given);
    if only.is_empty() {
        let held: Vec<String> = entry.held().into_iter().map(str::to_string).collect();
        if held.is_empty() {
            let last = entry.releases.last();
            return Err(CliError::AlreadyReleased(format!(
                "{}: every recipient was already released{}: nothing delivered",
                entry.id,
                last.map(|r| format!(
                    " (last: {} by {} at {})",
                    terminal(&r.rcpt),
                    terminal(&r.by),
                    rfc3339(r.at)
                ))
                .unwrap_or_default()
            )));
        }
        return Ok(held);
    }
    let mut chosen: Vec<String> = Vec::new();
    for want in only {
        let found = entry
            .recipients
            .iter()
            .zip(
                entry
                    .resolved
                    .iter()
                    .chain(std::iter::repeat(&String::new())),
            )
            .find(|(given, resolved)| {
                given.eq_ignore_ascii_case(want) || resolved.eq_ignore_ascii_case(want)
            })
            .map(|(given, _)| given.as_str());
        let Some(given) = found else {
            return Err(CliError::BadRecipient(format!(
                "{} is not a recipient of {} (its recipients: {})",
                terminal(want),
                entry.id,
                terminal(&entry.recipients.join(", "))
            )));
        };
        if let Some(before) = released_before(given) {
            return Err(CliError::AlreadyReleased(format!(
                "{} was already released from {} by {} at {}: not delivered again",
                terminal(given),
                entry.id,
                terminal(&before.by),
                rfc3339(before.at)
            )));
        }
        if !chosen.iter().any(|c| c == given) {
            chosen.push(given.to_string());
        }
    }
    Ok(chosen)
}

/// `chosen` (addresses as given) resolved for delivery.
fn release_recipients(services: &Services, chosen: &[String]) -> Result<Vec<Recipient>, CliError> {
    chosen
        .iter()
        .map(|address| {
            delivery::admit(&services.config.mailbox, &services.users, address).map_err(|e| {
                CliError::BadRecipient(format!(
                    "{}: not deliverable here any more ({e})",
                    terminal(address)
                ))
            })
        })
        .collect()
}
