//! What a recipient's Plan sends, after its stores and before its reply:
//!
//! 1. **Redirects** are queued in the outbox ([`crate::outbound::redirect`]), with the
//!    original envelope sender (the null sender stays null). The recipient's 250 means
//!    the redirect's row is committed in the state store, not that the relay took it: the
//!    delivery never waits on the relay. When the relay later refuses it for good, the
//!    outbox keeps the message in this recipient's INBOX (failure keep), logged and noted
//!    in the user's Sieve log; nothing is dropped or bounced.
//!    - A sender or target that cannot be written as an SMTP path: the failure keep is
//!      done here, now (the message into INBOX, unless a copy is already there).
//!    - The row cannot be written (state store error) and nothing was stored for this
//!      recipient: 451, the MTA keeps the message ([`Deferral::RedirectFailed`]); with a
//!      stored copy the reply stays 250 and the failure is logged.
//!    - Without a durable state store (no `[state] dir`) a queued row would not survive a
//!      restart, so the redirect is sent now instead, within `[sieve]
//!      redirect_timeout_secs`: a permanent refusal does the failure keep at once; any
//!      other failure gives 451 when nothing was stored, as above. The blocking stage
//!      never waits on the relay: such a recipient's sending part is left to
//!      [`send_now`](super::redirect::send_now), which the pipeline awaits after the blocking stage, and the rest of
//!      [`send`] (failure keep, vacation, memory) runs after it, before the reply.
//! 2. **Vacation replies and notifications** go into the outbox queue (from `<>`, kind
//!    `vacation` / `notify`); notifications at most one per user per
//!    `[sieve] notify_min_interval_secs`.
//! 3. **Duplicate ids and vacation records** ([`Plan::remember`]) are written.
//!
//! **A vacation reply at most once per sender and period, even across hosts.** The
//! script's lookup ran before the delivery and cannot see a delivery of the same sender
//! running at the same moment (on this host or another sharing the store). So before the
//! reply is queued, its record is claimed with [`StateStore::remember_once`](crate::state::StateStore::remember_once) (one atomic
//! insert-if-absent): only the delivery whose claim succeeds queues the reply; the others
//! note "already answered". The rule when something fails is "never two replies, never
//! lose the message": the message is already stored when the claim runs, so a claim that
//! fails (store unreachable) sends no reply (logged), and a reply that cannot be queued
//! after a successful claim is not sent this period (logged). Plain `duplicate` ids and
//! `:last` refreshes are written with `cache_put` as before (they decide nothing after the
//! delivery).
//!
//! A queued (or sent) redirect is remembered for a day per user, Message-ID and target (as
//! Pigeonhole's redirect duplicate tracking, `CMD_REDIRECT_DUPLICATE_KEEP`), so when the
//! MTA retries a delivery (a second redirect could not be queued), the first target does
//! not get the message twice. With a durable store the record is claimed atomically before
//! the redirect is queued and released if it is not, so two deliveries of the same message
//! at once (on two hosts) queue it once.
//!
//! Steps 2 and 3 run only when the delivery succeeded, so a deferred delivery that the MTA
//! retries neither answers twice nor takes itself for a duplicate. The `duplicate` claims
//! the plan holds ([`Plan::claims`]) are released when the plan is dropped, whatever the
//! outcome and whether or not the delivery got here: after step 3 wrote the records, so a
//! delivery of the same message waiting on a claim finds the record ("seen") or, when this
//! one failed, takes the claim ("not seen"); see [`crate::filter::memory`]. The virus policy has
//! already removed every one of these for infected mail ([`Plan::enforce_virus_policy`]).

use std::time::SystemTime;

use super::redirect::{
    claim_redirect, has_inbox_copy, keep_now, sent_key, Claim, Handed, REDIRECT_MEMORY,
};
use super::{Deferral, RcptOutcome, Services};
use crate::filter::memory::is_vacation_key;
use crate::filter::{Action, Plan, SendKind, REDIRECTED_BY};
use crate::mail::address::Recipient;
use crate::outbound::Redirect;
use crate::state::RateDecision;

