//! Everything sievegate sends (postmaster notices, abuse reports, vacation replies,
//! notifications, Sieve redirects): queued in the state store, sent later by one background
//! task, retried with backoff.
//!
//! - [`Outbox::enqueue`] only writes the message into the state store's queue (one entry per
//!   recipient, so a partial failure never re-sends to a recipient that already has it) and
//!   wakes the sender. It never talks to a peer, so it can neither delay nor fail a delivery.
//!   [`Outbox::enqueue_redirect`] does the same for a Sieve redirect, whose row records the
//!   redirecting recipient ([`redirect`]).
//! - [`Outbox::run`] is the sender: it takes due mail and
//!   - stores it into the Maildir INBOX of a recipient at one of our `[mailbox] domains`
//!     ([`local`]), without Sieve and without a relay (not a redirect: those always go to
//!     the relay);
//!   - sends everything else through `[notify] relay` ([`relay`], SMTP by mail-send); a
//!     redirect within `[sieve] redirect_timeout_secs` for the whole transaction, so a
//!     hanging relay holds the sender that long at most.
//!
//!   A 2xx is done. A 5xx (or a local user that cannot exist) is logged and dropped: we send
//!   only to postmasters, abuse desks and automatic-reply targets, and a refusal will not
//!   change by itself. Anything else is retried after 1 min, doubling up to 1 h, for 5 days;
//!   then it is logged as an error and dropped ([`RetryPolicy`]). A **redirect is never
//!   dropped**: a permanent refusal, or the end of the retry period, does its failure keep
//!   into the redirecting user's INBOX ([`redirect`]). At least once: a crash between the
//!   relay's 250 and the queue update sends that message again.
//!
//! Local delivery and the redirect deadline follow a reload: [`Outbox::reconfigure`] swaps
//! them (`[mailbox]`, `[sieve] redirect_timeout_secs`); the relay and our EHLO name stay
//! until a restart.
//!
//! The envelope sender of our own mail is normally `<>`, so nothing we send can bounce back
//! and loop. A redirect keeps the original sender, as Pigeonhole does.

pub mod compose;
pub mod local;
pub mod redirect;
pub mod relay;
mod retry;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

pub use local::{LocalDelivery, LocalError, Route};
pub use redirect::{Redirect, UserNotes};
pub use relay::{RelayError, Timeouts};
pub use retry::RetryPolicy;

use crate::config::{Config, Relay};
use crate::mail::address::is_plain_address;
use crate::state::{QueuedMail, StateError, StateStore};

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A sender or recipient that cannot go into `MAIL FROM:<>`/`RCPT TO:<>` as it is.
    #[error("{0:?} is not a plain address")]
    BadAddress(String),
    /// No recipient given.
    #[error("no recipient")]
    NoRecipient,
    /// The state store refused the write.
    #[error("cannot queue: {0}")]
    State(#[from] StateError),
}

/// The sender's knobs: the lease and the poll come from `[state] outbox_lease_secs` and
/// `outbox_poll_secs` ([`OutboxOptions::from_config`]); the rest the configuration file
/// does not expose (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxOptions {
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Relay deadlines.
    pub timeouts: Timeouts,
    /// How long a pass holds the rows it took ([`StateStore::queue_claim`]): no other
    /// sender (another host sharing the store) takes them meanwhile; a sender that dies
    /// mid-pass leaves them to be taken again once it runs out. Longer than a pass
    /// normally lasts, so a slow relay does not get a message sent twice.
    pub lease: Duration,
}

impl OutboxOptions {
    /// The defaults with the lease and the poll `config` sets (`[state]
    /// outbox_lease_secs`, `outbox_poll_secs`): what the server and the LDA send with.
    pub fn from_config(config: &Config) -> OutboxOptions {
        let defaults = OutboxOptions::default();
        OutboxOptions {
            lease: config.state.outbox_lease,
            retry: RetryPolicy {
                poll: config.state.outbox_poll,
                ..defaults.retry
            },
            ..defaults
        }
    }
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            lease: Duration::from_secs(15 * 60),
        }
    }
}

/// What one pass of the sender did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Taken from the queue.
    pub taken: usize,
    /// Sent or stored.
    pub sent: usize,
    /// Scheduled for another try.
    pub retried: usize,
    /// Dropped: refused for good, or retried for too long.
    pub dropped: usize,
    /// Redirects refused for good whose failure keep is done (the message is in the
    /// redirecting user's INBOX).
    pub kept: usize,
}

