//! The async stage of a delivery, after the blocking one ([`super::pipeline`]): what must
//! wait on a peer runs here, never inside the blocking stage. Redirects that are sent now
//! (no durable state store) and the rest of those recipients' sending part; for infected
//! mail, the postmaster notice and the abuse report.

use std::sync::Arc;
use std::time::SystemTime;

use super::guard::guarded;
use super::log::{LogFields, LogLine};
use super::{Deferral, RcptOutcome, Services};
use crate::filter::{ParsedMessage, Plan};
use crate::mail::address::Recipient;
use crate::mail::envelope::Envelope;
use crate::report::notice::InfectedMessage;
use crate::report::Incident;
use crate::scan::Verdict;
use crate::spool::MessageBytes;

/// The message as received and, when it carried forged scan headers, the copy without them
/// (what Sieve sees and what is stored).
pub(super) struct Bytes {
    pub(super) message: MessageBytes,
    pub(super) stripped: Option<MessageBytes>,
}

impl Bytes {
    /// What Sieve reads and the store writes.
    pub(super) fn body(&self) -> &[u8] {
        self.stripped.as_deref().unwrap_or(&self.message)
    }
}

/// One recipient whose stores are done and whose redirects wait for [`send_later`].
pub(super) struct Later {
    pub(super) index: usize,
    pub(super) rcpt: Recipient,
    pub(super) plan: Plan,
    /// This recipient's trace header block (a redirect carries it).
    pub(super) header: Vec<u8>,
    /// The outcome of the stores.
    pub(super) outcome: RcptOutcome,
    /// The view's and the plan's notes, then the store's.
    pub(super) notes: Vec<String>,
    /// The quarantine entry holds this recipient.
    pub(super) held: bool,
    /// This recipient's reading of the scan (its domain's policy), for its log line.
    pub(super) verdict: Verdict,
}

/// The inputs of the postmaster notice and the abuse report, gathered while the message
/// was parsed.
pub(super) struct News {
    /// Some recipient for whom the message is infected is at a domain with notices on.
    pub(super) notice: bool,
    pub(super) backscatter: bool,
    /// The abuse report (named viruses only, with a reporter configured and a source).
    pub(super) incident: Option<Incident>,
}

/// The async stage for the recipients in `later`: their redirects are sent now (each
/// bounded by the relay client's timeout), then the rest of their sending part (failure
/// keep, vacation, memory) and their log line on one blocking thread. Returns each
/// recipient's index and final outcome.
pub(super) async fn send_later(
    services: &Arc<Services>,
    envelope: &Envelope,
    bytes: &Arc<Bytes>,
    verdict: &Verdict,
    log: &LogFields,
    later: Vec<Later>,
) -> Vec<(usize, RcptOutcome)> {
    let mut answers = Vec::with_capacity(later.len());
    for l in &later {
        answers.push(
            super::send::send_now(
                services,
                &envelope.mail_from,
                &log.message_id,
                &l.rcpt,
                &l.plan,
                (&l.header, bytes.body()),
                &l.outcome,
            )
            .await,
        );
    }
    let indexes: Vec<usize> = later.iter().map(|l| l.index).collect();
    let services = Arc::clone(services);
    let envelope = envelope.clone();
    let bytes = Arc::clone(bytes);
    let verdict = verdict.clone();
    let fields = log.clone();
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let mut line = LogLine::new(&envelope, &bytes.message, &verdict);
        line.message_id = fields.message_id;
        line.quarantined = fields.quarantined;
        line.all_held = fields.all_held;
        let body = bytes.body();
        later
            .into_iter()
            .zip(answers)
            .map(|(l, mut answers)| {
                let Later {
                    index,
                    rcpt,
                    plan,
                    header,
                    outcome,
                    mut notes,
                    held,
                    verdict: own,
                } = l;
                let run = || {
                    let mut sent = Vec::new();
                    let outcome = super::send::send(
                        &services,
                        &envelope.mail_from,
                        &line.message_id,
                        &rcpt,
                        &plan,
                        (&header, body),
                        outcome,
                        &mut sent,
                        &mut |r| {
                            answers.remove(r.to).unwrap_or_else(|| {
                                super::send::Handed::Failed("not sent".to_string())
                            })
                        },
                    );
                    notes.extend(sent);
                    let notes: Vec<&str> = notes.iter().map(String::as_str).collect();
                    line.emit_with(&rcpt, &outcome, &notes, held, &own);
                    outcome
                };
                // As in the blocking stage: a panic defers this recipient only.
                let outcome = guarded("sending after the stores", run)
                    .unwrap_or(RcptOutcome::Deferred(Deferral::Internal));
                (index, outcome)
            })
            .collect::<Vec<_>>()
    });
    match task.await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "sending after the stores failed: those recipients are deferred");
            indexes
                .into_iter()
                .map(|i| (i, RcptOutcome::Deferred(Deferral::Internal)))
                .collect()
        }
    }
}

