//! The pipeline for one received message: scan once, then for each recipient run Sieve to a
//! Plan, add that recipient's trace headers, execute the Plan against the recipient's
//! Maildir, and log one line. Its callers (the LMTP session today) only turn the returned
//! outcomes into their own kind of answer.
//!
//! # Failure rules
//! - The scan fails (clamd down, timeout, error): with `on_failure = "tempfail"` every
//!   recipient is [`RcptOutcome::Deferred`] and nothing is stored; with
//!   `"deliver-unscanned"` the message goes on with `virustest` 0.
//! - A message larger than `[scanner] max_scan_size`, or one clamd refuses as over its own
//!   `StreamMaxLength`, is not scanned and goes on with `virustest` 0
//!   ([`Verdict::TooLarge`]): retrying could never change that, and a 4xx loop ends in a
//!   bounce. Admins who would rather refuse such mail set `max_message_size` to at most
//!   `max_scan_size` (`check-config` warns when it is larger).
//! - With `[quarantine] enabled` and a `virustest` of at least `min_virustest`, the message
//!   is quarantined once, before any recipient is handled. If that write fails, every
//!   recipient is [`RcptOutcome::Deferred`] (451) and nothing is stored: the MTA still has
//!   the message. Otherwise the recipients' outcomes are what Sieve and the virus policy
//!   make of it (a discard for infected mail), logged as `quarantined <id>`.
//! - A panic while one recipient is handled defers that recipient only: the others keep the
//!   outcome they already have, so a retry does not duplicate their copies.
//! - A panic in a per-message step degrades that step alone, never every recipient:
//!   - the MIME view or parse: Sieve sees an empty message (no header fields, no body; the
//!     virus verdict and the stored copy do not depend on it), noted in each log line;
//!   - the quarantine entry: handled as a failed quarantine write (above);
//!   - the postmaster notice and the abuse report (after every outcome is known): logged,
//!     that notice or report is lost, the replies are not touched.
//!
//!   What is left outside these guards (stripping forged scan headers, the shared trace
//!   header) runs before anything is stored; a panic there defers every recipient, the
//!   last resort.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::Instrument;

use super::execute::{execute_shared, SharedCopy};
use super::guard::{each_recipient, guarded};
use super::headers::{
    has_virus_headers, shared_trace_headers, strip_virus_headers, trace_headers,
    write_without_virus_headers, TraceInfo,
};
use super::later::{news, send_later, tell_others, Bytes, Later, News};
use super::log::{LogFields, LogLine};
use super::policy::{self, RcptPolicy};
use super::view::SieveView;
use super::{Deferral, RcptOutcome, Services};
use crate::filter::{Filter, FilterInput, ParsedMessage, Plan};
use crate::mail::address::Recipient;
pub use crate::mail::envelope::{Client, Envelope};
use crate::quarantine;
use crate::scan::Verdict;
use crate::spool::{self, MessageBytes};
use crate::store::maildir::Maildir;
use crate::store::Folder;

/// How the recipients get a message whose verdict is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The normal way: each recipient's Sieve chain, the virus policy, and the quarantine
    /// for infected mail.
    Sieve,
    /// A release from the quarantine (`quarantine release`, the web page, the admin view)
    /// of a message that is clean now: each recipient's Sieve chain as [`Route::Sieve`],
    /// except that a `quarantine` action is dropped (with the implicit keep when nothing
    /// else stores or redirects it): a person has just let the message out, and a global
    /// rule that still matches must not put it back. Not a new incident: no notice, no report.
    Released {
        /// Who released it.
        by: String,
    },
    /// `quarantine release --force` of a message that is still infected: one copy into
    /// each recipient's INBOX, without Sieve, the virus policy or the quarantine. The admin
    /// (`released_by`) is named in every log line.
    Inbox {
        /// Who forced the release.
        released_by: String,
    },
}

