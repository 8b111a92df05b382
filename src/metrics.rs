//! Prometheus metrics: the counters and histograms the pipeline, the session and the server
//! update (one call at each seam), and a tiny HTTP/1.0 responder for `GET /metrics` on
//! `[server] metrics_listen`.
//!
//! The metrics are process-wide, like the process they describe: a SIGHUP reload swaps the
//! delivery services but must not reset any counter, and a global keeps each
//! instrumentation point one line. Names and labels are listed in the README
//! ("Operations"); they are a public interface, like the config keys.
//!
//! Cardinality is bounded: every label has a fixed set of values except `virus`, which
//! takes the first [`MAX_VIRUS_NAMES`] distinct names seen (since the start) and counts
//! every later one as `other`. A name cannot move from `other` to its own series later:
//! counters must only grow.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Distinct virus names with a series of their own; later names count as `other`.
pub const MAX_VIRUS_NAMES: usize = 50;

/// The `virus` label for names past [`MAX_VIRUS_NAMES`].
pub const OTHER_VIRUS: &str = "other";

/// Every value of the `outcome` label, created at startup so each series exists (at 0)
/// before its first event and `rate()` works from the first scrape.
pub const OUTCOMES: [&str; 5] = [
    "delivered",
    "discarded",
    "quarantined",
    "deferred",
    "rejected",
];

/// How long one scrape connection may take in all (request and response): a client that
/// stalls must not keep a task.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrape connections served at once; more are closed at once.
const MAX_SCRAPES: usize = 8;

/// The request head is read up to this size; a longer one gets 404.
const MAX_REQUEST_HEAD: usize = 8192;

