//! The delivery pipeline: one received message → one [`RcptOutcome`] per recipient. Its
//! callers are thin: the LMTP session turns outcomes into replies.
//!
//! - [`door`]: the front door: scan once, the one scan-failure policy, recipients unknown
//!   to the users file; [`admit`](mod@admit): the one admission rule for every entry point.
//! - [`pipeline`]: per recipient: Sieve → Plan → trace headers → [`execute`] → one log
//!   line.
//! - [`policy`]: the one scan read per recipient: its domain's `ignore_signatures` and
//!   `min_virustest`, notices, `[quarantine] sample_recipients`.
//! - [`view`]: the bounded part of a message that Sieve parses.
//! - [`budget`]: how many bytes of messages are parsed at once, shared by every session.
//! - [`headers`]: scan headers stripped from incoming mail, trace headers prepended.
//! - [`execute()`]: one recipient's Plan against its Maildir, all or nothing.
//! - [`send`]: after the stores, what the Plan sends: redirects, vacation replies and
//!   notifications into the outbox (a redirect refused for good is kept in INBOX), ids
//!   remembered.

pub mod admit;
pub mod budget;
pub mod build;
pub mod door;
pub mod dry_run;
mod execute;
mod guard;
pub mod headers;
mod later;
mod log;
pub mod pipeline;
pub mod policy;
pub mod redirect;
pub mod release;
pub mod send;
pub mod user_limit;
pub mod view;

pub use admit::{admit, Refused};
pub use door::{deliver, deliver_admitted, enter, Delivered};
pub use execute::execute;
pub use headers::{strip_virus_headers, trace_headers, TraceInfo};
pub use pipeline::{deliver_scanned, Client, Envelope, Route};
pub use user_limit::{UserLimit, UserSlot};

use std::sync::Arc;

use crate::config::Config;
use crate::filter::Filter;
use crate::outbound::Outbox;
use crate::quarantine::Quarantine;
use crate::report::notice::Notifier;
use crate::report::AbuseReporter;
use crate::scan::Scanner;
use crate::state::{MemoryState, StateError, StateStore};
use crate::store::{StoreError, StoredMessage};
use crate::users::Users;
use budget::ParseBudget;

/// What every delivery shares: the configuration and the long-lived clients. Built once at
/// startup and shared (`Arc`) by every session.
pub struct Services {
    pub config: Config,
    pub scanner: Scanner,
    /// Shared with the outbox, which notes a redirect's failure keep in the user's log.
    pub filter: Arc<Filter>,
    /// Which recipients exist (`[mailbox] users_file`).
    pub users: Users,
    /// The state store (`[state] dir`; in memory without it).
    pub state: Arc<dyn StateStore>,
    /// The quarantine, when `[quarantine] enabled`.
    pub quarantine: Option<Quarantine>,
    /// Everything sievegate sends goes through this queue (its sender runs in `serve`).
    pub outbox: Outbox,
    /// Postmaster notices, when `[notify] postmaster` is set.
    pub notifier: Option<Arc<Notifier>>,
    /// Abuse reports, when `[abuse] enabled`.
    pub abuse: Option<AbuseReporter>,
    /// Bytes of messages parsed at once (`[server] max_parse_memory`).
    pub parse_budget: ParseBudget,
    /// Deliveries in flight per user, for `[mailbox] user_concurrency_limit` (the LMTP
    /// session counts them; LDA mode, one process per message, does not).
    pub user_limit: UserLimit,
}

impl Services {
    /// Builds the services with an in-memory state store: nothing is remembered across
    /// restarts, so this suits tools and tests that do not need durable state. The server
    /// uses [`Services::open`].
    pub fn new(config: Config) -> Self {
        Services::with_state(config, Arc::new(MemoryState::default()))
    }

    /// Builds the services and opens the state store `[state]` names ([`build::state`]:
    /// PostgreSQL, SQLite in `dir`, or memory).
    pub fn open(config: Config) -> Result<Self, StateError> {
        let state = build::state(&config)?;
        Ok(Services::with_state(config, state))
    }

    /// Builds the scanner and the Sieve filter from a validated configuration, with `state`
    /// as the state store.
    pub fn with_state(config: Config, state: Arc<dyn StateStore>) -> Self {
        let scanner = build::scanner(&config.scanner);
        let filter = Arc::new(
            Filter::new(build::filter_config(&config.sieve, &config.server.hostname))
                .with_state(Arc::clone(&state)),
        );
        let users = Users::new(config.mailbox.users_file.as_deref());
        let quarantine = config
            .quarantine
            .enabled
            .then(|| Quarantine::new(config.quarantine.dir.clone(), Arc::clone(&state)));
        let outbox = Outbox::new(&config, Arc::clone(&state));
        outbox.reconfigure(&config, Some(Arc::clone(&filter) as _));
        let notifier = Notifier::new(&config, outbox.clone()).map(Arc::new);
        let abuse = if config.abuse.enabled {
            let sink = Arc::new(outbox.clone());
            match AbuseReporter::new(&config, Arc::clone(&state), sink) {
                Ok(reporter) => Some(reporter),
                Err(e) => {
                    // check-config validated the file; it changed or broke since.
                    tracing::error!(error = %e, "abuse reports disabled: the RDAP bootstrap file cannot be read");
                    None
                }
            }
        } else {
            None
        };
        let parse_budget = ParseBudget::new(config.server.max_parse_memory);
        let user_limit = UserLimit::new(config.mailbox.user_concurrency_limit);
        Services {
            parse_budget,
            user_limit,
            config,
            scanner,
            filter,
            users,
            state,
            quarantine,
            outbox,
            notifier,
            abuse,
        }
    }
}