/// A released message's plan without its `quarantine` action ([`Route::Released`]); the
/// implicit keep stands in when nothing else would store or redirect the message.
fn drop_quarantine(mut plan: Plan, by: &str) -> Plan {
    if !plan.quarantines() {
        return plan;
    }
    plan.actions
        .retain(|a| *a != crate::filter::Action::Quarantine);
    plan.notes.push(format!(
        "quarantine ignored: released from the quarantine by {by}"
    ));
    if !plan.stores() && plan.redirects().next().is_none() {
        plan.actions.extend(Plan::implicit_keep().actions);
        plan.notes
            .push("implicit keep: nothing else stores the released message".to_string());
    }
    plan
}

/// Delivers `message` whose scan gave `verdict` (the front door after its scan, and
/// `quarantine release` after its rescan); one outcome per recipient, in order.
///
/// Two stages: the blocking one (Sieve, the stores, what is queued: on a blocking thread,
/// it never waits on a peer), then the async one on the runtime: redirects that must be
/// sent now (no durable state store, see [`super::send`]) and, for infected mail, the scan
/// of the header section the postmaster notice and the abuse report attach, and the report
/// itself on a task of its own.
pub async fn deliver_scanned(
    services: &Arc<Services>,
    envelope: &Envelope,
    message: impl Into<MessageBytes>,
    verdict: Verdict,
    route: Route,
) -> Vec<RcptOutcome> {
    let message = message.into();
    // Held until every recipient is done: the parse lives that long.
    let reservation = services.parse_budget.reserve(message.len()).await;
    let services_owned = Arc::clone(services);
    let envelope_owned = envelope.clone();
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        // Spoofable scan headers go before Sieve sees the message and before it is stored.
        let stripped = without_scan_headers(&services_owned, &message);
        let bytes = Bytes { message, stripped };
        let stage = deliver_all(
            &services_owned,
            &envelope_owned,
            &bytes.message,
            bytes.body(),
            &verdict,
            &route,
        );
        drop(reservation);
        (stage, Arc::new(bytes), verdict)
    });
    let (stage, bytes, verdict) = match task.await {
        Ok(done) => done,
        Err(e) => {
            // Only the preparation before the first recipient runs outside the per-recipient
            // guard, so nothing was stored yet: deferring everyone duplicates nothing.
            tracing::error!(error = %e, "delivery task failed before any recipient: every recipient is deferred");
            return envelope
                .rcpts
                .iter()
                .map(|_| RcptOutcome::Deferred(Deferral::Internal))
                .collect();
        }
    };
    let Stage {
        mut outcomes,
        later,
        log,
        news,
    } = stage;
    if !later.is_empty() {
        for (index, outcome) in send_later(services, envelope, &bytes, &verdict, &log, later).await
        {
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = outcome;
            }
        }
    }
    if let Some(news) = news {
        // Every recipient has its outcome now; a retry would tell them again.
        if !outcomes.iter().any(RcptOutcome::is_temporary_failure) {
            // On a task of its own, awaited: a bug in the notice or the report loses that
            // notice or report (the task's panic, logged), never the replies.
            let services = Arc::clone(services);
            let envelope = envelope.clone();
            let bytes = Arc::clone(&bytes);
            let verdict = verdict.clone();
            let span = tracing::Span::current();
            let told = tokio::spawn(
                async move {
                    tell_others(&services, &envelope, &bytes.message, &verdict, &log, news).await
                }
                .instrument(span),
            );
            if let Err(e) = told.await {
                tracing::error!(step = "postmaster notice and abuse report", error = %e, "internal error in a per-message step: that step is skipped or degraded, the delivery goes on");
            }
        }
    }
    outcomes
}

/// What the blocking stage leaves for the async one.
struct Stage {
    /// One per recipient; those in `later` hold a placeholder until their sends are done.
    outcomes: Vec<RcptOutcome>,
    /// Recipients whose redirects are sent now, after the blocking stage.
    later: Vec<Later>,
    /// The shared fields of the per-recipient log line.
    log: LogFields,
    /// For infected mail: what the postmaster notice and the abuse report need.
    news: Option<News>,
}