/// Scan time buckets, in seconds: a few KB scan in milliseconds, a 25 MB one in seconds,
/// a hung clamd at the scan timeout.
const SCAN_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Store time buckets, in seconds: one fsynced Maildir write (or a plan's few) on a fast
/// or a struggling disk.
const STORE_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Label = [(&'static str, String); 1];

struct Metrics {
    registry: Registry,
    deliveries: Family<Label, Counter>,
    infected: Family<Label, Counter>,
    /// The names that have a `virus` series of their own.
    virus_names: Mutex<HashSet<String>>,
    scan_seconds: Histogram,
    clamd_errors: Counter,
    store_seconds: Histogram,
    sessions_active: Gauge,
    sessions: Counter,
    messages: Counter,
    bytes: Counter,
    reloads: Family<Label, Counter>,
    copies: Family<Label, Counter>,
    dir_syncs: Family<Label, Counter>,
    /// Rows per state-store table (`table` label: [`STATE_TABLES`]).
    state_rows: Family<Label, Gauge>,
    /// Cache and rate rows deleted by the periodic expiry.
    state_expired: Family<Label, Counter>,
    /// PostgreSQL pool usage (`what`: [`POOL_GAUGES`]); no series with SQLite.
    state_pool: Family<Label, Gauge>,
    /// PostgreSQL call latency by `kind` ([`STATE_CALL_KINDS`]).
    state_call_seconds: Family<Label, Histogram>,
    /// PostgreSQL calls that failed, by `kind`.
    state_errors: Family<Label, Counter>,
    /// Recipients whose signature an `ignore_signatures` pattern made clean, by pattern
    /// (bounded by the config, unlike signature names).
    ignored: Family<Label, Counter>,
}

/// State-store call time buckets, in seconds: one indexed statement on a near server, up
/// to the client-side deadline (connect timeout + twice the statement timeout).
const STATE_CALL_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Every value of the `kind` label of the state-store call metrics: what the call was for.
/// A fixed set (the store maps each of its operations to one), so the series stay few.
pub const STATE_CALL_KINDS: [&str; 5] = ["cache", "rate", "queue", "quarantine", "maintenance"];

/// Every value of the `what` label of `sievegate_state_pool`.
pub const POOL_GAUGES: [&str; 3] = ["open", "idle", "waiting"];

/// Every value of the `table` label of `sievegate_state_rows`.
pub const STATE_TABLES: [&str; 4] = ["cache", "rate", "outbox", "quarantine"];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            deliveries: Family::default(),
            infected: Family::default(),
            virus_names: Mutex::new(HashSet::new()),
            scan_seconds: Histogram::new(SCAN_BUCKETS),
            clamd_errors: Counter::default(),
            store_seconds: Histogram::new(STORE_BUCKETS),
            sessions_active: Gauge::default(),
            sessions: Counter::default(),
            messages: Counter::default(),
            bytes: Counter::default(),
            reloads: Family::default(),
            copies: Family::default(),
            dir_syncs: Family::default(),
            state_rows: Family::default(),
            state_expired: Family::default(),
            state_pool: Family::default(),
            state_call_seconds: Family::new_with_constructor(|| Histogram::new(STATE_CALL_BUCKETS)),
            state_errors: Family::default(),
            ignored: Family::default(),
        };
        for table in STATE_TABLES {
            let _ = m.state_rows.get_or_create(&[("table", table.to_string())]);
        }
        for table in ["cache", "rate"] {
            let _ = m
                .state_expired
                .get_or_create(&[("table", table.to_string())]);
        }
        for how in ["written", "linked"] {
            let _ = m.copies.get_or_create(&[("how", how.to_string())]);
        }
        for what in ["requested", "run"] {
            let _ = m.dir_syncs.get_or_create(&[("what", what.to_string())]);
        }
        for outcome in OUTCOMES {
            let _ = m
                .deliveries
                .get_or_create(&[("outcome", outcome.to_string())]);
        }
        for result in ["ok", "refused"] {
            let _ = m.reloads.get_or_create(&[("result", result.to_string())]);
        }
        let mut registry = Registry::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "sievegate_deliveries",
            "Recipients handled, by outcome (one per recipient of each message)",
            m.deliveries.clone(),
        );
        registry.register(
            "sievegate_ignored_signatures",
            "Recipients for whom clamd's signature was ignored (ignore_signatures), by pattern",
            m.ignored.clone(),
        );
        registry.register(
            "sievegate_infected_messages",
            "Messages clamd found infected, by virus name (bounded: later names count as other)",
            m.infected.clone(),
        );
        registry.register(
            "sievegate_scan_duration_seconds",
            "Time of each clamd scan, failures included",
            m.scan_seconds.clone(),
        );
        registry.register(
            "sievegate_clamd_errors",
            "Scans that failed: clamd unreachable, timed out, or answered an error",
            m.clamd_errors.clone(),
        );
        registry.register(
            "sievegate_store_duration_seconds",
            "Time to execute one recipient's plan against its Maildir (fsyncs included)",
            m.store_seconds.clone(),
        );
        registry.register(
            "sievegate_sessions_active",
            "LMTP sessions open now",
            m.sessions_active.clone(),
        );
        registry.register(
            "sievegate_sessions",
            "LMTP sessions accepted since the start",
            m.sessions.clone(),
        );
        registry.register(
            "sievegate_messages_received",
            "Messages received (DATA complete) and handed to the pipeline",
            m.messages.clone(),
        );
        registry.register(
            "sievegate_received_bytes",
            "Bytes of the messages received",
            m.bytes.clone(),
        );
        registry.register(
            "sievegate_reloads",
            "SIGHUP reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "sievegate_stored_copies",
            "Message files stored: written (and fsynced) or hard-linked to a copy of the same bytes",
            m.copies.clone(),
        );
        registry.register(
            "sievegate_dir_fsyncs",
            "Directory fsyncs after a store: requested by deliveries, and run (concurrent requests for one folder share a run)",
            m.dir_syncs.clone(),
        );
        registry.register(
            "sievegate_state_rows",
            "Rows in the state store, by table: cache (remembered ids, RDAP answers), rate (rate-limit keys), outbox (mails waiting to be sent), quarantine (index entries); refreshed by the expiry pass",
            m.state_rows.clone(),
        );
        registry.register(
            "sievegate_state_expired_rows",
            "Cache and rate rows deleted by the periodic expiry, by table",
            m.state_expired.clone(),
        );
        registry.register(
            "sievegate_state_pool",
            "PostgreSQL state store: connections open, of those idle, and calls waiting for one (no series with SQLite)",
            m.state_pool.clone(),
        );
        registry.register(
            "sievegate_state_call_duration_seconds",
            "PostgreSQL state store: time of each call (waiting for a connection included), by kind",
            m.state_call_seconds.clone(),
        );
        registry.register(
            "sievegate_state_errors",
            "PostgreSQL state store: calls that failed (unreachable, timed out, or refused by the server), by kind",
            m.state_errors.clone(),
        );
        Metrics { registry, ..m }
    }
}

