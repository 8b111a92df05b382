//! One behaviour table, run against every [`StateStore`] implementation, and the SQLite
//! store's own properties (WAL readers, reopen, schema version).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn entry(id: &str, at: u64, rcpts: &[&str], viruses: &[&str]) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: t(at),
        sender: "mallory@forged.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        resolved: rcpts
            .iter()
            .map(|r| r.replace("+x", "").to_lowercase())
            .collect(),
        client_ip: Some("203.0.113.7".into()),
        client_helo: Some("bad.example".into()),
        queue_id: Some("4ABCD".into()),
        verdict: "infected".into(),
        virustest: 5,
        viruses: viruses.iter().map(|v| v.to_string()).collect(),
        message_id: "<m@x>".into(),
        subject: "invoice".into(),
        from: "mallory@forged.example".into(),
        size: 1234,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn ids(entries: &[QuarantineEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

/// The behaviour every implementation must show.
fn behaviour(store: &dyn StateStore) {
    // Quarantine index.
    let a = entry(
        "a",
        10,
        &["Alice+x@example.test", "bob@example.test"],
        &["Eicar.Test.UNOFFICIAL"],
    );
    let b = entry(
        "b",
        20,
        &["bob@example.test"],
        &["Heuristics.Foo", "Other.Bar"],
    );
    let c = entry("c", 5, &["carol@example.test"], &["Win.Trojan.Zzz"]);
    for e in [&a, &b, &c] {
        store.quarantine_insert(e).expect("insert");
    }
    assert!(matches!(
        store.quarantine_insert(&a),
        Err(StateError::Duplicate(_))
    ));
    assert_eq!(store.quarantine_get("a").expect("get"), Some(a.clone()));
    assert_eq!(store.quarantine_get("nope").expect("get"), None);

    let list = |f: QuarantineFilter| ids(&store.quarantine_list(&f).expect("list")).join(",");
    let cases: Vec<(QuarantineFilter, &str)> = vec![
        (QuarantineFilter::default(), "c,a,b"),
        (
            QuarantineFilter {
                since: Some(t(10)),
                ..Default::default()
            },
            "a,b",
        ),
        (
            QuarantineFilter {
                since: Some(t(21)),
                ..Default::default()
            },
            "",
        ),
        (
            QuarantineFilter {
                virus: Some("eicar".into()),
                ..Default::default()
            },
            "a",
        ),
        (
            QuarantineFilter {
                virus: Some("OTHER".into()),
                ..Default::default()
            },
            "b",
        ),
        (
            QuarantineFilter {
                virus: Some("%".into()),
                ..Default::default()
            },
            "",
        ),
        (
            QuarantineFilter {
                virus: Some(".".into()),
                ..Default::default()
            },
            "c,a,b",
        ),
        (
            QuarantineFilter {
                rcpt: Some("bob@example.test".into()),
                ..Default::default()
            },
            "a,b",
        ),
        (
            QuarantineFilter {
                rcpt: Some("ALICE@example.test".into()),
                ..Default::default()
            },
            "a",
        ),
        (
            QuarantineFilter {
                rcpt: Some("alice+x@example.test".into()),
                ..Default::default()
            },
            "a",
        ),
        (
            QuarantineFilter {
                rcpt: Some("bob@".into()),
                ..Default::default()
            },
            "",
        ),
        (
            QuarantineFilter {
                rcpt: Some("bob@example.test".into()),
                virus: Some("heur".into()),
                since: Some(t(0)),
                limit: None,
            },
            "b",
        ),
        (
            QuarantineFilter {
                limit: Some(2),
                ..Default::default()
            },
            "c,a",
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(list(filter.clone()), want, "{filter:?}");
    }
    assert_eq!(store.quarantine_older_than(t(10)).expect("older"), ["c"]);
    assert_eq!(
        store.quarantine_older_than(t(21)).expect("older"),
        ["c", "a", "b"]
    );

    assert!(store
        .quarantine_mark_released("b", t(30), "root")
        .expect("release"));
    assert!(!store
        .quarantine_mark_released("zz", t(30), "root")
        .expect("release"));
    let b2 = store.quarantine_get("b").expect("get").expect("b");
    assert_eq!(b2.released_at, Some(t(30)));
    assert_eq!(b2.released_by.as_deref(), Some("root"));

    assert!(store.quarantine_delete("a").expect("delete"));
    assert!(!store.quarantine_delete("a").expect("delete twice"));
    assert_eq!(
        list(QuarantineFilter {
            rcpt: Some("bob@example.test".into()),
            ..Default::default()
        }),
        "b"
    );
    // The id is free again.
    store.quarantine_insert(&a).expect("insert again");

    // Cache.
    assert_eq!(store.cache_get("k", t(0)).expect("cache"), None);
    store.cache_put("k", "v1", t(100)).expect("put");
    assert_eq!(
        store.cache_get("k", t(99)).expect("cache").as_deref(),
        Some("v1")
    );
    assert_eq!(
        store.cache_get("k", t(100)).expect("cache"),
        None,
        "expired at its time"
    );
    store.cache_put("k", "v2", t(200)).expect("put");
    assert_eq!(
        store.cache_get("k", t(150)).expect("cache").as_deref(),
        Some("v2")
    );

    // Rate limit: (offset, want).
    let minute = Duration::from_secs(60);
    let steps: &[(u64, RateDecision)] = &[
        (0, RateDecision::Send { suppressed: 0 }),
        (1, RateDecision::Suppress),
        (59, RateDecision::Suppress),
        (60, RateDecision::Send { suppressed: 2 }),
        (61, RateDecision::Suppress),
        (200, RateDecision::Send { suppressed: 1 }),
        (300, RateDecision::Send { suppressed: 0 }),
        // A clock that went backwards: "just now".
        (100, RateDecision::Suppress),
    ];
    for (at, want) in steps {
        assert_eq!(
            store.rate_check("ip:1", minute, t(*at)).expect("rate"),
            *want,
            "at {at}"
        );
    }
    assert_eq!(
        store.rate_check("ip:2", minute, t(1)).expect("rate"),
        RateDecision::Send { suppressed: 0 },
        "keys are independent"
    );

    // Outbound queue.
    let mail = |kind: &str, at: u64| QueuedMail {
        id: 0,
        kind: kind.into(),
        from: String::new(),
        to: vec!["postmaster@example.test".into(), "x@y".into()],
        message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        attempts: 0,
        next_attempt: t(at),
        last_error: None,
        redirect: None,
    };
    let n1 = store.queue_push(&mail("notice", 10)).expect("push");
    let n2 = store.queue_push(&mail("report", 5)).expect("push");
    assert_ne!(n1, n2);
    assert!(store.queue_due(t(4), 10).expect("due").is_empty());
    let due = store.queue_due(t(10), 10).expect("due");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [n2, n1]);
    assert_eq!(
        due[1],
        QueuedMail {
            id: n1,
            ..mail("notice", 10)
        }
    );
    assert_eq!(store.queue_due(t(10), 1).expect("due").len(), 1);
    store
        .queue_retry(n2, t(50), "connection refused")
        .expect("retry");
    let due = store.queue_due(t(10), 10).expect("due");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [n1]);
    let later = store.queue_due(t(50), 10).expect("due");
    let retried = later.iter().find(|m| m.id == n2).expect("n2 due at 50");
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.last_error.as_deref(), Some("connection refused"));
    store.queue_done(n1).expect("done");
    store.queue_done(n2).expect("done");
    assert!(store.queue_due(t(1000), 10).expect("due").is_empty());

    claims(store);
    remember_once(store);
}