/// Why a recipient is deferred without a store having been tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferral {
    /// The virus scan failed and `on_failure = "tempfail"`.
    ScanFailed,
    /// A bug (a panic) while handling this recipient; logged.
    Internal,
    /// The message had to be quarantined and the quarantine write failed: nothing was
    /// delivered for anyone, the MTA retries.
    QuarantineFailed,
    /// A redirect could not be queued (state store error; or, without a durable store,
    /// not sent now) and no copy was stored: the MTA retries, so the message is not lost.
    RedirectFailed,
}

/// What happened to the message for one recipient.
#[derive(Debug)]
pub enum RcptOutcome {
    /// Every requested copy is durably stored (in plan order, duplicates folded).
    Delivered {
        /// The copies, one per distinct folder.
        stored: Vec<StoredMessage>,
    },
    /// The plan had no action: Sieve `discard` (or a policy that drops the message).
    Discarded,
    /// Sieve `reject`/`ereject`; nothing was stored.
    Rejected {
        /// The script's reason text (for the reply, sanitized by the session).
        reason: String,
        /// True for `ereject`: refuse in protocol rather than by a rejection message.
        extended: bool,
    },
    /// A store failed; nothing is stored for this recipient (earlier copies rolled back).
    Failed {
        /// The store failure that caused the rollback.
        error: StoreError,
    },
    /// Nothing was tried for this recipient; the MTA should retry.
    Deferred(Deferral),
    /// The recipient is not in `[mailbox] users_file`, was accepted at RCPT
    /// (`unknown_users = "after-scan"`), and the message is not infected: refused for good
    /// (550 5.1.1), as at RCPT. Infected mail to such a recipient is [`RcptOutcome::Discarded`]
    /// instead, so it never bounces.
    UnknownUser,
}

impl RcptOutcome {
    /// True when the MTA should retry later (a 4xx reply): every store failure is, because
    /// a full disk or a broken directory can be fixed without the sender's help.
    pub fn is_temporary_failure(&self) -> bool {
        matches!(self, RcptOutcome::Failed { .. } | RcptOutcome::Deferred(_))
    }

    /// The `outcome` label of the deliveries counter ([`crate::metrics::delivery`]);
    /// `quarantined`: the message went to the quarantine, so a discard counts as that.
    pub fn metric_label(&self, quarantined: bool) -> &'static str {
        match self {
            RcptOutcome::Delivered { .. } => "delivered",
            RcptOutcome::Discarded if quarantined => "quarantined",
            RcptOutcome::Discarded => "discarded",
            RcptOutcome::Rejected { .. } => "rejected",
            RcptOutcome::Failed { .. } | RcptOutcome::Deferred(_) => "deferred",
            RcptOutcome::UnknownUser => "unknown_user",
        }
    }

    /// One word for the log line: `delivered`, `discarded`, `rejected` (Sieve `reject`),
    /// `erejected` (Sieve `ereject`), `deferred`, `unknown` (no such user, refused after the
    /// scan).
    pub fn kind(&self) -> &'static str {
        match self {
            RcptOutcome::Delivered { .. } => "delivered",
            RcptOutcome::Discarded => "discarded",
            RcptOutcome::Rejected {
                extended: false, ..
            } => "rejected",
            RcptOutcome::Rejected { extended: true, .. } => "erejected",
            RcptOutcome::Failed { .. } | RcptOutcome::Deferred(_) => "deferred",
            RcptOutcome::UnknownUser => "unknown",
        }
    }

    /// True when the failure is a full file system or quota, for its own status code.
    pub fn is_no_space(&self) -> bool {
        matches!(self, RcptOutcome::Failed { error } if error.is_no_space())
    }

    /// One short phrase for the per-recipient log line: `stored INBOX,Work`, `discarded`,
    /// `rejected: <reason>`, `failed: <error>`.
    pub fn summary(&self) -> String {
        match self {
            RcptOutcome::Delivered { stored } => {
                let folders: Vec<String> = stored.iter().map(|s| s.folder.imap_name()).collect();
                format!("stored {}", folders.join(","))
            }
            RcptOutcome::Discarded => "discarded".to_string(),
            RcptOutcome::Rejected { reason, .. } => format!("{}: {reason}", self.kind()),
            RcptOutcome::Failed { error } => format!("failed: {error}"),
            RcptOutcome::Deferred(Deferral::ScanFailed) => "not delivered: scan failed".into(),
            RcptOutcome::Deferred(Deferral::Internal) => "not delivered: internal error".into(),
            RcptOutcome::Deferred(Deferral::QuarantineFailed) => {
                "not delivered: quarantine write failed".into()
            }
            RcptOutcome::Deferred(Deferral::RedirectFailed) => {
                "not delivered: redirect failed".into()
            }
            RcptOutcome::UnknownUser => "refused: no such user (not infected)".into(),
        }
    }
}
