//! What only the PostgreSQL store must show, against the private test cluster: races
//! between two pools (two hosts) decided once, the outbox lease surviving a dead sender,
//! schema migration and refusal, failure and recovery without a reopen.

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pg_harness::{fresh_database, Cluster};
use super::postgres::{KNOWN_SCHEMA, MIGRATIONS};
use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Two stores (two pools, as two hosts) on one new database.
fn two_hosts() -> (Arc<PostgresState>, Arc<PostgresState>) {
    let (_, url) = fresh_database();
    let a = PostgresState::open(&test_options(url.clone())).expect("open a");
    let b = PostgresState::open(&test_options(url)).expect("open b");
    (Arc::new(a), Arc::new(b))
}

/// Runs `calls` calls of `f` at once, alternating between the two stores; returns the
/// results in call order.
fn race<T: Send + 'static>(
    a: &Arc<PostgresState>,
    b: &Arc<PostgresState>,
    calls: usize,
    f: impl Fn(&PostgresState) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(calls));
    let threads: Vec<_> = (0..calls)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { a } else { b });
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                f(&store)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|h| h.join().expect("racing thread"))
        .collect()
}

/// 50 deliveries of one sender to one vacation user at the same moment, over two hosts:
/// exactly one claims the record (so exactly one reply is queued), 20 times over.
#[test]
fn fifty_concurrent_claims_from_two_pools_give_exactly_one() {
    let (a, b) = two_hosts();
    for round in 0..20 {
        let key = format!("sieve-dup:alice@example.test:_vbob@example.net-{round}");
        let now = SystemTime::now();
        let won = race(&a, &b, 50, move |store| {
            store
                .remember_once(&key, now + Duration::from_secs(86_400), now)
                .expect("remember_once")
        });
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
    }
    // Both pools were used, within their bound, and nobody is left waiting.
    for store in [&a, &b] {
        let pool = store.pool_status();
        assert!(pool.open >= 1 && pool.open <= 8, "{pool:?}");
        assert_eq!(pool.waiting, 0, "{pool:?}");
    }
}

/// The same for a rate limit: of 50 checks at once, one is allowed and 49 counted.
#[test]
fn concurrent_rate_checks_from_two_pools_allow_one() {
    let (a, b) = two_hosts();
    let decisions = race(&a, &b, 50, |store| {
        store
            .rate_check("abuse:ip:203.0.113.9", Duration::from_secs(3600), t(0))
            .expect("rate")
    });
    let sent = decisions
        .iter()
        .filter(|d| matches!(d, RateDecision::Send { .. }))
        .count();
    assert_eq!(sent, 1, "{decisions:?}");
    assert_eq!(
        a.rate_check("abuse:ip:203.0.113.9", Duration::from_secs(3600), t(3600))
            .expect("rate"),
        RateDecision::Send { suppressed: 49 }
    );
}

fn queued(n: u64) -> QueuedMail {
    QueuedMail {
        id: 0,
        kind: "vacation".into(),
        from: String::new(),
        to: vec![format!("rcpt{n}@example.net")],
        message: format!("Message-ID: <{n}@sievegate.test>\r\n\r\nbody\r\n").into_bytes(),
        attempts: 0,
        next_attempt: t(0),
        last_error: None,
        redirect: None,
    }
}

/// Host A claims a row and dies without finishing it (its pool dropped): B cannot take the
/// row while A's lease runs, and takes it, Message-ID and all, once the lease has ended.
#[test]
fn a_dead_senders_lease_runs_out_and_another_host_sends_the_row() {
    let (a, b) = two_hosts();
    let id = a.queue_push(&queued(1)).expect("push");
    let lease = Duration::from_secs(300);
    let claimed = a.queue_claim(t(10), 10, lease).expect("claim on a");
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    drop(claimed);
    drop(a); // "killed": no queue_done, no queue_retry
    assert!(
        b.queue_claim(t(11), 10, lease)
            .expect("claim on b")
            .is_empty(),
        "leased to a"
    );
    assert!(b
        .queue_claim(t(309), 10, lease)
        .expect("claim on b")
        .is_empty());
    let taken = b.queue_claim(t(310), 10, lease).expect("claim on b");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, id);
    assert_eq!(taken[0].message, queued(1).message, "the same Message-ID");
    b.queue_done(id).expect("done");
    assert_eq!(b.sizes().expect("sizes").queue, 0);
}

/// Claims racing from two pools never hand one row to two senders, and together take
/// every due row.
#[test]
fn concurrent_claims_never_share_a_row() {
    let (a, b) = two_hosts();
    let mut pushed: Vec<i64> = (0..40)
        .map(|n| a.queue_push(&queued(n)).expect("push"))
        .collect();
    let claims = race(&a, &b, 16, |store| {
        store
            .queue_claim(t(10), 5, Duration::from_secs(60))
            .expect("claim")
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    });
    let mut got: Vec<i64> = claims.into_iter().flatten().collect();
    got.sort_unstable();
    pushed.sort_unstable();
    assert_eq!(got, pushed, "each row once, none left out");
}