/// `queue_claim`: a claimed row is not claimed again until its lease ends, or until the
/// sender retries it (which ends the lease); `queue_due` only looks.
fn claims(store: &dyn StateStore) {
    let mail = |at: u64| QueuedMail {
        id: 0,
        kind: "vacation".into(),
        from: String::new(),
        to: vec!["x@y".into()],
        message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        attempts: 0,
        next_attempt: t(at),
        last_error: None,
        redirect: None,
    };
    let lease = Duration::from_secs(60);
    let a = store.queue_push(&mail(100)).expect("push");
    let b = store.queue_push(&mail(101)).expect("push");
    let c = store.queue_push(&mail(500)).expect("push");
    let ids = |m: Vec<QueuedMail>| m.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.queue_claim(t(200), 1, lease).expect("claim")),
        [a]
    );
    assert_eq!(
        ids(store.queue_claim(t(200), 10, lease).expect("claim")),
        [b]
    );
    assert!(store
        .queue_claim(t(259), 10, lease)
        .expect("claim")
        .is_empty());
    // A look still shows them.
    assert_eq!(ids(store.queue_due(t(259), 10).expect("due")), [a, b]);
    // b's sender fails and retries it at 270: its lease ends with the retry.
    store.queue_retry(b, t(270), "later").expect("retry");
    // a's sender died: at the end of its lease a is claimed again (at least once).
    assert_eq!(
        ids(store.queue_claim(t(260), 10, lease).expect("claim")),
        [a]
    );
    let again = store.queue_claim(t(270), 10, lease).expect("claim");
    assert_eq!(ids(again.clone()), [b]);
    assert_eq!(again[0].attempts, 1);
    store.queue_done(a).expect("done");
    store.queue_done(b).expect("done");
    assert_eq!(
        ids(store.queue_claim(t(9_999), 10, lease).expect("claim")),
        [c]
    );
    store.queue_done(c).expect("done");
    assert_eq!(store.sizes().expect("sizes").queue, 0);
}