/// The blocking stage: Sieve and the store, recipient by recipient. `message` is the
/// message as received, `body` the same without forged scan headers.
fn deliver_all(
    services: &Services,
    envelope: &Envelope,
    message: &MessageBytes,
    body: &[u8],
    verdict: &Verdict,
    route: &Route,
) -> Stage {
    let config = &services.config;
    let message: &[u8] = message;
    // The view and the parse run on attacker-chosen bytes; a bug there must not turn into
    // 451 for everyone (and a bounce after days), infected mail included. Fallback: an empty
    // view, i.e. a message without header fields or body for Sieve; the virus verdict does
    // not come from it, so the virus policy still applies, and the keep stores the whole
    // message as received.
    let mut degraded: Vec<String> = Vec::new();
    let view =
        guarded("MIME view", || SieveView::new(body, &config.sieve.limits)).unwrap_or_else(|| {
            degraded.push(VIEW_FAILED.to_string());
            SieveView::new(&[], &config.sieve.limits)
        });
    let parsed = guarded("MIME parse", || ParsedMessage::new(view.bytes())).unwrap_or_else(|| {
        degraded.push(VIEW_FAILED.to_string());
        // Empty input: nothing for the parser to go wrong on (the headerless fallback).
        ParsedMessage::new(&[])
    });
    degraded.dedup();
    let mut log = LogLine::new(envelope, message, verdict);
    log.message_id = parsed.message_id();
    let received_at = SystemTime::now();
    // The one scan read per recipient: its domain's ignore list and min_virustest, sample
    // recipients. A forced release is the admin's decision and reads nothing.
    let policies: Vec<RcptPolicy> = match route {
        Route::Sieve | Route::Released { .. } => {
            policy::for_recipients(config, &envelope.rcpts, verdict)
        }
        Route::Inbox { .. } => (envelope.rcpts.iter())
            .map(|_| RcptPolicy::as_scanned(verdict))
            .collect(),
    };
    let held: Vec<Recipient> = (envelope.rcpts.iter().zip(&policies))
        .filter(|(_, p)| p.held)
        .map(|(r, _)| r.clone())
        .collect();
    if *route == Route::Sieve && !held.is_empty() && services.quarantine.is_some() {
        match quarantine_message(
            services,
            envelope,
            &held,
            message,
            &parsed,
            verdict,
            received_at,
        ) {
            Ok(id) => {
                log.quarantined = Some(id);
                log.all_held = held.len() == envelope.rcpts.len();
            }
            Err(()) => {
                return Stage {
                    outcomes: defer_all(envelope, &log, Deferral::QuarantineFailed),
                    later: Vec::new(),
                    log: LogFields::default(),
                    news: None,
                }
            }
        }
    }
    let client = &envelope.client;
    let client_info = client.is_known().then_some(client);
    let remote_ip = client.addr.map(|ip| ip.to_string());
    let info = TraceInfo {
        return_path: &envelope.mail_from,
        hostname: &config.server.hostname,
        session_id: &envelope.id,
        helo: envelope.helo.as_deref(),
        peer_addr: envelope.peer_addr.as_deref(),
        client: client_info,
        verdict,
        scanner_name: "ClamAV using sievegate",
        received_at,
    };
    let mut view_notes = view.notes();
    view_notes.extend(degraded);
    // With several recipients the stored copies carry trace headers that name none of
    // them, so the copies can be one file hard-linked into each Maildir (as Dovecot's LMTP
    // does); redirects still carry the recipient's own (its Delivered-To stops loops).
    // They share the verdict too: recipients who read the scan differently (a domain
    // ignoring the signature) get their own copies.
    let linking = config.mailbox.link_copies
        && (policies.iter()).all(|p| policies.first().is_some_and(|f| f.verdict == p.verdict));
    let shared_verdict = policies.first().map_or(verdict, |p| &p.verdict);
    let shared_header = (linking && envelope.rcpts.len() > 1).then(|| {
        shared_trace_headers(&TraceInfo {
            verdict: shared_verdict,
            ..info
        })
    });
    let mut shared = SharedCopy::new(linking);
    let mut later: Vec<Later> = Vec::new();
    let mut next_index = 0;
    // LDA mode's `-m`: where the keep goes instead of INBOX.
    let default_folder = (envelope.default_mailbox.as_deref())
        .and_then(|name| Folder::from_sieve(name, &config.mailbox.namespace_prefix).ok());
    let outcomes = each_recipient(&envelope.rcpts, |rcpt| {
        let index = next_index;
        next_index += 1;
        let Some(policy) = policies.get(index) else {
            // One policy per recipient by construction; a deferral loses nothing.
            return RcptOutcome::Deferred(Deferral::Internal);
        };
        let verdict = &policy.verdict;
        let info = TraceInfo { verdict, ..info };
        let maildir = Maildir::new(rcpt.expand(&config.mailbox.maildir))
            .with_ownership(config.mailbox.ownership);
        let input = FilterInput {
            message: body,
            mail_from: &envelope.mail_from,
            rcpt,
            verdict,
            remote_ip: remote_ip.as_deref(),
            remote_host: client.name.as_deref(),
            maildir: Some(maildir.root()),
            queue_id: client.queue_id.as_deref(),
        };
        let plan = match route {
            // A sample mailbox never gets infected mail stored, whatever its scripts say:
            // they are not run; the entry made above holds its copy.
            Route::Sieve | Route::Released { .. } if policy.sample => {
                let mut plan = Plan::default();
                plan.notes.push(
                    "sample recipient: infected mail is kept in the quarantine only, Sieve not run"
                        .to_string(),
                );
                plan
            }
            Route::Sieve => plan_for(&services.filter, &input, &parsed, default_folder.as_ref()),
            Route::Released { by } => {
                let plan = plan_for(&services.filter, &input, &parsed, default_folder.as_ref());
                drop_quarantine(plan, by)
            }
            Route::Inbox { released_by } => {
                let mut plan = Plan::implicit_keep();
                plan.notes.push(format!(
                    "released from quarantine by {released_by} with --force: stored into INBOX without Sieve although {verdict}"
                ));
                plan
            }
        };
        let mut plan = plan;
        plan.notes.extend(policy.note());
        if plan.quarantines() && services.quarantine.is_none() {
            // Deferring would only turn a config slip into a bounce after 5 days.
            tracing::warn!("Sieve asked for quarantine but [quarantine] is not enabled: ignored");
            plan.notes
                .push("quarantine ignored: [quarantine] is not enabled".to_string());
        } else if plan.quarantines() && log.quarantined.is_none() {
            // A global script's `quarantine`: once per message, before any reply (replies
            // go out after every recipient is done). A failed write defers this recipient,
            // so the MTA retries it and the quarantine is tried again.
            // The entry lists this recipient only; later ones whose chain also quarantines
            // join it (below), so a release never delivers to one who had the message.
            let only = std::slice::from_ref(rcpt);
            match quarantine_message(
                services,
                envelope,
                only,
                message,
                &parsed,
                verdict,
                received_at,
            ) {
                Ok(id) => log.quarantined = Some(id),
                Err(()) => {
                    let outcome = RcptOutcome::Deferred(Deferral::QuarantineFailed);
                    log.emit_with(rcpt, &outcome, &[], false, verdict);
                    return outcome;
                }
            }
        } else if let (true, false, Some(q), Some(id)) = (
            plan.quarantines(),
            policy.held,
            &services.quarantine,
            &log.quarantined,
        ) {
            if let Err(e) = q.add_recipient(id, &rcpt.original, &rcpt.user()) {
                tracing::error!(id = %envelope.id, quarantine_id = %id, error = %e, "cannot add the recipient to the quarantine entry: deferred, the MTA retries");
                let outcome = RcptOutcome::Deferred(Deferral::QuarantineFailed);
                log.emit_with(rcpt, &outcome, &[], false, verdict);
                return outcome;
            }
        }
        let header = trace_headers(&info, rcpt);
        let store_started = Instant::now();
        let stored_header = shared_header.as_deref().unwrap_or(&header);
        let (outcome, mut notes) =
            execute_shared(&plan, &maildir, stored_header, body, &mut shared);
        crate::metrics::stored(
            matches!(
                outcome,
                RcptOutcome::Delivered { .. } | RcptOutcome::Failed { .. }
            ),
            store_started.elapsed(),
        );
        // Held in the entry: every recipient when the virus policy quarantined, else only
        // those whose own chain said `quarantine`.
        let held = policy.held || (plan.quarantines() && services.quarantine.is_some());
        if super::redirect::sends_now(services, &plan, &outcome) {
            // The relay is not waited for on this thread: the async stage sends, then
            // finishes this recipient (its outcome and its log line).
            let mut all_notes: Vec<String> = view_notes.clone();
            all_notes.extend(plan.notes.iter().cloned());
            all_notes.append(&mut notes);
            later.push(Later {
                index,
                rcpt: rcpt.clone(),
                plan,
                header,
                outcome,
                notes: all_notes,
                held,
                verdict: verdict.clone(),
            });
            // Replaced by the async stage; stands only if that stage fails (a retry).
            return RcptOutcome::Deferred(Deferral::Internal);
        }
        let outcome = super::send::send(
            services,
            &envelope.mail_from,
            &log.message_id,
            rcpt,
            &plan,
            (&header, body),
            outcome,
            &mut notes,
            &mut |redirect| super::redirect::queue(services, redirect),
        );
        let notes: Vec<&str> = view_notes
            .iter()
            .chain(&plan.notes)
            .chain(&notes)
            .map(String::as_str)
            .collect();
        log.emit_with(rcpt, &outcome, &notes, held, verdict);
        outcome
    });
    // Gathered now, while the parse is at hand; sent by the async stage once every
    // outcome is known. A bug here loses the notice and the report, never the replies.
    let infected = policies.iter().any(RcptPolicy::infected);
    let notice = policies.iter().any(|p| p.notice);
    let news = (*route == Route::Sieve)
        .then(|| {
            guarded("postmaster notice and abuse report", || {
                news(
                    services,
                    envelope,
                    message,
                    &parsed,
                    verdict,
                    (infected, notice),
                )
            })
            .flatten()
        })
        .flatten();
    Stage {
        outcomes,
        later,
        log: LogFields {
            message_id: log.message_id.clone(),
            quarantined: log.quarantined.clone(),
            all_held: log.all_held,
        },
        news,
    }
}