/// Sets the state-store size gauges (rows per table).
pub fn state_sizes(cache: u64, rate: u64, outbox: u64, quarantine: u64) {
    for (table, rows) in STATE_TABLES.iter().zip([cache, rate, outbox, quarantine]) {
        let gauge = METRICS
            .state_rows
            .get_or_create(&[("table", table.to_string())]);
        gauge.set(i64::try_from(rows).unwrap_or(i64::MAX));
    }
}

/// Sets the PostgreSQL pool gauges: connections open, of those idle, and calls waiting.
/// The first call creates the series, so a SQLite server shows none.
pub fn state_pool(open: usize, idle: usize, waiting: usize) {
    for (what, n) in POOL_GAUGES.iter().zip([open, idle, waiting]) {
        METRICS
            .state_pool
            .get_or_create(&[("what", what.to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Records one PostgreSQL call of `kind` (one of [`STATE_CALL_KINDS`]; anything else is
/// counted as `maintenance`, so the label set stays fixed): its time, and a failure.
pub fn state_call(kind: &str, ok: bool, elapsed: Duration) {
    let kind = if STATE_CALL_KINDS.contains(&kind) {
        kind
    } else {
        "maintenance"
    };
    let label = [("kind", kind.to_string())];
    METRICS
        .state_call_seconds
        .get_or_create(&label)
        .observe(elapsed.as_secs_f64());
    let errors = METRICS.state_errors.get_or_create(&label);
    if !ok {
        errors.inc();
    }
}

/// Counts the rows one expiry pass deleted.
pub fn state_expired(cache: u64, rate: u64) {
    for (table, rows) in [("cache", cache), ("rate", rate)] {
        METRICS
            .state_expired
            .get_or_create(&[("table", table.to_string())])
            .inc_by(rows);
    }
}

/// Counts one recipient's outcome under its `outcome` label (`delivered`, `quarantined`,
/// `discarded`, `rejected`, `deferred`, `unknown_user`: the pipeline names it, see
/// `RcptOutcome::metric_label`). A plain label, so this module needs nothing above it.
pub fn delivery(label: &'static str) {
    METRICS
        .deliveries
        .get_or_create(&[("outcome", label.to_string())])
        .inc();
}

/// Counts one recipient for whom `pattern` (an `ignore_signatures` entry) made a
/// signature clean.
pub fn ignored_signature(pattern: &str) {
    METRICS
        .ignored
        .get_or_create(&[("pattern", pattern.to_string())])
        .inc();
}

/// Records one scan: its time, a failure (`Err`), or the virus found (`Ok(Some(name))`).
pub fn scanned<E>(result: Result<Option<&str>, E>, elapsed: Duration) {
    let m = &*METRICS;
    m.scan_seconds.observe(elapsed.as_secs_f64());
    match result {
        Err(_) => {
            m.clamd_errors.inc();
        }
        Ok(Some(name)) => {
            let label = virus_label(&m.virus_names, name);
            m.infected.get_or_create(&[("virus", label)]).inc();
        }
        Ok(None) => {}
    }
}

/// The `virus` label for `name`: the name itself while fewer than [`MAX_VIRUS_NAMES`]
/// have a series (or it has one already), else [`OTHER_VIRUS`].
fn virus_label(known: &Mutex<HashSet<String>>, name: &str) -> String {
    // A set of strings cannot be left inconsistent by a panic elsewhere.
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    if known.contains(name) {
        return name.to_string();
    }
    if known.len() < MAX_VIRUS_NAMES {
        known.insert(name.to_string());
        return name.to_string();
    }
    OTHER_VIRUS.to_string()
}

/// Records the time one recipient's plan took against the store (`touched_store`: it
/// stored, or tried to); plans that store nothing (discard, reject, deferral) are not store
/// latency and are left out.
pub fn stored(touched_store: bool, elapsed: Duration) {
    if touched_store {
        METRICS.store_seconds.observe(elapsed.as_secs_f64());
    }
}

/// Counts one stored message file: `linked` when it is a hard link of another copy.
pub fn copy_stored(linked: bool) {
    let how = if linked { "linked" } else { "written" };
    METRICS
        .copies
        .get_or_create(&[("how", how.to_string())])
        .inc();
}

/// Counts a directory fsync a delivery waited for, and whether its caller ran it.
pub fn dir_sync(ran: bool) {
    let requested = [("what", "requested".to_string())];
    METRICS.dir_syncs.get_or_create(&requested).inc();
    if ran {
        METRICS
            .dir_syncs
            .get_or_create(&[("what", "run".to_string())])
            .inc();
    }
}

/// Counts one received message of `bytes` bytes.
pub fn received(bytes: usize) {
    METRICS.messages.inc();
    METRICS.bytes.inc_by(bytes as u64);
}

/// Counts a reload attempt.
pub fn reload(ok: bool) {
    let result = if ok { "ok" } else { "refused" };
    METRICS
        .reloads
        .get_or_create(&[("result", result.to_string())])
        .inc();
}

/// An open session: counted in `sievegate_sessions_active` until dropped.
pub struct SessionGuard(());

/// Counts a new session; hold the guard for the session's life.
pub fn session() -> SessionGuard {
    METRICS.sessions.inc();
    METRICS.sessions_active.inc();
    SessionGuard(())
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        METRICS.sessions_active.dec();
    }
}

/// Every metric in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would only cut the page short.
    if let Err(e) = prometheus_text::encode(&mut out, &METRICS.registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

/// Binds the metrics listener (at startup: a wrong address must stop the server there).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers `GET /metrics` on `listener` until `stop` resolves; anything else gets 404.
pub async fn serve(listener: TcpListener, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: pause, keep serving.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many scrapes at once; connection closed");
            continue;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream)).await;
            drop(slot);
        });
    }
}

/// Reads one request head and writes the response; the connection closes after it.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head_complete(&head) && head.len() <= MAX_REQUEST_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = match route(&head) {
        Route::Metrics => response("200 OK", prometheus_text::CONTENT_TYPE, render()),
        Route::NotFound => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at GET /metrics\n".to_string(),
        ),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

