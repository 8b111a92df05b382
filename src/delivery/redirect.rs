//! A recipient's redirects on their way out of the delivery: handed to the outbox
//! ([`queue`]: a committed row; the delivery never waits on the relay) or, without a
//! durable state store, sent now by the async stage ([`send_now`]); each remembered for a
//! day per user, Message-ID and target, claimed before it is handed over so two
//! deliveries of one message redirect it once; and the failure keep into INBOX when one is
//! refused for good (`keep_now`). The rules are in [`super::send`]'s module doc; this is
//! the machinery [`super::send::send`] drives.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::{RcptOutcome, Services};
use crate::filter::{Action, Plan, REDIRECTED_BY};
use crate::mail::address::Recipient;
use crate::outbound::redirect::SentNow;
use crate::outbound::{OutboxError, Redirect};
use crate::store::{Folder, Maildir, SystemFlags};

/// How long a queued redirect is remembered (Pigeonhole: one day).
pub(super) const REDIRECT_MEMORY: Duration = Duration::from_secs(86_400);

/// How a redirect left the delivery.
#[derive(Debug, Clone)]
pub enum Handed {
    /// Its row is committed in the outbox (durable): the outbox sends it.
    Queued(i64),
    /// Sent now (no durable queue); the relay's reply.
    Sent(String),
    /// Refused for good now (an address we cannot write, or a 5xx): keep it instead.
    Refused(String),
    /// Neither queued nor sent: the MTA must keep the message unless a copy is stored.
    Failed(String),
}

/// True when `plan`'s redirects must be sent now rather than queued (no durable state
/// store, and the stores went well enough for anything to go out): the blocking stage then
/// leaves this recipient's sending part to [`send_now`] and [`send`](super::send::send) after it.
pub fn sends_now(services: &Services, plan: &Plan, outcome: &RcptOutcome) -> bool {
    !services.state.is_durable()
        && matches!(
            outcome,
            RcptOutcome::Delivered { .. } | RcptOutcome::Discarded
        )
        && plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Redirect { .. }))
}

/// Queues `redirect` in the outbox (durable: the row is committed). Without a durable
/// store the pipeline sends instead ([`sends_now`]); should one get here, it is a failure
/// (451 unless a copy is stored), never a wait on the relay from a blocking thread.
pub fn queue(services: &Services, redirect: &Redirect<'_>) -> Handed {
    if !services.state.is_durable() {
        return Handed::Failed("no durable state store to queue the redirect".to_string());
    }
    match services.outbox.enqueue_redirect(redirect) {
        Ok(id) => Handed::Queued(id),
        Err(e @ OutboxError::BadAddress(_)) => Handed::Refused(e.to_string()),
        Err(e) => Handed::Failed(e.to_string()),
    }
}

/// Sends `plan`'s redirects now, each within `[sieve] redirect_timeout_secs` (the relay
/// client's bound), for a recipient [`sends_now`] picked: the answers by target, for
/// [`send`](super::send::send) to act on. Targets already redirected within a day are skipped, as [`send`](super::send::send)
/// skips them. Async: awaited after the blocking stage, on the runtime.
#[allow(clippy::too_many_arguments)] // mirrors `send`
pub async fn send_now(
    services: &Services,
    mail_from: &str,
    message_id: &str,
    rcpt: &Recipient,
    plan: &Plan,
    (header, body): (&[u8], &[u8]),
    outcome: &RcptOutcome,
) -> HashMap<String, Handed> {
    let user = rcpt.user();
    let mark = format!("{REDIRECTED_BY}: {user}");
    let mut handed = HashMap::new();
    for action in &plan.actions {
        let Action::Redirect { to, edited } = action else {
            continue;
        };
        if handed.contains_key(to) || already_sent(services, &user, message_id, to) {
            continue;
        }
        let redirect = Redirect {
            from: mail_from,
            to,
            owner: &rcpt.original,
            inbox_copy: has_inbox_copy(outcome),
            mark: &mark,
            header,
            content: edited.as_deref().unwrap_or(body),
        };
        let answer = match services.outbox.send_redirect_now(&redirect).await {
            SentNow::Sent(reply) => Handed::Sent(reply),
            SentNow::Refused(error) => Handed::Refused(error),
            SentNow::Failed(error) => Handed::Failed(error),
        };
        handed.insert(to.clone(), answer);
    }
    handed
}

/// The key that remembers a redirect of `message_id` by `user` to `to` for a day; `None`
/// without a Message-ID (nothing to recognise a retry by).
pub(super) fn sent_key(user: &str, message_id: &str, to: &str) -> Option<String> {
    (!message_id.is_empty()).then(|| {
        format!(
            "sieve-redirect:{}:{message_id}:{}",
            user.to_ascii_lowercase(),
            to.to_ascii_lowercase()
        )
    })
}