/// The log note of a recipient whose message Sieve saw empty because the view panicked.
const VIEW_FAILED: &str =
    "internal error while parsing the message (logged): Sieve saw no header fields or body";

/// The message without forged scan headers, or `None` when it has none (the common case:
/// no copy). The copy of a spooled message is spooled too, so a forged header cannot
/// bring a large message back onto the heap; if that spool fails, the copy is made in
/// memory rather than deferring the message.
fn without_scan_headers(services: &Services, message: &MessageBytes) -> Option<MessageBytes> {
    if !has_virus_headers(message) {
        return None;
    }
    let spool = &services.config.server.spool;
    if message.is_spooled() {
        match spool::spool_with(&spool.dir, |out| write_without_virus_headers(message, out)) {
            Ok(copy) => return Some(copy),
            Err(e) => {
                tracing::warn!(error = %e, "cannot spool the message without its scan headers: copying it in memory");
            }
        }
    }
    Some(strip_virus_headers(message).into_owned().into())
}

/// The chain-to-Plan step a delivery and `sieve test` share: the recipient's Sieve chain
/// on the parsed message, then the keep moved into `default_mailbox` (LDA mode's `-m`)
/// when one is given. No I/O beyond the filter's read-only lookups.
pub fn plan_for(
    filter: &Filter,
    input: &FilterInput<'_>,
    parsed: &ParsedMessage<'_>,
    default_mailbox: Option<&Folder>,
) -> Plan {
    let mut plan = filter.plan_parsed(input, parsed);
    if let Some(folder) = default_mailbox {
        keep_into(&mut plan, folder);
    }
    plan
}

