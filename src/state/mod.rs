//! The state store: everything sievegate must remember across messages and restarts (the
//! quarantine index, cached lookups, rate limits, the outbound retry queue), behind one
//! small trait, [`StateStore`].
//!
//! Callers use only the trait. [`SqliteState`] is the store of a single host (one file,
//! `<[state] dir>/sievegate.db`, WAL mode so the server writes while the CLI reads);
//! [`PostgresState`] is the store several delivery hosts share (`[state] backend =
//! "postgres"`): what two hosts must agree on (a vacation record, a rate row, an outbox
//! lease) is decided atomically by the server. All SQL stays in [`sqlite`] and
//! [`postgres`]. [`MemoryState`] behaves the same without persistence, for tests of other
//! modules and for a server without `[state] dir`. One behaviour suite runs on all three.

#[cfg(test)]
mod digest_tests;
#[cfg(test)]
mod lifetime_tests;
mod memory;
pub mod postgres;
#[cfg(test)]
mod postgres_tests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod shared_tests;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The private PostgreSQL of the tests (shared with the integration tests).
#[cfg(test)]
#[path = "../../tests/it/support/postgres.rs"]
#[allow(dead_code)]
pub(crate) mod pg_harness;

/// A [`PostgresState`] on a new empty database of the test cluster (migrated).
#[cfg(test)]
pub(crate) fn test_postgres() -> PostgresState {
    let (_, url) = pg_harness::fresh_database();
    PostgresState::open(&test_options(url)).expect("open the test database")
}

/// Options for the test cluster's database at `url`.
#[cfg(test)]
pub(crate) fn test_options(url: String) -> PostgresOptions {
    PostgresOptions {
        url,
        pool_size: 8,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
        ca_file: None,
        startup_options: true,
    }
}

/// One test per store for each behaviour: `name => |store: Arc<dyn StateStore>| ...`
/// becomes `name::memory`, `name::sqlite` and `name::postgres` (a fresh database of the
/// test cluster; no PostgreSQL fails the test, never skips it).
#[cfg(test)]
macro_rules! on_every_store {
    ($($name:ident => $body:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn memory() {
                let store: std::sync::Arc<dyn StateStore> =
                    std::sync::Arc::new(crate::state::MemoryState::default());
                ($body)(store)
            }
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().expect("tempdir");
                let store: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(
                    crate::state::SqliteState::open(&dir.path().join("state")).expect("open"),
                );
                ($body)(store)
            }
            #[test]
            fn postgres() {
                let store: std::sync::Arc<dyn StateStore> =
                    std::sync::Arc::new(crate::state::test_postgres());
                ($body)(store)
            }
        }
    )*};
}
#[cfg(test)]
pub(crate) use on_every_store;

/// Like [`on_every_store!`], with two handles on one store, as two hosts (or the server
/// and the CLI) have: `name => |a: Arc<dyn StateStore>, b: Arc<dyn StateStore>| ...`.
/// Memory: the same store twice; SQLite: two connections to one file; PostgreSQL: two
/// pools on one database.
#[cfg(test)]
macro_rules! on_every_store_twice {
    ($($name:ident => $body:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn memory() {
                let store: std::sync::Arc<dyn StateStore> =
                    std::sync::Arc::new(crate::state::MemoryState::default());
                ($body)(std::sync::Arc::clone(&store), store)
            }
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().expect("tempdir");
                let open = || -> std::sync::Arc<dyn StateStore> {
                    std::sync::Arc::new(
                        crate::state::SqliteState::open(&dir.path().join("state")).expect("open"),
                    )
                };
                ($body)(open(), open())
            }
            #[test]
            fn postgres() {
                let (_, url) = crate::state::pg_harness::fresh_database();
                let open = || -> std::sync::Arc<dyn StateStore> {
                    std::sync::Arc::new(
                        crate::state::PostgresState::open(&crate::state::test_options(url.clone()))
                            .expect("open"),
                    )
                };
                ($body)(open(), open())
            }
        }
    )*};
}

#[cfg(test)]
pub(crate) use on_every_store_twice;

pub use memory::MemoryState;
pub use postgres::{PoolStatus, PostgresOptions, PostgresState};
pub use sqlite::SqliteState;