/// Whether a redirect may go out, and whether this delivery holds its record.
pub(super) enum Claim {
    /// Sent within the last day (a retried delivery, or another host just now).
    AlreadySent,
    /// This delivery set the record: it stays if the redirect is queued or sent, and is
    /// released (expired) if not.
    Claimed,
    /// Not claimed (no durable store, no Message-ID, or the store failed): the record is
    /// written after the redirect went out, as a plain put.
    Unclaimed,
}

/// With a durable (possibly shared) store, the redirect's record is claimed before the
/// redirect is handed over ([`StateStore::remember_once`](crate::state::StateStore::remember_once)),
/// so two deliveries of one message at once (an MTA retry on another host while the first
/// still runs) redirect it once. A store that fails to answer lets the redirect go (as a
/// failed lookup always did: a message is redirected once more rather than not at all).
/// Without a durable store redirects are sent in the async stage ([`send_now`], which
/// checks with [`already_sent`]), so the check-then-put of before stays.
pub(super) fn claim_redirect(services: &Services, key: Option<&str>, user: &str) -> Claim {
    let Some(key) = key else {
        return Claim::Unclaimed;
    };
    if !services.state.is_durable() {
        return match services.state.cache_get(key, SystemTime::now()) {
            Ok(Some(_)) => Claim::AlreadySent,
            _ => Claim::Unclaimed,
        };
    }
    let now = SystemTime::now();
    match services
        .state
        .remember_once(key, now + REDIRECT_MEMORY, now)
    {
        Ok(true) => Claim::Claimed,
        Ok(false) => Claim::AlreadySent,
        Err(error) => {
            tracing::warn!(%error, %user, "redirect record cannot be claimed: redirecting");
            Claim::Unclaimed
        }
    }
}

/// True when this redirect went out within the last day (a retried delivery).
pub(super) fn already_sent(services: &Services, user: &str, message_id: &str, to: &str) -> bool {
    sent_key(user, message_id, to).is_some_and(|key| {
        matches!(
            services.state.cache_get(&key, SystemTime::now()),
            Ok(Some(_))
        )
    })
}

/// True when the delivery stored a copy into the recipient's INBOX.
pub(super) fn has_inbox_copy(outcome: &RcptOutcome) -> bool {
    matches!(outcome, RcptOutcome::Delivered { stored } if stored.iter().any(|s| s.folder.is_inbox()))
}

/// The failure keep during the delivery, for a redirect refused for good (`error`) before
/// it could be queued: the message as it would have been redirected (this recipient's
/// trace fields and the content) into INBOX, unless a copy is there already. Returns the
/// recipient's outcome with that copy; when the store fails and nothing else was stored,
/// the store's failure (4xx: the MTA keeps the message).
pub(super) fn keep_now(
    services: &Services,
    rcpt: &Recipient,
    redirect: &Redirect<'_>,
    error: &str,
    outcome: RcptOutcome,
    notes: &mut Vec<String>,
) -> RcptOutcome {
    let user = rcpt.user();
    let to = redirect.to;
    if has_inbox_copy(&outcome) {
        tracing::warn!(%user, %to, %error, "redirect refused for good: the copy in INBOX stays");
        notes.push(format!(
            "redirect to <{to}> refused: {error}; the copy in INBOX stays"
        ));
        services.filter.note_to_user(
            rcpt,
            &format!("redirect to <{to}> failed: {error}; your copy in INBOX stays"),
        );
        return outcome;
    }
    let mailbox = &services.config.mailbox;
    let stored = Maildir::new(rcpt.expand(&mailbox.maildir))
        .with_ownership(mailbox.ownership)
        .store(
            &Folder::inbox(),
            SystemFlags::default(),
            false,
            &[redirect.header, redirect.content],
        );
    match (stored, outcome) {
        (Ok(copy), outcome) => {
            tracing::warn!(%user, %to, %error, path = %copy.path.display(), "redirect refused for good: failure keep into INBOX");
            notes.push(format!(
                "redirect to <{to}> refused: {error}; kept in INBOX"
            ));
            services.filter.note_to_user(
                rcpt,
                &format!(
                    "redirect to <{to}> failed: {error}; the message was kept in INBOX instead"
                ),
            );
            match outcome {
                RcptOutcome::Delivered { mut stored } => {
                    stored.push(copy);
                    RcptOutcome::Delivered { stored }
                }
                _ => RcptOutcome::Delivered { stored: vec![copy] },
            }
        }
        (Err(store_error), RcptOutcome::Discarded) => {
            tracing::error!(%user, %to, %error, store_error = %store_error, "redirect refused and its failure keep failed: deferring");
            RcptOutcome::Failed { error: store_error }
        }
        (Err(store_error), outcome) => {
            tracing::error!(%user, %to, %error, store_error = %store_error, "redirect refused and its failure keep failed; another copy is stored");
            notes.push(format!("redirect to <{to}> refused: {error}"));
            outcome
        }
    }
}