/// For infected mail, what the postmaster notice and the abuse report need from the
/// parse; `None` when neither is wanted (clean mail, clean for every recipient by their
/// domains' `ignore_signatures`, or nothing configured). `notice`: a recipient for whom
/// it is infected is at a domain with notices on.
pub(super) fn news(
    services: &Services,
    envelope: &Envelope,
    message: &[u8],
    parsed: &ParsedMessage<'_>,
    verdict: &Verdict,
    (infected, notice): (bool, bool),
) -> Option<News> {
    verdict.virus_name()?;
    if !infected {
        return None;
    }
    let named_virus = verdict.virustest() >= 5;
    let reporter = services.abuse.as_ref().filter(|_| named_virus);
    let notifier = services.notifier.as_ref().filter(|_| notice);
    if notifier.is_none() && reporter.is_none() {
        return None;
    }
    // Heuristic matches (virustest 4) are the likely false positives: an abuse desk hears
    // only about named viruses.
    let incident = reporter.and_then(|_| {
        Incident::new(
            envelope,
            envelope.client_trusted,
            verdict,
            message,
            SystemTime::now(),
        )
    });
    Some(News {
        notice,
        backscatter: crate::mail::bounce::is_bounce(&envelope.mail_from, parsed.message()),
        incident,
    })
}

/// For infected mail that is done with (no recipient deferred: a retry would tell them
/// again), the postmaster notice and the abuse report, on the runtime after the blocking
/// stage. The notice is queued in the state store; the report (an RDAP lookup up to
/// `rdap_timeout_secs`) gets a task of its own, so it never holds the replies; the
/// reporter bounds how many run at once (`max_lookups_in_flight`).
pub(super) async fn tell_others(
    services: &Services,
    envelope: &Envelope,
    message: &[u8],
    verdict: &Verdict,
    log: &LogFields,
    news: News,
) {
    // What we attach is scanned first: a virus in a header field must not reach a
    // postmaster's INBOX or an abuse desk (report::withhold_headers).
    let headers = crate::report::header_section(message);
    let withheld = crate::report::withhold_headers(&services.scanner, headers).await;
    if let Some(why) = &withheld {
        tracing::warn!(session = %envelope.id, reason = %why, "the original header section is left out of the notice and the abuse report");
    }
    if let Some(notifier) = services.notifier.as_ref().filter(|_| news.notice) {
        notifier.infected(&InfectedMessage {
            quarantine_id: log.quarantined.clone(),
            backscatter: news.backscatter,
            headers_withheld: withheld.clone(),
            ..InfectedMessage::new(envelope, verdict, message)
        });
    }
    if let (Some(reporter), Some(mut incident)) = (&services.abuse, news.incident) {
        incident.headers_withheld = withheld;
        let reporter = reporter.clone();
        tokio::spawn(async move { reporter.report(incident).await });
    }
}
