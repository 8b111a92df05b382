//! Quarantine digests: one message per recipient listing what the quarantine holds for
//! them that no earlier digest listed (`[quarantine.digest]`), with a signed link per
//! entry to the web page.
//!
//! **Who gets one.** Each recipient still held by an entry younger than the retention
//! (released recipients and expired entries never appear), grouped by the resolved
//! mailbox (`user@domain`), when the address is local (one of `[mailbox] domains`), the
//! user exists (`[mailbox] users_file`), the domain is not in `skip_domains`, the user has
//! not opted out (`sievegate_digest=no` in the users file's extra fields), and at least
//! one of their entries was not listed before ([`StateStore::digest_listed`]).
//!
//! **When.** A [`Schedule`] cuts time into periods (UTC) that start at a slot. A run at
//! `now` belongs to the latest slot at or before it; the first run of a slot claims it in
//! the state store (`remember_once("digest:<slot>")`), so of several hosts, or the server
//! and a cron job, exactly one sends for that slot, and a run after a downtime catches up
//! once. On top, each recipient gets at most one digest per period ([`rate_key`], with a
//! tenth of a period's slack for a late run), whichever way it was started. `--force`
//! ([`Run::force`]) skips both: every recipient with unlisted entries gets one now (and
//! counts as served for the rate limit).
//!
//! **What.** Built by [`crate::outbound::compose`] (`multipart/alternative`, text and
//! HTML, `Auto-Submitted: auto-generated`), queued in the outbox, which stores it straight
//! into the user's INBOX (they are local by definition: no relay, no Sieve). Everything
//! taken from held mail (sender, subject, virus name) is hostile: control characters
//! dropped and capped by the one sanitiser, HTML-escaped in the HTML part, and never in a
//! header field. Past `max_entries`, "... and N more" links to the recipient's list page
//! (a [`Action::List`] token): every entry still held for them, the ones not shown here
//! too. The entries are marked listed after the digest is queued, those past
//! `max_entries` included (the list link reaches them): a crash in between sends that
//! digest again (at least once), never loses it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::link::{self, Action, KeyError, LinkKey};
use crate::config::{Config, Schedule};
use crate::mail::address::{AddressError, Recipient};
use crate::outbound::compose::{AutoSubmitted, Body, ComposeError, Generated, Mailbox};
use crate::outbound::{Outbox, OutboxError};
use crate::state::{QuarantineEntry, QuarantineFilter, RateDecision, StateError, StateStore};
use crate::users::{Lookup, Users};

mod content;
use content::{shown, Content};

/// The outbox kind of a digest (logs).
pub const DIGEST_KIND: &str = "quarantine-digest";

/// Longest sender, subject or virus name shown for one entry (bytes, after sanitising).
const MAX_FIELD: usize = 200;

/// Why a digest run failed as a whole (a recipient's own trouble is logged and skipped).
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// `[quarantine.digest] enabled = false`.
    #[error("quarantine digests are off (quarantine.digest.enabled = false)")]
    Disabled,
    /// The state store failed.
    #[error("{0}")]
    State(#[from] StateError),
    /// The key that signs the links cannot be used.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The users file has never been read: who exists is unknown, so nobody gets a digest
    /// now (the next run tries again).
    #[error("mailbox.users_file cannot be read: no digest sent")]
    UsersUnavailable,
}

/// One run's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The time the run acts at: which slot is due, which entries have expired, the rate
    /// limit. The real clock, or (`quarantine digest --now`) a chosen one.
    pub now: SystemTime,
    /// Ignore the schedule and the per-period limit: every recipient with unlisted
    /// entries gets a digest now.
    pub force: bool,
}

/// What one run did, for the CLI's output and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The slot this run belongs to (none with `force`).
    pub slot: Option<SystemTime>,
    /// The slot was already served (by this host or another): nothing was done.
    pub already_done: bool,
    /// Each recipient sent a digest, with the number of new entries it covers.
    pub sent: Vec<(String, usize)>,
    /// Recipients whose address is not at one of `[mailbox] domains`.
    pub external: usize,
    /// Recipients the users file does not list.
    pub unknown: usize,
    /// Recipients in `skip_domains` or opted out in the users file.
    pub opted_out: usize,
    /// Recipients that already had a digest this period.
    pub rate_limited: usize,
    /// Recipients whose digest could not be built or queued (logged; tried next run).
    pub failed: usize,
}

/// The signed links of a digest: `[web] base_url`, the key, the links' lifetime.
pub struct Links {
    /// Without a trailing slash.
    pub base_url: String,
    /// `[web] secret_file`'s key.
    pub key: LinkKey,
    /// `[web] link_ttl_days`.
    pub ttl: Duration,
}

