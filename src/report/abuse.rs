//! [`AbuseReporter`]: one infected message in, at most one RFC 5965 report out (see the
//! module doc of [`crate::report`] for the steps).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::arf::{self, ArfReport};
use super::contact::{Contacts, Found};
use super::rdap::{Rdap, RdapError};
use super::source::{select_source, SourceChoice, SourceInput, SourceRules};
use crate::config::rdap::Bootstrap;
use crate::config::{AbuseConfig, Config, ListenAddr};
use crate::mail::envelope::{Client, Envelope};
use crate::scan::Verdict;
use crate::state::{RateDecision, StateStore};

/// The `kind` of every message handed to the [`ReportSink`].
pub const KIND: &str = "abuse-report";

/// Where finished reports go: the outbound queue in production, a recorder in tests.
pub trait ReportSink: Send + Sync {
    /// Takes one message for delivery (`from` is the envelope sender). Must not block for
    /// long: it runs on a blocking thread, but one per report.
    fn submit(
        &self,
        kind: &str,
        from: &str,
        to: &[String],
        message: Vec<u8>,
    ) -> Result<(), SubmitError>;
}

/// A sink refused a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SubmitError(pub String);

/// The server's sink: the outbox queues the report in the state store (retried from there)
/// and wakes its sender.
impl ReportSink for crate::outbound::Outbox {
    fn submit(
        &self,
        kind: &str,
        from: &str,
        to: &[String],
        message: Vec<u8>,
    ) -> Result<(), SubmitError> {
        self.enqueue(kind, from, to, message)
            .map(|_| ())
            .map_err(|e| SubmitError(e.to_string()))
    }
}

/// One infected message, as the delivery pipeline saw it: a plain struct so the caller can
/// move it into a spawned task.
#[derive(Debug, Clone)]
pub struct Incident {
    /// MAIL FROM without brackets; `""` for the null sender.
    pub mail_from: String,
    /// The recipients as given at RCPT.
    pub rcpts: Vec<String>,
    /// XFORWARD from the MTA (its client's name, address, HELO, queue id).
    pub client: Client,
    /// The LMTP client is a trusted peer (`server.xforward_from`): its XFORWARD and the
    /// `Received` header it added are believed. Without it nothing is reported.
    pub peer_trusted: bool,
    /// Our transaction id (logs).
    pub session_id: String,
    /// Signature names (at least one for an infected message).
    pub viruses: Vec<String>,
    /// The message's top-level header section as received ([`super::header_section`]); a
    /// whole message works too, only its header section is read.
    pub headers: Vec<u8>,
    /// Why the header section must not be attached to the report (clamd found something
    /// in it, or could not scan it): the report then goes without its `text/rfc822-headers`
    /// part. `None`: attach it.
    pub headers_withheld: Option<String>,
    /// When the message arrived. It is also the clock of the rate limit and the cache, so a
    /// report spawned late counts the same as one run at once.
    pub received: SystemTime,
}

impl Incident {
    /// The incident for `message` as the pipeline has it. `peer_trusted`: the LMTP client is
    /// in `server.xforward_from`. `None` unless `verdict` is infected.
    pub fn new(
        envelope: &Envelope,
        peer_trusted: bool,
        verdict: &Verdict,
        message: &[u8],
        received: SystemTime,
    ) -> Option<Incident> {
        let name = verdict.virus_name()?;
        Some(Incident {
            mail_from: envelope.mail_from.clone(),
            rcpts: envelope.rcpts.iter().map(|r| r.original.clone()).collect(),
            client: envelope.client.clone(),
            peer_trusted,
            session_id: envelope.id.clone(),
            viruses: vec![name.to_string()],
            headers: super::header_section(message).to_vec(),
            headers_withheld: None,
            received,
        })
    }
}