/// Moves the plan's INBOX copy (the keep) into `folder`, without creating it: a missing
/// folder falls back to INBOX when the plan is executed, as dovecot-lda's `-m` does. An
/// explicit `fileinto "INBOX"` is moved too: the plan does not tell it from the keep.
/// When the plan stores into `folder` already, that copy is the keep (one copy per folder,
/// as Pigeonhole's "equivalent action already executed").
fn keep_into(plan: &mut Plan, folder: &Folder) {
    use crate::filter::Action;
    let stores_into = |plan: &Plan, wanted: &Folder| {
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::Store { folder, .. } if folder == wanted))
    };
    if folder.is_inbox() || !stores_into(plan, &Folder::inbox()) {
        return;
    }
    if stores_into(plan, folder) {
        plan.actions
            .retain(|a| !matches!(a, Action::Store { folder, .. } if folder.is_inbox()));
        return;
    }
    for action in &mut plan.actions {
        if let Action::Store {
            folder: f, create, ..
        } = action
        {
            if f.is_inbox() {
                *f = folder.clone();
                *create = false;
            }
        }
    }
}

/// Every recipient deferred for `why`, each with its log line.
pub(super) fn defer_all(envelope: &Envelope, log: &LogLine<'_>, why: Deferral) -> Vec<RcptOutcome> {
    envelope
        .rcpts
        .iter()
        .map(|rcpt| {
            let outcome = RcptOutcome::Deferred(why);
            log.emit(rcpt, &outcome, &[]);
            outcome
        })
        .collect()
}

