//! [`PostgresState`]: the state store of several delivery hosts, in one PostgreSQL
//! database (`[state] backend = "postgres"`).
//!
//! Everything two hosts must agree on is decided by the server in one statement or one
//! short transaction: a vacation record is claimed with `INSERT ... ON CONFLICT DO UPDATE
//! ... WHERE expired RETURNING` (exactly one claimer), a rate row is created if absent and
//! then locked (`FOR UPDATE`) before it is read, the outbox is claimed with `FOR UPDATE
//! SKIP LOCKED` and a lease (`lease_until`), and the expiry pass runs on one host at a time
//! (`pg_try_advisory_xact_lock`).
//!
//! **Driver.** tokio-postgres with a deadpool pool (what Stalwart uses), TLS by rustls. The
//! [`StateStore`](super::StateStore) trait is synchronous and its callers run on blocking threads, but a few
//! run where a runtime is current (startup, the CLI, a reload), where blocking on the
//! caller's runtime would panic. So the store owns a small runtime of its own: each call is
//! spawned there and the calling thread waits on a channel, which is safe from any thread.
//! Each call has a client-side deadline too (connect timeout + twice the statement
//! timeout), on top of the server's `statement_timeout`: an unreachable or stuck server is
//! a [`StateError`], never a hang.
//!
//! **Schema.** Versioned in `schema_version` (one row per applied step); [`MIGRATIONS`]
//! are applied at open in one transaction under an advisory lock, so hosts starting
//! together migrate once. A database newer than this build is refused
//! ([`StateError::SchemaTooNew`]). A server that cannot be reached at open does not stop
//! sievegate from starting: the migration is tried again before each call until it
//! succeeds (recovery without a restart; until then every call fails, and deliveries that
//! need the store get a 4xx).
//!
//! All PostgreSQL SQL of sievegate lives in this module (`schema`, `store`, `quarantine`).
//! Text columns cannot hold NUL, which mail can: text is written with NUL replaced by
//! U+FFFD (`rows::text`).

mod quarantine;
mod rows;
mod schema;
mod store;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use schema::MIGRATION_LOCK;
pub use schema::{KNOWN_SCHEMA, MIGRATIONS};

use super::StateError;

/// How to reach the server: the validated `[state]` keys as plain values.
#[derive(Clone)]
pub struct PostgresOptions {
    /// libpq-style connection string or `postgresql://` URL (may hold a password).
    pub url: String,
    /// Most connections this process keeps open.
    pub pool_size: usize,
    /// Connect deadline, and the longest wait for a free connection.
    pub connect_timeout: Duration,
    /// The server-side `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// PEM file of CA certificates trusted for the server's TLS certificate besides the
    /// webpki roots (a site's own CA, a self-signed server); `None`: the webpki roots only.
    pub ca_file: Option<PathBuf>,
    /// Send `statement_timeout` in the startup `options` (connected to PostgreSQL itself);
    /// false behind a transaction-mode pooler, which refuses or drops startup options: the
    /// role's own `statement_timeout` applies then, checked at open
    /// ([`PostgresState::open`]).
    pub startup_options: bool,
}

/// The PostgreSQL store. Cheap to share: every call borrows a pooled connection.
pub struct PostgresState {
    pool: Pool,
    /// The private runtime the driver runs on; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Hosts and database, without credentials: for errors and logs.
    location: String,
    /// Client-side bound on one call.
    deadline: Duration,
    /// The schema is known to be current (set after a migration succeeded).
    ready: AtomicBool,
    /// Reachable or not: every call that could not get a connection (or got no answer in
    /// time) marks it down, every call the server answered marks it up; the MAIL gate
    /// reads it ([`crate::health`]).
    health: Arc<crate::health::Health>,
}

impl std::fmt::Debug for PostgresState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresState")
            .field("location", &self.location)
            .finish()
    }
}