impl Links {
    /// The page of `rcpt`'s copy of entry `id` (a View token, valid for the TTL from now).
    pub fn view(&self, id: &str, rcpt: &str, now: SystemTime) -> String {
        let token = link::sign(&self.key, id, rcpt, Action::View, now + self.ttl);
        link::url(&self.base_url, &token)
    }

    /// The page of every entry held for `rcpt` (a List token, valid for the TTL from now):
    /// where the "... and N more" line points.
    pub fn list(&self, rcpt: &str, now: SystemTime) -> String {
        let token = link::sign_list(&self.key, rcpt, now + self.ttl);
        link::url(&self.base_url, &token)
    }
}

/// The links of `config`'s digests: `[web] base_url` and the key of `[web] secret_file`,
/// read now.
/// `None` without them (not a digest configuration that validated).
pub fn links(config: &Config) -> Result<Option<Links>, DigestError> {
    let web = &config.web;
    let (Some(base_url), Some(secret_file)) = (&web.base_url, &web.secret_file) else {
        return Ok(None);
    };
    Ok(Some(Links {
        base_url: base_url.clone(),
        key: LinkKey::load(secret_file)?,
        ttl: web.link_ttl,
    }))
}

/// What a digest run works with; borrowed from the caller's services.
pub struct Digester<'a> {
    /// The configuration (`[quarantine]`, `[quarantine.digest]`, `[mailbox]`).
    pub config: &'a Config,
    /// The quarantine index and the digest bookkeeping.
    pub state: &'a dyn StateStore,
    /// Who exists, and who opted out.
    pub users: &'a Users,
    /// Where the digests are queued.
    pub outbox: &'a Outbox,
    /// The entry links; `None` leaves them out (no `[web]`: a digest still says what is
    /// held and whom to ask).
    pub links: Option<&'a Links>,
}

/// The rate-limit key of `rcpt`'s digests.
pub fn rate_key(rcpt: &str) -> String {
    format!("digest:rcpt:{}", rcpt.to_ascii_lowercase())
}

/// The state-store key that claims `slot` (seconds since the epoch) for one run.
pub fn slot_key(schedule: &Schedule, slot: u64) -> String {
    format!("digest:slot:{schedule}:{slot}")
}

fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Digester<'_> {
    /// Sends the digests due at `run.now` (or, forced, every one there is to send).
    /// Blocking (state store, users file): call it off the async threads.
    pub fn run(&self, run: Run) -> Result<Report, DigestError> {
        let digest = &self.config.quarantine.digest;
        if !digest.enabled {
            return Err(DigestError::Disabled);
        }
        let mut report = Report::default();
        let period = digest.schedule.period();
        if run.force {
            self.all(run, period, &mut report)?;
            return Ok(report);
        }
        let slot = digest.schedule.latest_slot(epoch_secs(run.now));
        let slot_time = UNIX_EPOCH + Duration::from_secs(slot);
        report.slot = Some(slot_time);
        // Kept two periods: long past the time any host could still be in this slot.
        let expires = slot_time + period * 2;
        let key = slot_key(&digest.schedule, slot);
        if !self.state.remember_once(&key, expires, run.now)? {
            report.already_done = true;
            return Ok(report);
        }
        let result = self.all(run, period, &mut report);
        if result.is_err() || report.failed > 0 {
            // Give the slot back, so the next run (a minute later in the server) tries
            // again; whoever got a digest meanwhile is held back by the rate limit.
            if let Err(e) = self.state.cache_put(&key, "", run.now) {
                tracing::warn!(error = %e, "quarantine digest: cannot release the slot; the failed recipients wait for the next one");
            }
        }
        result.map(|()| report)
    }

    /// Every recipient's digest (the slot is claimed, or forced).
    fn all(&self, run: Run, period: Duration, report: &mut Report) -> Result<(), DigestError> {
        if let Users::File(_) = self.users {
            if self.users.table().is_none() {
                return Err(DigestError::UsersUnavailable);
            }
        }
        for (rcpt, entries) in self.held(run.now)? {
            self.one(&rcpt, &entries, run, period, report);
        }
        Ok(())
    }

    /// Every held recipient (resolved, lowercased) with their entries (oldest first),
    /// from entries younger than the retention at `now`.
    fn held(&self, now: SystemTime) -> Result<BTreeMap<String, Vec<QuarantineEntry>>, StateError> {
        let since = now
            .checked_sub(self.config.quarantine.retention)
            .unwrap_or(UNIX_EPOCH);
        let filter = QuarantineFilter {
            since: Some(since),
            ..QuarantineFilter::default()
        };
        let mut by_rcpt: BTreeMap<String, Vec<QuarantineEntry>> = BTreeMap::new();
        for entry in self.state.quarantine_list(&filter)? {
            let held = entry.held();
            let mut rcpts: Vec<String> = entry
                .recipients
                .iter()
                .zip(&entry.resolved)
                .filter(|(given, _)| held.contains(&given.as_str()))
                .map(|(_, resolved)| resolved.to_ascii_lowercase())
                .collect();
            rcpts.sort();
            rcpts.dedup();
            for rcpt in rcpts {
                by_rcpt.entry(rcpt).or_default().push(entry.clone());
            }
        }
        Ok(by_rcpt)
    }

    /// The digest of one recipient, if they get one; every outcome counted in `report`.
    fn one(
        &self,
        rcpt: &str,
        entries: &[QuarantineEntry],
        run: Run,
        period: Duration,
        report: &mut Report,
    ) {
        let mailbox = &self.config.mailbox;
        let resolved = match Recipient::resolve(
            rcpt,
            &mailbox.domains,
            &mailbox.recipient_delimiter,
        ) {
            Ok(r) => r,
            Err(AddressError::UnknownDomain) => {
                report.external += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(rcpt = %shown(rcpt), error = ?e, "quarantine digest: not a deliverable local address; skipped");
                report.external += 1;
                return;
            }
        };
        if self
            .config
            .quarantine
            .digest
            .skip_domains
            .contains(&resolved.domain)
        {
            report.opted_out += 1;
            return;
        }
        match self.users.lookup(&resolved) {
            Lookup::Found(user) if user.digest_opt_out => {
                report.opted_out += 1;
                return;
            }
            Lookup::Found(_) => {}
            Lookup::Unknown | Lookup::Unavailable => {
                report.unknown += 1;
                return;
            }
        }
        let listed = match self.state.digest_listed(rcpt) {
            Ok(listed) => listed,
            Err(e) => {
                tracing::error!(rcpt, error = %e, "quarantine digest: cannot read what was listed; tried next run");
                report.failed += 1;
                return;
            }
        };
        let new: Vec<&QuarantineEntry> = entries
            .iter()
            .filter(|e| listed.binary_search(&e.id).is_err())
            .collect();
        if new.is_empty() {
            return;
        }
        // Slack: a run a little late in one period and early in the next is still one
        // per period.
        let min_interval = period - period / 10;
        match self
            .state
            .rate_check(&rate_key(rcpt), min_interval, run.now)
        {
            Ok(RateDecision::Send { .. }) => {}
            Ok(RateDecision::Suppress) if run.force => {}
            Ok(RateDecision::Suppress) => {
                report.rate_limited += 1;
                return;
            }
            Err(e) => {
                tracing::error!(rcpt, error = %e, "quarantine digest: rate check failed; tried next run");
                report.failed += 1;
                return;
            }
        }
        match self.send(rcpt, &new, run.now) {
            Ok(()) => {
                tracing::info!(
                    rcpt,
                    entries = new.len(),
                    "quarantine digest queued for {rcpt}: {} entries",
                    new.len()
                );
                report.sent.push((rcpt.to_string(), new.len()));
            }
            Err(e) => {
                tracing::error!(rcpt, error = %e, "quarantine digest not sent; tried next run");
                report.failed += 1;
            }
        }
    }

    /// Builds, queues and records the digest of `new` for `rcpt`.
    fn send(&self, rcpt: &str, new: &[&QuarantineEntry], now: SystemTime) -> Result<(), SendError> {
        let digest = &self.config.quarantine.digest;
        let content = Content::new(rcpt, new, digest.max_entries, self.config, self.links, now);
        let message = Generated {
            from: Mailbox::new(&digest.from, None)?,
            to: vec![Mailbox::new(rcpt, None)?],
            cc: Vec::new(),
            subject: digest.subject.clone(),
            in_reply_to: None,
            references: Vec::new(),
            auto_submitted: AutoSubmitted::Generated,
            importance: None,
            body: Body::alternative(&content.text(), &content.html()),
            hostname: self.config.server.hostname.clone(),
        }
        .build()?;
        self.outbox
            .enqueue(DIGEST_KIND, "", &[rcpt.to_string()], message)?;
        let ids: Vec<String> = new.iter().map(|e| e.id.clone()).collect();
        self.state.digest_mark_listed(rcpt, &ids, now)?;
        Ok(())
    }
}

/// Why one recipient's digest was not sent.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Compose(#[from] ComposeError),
    #[error("{0}")]
    Outbox(#[from] OutboxError),
    #[error("{0}")]
    State(#[from] StateError),
}

#[cfg(test)]
mod tests;