/// Why the state store could not do what was asked. The text names the store (path) and
/// the operation, for the log and the CLI.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory or database file cannot be created or opened.
    #[error("cannot open the state store {path}: {message}")]
    Open {
        /// The database file or its directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// A query or write failed (disk full, corrupt file, locked past the busy timeout).
    #[error("state store: {operation}: {message}")]
    Backend {
        /// What we were doing, e.g. `quarantine insert`.
        operation: &'static str,
        /// The backend's own text.
        message: String,
    },
    /// The database was written by a newer sievegate (its schema version is unknown here).
    #[error(
        "state store {path}: schema version {found} is newer than this sievegate knows ({known}): a newer sievegate wrote it; upgrade this one (it must not write a schema it does not know)"
    )]
    SchemaTooNew {
        /// The database file or server.
        path: String,
        /// Its schema version (SQLite: `user_version`; PostgreSQL: `schema_version`).
        found: i64,
        /// The newest version this build creates.
        known: i64,
    },
    /// A value read back is not what was written (e.g. a negative size): a broken row.
    #[error("state store: corrupt row: {0}")]
    Corrupt(String),
    /// An insert whose key is already present (e.g. a quarantine id used twice).
    #[error("state store: {0} already exists")]
    Duplicate(String),
}

/// Outcome of a rate check for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead; `suppressed` events were suppressed for this key since the last allowed one (and the counter is reset).
    Send { suppressed: u64 },
    /// Within `min_interval` of the last allowed event: counted, not allowed.
    Suppress,
}

/// One message waiting to be sent by the outbound module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Assigned by [`StateStore::queue_push`] (ignored on input).
    pub id: i64,
    /// `"postmaster-notice"`, `"abuse-report"`, ... (for logs/metrics).
    pub kind: String,
    /// Envelope sender, `""` = null sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The complete RFC 5322 message, CRLF.
    pub message: Vec<u8>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt: SystemTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Set for a Sieve redirect: whose it is, for the failure keep when the relay refuses
    /// it for good (see `crate::outbound`). `None` for everything else we send.
    pub redirect: Option<RedirectOwner>,
}

/// The local recipient whose Sieve script redirected a queued message. When the relay
/// refuses the redirect for good, the message goes into this recipient's INBOX instead
/// (Pigeonhole's failure keep), so it is never lost and never bounced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectOwner {
    /// The recipient's address as given at RCPT (re-resolved with the `[mailbox]` settings
    /// current at the failure keep).
    pub rcpt: String,
    /// The delivery already stored a copy into this recipient's INBOX (`redirect :copy`
    /// with a keep): a failure keep only logs, it does not store the same message twice.
    pub inbox_copy: bool,
}

/// The index entry of one quarantined message (the bytes live in the quarantine
/// directory, see `crate::quarantine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// Unique id, also the file name (`<id>.eml`); letters, digits, `.` and `-` only.
    pub id: String,
    /// When the message arrived (second precision is kept at least; microseconds here).
    pub received_at: SystemTime,
    /// Envelope sender (MAIL FROM), `""` for the null sender.
    pub sender: String,
    /// Every recipient as given in RCPT TO, in order.
    pub recipients: Vec<String>,
    /// The same recipients as resolved to mailboxes (`user@domain`, detail removed).
    pub resolved: Vec<String>,
    /// The MTA's client (XFORWARD ADDR), when known.
    pub client_ip: Option<String>,
    /// The MTA's client's HELO (XFORWARD HELO).
    pub client_helo: Option<String>,
    /// The MTA's queue id (XFORWARD IDENT).
    pub queue_id: Option<String>,
    /// The scan's word (`infected`) for the record.
    pub verdict: String,
    /// RFC 5235 `virustest` value at arrival.
    pub virustest: u8,
    /// Signature names clamd reported.
    pub viruses: Vec<String>,
    /// `Message-ID` as written (with brackets), `""` when absent.
    pub message_id: String,
    /// `Subject`, decoded, `""` when absent.
    pub subject: String,
    /// `From`, as an address or display text, `""` when absent.
    pub from: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// The message is itself a bounce (see `crate::mail::bounce::is_bounce`).
    pub backscatter: bool,
    /// When it was released, if it was.
    pub released_at: Option<SystemTime>,
    /// Who released it (the invoking user).
    pub released_by: Option<String>,
    /// Each recipient released so far, in the order of release. `released_at`/`released_by`
    /// above are set by the release that leaves no recipient held.
    pub releases: Vec<RcptRelease>,
}

/// One recipient of a quarantine entry let out by `quarantine release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptRelease {
    /// The recipient as given in RCPT TO (an element of [`QuarantineEntry::recipients`]).
    pub rcpt: String,
    /// When.
    pub at: SystemTime,
    /// By whom (the invoking user).
    pub by: String,
}

