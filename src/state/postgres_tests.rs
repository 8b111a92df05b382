//! What only the PostgreSQL store must show, against the private test cluster: schema
//! migration and refusal, failure and recovery without a reopen, the quarantined bytes in
//! the database, TLS. What two hosts sharing a store must see (races decided once, leases)
//! holds for every store and runs on all three ([`super::shared_tests`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pg_harness::{fresh_database, Cluster};
use super::postgres::{KNOWN_SCHEMA, MIGRATIONS};
use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
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