/// The outbound queue and its sender. Cheap to clone: clones share one queue and sender.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<dyn StateStore>,
    /// What a reload may change; each attempt takes the current value.
    settings: RwLock<Arc<Settings>>,
    relay: Relay,
    /// Our EHLO name: `[server] hostname`.
    helo: String,
    options: OutboxOptions,
    /// Wakes the sender when mail is queued, so it does not wait for the next poll.
    wake: Notify,
}

/// The outbox's part of the reloadable configuration ([`Outbox::reconfigure`]).
struct Settings {
    /// `[mailbox]`: local recipients and failure keeps.
    local: LocalDelivery,
    /// Relay deadlines of a redirect: `[sieve] redirect_timeout_secs`.
    redirect_timeouts: Timeouts,
    /// The users' Sieve logs, for a failure keep.
    notes: Option<Arc<dyn UserNotes>>,
}

impl Settings {
    fn new(config: &Config, notes: Option<Arc<dyn UserNotes>>) -> Settings {
        let deadline = config.sieve.redirect_timeout;
        Settings {
            local: LocalDelivery::new(&config.mailbox),
            redirect_timeouts: Timeouts {
                connect: REDIRECT_CONNECT_TIMEOUT.min(deadline),
                command: deadline,
                transaction: deadline,
            },
            notes,
        }
    }
}

/// The longest wait for the relay's TCP connect within a redirect's deadline.
const REDIRECT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How one attempt at one queued message ended.
enum Attempt {
    /// Stored or accepted by the relay; the text says where.
    Sent(String),
    /// A redirect refused for good (`reason`), kept in its owner's INBOX (`result`).
    Kept { reason: String, result: String },
    /// Try again later. `relay_down`: the relay itself failed, so skip it for the rest of
    /// this pass.
    Retry { error: String, relay_down: bool },
    /// Will never work: drop it (logged).
    Drop(String),
}

impl Outbox {
    /// The outbox for `config`, queueing into `state`, with the default schedule and the
    /// configured lease ([`OutboxOptions::from_config`]).
    pub fn new(config: &Config, state: Arc<dyn StateStore>) -> Outbox {
        Outbox::with_options(config, state, OutboxOptions::from_config(config))
    }

