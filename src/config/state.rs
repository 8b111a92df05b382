//! `[state]`: where the state store lives; [`RawState`] as written, [`StateConfig`]
//! validated. Two backends: SQLite in `dir` (one host, the default) or a PostgreSQL
//! server shared by several hosts ([`PostgresConfig`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::resolve;

/// Which engine holds the state, as written in `[state] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawBackend {
    /// Embedded, one file in `dir`: the quickstart needs no database server.
    #[default]
    Sqlite,
    /// A PostgreSQL server at `url`, shared by every delivery host.
    Postgres,
}

/// What stands between sievegate and PostgreSQL, as written in `[state] pooler`: it decides
/// how the server-side `statement_timeout` is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// PostgreSQL itself (or a session-mode pooler): `statement_timeout_secs` goes in every
    /// connection's startup `options`.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`). PgBouncer refuses
    /// a startup `options` it does not track (before 1.20: any), or drops it when told to
    /// ignore it, and a session `SET` would leak to other clients; so no startup options
    /// are sent and the timeout is the role's (`ALTER ROLE ... SET statement_timeout`),
    /// checked at startup.
    Transaction,
}

/// `[state]`: the state store (quarantine index, caches, rate limits, queue).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `"sqlite"` (default) or `"postgres"`.
    #[serde(default)]
    pub backend: RawBackend,
    /// Directory of `sievegate.db` (SQLite). Without it and without PostgreSQL, state lives
    /// in memory and is lost at restart (and the quarantine cannot be enabled). With
    /// PostgreSQL it only places the default spool directory.
    pub dir: Option<String>,
    /// PostgreSQL: a libpq-style connection string or `postgresql://` URL (TLS, a unix
    /// socket directory as `host`, several comma-separated hosts).
    pub url: Option<String>,
    /// PostgreSQL: connections kept open by each process. Every delivery thread and the
    /// outbox share them; a caller waits (up to the connect timeout) for a free one.
    #[serde(default = "defaults::pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: seconds to establish a connection (and to wait for a free one).
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// PostgreSQL: seconds one statement may run before the server cancels it, so a
    /// stuck database turns into an error (a 4xx) instead of a hanging delivery.
    #[serde(default = "defaults::statement_timeout_secs")]
    pub statement_timeout_secs: u64,
    /// PostgreSQL: a PEM file of CA certificates trusted for the server's TLS certificate,
    /// besides the webpki roots: a site's own CA (or the server's self-signed certificate),
    /// so TLS works without a public CA. Relative to the config file's directory.
    pub ca_file: Option<String>,
    /// PostgreSQL: `"none"` (default) or `"transaction"` behind a transaction-mode pooler
    /// such as PgBouncer ([`Pooler`]).
    #[serde(default)]
    pub pooler: Pooler,
    /// How often the server deletes expired cache and rate rows (and refreshes the size
    /// gauges).
    #[serde(default = "defaults::expire_interval_secs")]
    pub expire_interval_secs: u64,
    /// A rate-limit key whose last allowed event is older than this is forgotten. Raised
    /// at run time to the longest `min_interval` configured, so forgetting never allows an
    /// event early.
    #[serde(default = "defaults::rate_retention_secs")]
    pub rate_retention_secs: u64,
    /// Without `dir`: most cache and rate entries held in memory (expired ones are evicted
    /// first, then the oldest).
    #[serde(default = "defaults::memory_max_entries")]
    pub memory_max_entries: usize,
    /// How long the outbox sender holds the rows it took for one pass. While the lease
    /// runs no other host sharing the store sends them; a host that dies mid-pass leaves
    /// them to the others once it runs out. Longer than a pass lasts (a shorter lease lets
    /// a slow relay get a message twice), short enough that a dead host's mail is not late
    /// by much.
    #[serde(default = "defaults::outbox_lease_secs")]
    pub outbox_lease_secs: u64,
    /// How often the outbox sender looks for due mail when nothing woke it. Mail queued by
    /// this process wakes the sender at once; the poll finds what it cannot be woken for:
    /// retries falling due, rows queued by another process (the CLI, `deliver`, another
    /// host) and rows whose lease ran out on a host that died. So the shorter it is, the
    /// sooner a dead host's mail goes out after its lease, at one small query per poll
    /// per host.
    #[serde(default = "defaults::outbox_poll_secs")]
    pub outbox_poll_secs: u64,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            backend: RawBackend::default(),
            dir: None,
            url: None,
            pool_size: defaults::pool_size(),
            connect_timeout_secs: defaults::connect_timeout_secs(),
            statement_timeout_secs: defaults::statement_timeout_secs(),
            ca_file: None,
            pooler: Pooler::None,
            expire_interval_secs: defaults::expire_interval_secs(),
            rate_retention_secs: defaults::rate_retention_secs(),
            memory_max_entries: defaults::memory_max_entries(),
            outbox_lease_secs: defaults::outbox_lease_secs(),
            outbox_poll_secs: defaults::outbox_poll_secs(),
        }
    }
}