/// `remember_once`: set when absent or expired, never twice while live; it keeps its
/// expiry; `cache_get` sees it.
fn remember_once(store: &dyn StateStore) {
    let key = "sieve-dup:alice@example.test:_vbob@example.net";
    assert!(store.remember_once(key, t(100), t(0)).expect("once"));
    assert!(!store.remember_once(key, t(500), t(1)).expect("once"));
    assert_eq!(
        store.cache_get(key, t(99)).expect("get").as_deref(),
        Some("1")
    );
    assert_eq!(
        store.cache_get(key, t(100)).expect("get"),
        None,
        "kept its expiry"
    );
    // Expired: taken over.
    assert!(store.remember_once(key, t(300), t(100)).expect("once"));
    assert!(!store.remember_once(key, t(900), t(299)).expect("once"));
    // A value put by cache_put counts as set.
    store.cache_put("k2", "v", t(50)).expect("put");
    assert!(!store.remember_once("k2", t(60), t(10)).expect("once"));
    assert!(store.remember_once("k2", t(60), t(50)).expect("once"));
}

super::on_every_store! {
    behaviour_table => |store: Arc<dyn StateStore>| behaviour(&*store);
}

#[test]
fn sqlite_reopens_with_its_data_and_rejects_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteState::open(dir.path()).expect("open");
        store
            .quarantine_insert(&entry("x", 1, &["a@b"], &["V"]))
            .expect("insert");
    }
    let store = SqliteState::open(dir.path()).expect("reopen");
    assert!(store.quarantine_get("x").expect("get").is_some());
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE)).expect("raw");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    drop(conn);
    let err = SqliteState::open(dir.path()).expect_err("newer schema");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn sqlite_reader_sees_commits_while_a_writer_holds_a_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = SqliteState::open(dir.path()).expect("open");
    server
        .quarantine_insert(&entry("committed", 1, &["a@b"], &["V"]))
        .expect("insert");
    // Another process (the CLI) holds a write transaction with an uncommitted row.
    let mut writer = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE)).expect("writer");
    let tx = writer
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin immediate");
    tx.execute("DELETE FROM quarantine WHERE id = 'committed'", [])
        .expect("delete in tx");
    let reader = SqliteState::open(dir.path()).expect("reader");
    let started = std::time::Instant::now();
    let seen = reader
        .quarantine_list(&QuarantineFilter::default())
        .expect("list during write tx");
    assert_eq!(
        ids(&seen),
        ["committed"],
        "the reader sees the last commit, not the open tx"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the reader did not wait for the writer"
    );
    tx.commit().expect("commit");
    assert!(reader
        .quarantine_list(&QuarantineFilter::default())
        .expect("list")
        .is_empty());
}

#[test]
fn time_round_trip() {
    for time in [
        UNIX_EPOCH,
        t(0),
        UNIX_EPOCH - Duration::from_micros(1_500_000),
        t(0) + Duration::from_micros(7),
    ] {
        assert_eq!(from_micros(to_micros(time)), time);
    }
}