/// `reject` with `[sieve] allow_reject_mdn` (RFC 5429 §2.1): the message is accepted and
/// discarded, and a rejection MDN is queued to the envelope sender, except when that would
/// answer nobody or an automatic sender (then it is only discarded). `None` when the MDN
/// cannot be queued: the caller keeps the protocol-level 550, so nothing is lost.
fn reject_by_mdn(
    services: &Services,
    mail_from: &str,
    message_id: &str,
    rcpt: &Recipient,
    reason: &str,
    body: &[u8],
    notes: &mut Vec<String>,
) -> Option<RcptOutcome> {
    if let Some(why) = crate::report::mdn::must_not_answer(mail_from, body) {
        notes.push(format!(
            "reject: discarded without a rejection message: {why}"
        ));
        return Some(RcptOutcome::Discarded);
    }
    let mdn = crate::report::mdn::Rejection {
        hostname: &services.config.server.hostname,
        to: mail_from,
        rcpt: &rcpt.original,
        reason,
        original_message_id: message_id,
        original_headers: crate::report::header_section(body),
    };
    let queued = crate::report::mdn::build(&mdn)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            services
                .outbox
                .enqueue("reject-mdn", "", &[mail_from.to_string()], bytes)
                .map_err(|e| e.to_string())
        });
    match queued {
        Ok(_) => {
            notes.push(format!(
                "rejected: rejection message queued to <{mail_from}>"
            ));
            Some(RcptOutcome::Discarded)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot queue the rejection message: refusing in the protocol");
            None
        }
    }
}

