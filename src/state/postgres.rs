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
//! [`StateStore`] trait is synchronous and its callers run on blocking threads, but a few
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
//! All PostgreSQL SQL of sievegate lives in this file. Text columns cannot hold NUL, which
//! mail can: text is written with NUL replaced by U+FFFD ([`text`]).

use std::borrow::Cow;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{
    from_micros, rate_allows, to_micros, Expired, QuarantineEntry, QuarantineFilter, QueuedMail,
    RateDecision, RcptRelease, RedirectOwner, StateError, StateSizes, StateStore,
};

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
}

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`. Version 2 is the schema
/// SQLite's version 4 has (the same tables and meaning; booleans are `boolean`, the
/// message `bytea`).
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE quarantine (
    id           text PRIMARY KEY,
    received_at  bigint NOT NULL,            -- microseconds since the epoch
    sender       text NOT NULL,
    recipients   text NOT NULL,              -- as given, one per line
    resolved     text NOT NULL,              -- as resolved, one per line
    client_ip    text,
    client_helo  text,
    queue_id     text,
    verdict      text NOT NULL,
    virustest    smallint NOT NULL,
    viruses      text NOT NULL,              -- one per line
    message_id   text NOT NULL,
    subject      text NOT NULL,
    from_header  text NOT NULL,
    size         bigint NOT NULL,
    backscatter  boolean NOT NULL,
    released_at  bigint,
    released_by  text
);
CREATE INDEX quarantine_received ON quarantine (received_at, id);
CREATE TABLE quarantine_rcpt (
    address  text NOT NULL,
    entry    text NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    PRIMARY KEY (address, entry)
);
CREATE INDEX quarantine_rcpt_entry ON quarantine_rcpt (entry);
CREATE TABLE quarantine_release (
    entry        text NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    rcpt         text NOT NULL,
    released_at  bigint NOT NULL,
    released_by  text NOT NULL,
    PRIMARY KEY (entry, rcpt)
);
CREATE TABLE cache (
    key      text PRIMARY KEY,
    value    text NOT NULL,
    expires  bigint NOT NULL
);
CREATE INDEX cache_expires ON cache (expires);
CREATE TABLE rate (
    key           text PRIMARY KEY,
    last_allowed  bigint NOT NULL,
    suppressed    bigint NOT NULL
);
CREATE INDEX rate_last_allowed ON rate (last_allowed);
CREATE TABLE outbound_queue (
    id                   bigserial PRIMARY KEY,
    kind                 text NOT NULL,
    sender               text NOT NULL,
    recipients           text NOT NULL,      -- one per line
    message              bytea NOT NULL,
    attempts             integer NOT NULL,
    next_attempt         bigint NOT NULL,
    last_error           text,
    redirect_for         text,
    redirect_inbox_copy  boolean NOT NULL DEFAULT false
);
CREATE INDEX outbound_queue_due ON outbound_queue (next_attempt, id);
"#,
    // 1 → 2: the sender leases the rows it sends (queue_claim); 0 = not leased.
    r#"
ALTER TABLE outbound_queue ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
"#,
];

/// The schema version this build creates and knows.
pub const KNOWN_SCHEMA: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (one namespace per purpose, "sgate" in the high bytes).
const MIGRATION_LOCK: i64 = 0x7367_6174_6500_0001;
const EXPIRY_LOCK: i64 = 0x7367_6174_6500_0002;

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
fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StateError {
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

/// Text as PostgreSQL can store it: NUL (which text columns refuse) becomes U+FFFD.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn owned(s: &str) -> String {
    text(s).into_owned()
}

fn lines(items: &[String]) -> String {
    owned(&items.join("\n"))
}

fn unlines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

/// A recipient or user name in a release row: no control characters (as SQLite's store).
fn release_field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `LIKE` pattern for a substring, with `\` as the escape character.
fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in owned(text).chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The columns [`entry_from_row`] reads; the entry table is `q`. The releases come as three
/// arrays in order of release.
const ENTRY_COLUMNS: &str = "q.id, q.received_at, q.sender, q.recipients, q.resolved, \
    q.client_ip, q.client_helo, q.queue_id, q.verdict, q.virustest, q.viruses, q.message_id, \
    q.subject, q.from_header, q.size, q.backscatter, q.released_at, q.released_by, \
    (SELECT array_agg(r.rcpt ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id), \
    (SELECT array_agg(r.released_at ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id), \
    (SELECT array_agg(r.released_by ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id)";

fn entry_from_row(row: &Row) -> Result<QuarantineEntry, tokio_postgres::Error> {
    let virustest: i16 = row.try_get(9)?;
    let size: i64 = row.try_get(14)?;
    let rcpts: Option<Vec<String>> = row.try_get(18)?;
    let ats: Option<Vec<i64>> = row.try_get(19)?;
    let bys: Option<Vec<String>> = row.try_get(20)?;
    let releases = rcpts
        .unwrap_or_default()
        .into_iter()
        .zip(ats.unwrap_or_default())
        .zip(bys.unwrap_or_default())
        .map(|((rcpt, at), by)| RcptRelease {
            rcpt,
            at: from_micros(at),
            by,
        })
        .collect();
    Ok(QuarantineEntry {
        id: row.try_get(0)?,
        received_at: from_micros(row.try_get(1)?),
        sender: row.try_get(2)?,
        recipients: unlines(row.try_get(3)?),
        resolved: unlines(row.try_get(4)?),
        client_ip: row.try_get(5)?,
        client_helo: row.try_get(6)?,
        queue_id: row.try_get(7)?,
        verdict: row.try_get(8)?,
        virustest: u8::try_from(virustest).unwrap_or(u8::MAX),
        viruses: unlines(row.try_get(10)?),
        message_id: row.try_get(11)?,
        subject: row.try_get(12)?,
        from: row.try_get(13)?,
        size: u64::try_from(size).unwrap_or(0),
        backscatter: row.try_get(15)?,
        released_at: row.try_get::<_, Option<i64>>(16)?.map(from_micros),
        released_by: row.try_get(17)?,
        releases,
    })
}

/// The columns [`queued_from_row`] reads.
const QUEUE_COLUMNS: &str = "id, kind, sender, recipients, message, attempts, next_attempt, \
    last_error, redirect_for, redirect_inbox_copy";

fn queued_from_row(row: &Row) -> Result<QueuedMail, tokio_postgres::Error> {
    let attempts: i32 = row.try_get(5)?;
    let redirect: Option<String> = row.try_get(8)?;
    let inbox_copy: bool = row.try_get(9)?;
    Ok(QueuedMail {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        from: row.try_get(2)?,
        to: unlines(row.try_get(3)?),
        message: row.try_get(4)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt: from_micros(row.try_get(6)?),
        last_error: row.try_get(7)?,
        redirect: redirect.map(|rcpt| RedirectOwner { rcpt, inbox_copy }),
    })
}

/// The TLS connector for `sslmode=prefer|require`: rustls with ring and the webpki roots.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
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
        let mut server_options = config.get_options().unwrap_or("").to_string();
        server_options.push_str(&format!(
            " -c statement_timeout={}",
            options.statement_timeout.as_millis().max(1)
        ));
        config
            .options(server_options.trim())
            .connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("sievegate");
        }
        let tls = tls().map_err(|e| open_error(&location, format!("TLS setup: {e}")))?;
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
        })
    }

    /// [`PostgresState::connect`], then the schema brought to [`KNOWN_SCHEMA`]. A newer
    /// schema is an error; a server that cannot be reached is not (logged): the migration
    /// is tried again before each call until it succeeds.
    pub fn open(options: &PostgresOptions) -> Result<PostgresState, StateError> {
        let state = PostgresState::connect(options)?;
        match state.migrate() {
            Ok(_) => {}
            Err(e @ StateError::SchemaTooNew { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, store = %state.location, "state store unreachable at startup; the schema is checked again before each use");
            }
        }
        Ok(state)
    }

    /// Hosts and database, without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `work` with a pooled connection on the store's runtime and waits for it,
    /// within the call deadline.
    fn run<T, F, Fut>(&self, operation: &'static str, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let deadline = self.deadline;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let call = async {
                let client = pool.get().await.map_err(|e| StateError::Backend {
                    operation,
                    message: match e {
                        deadpool_postgres::PoolError::Backend(e) => pg_message(&e),
                        other => other.to_string(),
                    },
                })?;
                work(client).await
            };
            let result = match tokio::time::timeout(deadline, call).await {
                Ok(result) => result,
                Err(_) => Err(StateError::Backend {
                    operation,
                    message: format!("no answer within {} ms", deadline.as_millis()),
                }),
            };
            // The caller may have gone (a panic); nothing to do then.
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StateError::Backend {
                operation,
                message: "the database task ended without an answer".to_string(),
            })
        })
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

/// `postgresql://host:port,.../dbname` of a parsed connection string, without credentials.
fn describe(c: &tokio_postgres::Config) -> String {
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

/// Parameters of a statement built at run time, owned so they can move into the call.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl StateStore for PostgresState {
    fn quarantine_insert(&self, e: &QuarantineEntry) -> Result<(), StateError> {
        let e = e.clone();
        self.call("quarantine insert", move |mut client| async move {
            let err = pg("quarantine insert");
            let tx = client.transaction().await.map_err(&err)?;
            let inserted = tx
                .execute(
                    "INSERT INTO quarantine (id, received_at, sender, recipients, resolved, client_ip, \
                     client_helo, queue_id, verdict, virustest, viruses, message_id, subject, \
                     from_header, size, backscatter, released_at, released_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                    &[
                        &owned(&e.id),
                        &to_micros(e.received_at),
                        &owned(&e.sender),
                        &lines(&e.recipients),
                        &lines(&e.resolved),
                        &e.client_ip.as_deref().map(owned),
                        &e.client_helo.as_deref().map(owned),
                        &e.queue_id.as_deref().map(owned),
                        &owned(&e.verdict),
                        &i16::from(e.virustest),
                        &lines(&e.viruses),
                        &owned(&e.message_id),
                        &owned(&e.subject),
                        &owned(&e.from),
                        &i64::try_from(e.size).unwrap_or(i64::MAX),
                        &e.backscatter,
                        &e.released_at.map(to_micros),
                        &e.released_by.as_deref().map(owned),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                Err(db)
                    if db.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    return Err(StateError::Duplicate(format!("quarantine id {}", e.id)));
                }
                Err(other) => return Err(err(other)),
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO quarantine_rcpt (address, entry) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(&err)?;
            for address in e.recipients.iter().chain(&e.resolved) {
                tx.execute(&stmt, &[&owned(&address.to_ascii_lowercase()), &owned(&e.id)])
                    .await
                    .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)
        })
    }

    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
        let id = owned(id);
        self.call("quarantine get", move |client| async move {
            let err = pg("quarantine get");
            let row = client
                .query_opt(
                    &format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE q.id = $1"),
                    &[&id],
                )
                .await
                .map_err(&err)?;
            row.map(|r| entry_from_row(&r)).transpose().map_err(&err)
        })
    }

    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError> {
        let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE true");
        let mut params: Params = Vec::new();
        if let Some(since) = filter.since {
            params.push(Box::new(to_micros(since)));
            sql.push_str(&format!(" AND q.received_at >= ${}", params.len()));
        }
        if let Some(virus) = &filter.virus {
            // Names are one per line, so a substring of the column is a substring of a name
            // unless the pattern spans a line break, which names never hold.
            params.push(Box::new(like_substring(virus)));
            sql.push_str(&format!(
                " AND q.viruses ILIKE ${} ESCAPE '\\'",
                params.len()
            ));
        }
        if let Some(rcpt) = &filter.rcpt {
            params.push(Box::new(owned(&rcpt.to_ascii_lowercase())));
            sql.push_str(&format!(
                " AND q.id IN (SELECT r.entry FROM quarantine_rcpt r WHERE r.address = ${})",
                params.len()
            ));
        }
        sql.push_str(" ORDER BY q.received_at, q.id");
        if let Some(limit) = filter.limit {
            params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        self.call("quarantine list", move |client| async move {
            let err = pg("quarantine list");
            let rows = client.query(&sql, &refs(&params)).await.map_err(&err)?;
            rows.iter()
                .map(entry_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)
        })
    }

    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let (id, by) = (owned(id), owned(by));
        self.call("quarantine release", move |client| async move {
            let changed = client
                .execute(
                    "UPDATE quarantine SET released_at = $2, released_by = $3 WHERE id = $1",
                    &[&id, &to_micros(at), &by],
                )
                .await
                .map_err(pg("quarantine release"))?;
            Ok(changed > 0)
        })
    }

    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
        let id = owned(id);
        self.call("quarantine delete", move |client| async move {
            // Recipient and release rows go with it (ON DELETE CASCADE).
            let changed = client
                .execute("DELETE FROM quarantine WHERE id = $1", &[&id])
                .await
                .map_err(pg("quarantine delete"))?;
            Ok(changed > 0)
        })
    }

    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
        self.call("quarantine purge", move |client| async move {
            let err = pg("quarantine purge");
            let rows = client
                .query(
                    "SELECT id FROM quarantine WHERE received_at < $1 ORDER BY received_at, id",
                    &[&to_micros(before)],
                )
                .await
                .map_err(&err)?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(&err)
        })
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        let key = owned(key);
        self.call("cache get", move |client| async move {
            let err = pg("cache get");
            let stmt = client
                .prepare_cached("SELECT value FROM cache WHERE key = $1 AND expires > $2")
                .await
                .map_err(&err)?;
            let row = client
                .query_opt(&stmt, &[&key, &to_micros(now)])
                .await
                .map_err(&err)?;
            row.map(|r| r.try_get(0)).transpose().map_err(&err)
        })
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        let (key, value) = (owned(key), owned(value));
        self.call("cache put", move |client| async move {
            let err = pg("cache put");
            let stmt = client
                .prepare_cached(
                    "INSERT INTO cache (key, value, expires) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                )
                .await
                .map_err(&err)?;
            client
                .execute(&stmt, &[&key, &value, &to_micros(expires)])
                .await
                .map_err(&err)?;
            Ok(())
        })
    }

    fn remember_once(
        &self,
        key: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StateError> {
        let key = owned(key);
        self.call("remember once", move |client| async move {
            let err = pg("remember once");
            // One statement: a concurrent insert of the same key waits for the first to
            // commit, then takes the conflict path and sees its live row (no update, no
            // row returned). Exactly one caller gets a row.
            let stmt = client
                .prepare_cached(
                    "INSERT INTO cache AS c (key, value, expires) VALUES ($1, '1', $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires \
                     WHERE c.expires <= $3 RETURNING 1",
                )
                .await
                .map_err(&err)?;
            let row = client
                .query_opt(&stmt, &[&key, &to_micros(expires), &to_micros(now)])
                .await
                .map_err(&err)?;
            Ok(row.is_some())
        })
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let key = owned(key);
        self.call("rate check", move |mut client| async move {
            let err = pg("rate check");
            let tx = client.transaction().await.map_err(&err)?;
            // The row exists (a new key as "never allowed") before it is locked and read,
            // so two hosts checking a new key at once still serialize on it.
            tx.execute(
                "INSERT INTO rate (key, last_allowed, suppressed) VALUES ($1, $2, -1) \
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &i64::MIN],
            )
            .await
            .map_err(&err)?;
            let row = tx
                .query_one(
                    "SELECT last_allowed, suppressed FROM rate WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .await
                .map_err(&err)?;
            let last: i64 = row.try_get(0).map_err(&err)?;
            let suppressed: i64 = row.try_get(1).map_err(&err)?;
            // suppressed = -1 marks the row inserted just now: no event before.
            let last = (suppressed >= 0).then_some(last);
            let decision = if rate_allows(last, min_interval, now) {
                tx.execute(
                    "UPDATE rate SET last_allowed = $2, suppressed = 0 WHERE key = $1",
                    &[&key, &to_micros(now)],
                )
                .await
                .map_err(&err)?;
                RateDecision::Send {
                    suppressed: u64::try_from(suppressed).unwrap_or(0),
                }
            } else {
                tx.execute(
                    "UPDATE rate SET suppressed = suppressed + 1 WHERE key = $1",
                    &[&key],
                )
                .await
                .map_err(&err)?;
                RateDecision::Suppress
            };
            tx.commit().await.map_err(&err)?;
            Ok(decision)
        })
    }

    fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError> {
        self.call("expire", move |mut client| async move {
            let err = pg("expire");
            let tx = client.transaction().await.map_err(&err)?;
            // One host at a time: the others skip this pass (the lock ends with the
            // transaction).
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&EXPIRY_LOCK])
                .await
                .map_err(&err)?
                .try_get(0)
                .map_err(&err)?;
            if !locked {
                return Ok(Expired::default());
            }
            let now = to_micros(now);
            let cache = tx
                .execute("DELETE FROM cache WHERE expires <= $1", &[&now])
                .await
                .map_err(&err)?;
            let rate = tx
                .execute(
                    "DELETE FROM rate WHERE last_allowed < $1",
                    &[&now.saturating_sub(micros(rate_keep))],
                )
                .await
                .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(Expired { cache, rate })
        })
    }

    fn sizes(&self) -> Result<StateSizes, StateError> {
        self.call("sizes", move |client| async move {
            let err = pg("sizes");
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM cache), (SELECT count(*) FROM rate), \
                     (SELECT count(*) FROM outbound_queue), (SELECT count(*) FROM quarantine)",
                    &[],
                )
                .await
                .map_err(&err)?;
            let n = |i: usize| -> Result<u64, StateError> {
                let v: i64 = row.try_get(i).map_err(&err)?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(StateSizes {
                cache: n(0)?,
                rate: n(1)?,
                queue: n(2)?,
                quarantine: n(3)?,
            })
        })
    }

    fn quarantine_add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<bool, StateError> {
        let (id, given, resolved) = (owned(id), owned(given), owned(resolved));
        self.call("quarantine add recipient", move |mut client| async move {
            let err = pg("quarantine add recipient");
            let tx = client.transaction().await.map_err(&err)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT recipients, resolved FROM quarantine WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(&err)?
            else {
                return Ok(false);
            };
            let mut recipients = unlines(row.try_get(0).map_err(&err)?);
            if !recipients.contains(&given) {
                recipients.push(given.clone());
                let mut resolved_list = unlines(row.try_get(1).map_err(&err)?);
                resolved_list.push(resolved.clone());
                tx.execute(
                    "UPDATE quarantine SET recipients = $2, resolved = $3 WHERE id = $1",
                    &[&id, &lines(&recipients), &lines(&resolved_list)],
                )
                .await
                .map_err(&err)?;
                for address in [&given, &resolved] {
                    tx.execute(
                        "INSERT INTO quarantine_rcpt (address, entry) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                        &[&address.to_ascii_lowercase(), &id],
                    )
                    .await
                    .map_err(&err)?;
                }
            }
            tx.commit().await.map_err(&err)?;
            Ok(true)
        })
    }

    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let id = owned(id);
        let rcpts: Vec<String> = rcpts.iter().map(|r| release_field(r)).collect();
        let by = release_field(by);
        self.call("quarantine release", move |mut client| async move {
            let err = pg("quarantine release");
            let tx = client.transaction().await.map_err(&err)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT recipients FROM quarantine WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(&err)?
            else {
                return Ok(false);
            };
            let recipients = unlines(row.try_get(0).map_err(&err)?);
            for rcpt in &rcpts {
                tx.execute(
                    "INSERT INTO quarantine_release (entry, rcpt, released_at, released_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&id, rcpt, &to_micros(at), &by],
                )
                .await
                .map_err(&err)?;
            }
            let released: Vec<String> = tx
                .query(
                    "SELECT rcpt FROM quarantine_release WHERE entry = $1",
                    &[&id],
                )
                .await
                .map_err(&err)?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(&err)?;
            if recipients.iter().all(|r| released.contains(r)) {
                tx.execute(
                    "UPDATE quarantine SET released_at = $2, released_by = $3 \
                     WHERE id = $1 AND released_at IS NULL",
                    &[&id, &to_micros(at), &by],
                )
                .await
                .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(true)
        })
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let mail = mail.clone();
        self.call("queue push", move |client| async move {
            let err = pg("queue push");
            let row = client
                .query_one(
                    "INSERT INTO outbound_queue (kind, sender, recipients, message, attempts, \
                     next_attempt, last_error, redirect_for, redirect_inbox_copy) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &owned(&mail.kind),
                        &owned(&mail.from),
                        &lines(&mail.to),
                        &mail.message,
                        &i32::try_from(mail.attempts).unwrap_or(i32::MAX),
                        &to_micros(mail.next_attempt),
                        &mail.last_error.as_deref().map(owned),
                        &mail.redirect.as_ref().map(|r| owned(&r.rcpt)),
                        &mail.redirect.as_ref().is_some_and(|r| r.inbox_copy),
                    ],
                )
                .await
                .map_err(&err)?;
            row.try_get(0).map_err(&err)
        })
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        self.call("queue due", move |client| async move {
            let err = pg("queue due");
            let rows = client
                .query(
                    &format!(
                        "SELECT {QUEUE_COLUMNS} FROM outbound_queue WHERE next_attempt <= $1 \
                         ORDER BY next_attempt, id LIMIT $2"
                    ),
                    &[&to_micros(now), &i64::try_from(limit).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(&err)?;
            rows.iter()
                .map(queued_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)
        })
    }

    fn queue_claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueuedMail>, StateError> {
        self.call("queue claim", move |client| async move {
            let err = pg("queue claim");
            let now = to_micros(now);
            // SKIP LOCKED: a row another host is claiming right now is left to it, not
            // waited for; the lease then keeps it from every claim until it ends.
            let rows = client
                .query(
                    &format!(
                        "UPDATE outbound_queue SET lease_until = $3 WHERE id IN (\
                         SELECT id FROM outbound_queue WHERE next_attempt <= $1 AND lease_until <= $1 \
                         ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                         RETURNING {QUEUE_COLUMNS}"
                    ),
                    &[
                        &now,
                        &i64::try_from(limit).unwrap_or(i64::MAX),
                        &now.saturating_add(micros(lease)),
                    ],
                )
                .await
                .map_err(&err)?;
            let mut claimed = rows
                .iter()
                .map(queued_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)?;
            claimed.sort_by_key(|m| (to_micros(m.next_attempt), m.id));
            Ok(claimed)
        })
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        self.call("queue done", move |client| async move {
            client
                .execute("DELETE FROM outbound_queue WHERE id = $1", &[&id])
                .await
                .map_err(pg("queue done"))?;
            Ok(())
        })
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        let error = owned(error);
        self.call("queue retry", move |client| async move {
            client
                .execute(
                    "UPDATE outbound_queue SET attempts = attempts + 1, next_attempt = $2, \
                     last_error = $3, lease_until = 0 WHERE id = $1",
                    &[&id, &to_micros(next_attempt), &error],
                )
                .await
                .map_err(pg("queue retry"))?;
            Ok(())
        })
    }
}