/// What became of one incident: expected conditions are values (each is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// `[abuse] enabled = false`.
    Disabled,
    /// The message is itself a feedback report: never answered with one, so two reporters cannot loop.
    AboutReport,
    /// No source address we can believe.
    NoSource(&'static str),
    /// The source is in `ignore_networks` or ours.
    Ignored(IpAddr),
    /// Nobody to tell: no override, and RDAP gave no abuse contact.
    NoContact(IpAddr),
    /// Every RDAP server failed (recently); nothing sent.
    LookupFailed(IpAddr),
    /// Held back by the rate limit at `Limit`: counted into the next report.
    Suppressed(IpAddr, Limit),
    /// `max_lookups_in_flight` reports were being worked on: this one was skipped (never
    /// queued, so a storm cannot pile up work).
    Busy,
    /// `dry_run`: this is what would have been sent.
    DryRun {
        ip: IpAddr,
        to: String,
        message: Vec<u8>,
    },
    /// Handed to the sink.
    Submitted {
        ip: IpAddr,
        to: String,
        incidents: u64,
    },
    /// The state store, the builder or the sink failed (logged).
    Failed(String),
}

/// The rate limit that held a report back. Each is one report per interval per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Per source IP (`min_interval_secs`).
    Address,
    /// Per RDAP network (`network_interval_secs`).
    Network,
    /// Per abuse contact (`contact_interval_secs`).
    Contact,
    /// For all reports, of every host sharing the state store (`global_interval_secs`).
    Global,
}

impl Limit {
    /// The word for the log.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Address => "source address",
            Limit::Network => "network",
            Limit::Contact => "abuse contact",
            Limit::Global => "global",
        }
    }
}

/// The state store key of the global limit: set until the next report may go, by the
/// process (on any host) that sent the last one.
const GLOBAL_KEY: &str = "abuse-global";

/// Sends abuse reports; cheap to clone (shared inside).
#[derive(Clone)]
pub struct AbuseReporter {
    inner: Arc<Inner>,
}

struct Inner {
    config: AbuseConfig,
    hostname: String,
    /// `ignore_networks` plus our own addresses.
    ignore: Vec<IpNet>,
    contacts: Contacts,
    state: Arc<dyn StateStore>,
    sink: Arc<dyn ReportSink>,
    /// Reports being worked on (`max_lookups_in_flight`): each holds a permit, so at most
    /// that many blocking threads ever run reports or RDAP lookups.
    in_flight: Arc<Semaphore>,
    /// When this process's last report went out: the global limit's first look, without
    /// a store call (the store's key covers the other hosts).
    last_report: std::sync::Mutex<Option<SystemTime>>,
}

/// Our own addresses: the TCP listeners' and, where the OS tells us, every interface's.
fn own_networks(config: &Config) -> Vec<IpNet> {
    let mut own: Vec<IpNet> = config
        .server
        .listen
        .iter()
        .filter_map(|l| match l {
            ListenAddr::Tcp(addr) if !addr.ip().is_unspecified() => Some(IpNet::from(addr.ip())),
            _ => None,
        })
        .collect();
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for ifa in addrs {
                let Some(addr) = ifa.address else { continue };
                if let Some(v4) = addr.as_sockaddr_in() {
                    own.push(IpNet::from(IpAddr::V4(v4.ip())));
                } else if let Some(v6) = addr.as_sockaddr_in6() {
                    own.push(IpNet::from(IpAddr::V6(v6.ip())));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the local interfaces' addresses: only the listeners' count as our own for abuse reports")
        }
    }
    own
}