/// A database at schema N-1 (with a queued row) is brought to N by open, keeping the row;
/// a database newer than this build is refused with a message saying so, and left alone.
#[test]
fn migrations_upgrade_an_older_schema_and_refuse_a_newer_one() {
    let cluster = super::pg_harness::shared();
    let (name, url) = fresh_database();
    let previous = KNOWN_SCHEMA - 1;
    let mut setup = String::from(
        "CREATE TABLE schema_version (version integer PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now());",
    );
    for (n, step) in MIGRATIONS.iter().take(previous as usize).enumerate() {
        setup.push_str(step);
        setup.push_str(&format!(
            "INSERT INTO schema_version (version) VALUES ({});",
            n + 1
        ));
    }
    setup.push_str(
        "INSERT INTO outbound_queue (kind, sender, recipients, message, attempts, next_attempt) \
         VALUES ('notice', '', 'postmaster@example.test', '\\x41', 0, 0);",
    );
    cluster.psql(&name, &setup).expect("schema N-1");
    let store = PostgresState::connect(&test_options(url.clone())).expect("connect");
    assert_eq!(store.schema_status().expect("status").found, previous);
    let before = store.migrate().expect("migrate");
    assert_eq!((before.found, before.known), (previous, KNOWN_SCHEMA));
    assert_eq!(store.schema_status().expect("status").found, KNOWN_SCHEMA);
    let rows = store
        .queue_claim(t(0), 10, Duration::from_secs(60))
        .expect("the old row, now leasable");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message, b"A");
    // Migrating again changes nothing.
    assert_eq!(store.migrate().expect("again").found, KNOWN_SCHEMA);
    drop(store);

    let newer = KNOWN_SCHEMA + 1;
    cluster
        .psql(
            &name,
            &format!("INSERT INTO schema_version (version) VALUES ({newer})"),
        )
        .expect("a newer schema");
    let err = PostgresState::open(&test_options(url)).expect_err("refused");
    assert!(
        matches!(err, StateError::SchemaTooNew { found, known, .. } if found == newer && known == KNOWN_SCHEMA),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "schema version {newer} is newer than this sievegate knows ({KNOWN_SCHEMA})"
        )),
        "{text}"
    );
    assert!(!text.contains("password"), "{text}");
    assert_eq!(
        cluster
            .psql(&name, "SELECT max(version) FROM schema_version")
            .expect("version"),
        newer.to_string(),
        "left alone"
    );
}