impl QuarantineEntry {
    /// The recipient as given at RCPT whose given or resolved form is `rcpt` (ASCII
    /// case-insensitively, as the CLI's `--rcpt` and the links match), the first of those
    /// `keep` accepts.
    pub fn recipient_matching(&self, rcpt: &str, keep: impl Fn(&str) -> bool) -> Option<&str> {
        self.recipients
            .iter()
            .zip((self.resolved.iter().map(String::as_str)).chain(std::iter::repeat("")))
            .find(|(given, resolved)| {
                keep(given)
                    && (given.eq_ignore_ascii_case(rcpt) || resolved.eq_ignore_ascii_case(rcpt))
            })
            .map(|(given, _)| given.as_str())
    }

    /// The recipients not released yet, in RCPT order.
    pub fn held(&self) -> Vec<&str> {
        self.recipients
            .iter()
            .filter(|r| !self.releases.iter().any(|x| &x.rcpt == *r))
            .map(String::as_str)
            .collect()
    }
}

/// What one [`StateStore::expire`] pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Cache rows past their expiry.
    pub cache: u64,
    /// Rate rows whose last allowed event is older than the rate retention.
    pub rate: u64,
}

/// Rows per table, for the size gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Cached lookups and remembered ids (redirect, duplicate, vacation, RDAP).
    pub cache: u64,
    /// Rate-limit keys.
    pub rate: u64,
    /// Mails waiting in the outbound queue (sent and given-up ones are deleted at once).
    pub queue: u64,
    /// Quarantine index entries.
    pub quarantine: u64,
}

/// Which quarantine entries [`StateStore::quarantine_list`] returns; every given part must
/// match. The default lists everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineFilter {
    /// Only entries received at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries with a virus name containing this text (ASCII case-insensitive).
    pub virus: Option<String>,
    /// Only entries for this recipient: matched case-insensitively against the addresses as
    /// given and as resolved.
    pub rcpt: Option<String>,
    /// At most this many entries (the oldest matching ones first).
    pub limit: Option<usize>,
}

/// The state store. Every method is one short transaction; implementations are safe to
/// share between threads. Times are kept with microsecond precision.
pub trait StateStore: Send + Sync {
    /// Adds a quarantine entry; [`StateError::Duplicate`] when its id exists.
    fn quarantine_insert(&self, entry: &QuarantineEntry) -> Result<(), StateError>;
    /// One entry by id.
    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError>;
    /// The matching entries, oldest first (then by id).
    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError>;
    /// Records a release; false when there is no such entry.
    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError>;
    /// Removes an entry from the index; false when there was none.
    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError>;
    /// Ids of entries received before `before`, oldest first.
    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError>;