impl Drop for PostgresState {
    fn drop(&mut self) {
        // Dropping a runtime where blocking is not allowed (inside an async task) panics;
        // shutting it down in the background never does.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The error of a failed statement, with the server's own text and SQLSTATE (the
/// driver's Display says only "db error").
pub(super) fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StateError {
    move |e| StateError::Backend {
        operation,
        message: pg_message(&e),
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The TLS connector for `sslmode=prefer|require`: rustls with ring, the webpki roots and
/// the certificates of `ca_file`. The server's name (the `host` of the URL) must match its
/// certificate whatever the `sslmode`: rustls always verifies, so `require` here is what
/// libpq calls `verify-full`.
fn tls(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a CA certificate: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The certificates of the PEM file `path` (`[state] ca_file`): at least one, or an error
/// that names the file. check-config reads it with this too, so a bad file shows before
/// the server starts.
pub fn ca_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// How busy the pool is ([`PostgresState::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub open: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

/// Where a schema stands: what the database has and what this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The database's version (0: no sievegate schema yet).
    pub found: i64,
    /// This build's version ([`KNOWN_SCHEMA`]).
    pub known: i64,
}

impl PostgresState {
    /// The store at `options`, without touching the server: the pool connects on first
    /// use. The schema is not checked ([`PostgresState::open`] does).
    pub fn connect(options: &PostgresOptions) -> Result<PostgresState, StateError> {
        let open_error = |location: &str, message: String| StateError::Open {
            path: location.to_string(),
            message,
        };
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| open_error("postgresql", format!("state.url: {e}")))?;
        let location = describe(&config);
        if options.startup_options {
            let mut server_options = config.get_options().unwrap_or("").to_string();
            server_options.push_str(&format!(
                " -c statement_timeout={}",
                options.statement_timeout.as_millis().max(1)
            ));
            config.options(server_options.trim());
        }
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("sievegate");
        }
        let tls = tls(options.ca_file.as_deref())
            .map_err(|e| open_error(&location, format!("TLS setup: {e}")))?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| open_error(&location, e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sievegate-pg")
            .enable_all()
            .build()
            .map_err(|e| open_error(&location, format!("runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(PostgresState {
            pool,
            runtime: Some(runtime),
            handle,
            location,
            deadline: options
                .connect_timeout
                .saturating_add(options.statement_timeout.saturating_mul(2)),
            ready: AtomicBool::new(false),
            health: Arc::new(crate::health::Health::new("state store")),
        })
    }

    /// [`PostgresState::connect`], then the schema brought to [`KNOWN_SCHEMA`]. A newer
    /// schema is an error; a server that cannot be reached is not (logged): the migration
    /// is tried again before each call until it succeeds.
    ///
    /// Without startup options (behind a transaction-mode pooler) the server's own
    /// `statement_timeout` is read once: 0 (none) is logged as a warning, since a stuck
    /// statement would then hold a pooled connection until the client-side deadline.
    pub fn open(options: &PostgresOptions) -> Result<PostgresState, StateError> {
        let state = PostgresState::connect(options)?;
        match state.migrate() {
            Ok(_) if !options.startup_options => state.check_role_timeout(),
            Ok(_) => {}
            Err(e @ StateError::SchemaTooNew { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, store = %state.location, "state store unreachable at startup; the schema is checked again before each use");
            }
        }
        Ok(state)
    }

    /// The server-side `statement_timeout` this connection got without startup options
    /// (from the role, the database or the server's configuration): a warning when none.
    fn check_role_timeout(&self) {
        let timeout = self.call("settings", |client| async move {
            client
                .query_one("SELECT current_setting('statement_timeout')", &[])
                .await
                .map(|row| row.get::<_, String>(0))
                .map_err(pg("settings"))
        });
        match timeout {
            Ok(value) if value == "0" => {
                tracing::warn!(store = %self.location, "state.pooler = \"transaction\": the server sets no statement_timeout for this role; set one (ALTER ROLE ... SET statement_timeout = '10s'), or a stuck statement holds its connection until sievegate's own deadline")
            }
            Ok(value) => {
                tracing::info!(store = %self.location, statement_timeout = %value, "state.pooler = \"transaction\": the role's statement_timeout applies")
            }
            Err(e) => {
                tracing::warn!(store = %self.location, error = %e, "cannot read the server's statement_timeout")
            }
        }
    }

    /// Hosts and database, without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The pool right now: connections open, idle, and callers waiting for one (for the
    /// pool-usage gauges).
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// The reachability flag the calls and [`PostgresState::probe`] keep.
    pub fn health(&self) -> &crate::health::Health {
        &self.health
    }

    /// `SELECT 1` (after the schema check, if it is still due): the probe of the MAIL gate,
    /// and a refresh of the pool gauges while no mail flows.
    pub fn probe(&self) -> Result<(), StateError> {
        self.call("probe", |client| async move {
            client
                .query_one("SELECT 1", &[])
                .await
                .map(|_| ())
                .map_err(pg("probe"))
        })
    }

    /// Runs `work` with a pooled connection on the store's runtime and waits for it,
    /// within the call deadline; records its time, a failure, the pool's usage and the
    /// server's reachability.
    fn run<T, F, Fut>(&self, operation: &'static str, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let deadline = self.deadline;
        let health = Arc::clone(&self.health);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let started = std::time::Instant::now();
        self.handle.spawn(async move {
            let call = async {
                let client = match pool.get().await {
                    Ok(client) => client,
                    Err(e) => {
                        let error = StateError::Backend {
                            operation,
                            message: match e {
                                deadpool_postgres::PoolError::Backend(e) => pg_message(&e),
                                other => other.to_string(),
                            },
                        };
                        health.down(&error);
                        return Err(error);
                    }
                };
                let result = work(client).await;
                // A statement the server refused still means it answers; a connection
                // lost mid-call is left to the next call or the probe to decide.
                if result.is_ok() {
                    health.up();
                }
                result
            };
            let result = match tokio::time::timeout(deadline, call).await {
                Ok(result) => result,
                Err(_) => {
                    let error = StateError::Backend {
                        operation,
                        message: format!("no answer within {} ms", deadline.as_millis()),
                    };
                    health.down(&error);
                    Err(error)
                }
            };
            // The caller may have gone (a panic); nothing to do then.
            let _ = tx.send(result);
        });
        let result = rx.recv().unwrap_or_else(|_| {
            Err(StateError::Backend {
                operation,
                message: "the database task ended without an answer".to_string(),
            })
        });
        crate::metrics::state_call(call_kind(operation), result.is_ok(), started.elapsed());
        let pool = self.pool_status();
        crate::metrics::state_pool(pool.open, pool.idle, pool.waiting);
        result
    }

    /// [`PostgresState::run`] once the schema is current (migrating first if it was not
    /// reachable before).
    fn call<T, F, Fut>(&self, operation: &'static str, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        if !self.ready.load(Ordering::Acquire) {
            self.migrate()?;
        }
        self.run(operation, work)
    }

    /// The database's schema version, without changing anything.
    pub fn schema_status(&self) -> Result<SchemaStatus, StateError> {
        let found = self.run("schema status", |client| async move {
            let err = pg("schema status");
            // The table is named in the second query only once it exists (a missing table
            // fails a statement at parse time, whatever its CASE would take).
            let exists: bool = client
                .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
                .await
                .map_err(&err)?
                .try_get(0)
                .map_err(&err)?;
            if !exists {
                return Ok(0);
            }
            client
                .query_one(
                    "SELECT coalesce(max(version), 0)::bigint FROM schema_version",
                    &[],
                )
                .await
                .map_err(&err)?
                .try_get::<_, i64>(0)
                .map_err(&err)
        })?;
        Ok(SchemaStatus {
            found,
            known: KNOWN_SCHEMA,
        })
    }

    /// Brings the schema to [`KNOWN_SCHEMA`] in one transaction under an advisory lock (so
    /// hosts starting together migrate once); returns the status before. A newer schema is
    /// [`StateError::SchemaTooNew`] and changes nothing.
    pub fn migrate(&self) -> Result<SchemaStatus, StateError> {
        let location = self.location.clone();
        let before = self.run("migrate", move |mut client| async move {
            let err = pg("migrate");
            let tx = client.transaction().await.map_err(&err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(&err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (\
                 version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(&err)?;
            let found: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0)::bigint FROM schema_version",
                    &[],
                )
                .await
                .map_err(&err)?
                .try_get(0)
                .map_err(&err)?;
            if found > KNOWN_SCHEMA {
                return Err(StateError::SchemaTooNew {
                    path: location,
                    found,
                    known: KNOWN_SCHEMA,
                });
            }
            for (step, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
                tx.batch_execute(sql).await.map_err(&err)?;
                let version = i32::try_from(step + 1).unwrap_or(i32::MAX);
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(found)
        })?;
        self.ready.store(true, Ordering::Release);
        if before < KNOWN_SCHEMA {
            tracing::info!(store = %self.location, from = before, to = KNOWN_SCHEMA, "state store schema migrated");
        }
        Ok(SchemaStatus {
            found: before,
            known: KNOWN_SCHEMA,
        })
    }
}

/// The metrics' `kind` of an operation name (a fixed set: [`crate::metrics::STATE_CALL_KINDS`]).
fn call_kind(operation: &str) -> &'static str {
    match operation.split(' ').next().unwrap_or("") {
        "cache" | "remember" => "cache",
        "rate" => "rate",
        "queue" => "queue",
        "quarantine" => "quarantine",
        _ => "maintenance",
    }
}

/// `postgresql://host:port,.../dbname` of a parsed connection string, without credentials:
/// what logs, errors and `state status` show (also `[state] url` redacted, in config).
pub fn describe(c: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = c
                .get_ports()
                .get(i)
                .or_else(|| c.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "postgresql://{}/{}",
        hosts.join(","),
        c.get_dbname().unwrap_or("")
    )
}
