//! The per-recipient log line and its metrics: one `info` event per recipient outcome.

use super::RcptOutcome;
use crate::mail::address::Recipient;
use crate::mail::envelope::Envelope;
use crate::scan::Verdict;

/// The log line's fields that the blocking stage learnt (see [`LogLine`]).
#[derive(Debug, Clone, Default)]
pub(super) struct LogFields {
    pub(super) message_id: String,
    pub(super) quarantined: Option<String>,
    pub(super) all_held: bool,
}

/// The per-recipient log line, like Postfix's delivery lines: the fields every recipient of
/// one message shares, and [`LogLine::emit`] for each outcome.
pub(super) struct LogLine<'a> {
    pub(super) envelope: &'a Envelope,
    pub(super) message_id: String,
    pub(super) size: usize,
    pub(super) verdict: &'a Verdict,
    /// The quarantine entry of this message, when it was quarantined.
    pub(super) quarantined: Option<String>,
    /// The entry holds every recipient (the virus policy quarantined the message), not only
    /// those whose Sieve chain asked for it.
    pub(super) all_held: bool,
}

impl<'a> LogLine<'a> {
    pub(super) fn new(envelope: &'a Envelope, message: &[u8], verdict: &'a Verdict) -> Self {
        LogLine {
            envelope,
            message_id: String::new(),
            size: message.len(),
            verdict,
            quarantined: None,
            all_held: false,
        }
    }

    /// The line of a recipient the quarantine entry holds when it holds everyone.
    pub(super) fn emit(&self, rcpt: &Recipient, outcome: &RcptOutcome, notes: &[&str]) {
        self.emit_as(rcpt, outcome, notes, self.all_held);
    }

    /// The line of `rcpt`; `held`: the quarantine entry holds this recipient's copy.
    pub(super) fn emit_as(
        &self,
        rcpt: &Recipient,
        outcome: &RcptOutcome,
        notes: &[&str],
        held: bool,
    ) {
        self.emit_with(rcpt, outcome, notes, held, self.verdict);
    }

    /// [`LogLine::emit_as`] with this recipient's own reading of the scan (its domain's
    /// policy ignored the signature: see [`super::policy`]).
    pub(super) fn emit_with(
        &self,
        rcpt: &Recipient,
        outcome: &RcptOutcome,
        notes: &[&str],
        held: bool,
        verdict: &Verdict,
    ) {
        let e = self.envelope;
        let quarantined = self.quarantined.as_ref().filter(|_| held);
        crate::metrics::delivery(outcome.metric_label(quarantined.is_some()));
        // A discard of quarantined mail is not a loss: say where the message is.
        let actions = match (quarantined, outcome) {
            (Some(id), RcptOutcome::Discarded) => format!("quarantined {id}"),
            (Some(id), RcptOutcome::Delivered { .. }) => {
                format!("{}, quarantined {id}", outcome.summary())
            }
            _ => outcome.summary(),
        };
        // The target log readers and filters know (`RUST_LOG`, the JSON `target` field) stays
        // what it was before this line moved out of `pipeline.rs`.
        tracing::info!(
            target: "sievegate::delivery::pipeline",
            id = %e.id,
            queue_id = e.client.queue_id.as_deref().unwrap_or(""),
            // The MTA's client (XFORWARD ADDR): who handed this mail to Postfix.
            client = e.client.addr.map(|ip| ip.to_string()).unwrap_or_default(),
            from = %e.mail_from,
            to = %rcpt.original,
            mailbox = %rcpt.user(),
            message_id = %self.message_id,
            size = self.size,
            verdict = verdict.word(),
            virustest = verdict.virustest(),
            virus = verdict.virus_name().unwrap_or(""),
            actions = %actions,
            notes = %notes.join("; "),
            delay_ms = e.started.elapsed().as_millis() as u64,
            "{}",
            outcome.kind()
        );
    }
}
