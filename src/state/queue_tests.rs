//! The outbound queue's redirect rows ([`RedirectOwner`]) on both stores, and the schema
//! migration that adds their columns to a database written by an older sievegate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use super::sqlite::{DB_FILE, MIGRATIONS};
use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn mail(kind: &str, at: u64, redirect: Option<RedirectOwner>) -> QueuedMail {
    QueuedMail {
        id: 0,
        kind: kind.into(),
        from: "sender@remote.example".into(),
        to: vec!["carol@elsewhere.example".into()],
        message: b"X-Mark: a\r\nSubject: x\r\n\r\nbody\r\n".to_vec(),
        attempts: 0,
        next_attempt: t(at),
        last_error: None,
        redirect,
    }
}

fn owner(rcpt: &str, inbox_copy: bool) -> Option<RedirectOwner> {
    Some(RedirectOwner {
        rcpt: rcpt.into(),
        inbox_copy,
    })
}

/// A redirect row keeps its owner through push, due and retry; other rows have none.
fn redirect_rows(store: &dyn StateStore) {
    let cases = [
        mail("notice", 1, None),
        mail("redirect", 2, owner("alice+x@example.test", false)),
        mail("redirect", 3, owner("bob@example.test", true)),
    ];
    let ids: Vec<i64> = cases
        .iter()
        .map(|m| store.queue_push(m).expect("push"))
        .collect();
    let due = store.queue_due(t(10), 10).expect("due");
    assert_eq!(due.len(), 3);
    for ((want, id), got) in cases.iter().zip(&ids).zip(&due) {
        assert_eq!(
            *got,
            QueuedMail {
                id: *id,
                ..want.clone()
            }
        );
    }
    store
        .queue_retry(ids[1], t(20), "550 5.1.1")
        .expect("retry");
    let later = store.queue_due(t(20), 10).expect("due");
    let retried = later.iter().find(|m| m.id == ids[1]).expect("retried row");
    assert_eq!(retried.redirect, owner("alice+x@example.test", false));
    assert_eq!(retried.attempts, 1);
    for id in ids {
        store.queue_done(id).expect("done");
    }
    assert!(store.queue_due(t(1000), 10).expect("due").is_empty());
}

super::on_every_store! {
    redirect_rows_on => |store: std::sync::Arc<dyn StateStore>| redirect_rows(&*store);
}

#[test]
fn only_the_memory_store_is_not_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        !MemoryState::default().is_durable(),
        "a memory queue must not stand in for a delivery"
    );
    assert!(SqliteState::open(dir.path()).expect("open").is_durable());
    assert!(super::test_postgres().is_durable());
}

#[test]
fn a_version_1_database_gains_the_redirect_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // What sievegate before the redirect columns wrote: schema 1 and one queued notice.
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("create");
        conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
        conn.execute_batch("PRAGMA user_version = 1")
            .expect("version");
        conn.execute(
            "INSERT INTO outbound_queue (kind, sender, recipients, message, attempts, next_attempt, last_error) \
             VALUES ('postmaster-notice', '', 'postmaster@example.test', x'53756276', 2, ?1, 'timeout')",
            params![to_micros(t(5))],
        )
        .expect("old row");
    }
    let store = SqliteState::open(dir.path()).expect("open migrates");
    let due = store.queue_due(t(10), 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, "postmaster-notice");
    assert_eq!(due[0].attempts, 2);
    assert_eq!(due[0].last_error.as_deref(), Some("timeout"));
    assert_eq!(due[0].redirect, None, "an old row is not a redirect");
    let id = store
        .queue_push(&mail("redirect", 6, owner("alice@example.test", true)))
        .expect("push a redirect");
    let due = store.queue_due(t(10), 10).expect("due");
    assert_eq!(
        due.iter().find(|m| m.id == id).map(|m| m.redirect.clone()),
        Some(owner("alice@example.test", true))
    );
    drop(store);
    // Opened again: already current, nothing to migrate, the rows stay.
    let store = SqliteState::open(dir.path()).expect("reopen");
    assert_eq!(store.queue_due(t(10), 10).expect("due").len(), 2);
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, sqlite::KNOWN_SCHEMA);
}