/// The server stopped: calls fail within the deadline (a StateError, no hang); started
/// again: the same store works, without a reopen. A store opened while the server is down
/// migrates on its first call after the server is back.
#[test]
fn an_unreachable_server_is_an_error_and_recovery_needs_no_reopen() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("sg").expect("createdb");
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(2),
        ..test_options(url)
    };
    let store = PostgresState::open(&options).expect("open");
    store.cache_put("k", "v", t(100)).expect("put");
    cluster.stop();
    let started = std::time::Instant::now();
    let err = store.cache_get("k", t(0)).expect_err("server down");
    assert!(matches!(err, StateError::Backend { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let late = PostgresState::open(&options).expect("open while down is not fatal");
    assert!(late.sizes().is_err());
    cluster.resume().expect("start again");
    assert_eq!(
        store.cache_get("k", t(0)).expect("get").as_deref(),
        Some("v")
    );
    assert_eq!(late.sizes().expect("sizes").cache, 1);
}

/// Mail's text may hold NUL, which PostgreSQL text refuses: stored as U+FFFD instead of
/// failing (a failed quarantine insert would defer the message forever).
#[test]
fn nul_in_text_is_stored_replaced() {
    let store = test_postgres();
    let mut entry = QuarantineEntry {
        id: "nul".into(),
        received_at: t(0),
        sender: "a\0b@example.net".into(),
        recipients: vec!["x@example.test".into()],
        resolved: vec!["x@example.test".into()],
        client_ip: None,
        client_helo: Some("he\0lo".into()),
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["Eicar".into()],
        message_id: "<\0@x>".into(),
        subject: "sub\0ject".into(),
        from: String::new(),
        size: 1,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    };
    store.quarantine_insert(&entry).expect("insert");
    let got = store.quarantine_get("nul").expect("get").expect("there");
    assert_eq!(got.subject, "sub\u{FFFD}ject");
    entry.subject = got.subject.clone();
    entry.sender = got.sender.clone();
    entry.client_helo = got.client_helo.clone();
    entry.message_id = got.message_id.clone();
    assert_eq!(got, entry);
    store
        .cache_put("k\0", "v\0", t(10))
        .expect("cache with NUL");
}

/// With PostgreSQL the quarantine keeps the bytes in the database: exact bytes back from
/// another host's store, no file written, a duplicate id refused whole, delete and purge
/// remove entry and message, and the sweep (which on files removes entries whose file is
/// missing) leaves the shared entries alone.
#[test]
fn the_quarantine_keeps_its_messages_in_the_database() {
    use crate::quarantine::Quarantine;
    let (name, url) = fresh_database();
    let a = Arc::new(PostgresState::open(&test_options(url.clone())).expect("open a"));
    let b = Arc::new(PostgresState::open(&test_options(url)).expect("open b"));
    let dir = tempfile::tempdir().expect("tempdir");
    let qa = Quarantine::new(dir.path().join("qa"), a.clone() as Arc<dyn StateStore>);
    let qb = Quarantine::new(dir.path().join("qb"), b.clone() as Arc<dyn StateStore>);
    let entry = |id: &str, at: u64| QuarantineEntry {
        id: id.into(),
        received_at: t(at),
        sender: "mallory@forged.example".into(),
        recipients: vec!["alice@example.test".into()],
        resolved: vec!["alice@example.test".into()],
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["Eicar".into()],
        message_id: String::new(),
        subject: String::new(),
        from: String::new(),
        size: 9,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    };
    let bytes = b"X: y\r\n\r\n\x00\xff body\r\n.\r\n".to_vec();
    qa.store(&entry("one", 1), &bytes).expect("store on a");
    assert!(!dir.path().join("qa").exists(), "no file written");
    assert_eq!(qb.raw("one").expect("raw on b"), bytes);
    // A duplicate id: refused, and the first message is untouched.
    assert!(matches!(
        qb.store(&entry("one", 2), b"other"),
        Err(crate::quarantine::QuarantineError::Index(
            StateError::Duplicate(_)
        ))
    ));
    assert_eq!(qa.raw("one").expect("raw"), bytes);
    // The sweep of either host removes nothing (an hour's grace or not).
    let swept = qb.sweep(t(100_000), Duration::ZERO).expect("sweep");
    assert_eq!((swept.orphan_files, swept.dangling_entries), (0, 0));
    assert!(qa.get("one").is_ok());
    qa.store(&entry("two", 50), b"2").expect("store");
    let purged = qb.purge(t(10), |_, _| {}).expect("purge");
    assert_eq!(purged.removed, 1);
    assert!(qa.raw("one").is_err());
    qb.delete("two").expect("delete on b");
    assert_eq!(a.sizes().expect("sizes").quarantine, 0);
    let orphans = super::pg_harness::shared()
        .psql(&name, "SELECT count(*) FROM quarantine_message")
        .expect("count");
    assert_eq!(orphans, "0", "messages go with their entries");
}

/// TLS to a server whose certificate comes from a private CA (the harness's cluster with
/// `ssl = on`, its CA made by the test): with the CA in `ca_file` the store works and its
/// connections are encrypted; without it the handshake is refused (unknown issuer), an
/// error and no plain-text fallback. `sslmode=require` against a server without TLS is a
/// clean error too, and a `ca_file` that holds no certificate is refused at open.
#[test]
fn tls_with_a_private_ca_and_require_without_tls_refused() {
    let cluster = Cluster::start_tcp(true).unwrap_or_else(|e| panic!("{e}"));
    cluster.create_database("sg").expect("createdb");
    let url = cluster.tcp_url("sg", "sslmode=require");
    let quick = |url: String, ca_file: Option<std::path::PathBuf>| PostgresOptions {
        connect_timeout: Duration::from_secs(3),
        ca_file,
        ..test_options(url)
    };
    let store =
        PostgresState::open(&quick(url.clone(), Some(cluster.ca_file()))).expect("open with CA");
    store.cache_put("k", "v", t(100)).expect("put over TLS");
    assert_eq!(store.cache_get("k", t(0)).expect("get"), Some("v".into()));
    let encrypted = cluster
        .psql(
            "sg",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.datname = 'sg'",
        )
        .expect("psql");
    assert_ne!(encrypted, "0", "the store's connections use TLS");

    let untrusted = PostgresState::open(&quick(url, None)).expect("open is not fatal");
    let err = untrusted
        .cache_get("k", t(0))
        .expect_err("a certificate from an unknown CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let (_, plain) = fresh_database();
    let no_tls = PostgresState::open(&quick(format!("{plain} sslmode=require"), None))
        .expect("open is not fatal");
    let err = no_tls
        .cache_get("k", t(0))
        .expect_err("require against a server without TLS");
    assert!(
        err.to_string().contains("server does not support TLS"),
        "{err}"
    );

    let not_pem = cluster.ca_file().with_file_name("server.csr");
    let err = PostgresState::open(&quick(plain, Some(not_pem))).expect_err("not a CA file");
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}