    /// The state store the outbox queues into (shared by every host that shares it).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.inner.state
    }

    /// [`Outbox::new`] with another schedule or other deadlines.
    pub fn with_options(
        config: &Config,
        state: Arc<dyn StateStore>,
        options: OutboxOptions,
    ) -> Outbox {
        Outbox {
            inner: Arc::new(Inner {
                state,
                settings: RwLock::new(Arc::new(Settings::new(config, None))),
                relay: config.notify.relay.clone(),
                helo: config.server.hostname.clone(),
                options,
                wake: Notify::new(),
            }),
        }
    }

    /// Takes the reloadable settings of `config` (`[mailbox]`, `[sieve]
    /// redirect_timeout_secs`) and `notes` for the users' Sieve logs: every attempt from
    /// now on uses them. The relay and our EHLO name are kept (restart-only).
    pub fn reconfigure(&self, config: &Config, notes: Option<Arc<dyn UserNotes>>) {
        let settings = Arc::new(Settings::new(config, notes));
        // A panic while holding the lock cannot leave a half-written Arc behind.
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .inner
                .settings
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Queues `message` (a complete RFC 5322 message with CRLF line ends) from `from` (`""`:
    /// the null sender) to each of `to`, one queue entry per recipient, and wakes the
    /// sender. `kind` names it in the logs (`postmaster-notice`, `abuse-report`). Returns
    /// the queue ids. One state-store write per recipient; no network.
    pub fn enqueue(
        &self,
        kind: &str,
        from: &str,
        to: &[String],
        message: Vec<u8>,
    ) -> Result<Vec<i64>, OutboxError> {
        if !from.is_empty() && !is_plain_address(from) {
            return Err(OutboxError::BadAddress(from.to_string()));
        }
        if to.is_empty() {
            return Err(OutboxError::NoRecipient);
        }
        if let Some(bad) = to.iter().find(|a| !is_plain_address(a)) {
            return Err(OutboxError::BadAddress(bad.clone()));
        }
        let mut mail = QueuedMail {
            id: 0,
            kind: kind.to_string(),
            from: from.to_string(),
            to: Vec::new(),
            message,
            attempts: 0,
            next_attempt: SystemTime::now(),
            last_error: None,
            redirect: None,
        };
        let mut ids = Vec::with_capacity(to.len());
        for rcpt in to {
            mail.to = vec![rcpt.clone()];
            let id = self.inner.state.queue_push(&mail)?;
            tracing::debug!(queue_id = id, kind, to = %rcpt, "queued");
            ids.push(id);
        }
        self.inner.wake.notify_one();
        Ok(ids)
    }

    /// The sender: sends due mail until `shutdown` resolves. Mail queued meanwhile wakes it
    /// at once; otherwise it looks every [`RetryPolicy::poll`]. Stopping in the middle of a
    /// transaction leaves that message queued (sent again later, at least once).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pass = tokio::select! {
                _ = &mut shutdown => return,
                pass = self.send_due() => pass,
            };
            if pass.taken >= self.inner.options.retry.batch.max(1)
                && pass.sent + pass.dropped + pass.kept > 0
            {
                // A full batch that made progress: more may be due right now. (A batch that
                // only failed waits for the poll, so a broken relay or store cannot spin.)
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(self.inner.options.retry.poll) => {}
            }
        }
    }

    /// One pass: takes up to [`RetryPolicy::batch`] due messages and tries each once.
    pub async fn send_due(&self) -> Pass {
        let mut pass = Pass::default();
        let batch = self.inner.options.retry.batch.max(1);
        let lease = self.inner.options.lease;
        let due = match self
            .blocking(move |state| state.queue_claim(SystemTime::now(), batch, lease))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "outbound queue unreadable; retrying at the next poll");
                return pass;
            }
        };
        pass.taken = due.len();
        // Once the relay itself has failed, the rest of this pass's relay mail is deferred
        // with the same reason instead of each waiting for its own connect timeout.
        let mut relay_down: Option<String> = None;
        for mail in due {
            let attempt = match &relay_down {
                Some(error) if self.goes_to_relay(&mail) => Attempt::Retry {
                    error: error.clone(),
                    relay_down: true,
                },
                _ => self.attempt(&mail).await,
            };
            if let Attempt::Retry {
                error,
                relay_down: true,
            } = &attempt
            {
                relay_down.get_or_insert_with(|| error.clone());
            }
            match self.settle(mail, attempt).await {
                Settled::Sent => pass.sent += 1,
                Settled::Retried => pass.retried += 1,
                Settled::Dropped => pass.dropped += 1,
                Settled::Kept => pass.kept += 1,
            }
        }
        pass
    }

    fn goes_to_relay(&self, mail: &QueuedMail) -> bool {
        let settings = self.settings();
        mail.redirect.is_some()
            || mail
                .to
                .iter()
                .any(|to| matches!(settings.local.route(to), Ok(Route::Relay)))
    }

    /// Tries one queued message once: local recipients into their Maildir, the others
    /// through the relay in one transaction (a redirect: all of them, within its own
    /// deadline). (Our own entries have one recipient each.)
    async fn attempt(&self, mail: &QueuedMail) -> Attempt {
        let settings = self.settings();
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for to in &mail.to {
            if mail.redirect.is_some() {
                remote.push(to.clone());
                continue;
            }
            match settings.local.route(to) {
                Ok(Route::Local(rcpt)) => local.push(rcpt),
                Ok(Route::Relay) => remote.push(to.clone()),
                Err(e) => return Attempt::Drop(e.to_string()),
            }
        }
        let mut done = Vec::new();
        if !local.is_empty() {
            let settings = Arc::clone(&settings);
            let from = mail.from.clone();
            let message = mail.message.clone();
            let stored = tokio::task::spawn_blocking(move || {
                local
                    .iter()
                    .map(|rcpt| settings.local.store(rcpt, &from, &message))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
            match stored {
                Ok(Ok(stored)) => done.extend(
                    stored
                        .iter()
                        .map(|s| format!("stored {}", s.path.display())),
                ),
                Ok(Err(e)) if e.is_permanent() => return Attempt::Drop(e.to_string()),
                Ok(Err(e)) => {
                    return Attempt::Retry {
                        error: e.to_string(),
                        relay_down: false,
                    }
                }
                Err(e) => {
                    return Attempt::Retry {
                        error: format!("local delivery task failed: {e}"),
                        relay_down: false,
                    }
                }
            }
        }
        if !remote.is_empty() {
            let inner = &self.inner;
            let timeouts = if mail.redirect.is_some() {
                settings.redirect_timeouts
            } else {
                inner.options.timeouts
            };
            match relay::send(
                &inner.relay,
                &inner.helo,
                &mail.from,
                &remote,
                &mail.message,
                timeouts,
            )
            .await
            {
                Ok(reply) => done.push(format!("relay {} said {reply}", inner.relay)),
                Err(e) if e.is_permanent() => return Attempt::Drop(e.to_string()),
                Err(e) => {
                    return Attempt::Retry {
                        relay_down: e.is_relay_down(),
                        error: e.to_string(),
                    }
                }
            }
        }
        Attempt::Sent(done.join("; "))
    }

    /// Records the attempt's result in the queue and logs it. A redirect refused for good,
    /// or failing past the retry period, gets its failure keep first.
    async fn settle(&self, mail: QueuedMail, attempt: Attempt) -> Settled {
        let id = mail.id;
        let failures = mail.attempts.saturating_add(1);
        let attempt = match (attempt, &mail.redirect) {
            (Attempt::Drop(error), Some(owner)) => self.failure_keep(&mail, owner, error).await,
            (Attempt::Retry { error, .. }, Some(owner))
                if self.inner.options.retry.gives_up(failures) =>
            {
                let reason = format!("still failing after the retry period: {error}");
                self.failure_keep(&mail, owner, reason).await
            }
            (attempt, _) => attempt,
        };
        let to = mail.to.join(",");
        let kind = mail.kind.as_str();
        let (settled, update) = match attempt {
            Attempt::Sent(result) => {
                tracing::info!(queue_id = id, kind, to = %to, attempts = failures, result = %result, "sent");
                (Settled::Sent, Update::Done)
            }
            Attempt::Kept { reason, result } => {
                let owner = mail.redirect.as_ref().map_or("", |o| o.rcpt.as_str());
                tracing::warn!(queue_id = id, kind, to = %to, %owner, attempts = failures, relay_reply = %reason, result = %result, "redirect refused for good: failure keep into the user's INBOX");
                (Settled::Kept, Update::Done)
            }
            Attempt::Drop(error) => {
                tracing::error!(queue_id = id, kind, to = %to, attempts = failures, error = %error, "refused for good: message dropped");
                (Settled::Dropped, Update::Done)
            }
            Attempt::Retry { error, .. }
                if mail.redirect.is_none() && self.inner.options.retry.gives_up(failures) =>
            {
                tracing::error!(queue_id = id, kind, to = %to, attempts = failures, error = %error, "still failing after the retry period: message dropped");
                (Settled::Dropped, Update::Done)
            }
            Attempt::Retry { error, .. } => {
                let delay = self.inner.options.retry.delay(failures);
                tracing::warn!(queue_id = id, kind, to = %to, attempts = failures, error = %error, retry_in_secs = delay.as_secs_f64(), "not sent; will retry");
                (
                    Settled::Retried,
                    Update::Retry(SystemTime::now() + delay, error),
                )
            }
        };
        let result = match update {
            Update::Done => self.blocking(move |state| state.queue_done(id)).await,
            Update::Retry(at, error) => {
                self.blocking(move |state| state.queue_retry(id, at, &error))
                    .await
            }
        };
        if let Err(e) = result {
            // The entry stays due: it is tried again, and may be sent twice.
            tracing::error!(queue_id = id, kind, error = %e, "cannot update the outbound queue");
        }
        settled
    }

    /// Runs a state-store call off the async threads (SQLite writes fsync).
    async fn blocking<T, F>(&self, call: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn StateStore) -> Result<T, StateError> + Send + 'static,
    {
        let state = Arc::clone(&self.inner.state);
        tokio::task::spawn_blocking(move || call(state.as_ref()))
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Backend {
                    operation: "outbound task",
                    message: e.to_string(),
                })
            })
    }
}

enum Settled {
    Sent,
    Retried,
    Dropped,
    Kept,
}

enum Update {
    Done,
    Retry(SystemTime, String),
}

/// A new globally unique Message-ID at `hostname`, without the angle brackets:
/// `<microseconds>.<pid>.<counter>@<hostname>`.
pub fn new_message_id(hostname: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{micros}.{}.{n}@{hostname}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique() {
        let a = new_message_id("mx.example.test");
        let b = new_message_id("mx.example.test");
        assert_ne!(a, b);
        assert!(a.ends_with("@mx.example.test"));
    }
}