/// Carries out the sending part of `plan` for `rcpt` after the stores ended in `outcome`,
/// and returns the recipient's final outcome. `header` is this recipient's trace header
/// block and `body` the message as received (a redirect with edits sends those instead); `mail_from` the envelope sender (`""`: `<>`);
/// `message_id` the message's `<Message-ID>` or `""`.
/// `hand` gives each redirect to the outbox: [`queue`](super::redirect::queue) on the blocking stage, or the
/// answers [`send_now`](super::redirect::send_now) got (looked up by target). Blocking (state store writes, a failure
/// keep's store): runs on a blocking thread, never waits on a peer.
///
/// The plan's `duplicate` claims are released when the caller drops the plan, after this
/// wrote the records (when it succeeded): see [`crate::filter::memory::Claim`].
#[allow(clippy::too_many_arguments)] // two call sites; a struct would only rename them
pub fn send(
    services: &Services,
    mail_from: &str,
    message_id: &str,
    rcpt: &Recipient,
    plan: &Plan,
    (header, body): (&[u8], &[u8]),
    outcome: RcptOutcome,
    notes: &mut Vec<String>,
    hand: &mut dyn FnMut(&Redirect<'_>) -> Handed,
) -> RcptOutcome {
    if let RcptOutcome::Rejected {
        reason,
        extended: false,
    } = &outcome
    {
        if services.config.sieve.allow_reject_mdn {
            return reject_by_mdn(services, mail_from, message_id, rcpt, reason, body, notes)
                .unwrap_or(outcome);
        }
    }
    if !matches!(
        outcome,
        RcptOutcome::Delivered { .. } | RcptOutcome::Discarded
    ) {
        // Rejected, failed or deferred: nothing goes out, nothing is remembered.
        return outcome;
    }
    let user = rcpt.user();
    let mut outcome = outcome;
    let mut redirect_failed = false;
    let mark = format!("{REDIRECTED_BY}: {user}");
    let redirects = plan.actions.iter().filter_map(|a| match a {
        Action::Redirect { to, edited } => Some((to, edited.as_deref().unwrap_or(body))),
        _ => None,
    });
    for (to, content) in redirects {
        let sent_key = sent_key(&user, message_id, to);
        let claimed = match claim_redirect(services, sent_key.as_deref(), &user) {
            Claim::AlreadySent => {
                notes.push(format!(
                    "redirect to <{to}> not sent again: already sent within a day"
                ));
                continue;
            }
            Claim::Claimed => true,
            Claim::Unclaimed => false,
        };
        let release = || {
            if let (true, Some(key)) = (claimed, &sent_key) {
                // Expired at once: the MTA's retry (or another delivery) may send it.
                if let Err(error) = services.state.cache_put(key, "1", SystemTime::now()) {
                    tracing::warn!(%error, %user, "cannot release a redirect's record");
                }
            }
        };
        let redirect = Redirect {
            from: mail_from,
            to,
            owner: &rcpt.original,
            inbox_copy: has_inbox_copy(&outcome),
            mark: &mark,
            header,
            content,
        };
        let refused = match hand(&redirect) {
            Handed::Queued(id) => {
                tracing::info!(%user, %to, queue_id = id, "redirect queued");
                notes.push(format!("redirect to <{to}> queued"));
                None
            }
            Handed::Sent(reply) => {
                tracing::info!(%user, %to, relay_reply = %reply, "redirected");
                notes.push(format!("redirected to <{to}>"));
                None
            }
            Handed::Refused(error) => Some(error),
            Handed::Failed(error) => {
                release();
                tracing::warn!(%user, %to, %error, "redirect failed");
                notes.push(format!("redirect to <{to}> failed: {error}"));
                redirect_failed = true;
                continue;
            }
        };
        match refused {
            None if claimed => {}
            None => {
                if let Some(key) = &sent_key {
                    let until = SystemTime::now() + REDIRECT_MEMORY;
                    if let Err(error) = services.state.cache_put(key, "1", until) {
                        tracing::warn!(%error, %user, "cannot remember a queued redirect");
                    }
                }
            }
            Some(error) => {
                release();
                outcome = keep_now(services, rcpt, &redirect, &error, outcome, notes);
            }
        }
    }
    if redirect_failed && matches!(outcome, RcptOutcome::Discarded) {
        // No copy anywhere: the MTA must keep the message.
        return RcptOutcome::Deferred(Deferral::RedirectFailed);
    }
    let now = SystemTime::now();
    // The first vacation record is the reply's claim (every delivery of the same message
    // to the same user has the same records in the same order, so they race on the same
    // key); the other records are written after the sends, as before.
    let vacation_claim = plan
        .remember
        .iter()
        .position(|r| is_vacation_key(&user, &r.key));
    let reply_allowed = match vacation_claim.map(|i| &plan.remember[i]) {
        None => true,
        Some(record) => services
            .state
            .remember_once(&record.key, now + record.ttl, now)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, %user, "vacation record cannot be claimed: no reply (never two)");
                false
            }),
    };
    for action in &plan.actions {
        let Action::Send { kind, to, message } = action else {
            continue;
        };
        if *kind == SendKind::Vacation && !reply_allowed {
            notes.push(format!(
                "vacation to {} not sent: already answered within the period (or the record cannot be written)",
                to.join(", ")
            ));
            continue;
        }
        if *kind == SendKind::Notify {
            let key = format!("sieve-notify:{}", user.to_ascii_lowercase());
            match services
                .state
                .rate_check(&key, services.config.sieve.notify_min_interval, now)
            {
                Ok(RateDecision::Send { .. }) => {}
                Ok(RateDecision::Suppress) => {
                    notes.push(format!(
                        "notify to {} suppressed: rate limit",
                        to.join(", ")
                    ));
                    continue;
                }
                Err(error) => {
                    // Without the counter we cannot tell: one notification too many is
                    // better than none when the user asked for it.
                    tracing::warn!(%error, %user, "notify rate check failed: sending");
                }
            }
        }
        // RFC 3834 §3.3 / RFC 5436 §2.3: automatic responses go from the null sender, so
        // they can never cause a bounce loop.
        match services
            .outbox
            .enqueue(kind.as_str(), "", to, message.clone())
        {
            Ok(_) => notes.push(format!("{} queued to {}", kind.as_str(), to.join(", "))),
            Err(error) => {
                tracing::warn!(%error, %user, kind = kind.as_str(), "cannot queue");
                notes.push(format!("{} not sent: {error}", kind.as_str()));
            }
        }
    }
    for (i, remember) in plan.remember.iter().enumerate() {
        let written = if Some(i) == vacation_claim {
            continue;
        } else if is_vacation_key(&user, &remember.key) {
            services
                .state
                .remember_once(&remember.key, now + remember.ttl, now)
                .map(|_| ())
        } else {
            services
                .state
                .cache_put(&remember.key, "1", now + remember.ttl)
        };
        if let Err(error) = written {
            tracing::warn!(%error, %user, "cannot remember duplicate/vacation id");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::filter::memory::{key, Memory, VacationPeriods};
    use crate::filter::Remember;
    use crate::state::{MemoryState, StateStore};

    /// The `duplicate` claim a plan holds is released whatever way the delivery ends, and
    /// only once the plan is gone: a deferred delivery leaves no record (its retry is not a
    /// duplicate) and frees the claim; a discarded (successful) one writes the record
    /// first; a plan dropped without reaching `send` (a failed quarantine write, a panic,
    /// the async stage failing) frees it too.
    #[test]
    fn claims_are_released_after_any_outcome_records_only_after_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"mx.example.test\"\n\
                    [scanner]\nclamd = \"unix:/nonexistent/clamd.sock\"\n\
                    [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"vmail/%d/%n/Maildir\"\n";
        let config = Config::from_toml(toml, &dir.path().join("sievegate.toml")).expect("config");
        let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
        let memory = Memory {
            state: Arc::clone(&state),
            vacation: VacationPeriods::default(),
        };
        let services = Services::with_state(config, Arc::clone(&state));
        let rcpt = Recipient::resolve("alice@example.test", &["example.test".into()], "+")
            .expect("recipient");
        let user = rcpt.user();
        let deferred = || Some(RcptOutcome::Deferred(Deferral::Internal));
        for (case, outcome, recorded) in [
            ("deferred", deferred(), false),
            ("discarded", Some(RcptOutcome::Discarded), true),
            ("never sent", None, false),
        ] {
            let id = format!("<{case}@x>");
            let now = SystemTime::now();
            let lookup = memory.lookup(&user, &id, 3600, false, now, &[]);
            assert!(!lookup.seen, "{case}");
            let claim = lookup.claim.expect("claimed");
            let claim_key = claim.key().to_string();
            let record = key(&user, &id);
            let plan = Plan {
                remember: vec![Remember {
                    key: record.clone(),
                    ttl: Duration::from_secs(3600),
                }],
                claims: vec![claim],
                ..Plan::default()
            };
            let take = |at: SystemTime| {
                state
                    .remember_once(&claim_key, at + Duration::from_secs(120), at)
                    .expect("claim again")
            };
            if let Some(outcome) = outcome {
                let mut notes = Vec::new();
                let _ = send(
                    &services,
                    "bob@remote.example",
                    "<1@x>",
                    &rcpt,
                    &plan,
                    (b"", b"Subject: x\r\n\r\nx\r\n"),
                    outcome,
                    &mut notes,
                    &mut |_| unreachable!("no redirect"),
                );
            }
            assert!(
                !take(SystemTime::now()),
                "{case}: held while the plan lives"
            );
            drop(plan);
            let later = SystemTime::now() + Duration::from_millis(1);
            assert_eq!(
                state.cache_get(&record, later).expect("get").is_some(),
                recorded,
                "{case}"
            );
            assert!(take(later), "{case}: released");
        }
    }
}