impl AbuseReporter {
    /// A reporter for `config.abuse` (reads `rdap_bootstrap` now). `state` caches RDAP
    /// answers and keeps the rate limit; `sink` takes the finished reports.
    pub fn new(
        config: &Config,
        state: Arc<dyn StateStore>,
        sink: Arc<dyn ReportSink>,
    ) -> Result<AbuseReporter, RdapError> {
        let abuse = config.abuse.clone();
        let bootstrap = if abuse.rdap_bootstrap.is_empty() {
            Bootstrap::default()
        } else {
            Bootstrap::load(&abuse.rdap_bootstrap)?
        };
        let mut ignore = abuse.ignore_networks.clone();
        ignore.extend(own_networks(config));
        let rdap = Rdap::new(abuse.rdap_base_urls.clone(), bootstrap, abuse.rdap_timeout);
        let contacts = Contacts::new(
            abuse.overrides.clone(),
            rdap,
            state.clone(),
            abuse.rdap_cache_ttl,
        );
        let in_flight = Arc::new(Semaphore::new(abuse.max_lookups_in_flight));
        Ok(AbuseReporter {
            inner: Arc::new(Inner {
                config: abuse,
                hostname: config.server.hostname.clone(),
                ignore,
                contacts,
                state,
                sink,
                in_flight,
                last_report: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Reports `incident` if it should be, on a blocking thread (RDAP and the state store
    /// block) when one of the `max_lookups_in_flight` slots is free; otherwise it is skipped
    /// at once ([`ReportOutcome::Busy`]), so a storm never queues work or fills tokio's
    /// blocking pool. Never fails and never panics the caller: the outcome is logged and
    /// returned. The pipeline spawns it so a delivery never waits for it.
    pub async fn report(&self, incident: Incident) -> ReportOutcome {
        if !self.inner.config.enabled {
            return ReportOutcome::Disabled;
        }
        let Some(permit) = self.try_start(&incident) else {
            return ReportOutcome::Busy;
        };
        let this = self.clone();
        let task = tokio::task::spawn_blocking(move || this.run(&incident, permit));
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "abuse report task failed");
                ReportOutcome::Failed(e.to_string())
            }
        }
    }

    /// [`AbuseReporter::report`] on the calling thread (blocks up to `rdap_timeout_secs`),
    /// within the same bound.
    pub fn report_blocking(&self, incident: &Incident) -> ReportOutcome {
        if !self.inner.config.enabled {
            return ReportOutcome::Disabled;
        }
        match self.try_start(incident) {
            Some(permit) => self.run(incident, permit),
            None => ReportOutcome::Busy,
        }
    }

    /// A slot for one report, or `None` (logged) when all are taken.
    pub(super) fn try_start(&self, incident: &Incident) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.inner.in_flight).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(
                    session = %incident.session_id,
                    max_lookups_in_flight = self.inner.config.max_lookups_in_flight,
                    "abuse report skipped: as many reports as max_lookups_in_flight are being worked on (RDAP slow or unreachable?)"
                );
                None
            }
        }
    }

    fn run(&self, incident: &Incident, _permit: OwnedSemaphorePermit) -> ReportOutcome {
        let outcome = self.decide_and_send(incident);
        let session = incident.session_id.as_str();
        match &outcome {
            ReportOutcome::Disabled | ReportOutcome::Busy => {}
            ReportOutcome::AboutReport => tracing::info!(session, "abuse report: the infected message is itself a feedback report; not reporting a report"),
            ReportOutcome::NoSource(why) => tracing::info!(session, reason = why, "abuse report: no source address to report"),
            ReportOutcome::Ignored(ip) => tracing::info!(session, source_ip = %ip, "abuse report: source is in ignore_networks or our own; not reported"),
            ReportOutcome::NoContact(ip) => tracing::warn!(session, source_ip = %ip, "abuse report: no abuse contact found (overrides, RDAP); nothing sent"),
            ReportOutcome::LookupFailed(ip) => tracing::warn!(session, source_ip = %ip, "abuse report: RDAP lookup failed; nothing sent"),
            ReportOutcome::Suppressed(ip, limit) => tracing::info!(session, source_ip = %ip, limit = limit.name(), "abuse report: rate limited; counted for the next report"),
            ReportOutcome::DryRun { ip, to, message } => tracing::info!(
                session, source_ip = %ip, to = %to, from = %self.inner.config.report_from,
                message = %String::from_utf8_lossy(message),
                "abuse report (dry run): this would be sent"
            ),
            ReportOutcome::Submitted { ip, to, incidents } => tracing::info!(session, source_ip = %ip, to = %to, incidents, "abuse report queued"),
            ReportOutcome::Failed(e) => tracing::error!(session, error = %e, "abuse report failed"),
        }
        if let Some(why) = &incident.headers_withheld {
            if matches!(
                outcome,
                ReportOutcome::Submitted { .. } | ReportOutcome::DryRun { .. }
            ) {
                tracing::warn!(session, reason = %why, "abuse report sent without the original header section");
            }
        }
        outcome
    }

    fn decide_and_send(&self, incident: &Incident) -> ReportOutcome {
        let inner = &*self.inner;
        let config = &inner.config;
        if !config.enabled {
            return ReportOutcome::Disabled;
        }
        let headers = super::header_section(&incident.headers);
        if crate::mail::bounce::is_feedback_report(headers) {
            return ReportOutcome::AboutReport;
        }
        let input = SourceInput {
            peer_trusted: incident.peer_trusted,
            xforward_addr: incident.client.addr,
            headers,
        };
        let rules = SourceRules {
            trusted_relays: &config.trusted_relays,
            ignore: &inner.ignore,
            formats: &config.received_formats,
        };
        let ip = match select_source(&input, &rules) {
            SourceChoice::Report { ip, .. } => ip,
            SourceChoice::Ignored { ip, .. } => return ReportOutcome::Ignored(ip),
            SourceChoice::Unknown(why) => return ReportOutcome::NoSource(why),
        };
        let now = incident.received;
        let (to, network) = match inner.contacts.find(ip, now) {
            Found::Contact { to, network } => (to, network),
            Found::NoContact => return ReportOutcome::NoContact(ip),
            Found::Failed => return ReportOutcome::LookupFailed(ip),
        };
        // The global limit is looked at first and taken last: held back there, an incident
        // takes no address, network or contact slot. The others go narrowest first, so a
        // flood from one address stops at its own limit and never takes its network's or
        // contact's slot. Each incident held back is counted at exactly one key; a report
        // carries those of its address, network and contact.
        //
        // The global limit holds across hosts sharing the state store: this process's own
        // last report is looked at first (no store call), then the store's, which is taken
        // once the narrower limits allowed the report. Two hosts passing the look at the
        // same instant race for the take; the loser's report is not sent (its address,
        // network and contact slots are spent, so that source waits for their next
        // interval): never two reports, at worst one late.
        let mut last = inner.last_report.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t).unwrap_or_default() < config.global_interval)
        {
            return ReportOutcome::Suppressed(ip, Limit::Global);
        }
        match inner.state.cache_get(GLOBAL_KEY, now) {
            Ok(Some(_)) => return ReportOutcome::Suppressed(ip, Limit::Global),
            Ok(None) => {}
            Err(e) => return ReportOutcome::Failed(format!("rate limit: {e}")),
        }
        let limits = [
            (Limit::Address, format!("abuse:{ip}"), config.min_interval),
            (
                Limit::Network,
                format!("abuse-net:{network}"),
                config.network_interval,
            ),
            (
                Limit::Contact,
                format!("abuse-to:{}", to.to_ascii_lowercase()),
                config.contact_interval,
            ),
        ];
        let mut held = 0u64;
        for (limit, key, interval) in limits {
            match inner.state.rate_check(&key, interval, now) {
                Ok(RateDecision::Send { suppressed }) => held = held.saturating_add(suppressed),
                Ok(RateDecision::Suppress) => return ReportOutcome::Suppressed(ip, limit),
                Err(e) => return ReportOutcome::Failed(format!("rate limit: {e}")),
            }
        }
        let until = now.checked_add(config.global_interval).unwrap_or(now);
        match inner.state.remember_once(GLOBAL_KEY, until, now) {
            Ok(true) => {}
            Ok(false) => return ReportOutcome::Suppressed(ip, Limit::Global),
            Err(e) => return ReportOutcome::Failed(format!("rate limit: {e}")),
        }
        *last = Some(now);
        drop(last);
        let incidents = held + 1;
        let report = ArfReport {
            report_from: &config.report_from,
            to: &to,
            reporting_mta: &inner.hostname,
            source_ip: ip,
            arrival: incident.received,
            date: SystemTime::now(),
            mail_from: &incident.mail_from,
            rcpts: &incident.rcpts,
            viruses: &incident.viruses,
            client_helo: incident.client.helo.as_deref(),
            client_name: incident.client.name.as_deref(),
            incidents,
            backscatter: crate::mail::bounce::is_bounce_raw(&incident.mail_from, headers),
            original_headers: incident.headers_withheld.is_none().then_some(headers),
        };
        let message = match arf::build(&report) {
            Ok(m) => m,
            Err(e) => return ReportOutcome::Failed(e.to_string()),
        };
        if config.dry_run {
            return ReportOutcome::DryRun { ip, to, message };
        }
        match inner.sink.submit(
            KIND,
            &config.report_from,
            std::slice::from_ref(&to),
            message,
        ) {
            Ok(()) => ReportOutcome::Submitted { ip, to, incidents },
            Err(e) => ReportOutcome::Failed(format!("submit: {e}")),
        }
    }
}
