//! The AV policy per recipient: one scan verdict, read for each recipient with its
//! domain's policy (`[domain."..."]` over the global keys) and `[quarantine]
//! sample_recipients`. The scan happens once; only its interpretation differs, so one
//! message can be clean for a recipient whose domain ignores the signature and infected
//! for another.
//!
//! - `ignore_signatures` (global, plus the domain's): when the signature clamd reported
//!   matches, the message is [`Verdict::Clean`] for this recipient (Sieve's `virustest`
//!   sees 1, the copy is stored with `X-Virus-Status: Clean`); logged at INFO with the
//!   name and the pattern, and counted (`sievegate_ignored_signatures_total`).
//! - `min_virustest` (the domain's, else `[quarantine] min_virustest`): infected mail from
//!   this value on is held in the quarantine for this recipient, below it discarded.
//! - `notices`: whether this recipient's infected copy asks for a postmaster notice.
//! - A sample recipient's infected copy is always held, and its Sieve scripts are not run.
//!
//! Nothing here can let infected mail through: a recipient's verdict only ever becomes
//! cleaner by an explicit ignore pattern, and the virus policy of the Plan still applies
//! to every verdict that stays infected.

use crate::config::{Config, DomainPolicy};
use crate::filter::INFECTED_VIRUSTEST;
use crate::mail::address::Recipient;
use crate::scan::Verdict;

/// How one recipient's copy of the message is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptPolicy {
    /// What this recipient's Sieve chain, trace headers and log line see: the scan's
    /// verdict, or [`Verdict::Clean`] when its signature is ignored.
    pub verdict: Verdict,
    /// The signature ignored for this recipient and the pattern that matched it.
    pub ignored: Option<Ignored>,
    /// The quarantine entry holds this recipient's copy (infected at or above its
    /// domain's `min_virustest` with the quarantine on, or a sample recipient).
    pub held: bool,
    /// A sample recipient with infected mail: held, its Sieve scripts not run.
    pub sample: bool,
    /// Infected for this recipient, and its domain wants the postmaster told.
    pub notice: bool,
}

/// A signature treated as clean, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The name clamd reported.
    pub signature: String,
    /// The `ignore_signatures` pattern that matched it.
    pub pattern: String,
}

impl RcptPolicy {
    /// The scan as it is, with no policy read: a forced release (the admin decided).
    pub fn as_scanned(verdict: &Verdict) -> Self {
        RcptPolicy {
            verdict: verdict.clone(),
            ignored: None,
            held: false,
            sample: false,
            notice: false,
        }
    }

    /// True when the message is infected for this recipient (virustest 4 or 5).
    pub fn infected(&self) -> bool {
        self.verdict.virustest() >= INFECTED_VIRUSTEST
    }

    /// The note for this recipient's log line, when its signature was ignored.
    pub fn note(&self) -> Option<String> {
        self.ignored.as_ref().map(|i| {
            format!(
                "signature {} ignored (ignore_signatures {:?}): treated as clean",
                i.signature, i.pattern
            )
        })
    }
}

/// The policy of `rcpt`'s domain (the default when it has no table).
fn domain_policy<'c>(config: &'c Config, rcpt: &Recipient) -> Option<&'c DomainPolicy> {
    config.domains.get(&rcpt.domain)
}

/// Reads `verdict` for `rcpt` (no I/O; the log line and the metric for an ignored
/// signature are [`for_recipients`]'s).
pub fn for_recipient(config: &Config, rcpt: &Recipient, verdict: &Verdict) -> RcptPolicy {
    let domain = domain_policy(config, rcpt);
    let ignored = verdict.virus_name().and_then(|name| {
        let global = config.scanner.ignore_signatures.matching(name);
        let pattern = global.or_else(|| domain?.ignore_signatures.matching(name))?;
        Some(Ignored {
            signature: name.to_string(),
            pattern: pattern.to_string(),
        })
    });
    let verdict = match ignored {
        Some(_) => Verdict::Clean,
        None => verdict.clone(),
    };
    let infected = verdict.virustest() >= INFECTED_VIRUSTEST;
    let quarantine = &config.quarantine;
    let min_virustest = domain
        .and_then(|d| d.min_virustest)
        .unwrap_or(quarantine.min_virustest);
    let sample = infected && quarantine.enabled && quarantine.is_sample_recipient(&rcpt.user());
    let held = sample || (quarantine.enabled && infected && verdict.virustest() >= min_virustest);
    RcptPolicy {
        notice: infected && domain.is_none_or(|d| d.notices),
        verdict,
        ignored,
        held,
        sample,
    }
}

/// The policy of every recipient of the envelope, in order; each ignored signature is
/// logged (INFO, so a false positive accepted stays visible) and counted.
pub fn for_recipients(config: &Config, rcpts: &[Recipient], verdict: &Verdict) -> Vec<RcptPolicy> {
    let policies: Vec<RcptPolicy> = rcpts
        .iter()
        .map(|rcpt| for_recipient(config, rcpt, verdict))
        .collect();
    for (rcpt, policy) in rcpts.iter().zip(&policies) {
        if let Some(ignored) = &policy.ignored {
            record_ignored(rcpt, ignored);
        }
    }
    policies
}

/// The INFO line and the metric of one ignored signature.
fn record_ignored(rcpt: &Recipient, ignored: &Ignored) {
    tracing::info!(
        to = %rcpt.original,
        signature = %ignored.signature,
        pattern = %ignored.pattern,
        "signature {} ignored for {} (ignore_signatures {:?}): delivered as clean",
        ignored.signature,
        rcpt.user(),
        ignored.pattern
    );
    crate::metrics::ignored_signature(&ignored.pattern);
}

#[cfg(test)]
mod tests;