/// Quarantines the message (the caller made sure it is wanted and not done yet): `Ok(id)`
/// once it is durable, `Err` (logged) when the write failed or there is no quarantine.
fn quarantine_message(
    services: &Services,
    envelope: &Envelope,
    rcpts: &[Recipient],
    message: &[u8],
    parsed: &ParsedMessage<'_>,
    verdict: &Verdict,
    received_at: SystemTime,
) -> Result<String, ()> {
    let Some(q) = &services.quarantine else {
        return Err(());
    };
    let id = quarantine::new_id(&envelope.id);
    // The exact bytes as received: the scan headers a sender forged stay, they are evidence.
    // A panic while building or writing the entry counts as a failed write (the rule
    // above): nothing is known to be durable, so the MTA keeps the message and retries.
    let stored = guarded("quarantine entry", || {
        let entry = quarantine::entry_for(
            id.clone(),
            envelope,
            rcpts,
            message,
            parsed.message(),
            verdict,
            received_at,
        );
        let result = q.store(&entry, message);
        (entry.backscatter, result)
    });
    let Some((backscatter, result)) = stored else {
        tracing::error!(id = %envelope.id, "quarantine entry failed (internal error): handled as a failed write");
        return Err(());
    };
    match result {
        Ok(()) => {
            tracing::info!(id = %envelope.id, quarantine_id = %id, backscatter, virus = verdict.virus_name().unwrap_or(""), "message quarantined as {id}");
            Ok(id)
        }
        Err(e) => {
            tracing::error!(id = %envelope.id, error = %e, "quarantine write failed: every recipient is deferred, the MTA retries");
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(address: &str) -> Recipient {
        Recipient::resolve(address, &["example.test".to_string()], "+").expect("recipient")
    }

    #[test]
    fn a_panic_in_a_per_message_step_is_contained() {
        assert_eq!(guarded("ok", || 7), Some(7));
        let got: Option<u32> = guarded("injected", || panic!("injected failure"));
        assert_eq!(got, None);
        let got: Option<u32> = guarded("injected", || std::panic::panic_any(42u8));
        assert_eq!(got, None, "any payload");
        // The fallbacks themselves cannot panic: an empty view and its parse.
        let limits = crate::config::MessageLimits {
            max_header_fields: 10,
            max_header_size: 100,
        };
        let view = SieveView::new(&[], &limits);
        let parsed = ParsedMessage::new(view.bytes());
        assert_eq!(parsed.message_id(), "");
        assert!(view.notes().is_empty());
    }

    #[test]
    fn a_panic_defers_only_its_recipient() {
        let rcpts = [
            rcpt("a@example.test"),
            rcpt("b@example.test"),
            rcpt("c@example.test"),
        ];
        let mut ran = Vec::new();
        let outcomes = each_recipient(&rcpts, |r| {
            ran.push(r.local.clone());
            if r.local == "b" {
                panic!("injected failure for b");
            }
            RcptOutcome::Discarded
        });
        assert_eq!(ran, ["a", "b", "c"], "every recipient runs");
        let kinds: Vec<&str> = outcomes.iter().map(RcptOutcome::kind).collect();
        assert_eq!(kinds, ["discarded", "deferred", "discarded"]);
        assert!(matches!(
            outcomes[1],
            RcptOutcome::Deferred(Deferral::Internal)
        ));
    }
}