mod defaults {
    pub fn pool_size() -> usize {
        16
    }
    pub fn connect_timeout_secs() -> u64 {
        5
    }
    pub fn statement_timeout_secs() -> u64 {
        10
    }
    pub fn expire_interval_secs() -> u64 {
        300
    }
    pub fn rate_retention_secs() -> u64 {
        7 * 24 * 3600
    }
    pub fn memory_max_entries() -> usize {
        100_000
    }
    pub fn outbox_lease_secs() -> u64 {
        15 * 60
    }
    pub fn outbox_poll_secs() -> u64 {
        15
    }
}

/// Bounds of `outbox_lease_secs`: a lease of 0 would let every host take every row at
/// once; one past a day leaves a dead host's mail that long unsent.
pub const OUTBOX_LEASE_SECS: std::ops::RangeInclusive<u64> = 1..=24 * 3600;

/// Bounds of `outbox_poll_secs`: 0 would spin on the store; past an hour a retry or a dead
/// host's mail could wait longer than the retry schedule's own longest delay.
pub const OUTBOX_POLL_SECS: std::ops::RangeInclusive<u64> = 1..=3600;

/// Validated `[state] backend = "postgres"` keys: plain values, turned into a pool by
/// `delivery::build`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection string as written (it may hold a password: never logged; see
    /// [`PostgresConfig::redacted`]).
    pub url: String,
    /// Connections per process (at least 1).
    pub pool_size: usize,
    /// Connect (and pool wait) deadline.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`.
    pub statement_timeout: Duration,
    /// Absolute path of `ca_file`, read when the pool is built (check-config reads it too).
    pub ca_file: Option<PathBuf>,
    /// What is between us and the server: how the statement timeout is set.
    pub pooler: Pooler,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("ca_file", &self.ca_file)
            .field("pooler", &self.pooler)
            .finish()
    }
}

impl PostgresConfig {
    /// Where the store is, for logs and `state status`: hosts, ports and database, without
    /// the password (the URL itself may carry one).
    pub fn redacted(&self) -> String {
        match tokio_postgres::Config::from_str(&self.url) {
            Ok(c) => crate::state::postgres::describe(&c),
            Err(_) => "postgresql (unparsable url)".to_string(),
        }
    }
}

/// Validated `[state]`.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory of the SQLite database (and the default spool); `None` with
    /// SQLite: in memory only.
    pub dir: Option<PathBuf>,
    /// `Some` when `backend = "postgres"`: the store is that server, not `dir`.
    pub postgres: Option<PostgresConfig>,
    /// Period of the expiry pass (at least a second).
    pub expire_interval: Duration,
    /// Rate retention as configured (see [`RawState::rate_retention_secs`]).
    pub rate_retention: Duration,
    /// Bound on in-memory cache and rate entries.
    pub memory_max_entries: usize,
    /// The outbox sender's lease on the rows of one pass (see
    /// [`RawState::outbox_lease_secs`]); within `OUTBOX_LEASE_SECS`.
    pub outbox_lease: Duration,
    /// The outbox sender's poll when nothing wakes it (see
    /// [`RawState::outbox_poll_secs`]); within `OUTBOX_POLL_SECS`.
    pub outbox_poll: Duration,
}

impl StateConfig {
    /// True when what is written survives a restart (SQLite in `dir`, or PostgreSQL): the
    /// quarantine index and a queued redirect need it.
    pub fn is_durable(&self) -> bool {
        self.dir.is_some() || self.postgres.is_some()
    }
}

