//! `quarantine release` through the front door: the rescan (its own rule: a failed rescan
//! releases nothing), then [`super::deliver_scanned`] for the recipients chosen
//! ([`crate::quarantine::admin::release_choice`]) and admitted ([`super::admit()`]). Per
//! recipient: each recipient of an entry is delivered once; the entry records who was
//! released, when and by whom (see [`release`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::delivery::{self, Client, Envelope, RcptOutcome, Route, Services};
use crate::mail::address::Recipient;
use crate::quarantine::admin::{release_choice, terminal, AdminError};
use crate::quarantine::{Quarantine, QuarantineError};
use crate::scan::Verdict;
use crate::state::StateStore;

/// How long a recipient's release claim lasts when its holder neither finishes nor gives
/// it back (a crash): far longer than a rescan and a delivery take.
pub const RELEASE_LEASE: Duration = Duration::from_secs(600);

/// One recipient's release in progress, held in the state store (so on every host
/// sharing it); given back when dropped, however the release ended.
pub struct ReleaseClaim {
    key: String,
    state: Arc<dyn StateStore>,
}

impl Drop for ReleaseClaim {
    fn drop(&mut self) {
        if let Err(error) = self.state.cache_put(&self.key, "1", SystemTime::now()) {
            tracing::warn!(%error, key = %self.key, "cannot give back a release claim; it ends with its lease");
        }
    }
}

/// Claims each of `rcpts` of entry `id` for this release (or the web page's delete), or
/// none: one that another process holds is [`AdminError::InProgress`].
pub fn claim(q: &Quarantine, id: &str, rcpts: &[String]) -> Result<Vec<ReleaseClaim>, AdminError> {
    let now = SystemTime::now();
    let until = now.checked_add(RELEASE_LEASE).unwrap_or(now);
    let mut held = Vec::with_capacity(rcpts.len());
    for rcpt in rcpts {
        let key = format!("quarantine-release:{id}:{}", rcpt.to_ascii_lowercase());
        let state = Arc::clone(q.state());
        if !state
            .remember_once(&key, until, now)
            .map_err(QuarantineError::from)?
        {
            return Err(AdminError::InProgress(format!(
                "{} of {id} is being released right now (by another host, the web page or another run): nothing done, try again in a moment",
                terminal(rcpt)
            )));
        }
        held.push(ReleaseClaim { key, state });
    }
    Ok(held)
}

/// What `release` did for one recipient.
#[derive(Debug)]
pub struct Released {
    /// The address.
    pub rcpt: String,
    /// Its outcome.
    pub outcome: RcptOutcome,
}

/// `quarantine release ID [--rcpt ADDR]... [--force]`: rescans; clean (or a signature that
/// `ignore_signatures` now ignores for every recipient chosen) → the full pipeline (Sieve
/// included); still infected → refused, or with `force` stored into INBOX without Sieve. Release is per recipient: without `--rcpt`, every recipient still held; a
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
) -> Result<Vec<Released>, AdminError> {
    let entry = q.get(id)?;
    let first = release_choice(&entry, only)?;
    // Two processes releasing one recipient at once (two hosts, the web page and the CLI)
    // would both deliver: each recipient is claimed in the state store first, and the
    // choice is made again from the entry as it is once the claims are held.
    let _claims = claim(q, id, &first)?;
    let entry = q.get(id)?;
    let chosen = release_choice(&entry, only)?;
    let rcpts = release_recipients(services, &chosen)?;
    let message = q.raw(id)?;
    let verdict = services
        .scanner
        .scan(&message)
        .await
        .map_err(|e| AdminError::Rescan {
            id: id.to_string(),
            message: e.to_string(),
        })?;
    // A signature the chosen recipients' policy now ignores (the admin accepted the false
    // positive after it was held) is as good as clean for them: the pipeline reads it the
    // same way, so none of them is quarantined again.
    let ignored_for_all = verdict.virus_name().is_some()
        && (rcpts.iter()).all(|r| {
            super::policy::for_recipient(&services.config, r, &verdict)
                .ignored
                .is_some()
        });
    let route = match verdict {
        Verdict::Clean => Route::Released {
            by: user.to_string(),
        },
        _ if ignored_for_all => {
            tracing::info!(quarantine_id = %id, user, %verdict, "released: ignore_signatures makes it clean for every recipient chosen");
            Route::Released {
                by: user.to_string(),
            }
        }
        _ if force => {
            tracing::warn!(quarantine_id = %id, user, %verdict, "forced release of a message that is not clean: INBOX without Sieve");
            Route::Inbox {
                released_by: user.to_string(),
            }
        }
        other => {
            return Err(AdminError::StillInfected {
                id: id.to_string(),
                verdict: other.to_string(),
            })
        }
    };
    // A sample mailbox never gets infected mail stored, not even by force: it fetches the
    // entry raw instead (`quarantine show --raw`).
    if let (Route::Inbox { .. }, Some(sample)) = (
        &route,
        (rcpts.iter()).find(|r| (services.config.quarantine).is_sample_recipient(&r.user())),
    ) {
        return Err(AdminError::BadRecipient(format!(
            "{}: a sample recipient never gets infected mail in its mailbox; it reads the entry with `quarantine show --raw {id}`",
            terminal(&sample.original)
        )));
    }
    let envelope = Envelope {
        id: crate::mail::envelope::new_id(),
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
        return Err(AdminError::Delivery {
            id: id.to_string(),
            failed,
            total,
        });
    }
    Ok(released)
}

/// `chosen` (addresses as given) resolved for delivery.
fn release_recipients(
    services: &Services,
    chosen: &[String],
) -> Result<Vec<Recipient>, AdminError> {
    chosen
        .iter()
        .map(|address| {
            delivery::admit(&services.config.mailbox, &services.users, address).map_err(|e| {
                AdminError::BadRecipient(format!(
                    "{}: not deliverable here any more ({e})",
                    terminal(address)
                ))
            })
        })
        .collect()
}
