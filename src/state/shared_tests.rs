//! What two handles on one store see, on every store ([`super::on_every_store_twice!`]): two
//! hosts on one PostgreSQL database, two processes on one SQLite file (the server and
//! `sievegate deliver`, or the CLI), two connections of one process on the memory store.
//! Racing claims are decided once, racing rate checks allow one, an outbox lease keeps a
//! row from the other sender until it runs out, and text holding NUL never fails a write.

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Runs `calls` calls of `f` at once, alternating between the two handles; returns the
/// results in call order.
fn race<T: Send + 'static>(
    a: &Arc<dyn StateStore>,
    b: &Arc<dyn StateStore>,
    calls: usize,
    f: impl Fn(&dyn StateStore) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(calls));
    let threads: Vec<_> = (0..calls)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { a } else { b });
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                f(store.as_ref())
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
fn fifty_concurrent_claims_give_exactly_one(a: Arc<dyn StateStore>, b: Arc<dyn StateStore>) {
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
}

/// The same for a rate limit: of 50 checks at once, one is allowed and 49 counted.
fn concurrent_rate_checks_allow_one(a: Arc<dyn StateStore>, b: Arc<dyn StateStore>) {
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

/// Sender A claims a row and dies without finishing it (its handle dropped): B cannot take
/// the row while A's lease runs, and takes it, Message-ID and all, once the lease has
/// ended.
fn a_dead_senders_lease_runs_out_and_the_other_sends_the_row(
    a: Arc<dyn StateStore>,
    b: Arc<dyn StateStore>,
) {
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

/// Claims racing from two handles never hand one row to two senders, and together take
/// every due row.
fn concurrent_claims_never_share_a_row(a: Arc<dyn StateStore>, b: Arc<dyn StateStore>) {
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

/// Mail's text may hold NUL, which PostgreSQL text refuses: a write never fails for it (a
/// failed quarantine insert would defer the message forever). SQLite and memory keep it;
/// PostgreSQL stores U+FFFD instead. The other handle reads the same entry.
fn nul_in_text_never_fails_a_write(a: Arc<dyn StateStore>, b: Arc<dyn StateStore>) {
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
    a.quarantine_insert(&entry).expect("insert");
    let got = b.quarantine_get("nul").expect("get").expect("there");
    assert!(
        ["sub\0ject", "sub\u{FFFD}ject"].contains(&got.subject.as_str()),
        "{:?}",
        got.subject
    );
    entry.subject = got.subject.clone();
    entry.sender = got.sender.clone();
    entry.client_helo = got.client_helo.clone();
    entry.message_id = got.message_id.clone();
    assert_eq!(got, entry);
    assert!(
        !got.sender.contains('\0') || got.subject.contains('\0'),
        "one rule for all text"
    );
    a.cache_put("k\0", "v\0", t(10)).expect("cache with NUL");
    assert!(b.cache_get("k\0", t(0)).expect("get").is_some());
}

super::on_every_store_twice! {
    fifty_concurrent_claims => fifty_concurrent_claims_give_exactly_one;
    concurrent_rate_checks => concurrent_rate_checks_allow_one;
    a_dead_senders_lease => a_dead_senders_lease_runs_out_and_the_other_sends_the_row;
    concurrent_queue_claims => concurrent_claims_never_share_a_row;
    nul_in_text => nul_in_text_never_fails_a_write;
}