impl RawState {
    /// The validated section: `dir` resolved against the config file's directory; the
    /// PostgreSQL keys checked (the URL parsed, no connection made).
    pub(super) fn validate(self, base: &Path, problems: &mut Vec<String>) -> StateConfig {
        let postgres = match self.backend {
            // A url beside sqlite is ignored (an admin switching back keeps it written),
            // but still checked, so a typo shows before the switch.
            RawBackend::Sqlite => {
                if let Some(url) = &self.url {
                    if let Err(e) = tokio_postgres::Config::from_str(url) {
                        problems.push(format!(
                            "state.url: not a PostgreSQL connection string: {e}"
                        ));
                    }
                }
                None
            }
            RawBackend::Postgres => self.postgres(base, problems),
        };
        if !OUTBOX_LEASE_SECS.contains(&self.outbox_lease_secs) {
            problems.push(format!(
                "state.outbox_lease_secs: {} is out of range ({} to {} seconds)",
                self.outbox_lease_secs,
                OUTBOX_LEASE_SECS.start(),
                OUTBOX_LEASE_SECS.end()
            ));
        }
        if !OUTBOX_POLL_SECS.contains(&self.outbox_poll_secs) {
            problems.push(format!(
                "state.outbox_poll_secs: {} is out of range ({} to {} seconds)",
                self.outbox_poll_secs,
                OUTBOX_POLL_SECS.start(),
                OUTBOX_POLL_SECS.end()
            ));
        }
        StateConfig {
            dir: self.dir.as_deref().map(|d| resolve(base, d)),
            postgres,
            expire_interval: Duration::from_secs(self.expire_interval_secs.max(1)),
            rate_retention: Duration::from_secs(self.rate_retention_secs),
            memory_max_entries: self.memory_max_entries,
            outbox_lease: Duration::from_secs(
                self.outbox_lease_secs
                    .clamp(*OUTBOX_LEASE_SECS.start(), *OUTBOX_LEASE_SECS.end()),
            ),
            outbox_poll: Duration::from_secs(
                self.outbox_poll_secs
                    .clamp(*OUTBOX_POLL_SECS.start(), *OUTBOX_POLL_SECS.end()),
            ),
        }
    }

