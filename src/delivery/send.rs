//! What a recipient's Plan sends, after its stores and before its reply:
//!
//! 1. **Redirects** go to `[notify] relay` now, during the delivery, each within
//!    `[sieve] redirect_timeout_secs`, with the original envelope sender (the null sender
//!    stays null). They are not queued: if the relay refuses one or cannot be reached and
//!    nothing was stored for this recipient, the recipient gets 451 and the MTA keeps the
//!    message ([`Deferral::RedirectFailed`]); if a copy was stored, the reply stays 250 and
//!    the failure is logged (the message is in the mailbox, nothing is lost).
//! 2. **Vacation replies and notifications** go into the outbox queue (from `<>`, kind
//!    `vacation` / `notify`); notifications at most one per user per
//!    `[sieve] notify_min_interval_secs`.
//! 3. **Duplicate ids and vacation records** ([`Plan::remember`]) are written.
//!
//! A redirect that reached the relay is remembered for a day per user, Message-ID and
//! target (as Pigeonhole's redirect duplicate tracking, `CMD_REDIRECT_DUPLICATE_KEEP`), so
//! when a second redirect of the same delivery fails and the MTA retries, the first target
//! does not get the message twice.
//!
//! Steps 2 and 3 run only when the delivery succeeded, so a deferred delivery that the MTA
//! retries neither answers twice nor takes itself for a duplicate. The virus policy has
//! already removed every one of these for infected mail ([`Plan::enforce_virus_policy`]).

use std::time::{Duration, SystemTime};

use super::{Deferral, RcptOutcome, Services};
use crate::address::Recipient;
use crate::filter::{Action, Plan, SendKind, REDIRECTED_BY};
use crate::outbound::relay;
use crate::outbound::Timeouts;
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

/// How long a sent redirect is remembered (Pigeonhole: one day).
const REDIRECT_MEMORY: Duration = Duration::from_secs(86_400);

/// The longest wait for the relay's TCP connect within a redirect's deadline.
const REDIRECT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Carries out the sending part of `plan` for `rcpt` after the stores ended in `outcome`,
/// and returns the recipient's final outcome. `header` is this recipient's trace header
/// block and `body` the message as received (a redirect with edits sends those instead); `mail_from` the envelope sender (`""`: `<>`);
/// `message_id` the message's `<Message-ID>` or `""`.
/// Runs on a blocking thread (the pipeline's `spawn_blocking`).
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub fn send(
    services: &Services,
    mail_from: &str,
    message_id: &str,
    rcpt: &Recipient,
    plan: &Plan,
    (header, body): (&[u8], &[u8]),
    outcome: RcptOutcome,
    notes: &mut Vec<String>,
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
    let mut redirect_failed = false;
    let redirects = plan.actions.iter().filter_map(|a| match a {
        Action::Redirect { to, edited } => Some((to, edited.as_deref().unwrap_or(body))),
        _ => None,
    });
    for (to, content) in redirects {
        let sent_key = (!message_id.is_empty()).then(|| {
            format!(
                "sieve-redirect:{}:{message_id}:{}",
                user.to_ascii_lowercase(),
                to.to_ascii_lowercase()
            )
        });
        let already = sent_key.as_deref().is_some_and(|key| {
            matches!(
                services.state.cache_get(key, SystemTime::now()),
                Ok(Some(_))
            )
        });
        if already {
            notes.push(format!(
                "redirect to <{to}> not sent again: already sent within a day"
            ));
            continue;
        }
        match redirect(services, mail_from, &user, to, header, content) {
            Ok(reply) => {
                tracing::info!(%user, %to, relay_reply = %reply, "redirected");
                notes.push(format!("redirected to <{to}>"));
                if let Some(key) = &sent_key {
                    let until = SystemTime::now() + REDIRECT_MEMORY;
                    if let Err(error) = services.state.cache_put(key, "1", until) {
                        tracing::warn!(%error, %user, "cannot remember a sent redirect");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%user, %to, %error, "redirect failed");
                notes.push(format!("redirect to <{to}> failed: {error}"));
                redirect_failed = true;
            }
        }
    }
    if redirect_failed && matches!(outcome, RcptOutcome::Discarded) {
        // No copy anywhere: the MTA must keep the message.
        return RcptOutcome::Deferred(Deferral::RedirectFailed);
    }
    let now = SystemTime::now();
    for action in &plan.actions {
        let Action::Send { kind, to, message } = action else {
            continue;
        };
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
    for remember in &plan.remember {
        if let Err(error) = services
            .state
            .cache_put(&remember.key, "1", now + remember.ttl)
        {
            tracing::warn!(%error, %user, "cannot remember duplicate/vacation id");
        }
    }
    outcome
}

/// One redirect: `REDIRECTED_BY: <user>`, then this recipient's trace headers (with its
/// `Delivered-To`, which lets the next hop see the loop), then the message (`body`: as
/// editheader left it when the script redirected, like a stored copy).
fn redirect(
    services: &Services,
    mail_from: &str,
    user: &str,
    to: &str,
    header: &[u8],
    body: &[u8],
) -> Result<String, String> {
    let mut message = Vec::with_capacity(header.len() + body.len() + 80);
    message.extend_from_slice(format!("{REDIRECTED_BY}: {user}\r\n").as_bytes());
    message.extend_from_slice(header);
    message.extend_from_slice(body);
    let deadline = services.config.sieve.redirect_timeout;
    let timeouts = Timeouts {
        connect: REDIRECT_CONNECT_TIMEOUT.min(deadline),
        command: deadline,
        transaction: deadline,
    };
    // The pipeline runs on a blocking thread of the server's runtime: waiting here holds
    // that thread only, and the reply waits for this recipient anyway.
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "no async runtime to reach the relay".to_string())?;
    handle
        .block_on(relay::send(
            &services.config.notify.relay,
            &services.config.server.hostname,
            mail_from,
            &[to.to_string()],
            &message,
            timeouts,
        ))
        .map_err(|e| e.to_string())
}