fn head_complete(head: &[u8]) -> bool {
    memchr::memmem::find(head, b"\r\n\r\n").is_some()
        || memchr::memmem::find(head, b"\n\n").is_some()
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
}

/// `GET /metrics` (a query string is ignored) in HTTP/1.x; everything else is not found.
fn route(head: &[u8]) -> Route {
    let Some(end) = memchr::memchr(b'\n', head) else {
        return Route::NotFound;
    };
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some("GET"), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::NotFound;
    };
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" && version.starts_with("HTTP/1.") {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

fn response(status: &str, content_type: &str, body: String) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        let cases: &[(&[u8], Route)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Route::Metrics),
            (b"GET /metrics HTTP/1.0\r\n\r\n", Route::Metrics),
            (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", Route::Metrics),
            (b"GET /metrics HTTP/1.1\n\n", Route::Metrics),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"HEAD /metrics HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET / HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /metrics/x HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /metrics\r\n\r\n", Route::NotFound),
            (b"GET /metrics HTTP/2\r\n\r\n", Route::NotFound),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /metrics HTTP/1.1", Route::NotFound),
            (b"", Route::NotFound),
            (b"\xff\xfe\r\n\r\n", Route::NotFound),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn virus_names_are_bounded() {
        let known = Mutex::new(HashSet::new());
        for i in 0..MAX_VIRUS_NAMES {
            assert_eq!(virus_label(&known, &format!("V{i}")), format!("V{i}"));
        }
        assert_eq!(virus_label(&known, "Late.One"), OTHER_VIRUS);
        assert_eq!(
            virus_label(&known, "V0"),
            "V0",
            "a known name keeps its series"
        );
        assert_eq!(known.lock().expect("lock").len(), MAX_VIRUS_NAMES);
    }

    #[test]
    fn render_lists_every_metric() {
        received(10);
        let page = render();
        for name in [
            "sievegate_deliveries_total{outcome=\"quarantined\"}",
            "sievegate_reloads_total{result=\"refused\"}",
            "# TYPE sievegate_scan_duration_seconds histogram",
            "# TYPE sievegate_store_duration_seconds histogram",
            "sievegate_clamd_errors_total",
            "sievegate_sessions_active",
            "sievegate_sessions_total",
            "sievegate_messages_received_total",
            "sievegate_received_bytes_total",
        ] {
            assert!(page.contains(name), "{name} missing from:\n{page}");
        }
    }
}