    /// A cached value (e.g. an RDAP answer) if present and not expired at `now`.
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError>;
    /// Stores `value` under `key` until `expires` (replacing an older value).
    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError>;
    /// Sets `key` until `expires` only if it is absent or expired at `now`, in one atomic
    /// step: true when this call set it. Of any number of callers racing on one key (on
    /// any number of hosts sharing the store), exactly one gets true until it expires: the
    /// vacation reply's "once per sender and period" rests on it (`delivery::send`). A key
    /// already set keeps its expiry (a refresh is [`StateStore::cache_put`]).
    fn remember_once(
        &self,
        key: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StateError>;
    /// Rate limit per key: allowed when the last allowed event for `key` is older than `min_interval` (or none).
    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError>;
    /// Deletes every cache row expired at `now` and every rate row whose last allowed event
    /// is older than `rate_keep` (which callers make at least the longest `min_interval`
    /// in use, so a deleted row would have allowed the next event anyway; its suppressed
    /// count, older than `rate_keep`, goes with it).
    fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError>;
    /// Rows per table.
    fn sizes(&self) -> Result<StateSizes, StateError>;
    /// Adds a recipient (as given and as resolved) to entry `id`, for a message whose later
    /// recipient's Sieve chain also asked for quarantine; false when there is no such entry.
    /// A recipient already listed is not added twice.
    fn quarantine_add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<bool, StateError>;
    /// Records the release of `rcpts` (as given) of entry `id` at `at` by `by`; when no
    /// recipient is left held, the entry's `released_at`/`released_by` are set too. A
    /// recipient already released keeps its first record. False when there is no such entry.
    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError>;

    /// The quarantine entries already listed in a digest to `rcpt` (a resolved address,
    /// compared lowercased), sorted. An entry removed from the index leaves this list too.
    fn digest_listed(&self, rcpt: &str) -> Result<Vec<String>, StateError>;
    /// Records that the digest sent to `rcpt` at `at` listed `entries`, so the next digest
    /// lists only newer ones. Ids no longer in the index are skipped; one already recorded
    /// keeps its first record.
    fn digest_mark_listed(
        &self,
        rcpt: &str,
        entries: &[String],
        at: SystemTime,
    ) -> Result<(), StateError>;

    /// Adds a mail to the outbound queue; returns its id.
    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError>;
    /// Mails whose next_attempt <= now, oldest first, at most `limit`: a look at the queue
    /// that claims nothing (leased rows included).
    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError>;
    /// Claims up to `limit` due mails for sending, oldest first: those whose next_attempt
    /// <= now and whose lease (if any) ended by `now`; each gets a lease until `now +
    /// lease`, during which no other claim returns it. The sender then ends the lease with
    /// [`StateStore::queue_done`] or [`StateStore::queue_retry`]; a sender that dies
    /// mid-send leaves the lease to run out, and the next claim (on any host) takes the row
    /// again: at least once, never lost. Two claims at once never return the same row.
    fn queue_claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueuedMail>, StateError>;
    /// Removes a sent mail from the queue.
    fn queue_done(&self, id: i64) -> Result<(), StateError>;
    /// Counts a failed attempt and schedules the next one (ending any lease).
    fn queue_retry(&self, id: i64, next_attempt: SystemTime, error: &str)
        -> Result<(), StateError>;

    /// True when this store keeps the quarantined messages themselves, not only their
    /// index (PostgreSQL: every host lists, shows and releases them); the quarantine then
    /// writes no files and uses [`StateStore::quarantine_insert_message`] and
    /// [`StateStore::quarantine_message`]. A store of one host (SQLite) leaves the bytes
    /// to files beside it.
    fn holds_quarantine_messages(&self) -> bool {
        false
    }
    /// Adds a quarantine entry and its message (exactly these bytes) in one transaction:
    /// both or neither. [`StateError::Duplicate`] when the id exists. Only for a store that
    /// [holds messages](StateStore::holds_quarantine_messages).
    fn quarantine_insert_message(
        &self,
        entry: &QuarantineEntry,
        message: &[u8],
    ) -> Result<(), StateError> {
        let _ = (entry, message);
        Err(StateError::Backend {
            operation: "quarantine insert",
            message: "this state store keeps no messages".to_string(),
        })
    }
    /// The message of quarantine entry `id`, when this store holds messages and has it.
    /// Removing the entry ([`StateStore::quarantine_delete`]) removes its message too.
    fn quarantine_message(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let _ = id;
        Ok(None)
    }

    /// Whether the store's server is reachable, when it has one (PostgreSQL): set by its
    /// calls and by [`StateStore::probe`], read by the MAIL gate. `None`: a local store
    /// (memory, a SQLite file) is not a peer that can be down.
    fn health(&self) -> Option<&crate::health::Health> {
        None
    }

    /// One cheap round trip to the server (and the schema check, if it is still due),
    /// recorded in [`StateStore::health`]; the probe task calls it periodically so the
    /// gate lifts without a delivery. A local store has nothing to probe.
    fn probe(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// True when a committed write survives a restart (a file, a database server), so a
    /// queued row may stand in for a delivery (a redirect is answered once queued). The
    /// in-memory store is not.
    fn is_durable(&self) -> bool {
        true
    }
}

/// `time` as microseconds since the Unix epoch (negative before it), the unit every
/// backend stores.
pub fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

/// The inverse of [`to_micros`].
pub fn from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// The rate rule shared by the backends: given the last allowed event (microseconds), is
/// one at `now` allowed? A clock that went backwards counts as "just now".
fn rate_allows(last_allowed: Option<i64>, min_interval: Duration, now: SystemTime) -> bool {
    match last_allowed {
        None => true,
        Some(last) => {
            let elapsed = to_micros(now).saturating_sub(last);
            let interval = i64::try_from(min_interval.as_micros()).unwrap_or(i64::MAX);
            elapsed >= interval
        }
    }
}

/// The `--virus` rule shared by the backends: ASCII case-insensitive substring.
fn virus_matches(viruses: &[String], pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    viruses
        .iter()
        .any(|v| v.to_ascii_lowercase().contains(&pattern))
}