    fn postgres(&self, base: &Path, problems: &mut Vec<String>) -> Option<PostgresConfig> {
        let before = problems.len();
        match &self.url {
            None => problems.push("state.url: needed with backend = \"postgres\"".to_string()),
            // The driver's own error names the part it refused; the URL (which may hold a
            // password) is not repeated.
            Some(url) => match tokio_postgres::Config::from_str(url) {
                Ok(parsed) if parsed.get_hosts().is_empty() => problems.push(
                    "state.url: names no host (give host=... or postgresql://HOST/...)".to_string(),
                ),
                Ok(_) => {}
                Err(e) => problems.push(format!(
                    "state.url: not a PostgreSQL connection string: {e}"
                )),
            },
        }
        for (key, value) in [
            ("state.pool_size", self.pool_size as u64),
            ("state.connect_timeout_secs", self.connect_timeout_secs),
            ("state.statement_timeout_secs", self.statement_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        let ca_file = self.ca_file.as_deref().map(|f| resolve(base, f));
        if let Some(path) = &ca_file {
            if let Err(e) = crate::state::postgres::ca_certificates(path) {
                problems.push(format!("state.ca_file: {e}"));
            }
        }
        (problems.len() == before).then(|| PostgresConfig {
            url: self.url.clone().unwrap_or_default(),
            pool_size: self.pool_size,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            statement_timeout: Duration::from_secs(self.statement_timeout_secs),
            ca_file,
            pooler: self.pooler,
        })
    }
}

impl super::Config {
    /// How long rate rows are kept: `[state] rate_retention_secs`, raised to the longest
    /// `min_interval` configured (a row forgotten earlier would allow an event too soon).
    /// Helpers adding a rate limit with its own interval add it here.
    pub fn rate_keep(&self) -> Duration {
        self.state
            .rate_retention
            .max(self.abuse.min_interval)
            .max(self.abuse.network_interval)
            .max(self.abuse.contact_interval)
            .max(self.sieve.notify_min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (StateConfig, Vec<String>) {
        let raw: RawState = toml::from_str(text).expect("toml");
        let mut problems = Vec::new();
        let state = raw.validate(Path::new("/etc/sievegate"), &mut problems);
        (state, problems)
    }

    #[test]
    fn sqlite_is_the_default_and_postgres_needs_a_url() {
        let (state, problems) = parse("dir = \"s\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.dir, Some(PathBuf::from("/etc/sievegate/s")));
        assert!(state.postgres.is_none() && state.is_durable());
        assert!(!parse("").0.is_durable(), "memory only");
        assert_eq!(state.outbox_lease, Duration::from_secs(900));
        let (state, problems) = parse("outbox_lease_secs = 5\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.outbox_lease, Duration::from_secs(5));
        assert_eq!(parse("").0.outbox_poll, Duration::from_secs(15));
        let (state, problems) = parse("outbox_poll_secs = 1\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.outbox_poll, Duration::from_secs(1));

        let (state, problems) = parse(
            "backend = \"postgres\"\nurl = \"postgresql://u:pw@db1,db2:5433/sg?sslmode=require\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let pg = state.postgres.clone().expect("postgres");
        assert!(state.is_durable());
        assert_eq!(pg.ca_file, None);
        assert_eq!(pg.pooler, Pooler::None);
        let (state, _) =
            parse("backend = \"postgres\"\nurl = \"host=db\"\npooler = \"transaction\"\n");
        assert_eq!(
            state.postgres.expect("postgres").pooler,
            Pooler::Transaction
        );
        assert_eq!(pg.pool_size, 16);
        assert_eq!(pg.connect_timeout, Duration::from_secs(5));
        assert_eq!(pg.statement_timeout, Duration::from_secs(10));
        // The password never shows.
        assert_eq!(pg.redacted(), "postgresql://db1:5432,db2:5433/sg");
        assert!(!format!("{pg:?}").contains("pw"));

        let (state, problems) = parse(
            "backend = \"postgres\"\nurl = \"host=/run/postgresql dbname=sg\"\npool_size = 3\nconnect_timeout_secs = 2\nstatement_timeout_secs = 7\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let pg = state.postgres.expect("postgres");
        assert_eq!(
            (pg.pool_size, pg.connect_timeout, pg.statement_timeout),
            (3, Duration::from_secs(2), Duration::from_secs(7))
        );
        assert_eq!(pg.redacted(), "postgresql:///run/postgresql:5432/sg");
    }

    #[test]
    fn refused_values() {
        for (text, want) in [
            ("backend = \"postgres\"\n", "state.url: needed"),
            (
                "backend = \"postgres\"\nurl = \"postgresql://db/x?sslmode=bogus\"\n",
                "state.url: not a PostgreSQL connection string",
            ),
            (
                "backend = \"postgres\"\nurl = \"dbname=x\"\n",
                "state.url: names no host",
            ),
            (
                "backend = \"postgres\"\nurl = \"host=db\"\npool_size = 0\n",
                "state.pool_size: must be greater than 0",
            ),
            (
                "backend = \"postgres\"\nurl = \"host=db\"\nconnect_timeout_secs = 0\n",
                "state.connect_timeout_secs: must be greater than 0",
            ),
            (
                "backend = \"postgres\"\nurl = \"host=db\"\nstatement_timeout_secs = 0\n",
                "state.statement_timeout_secs: must be greater than 0",
            ),
            (
                "outbox_lease_secs = 0\n",
                "state.outbox_lease_secs: 0 is out of range",
            ),
            (
                "outbox_lease_secs = 86401\n",
                "state.outbox_lease_secs: 86401 is out of range (1 to 86400 seconds)",
            ),
            (
                "outbox_poll_secs = 0\n",
                "state.outbox_poll_secs: 0 is out of range (1 to 3600 seconds)",
            ),
            (
                "outbox_poll_secs = 3601\n",
                "state.outbox_poll_secs: 3601 is out of range",
            ),
            // Beside sqlite the url is ignored but still checked.
            (
                "url = \"postgresql://db/x?sslmode=bogus\"\n",
                "state.url: not a PostgreSQL connection string",
            ),
        ] {
            let (state, problems) = parse(text);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{text}: {problems:?}"
            );
            assert!(state.postgres.is_none(), "{text}");
        }
        let err = toml::from_str::<RawState>("backend = \"mysql\"\n").expect_err("unknown");
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    /// `ca_file` is resolved against the config's directory and read by check-config: a
    /// missing file or one without a PEM certificate is a problem; beside sqlite it is
    /// ignored.
    #[test]
    fn the_ca_file_is_read_when_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("ca.pem"), pem).expect("write");
        std::fs::write(dir.path().join("empty.pem"), "no certificate\n").expect("write");
        let check = |file: &str, backend: &str| {
            let text =
                format!("backend = \"{backend}\"\nurl = \"host=db\"\nca_file = \"{file}\"\n");
            let raw: RawState = toml::from_str(&text).expect("toml");
            let mut problems = Vec::new();
            let state = raw.validate(dir.path(), &mut problems);
            (state, problems)
        };
        let (state, problems) = check("ca.pem", "postgres");
        assert!(problems.is_empty(), "{problems:?}");
        let pg = state.postgres.expect("postgres");
        assert_eq!(pg.ca_file, Some(dir.path().join("ca.pem")));
        for (file, want) in [
            ("missing.pem", "state.ca_file: "),
            ("empty.pem", "holds no PEM certificate"),
        ] {
            let (state, problems) = check(file, "postgres");
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{file}: {problems:?}"
            );
            assert!(state.postgres.is_none());
            let (_, problems) = check(file, "sqlite");
            assert!(problems.is_empty(), "{file} beside sqlite: {problems:?}");
        }
    }
}
