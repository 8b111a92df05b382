//! State with a lifetime (issue 14 item 7), run against every store: a day of simulated
//! traffic leaves only unexpired rows, the in-memory store stays within its bound, and the
//! per-recipient quarantine operations behave alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::quarantine::Quarantine;

/// Simulated time: `secs` after a fixed start.
fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn entry(id: &str, at: SystemTime, rcpts: &[&str]) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: at,
        sender: "mallory@forged.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        resolved: rcpts.iter().map(|r| r.to_string()).collect(),
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["Eicar".into()],
        message_id: String::new(),
        subject: String::new(),
        from: String::new(),
        size: 3,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn mail(n: u64, at: SystemTime) -> QueuedMail {
    QueuedMail {
        id: 0,
        kind: "postmaster-notice".into(),
        from: String::new(),
        to: vec![format!("postmaster{n}@example.test")],
        message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        attempts: 0,
        next_attempt: at,
        last_error: None,
        redirect: None,
    }
}

/// Key families as the callers write them, with their time to live.
const CACHE_KINDS: [(&str, u64); 5] = [
    ("dup", 3600),            // duplicate ids (`:seconds` of a few hours)
    ("redirect", 12 * 3600),  // redirect loop ids
    ("vacation", 2 * 86_400), // vacation `:days 2`: outlives the simulated day
    ("rdap", 300),            // negative RDAP answers
    ("rdap-net", 6 * 3600),   // RDAP answers for a network
];

/// How long the simulation keeps rate rows (the server's `rate_keep`).
const RATE_KEEP: Duration = Duration::from_secs(2 * 3600);

/// A day in 60 s steps: each step puts one entry of each cache family and checks one rate
/// key; every 10 min a notice is queued (sent 20 min later); every 15 min a message is
/// quarantined; every hour the server's passes run (expiry, quarantine retention 6 h).
/// At each pass and at the end the stores hold exactly the unexpired rows of a model.
fn a_day_of_traffic(store: Arc<dyn StateStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Quarantine::new(dir.path().join("q"), Arc::clone(&store));
    let retention = Duration::from_secs(6 * 3600);
    let mut cache_model: HashMap<String, SystemTime> = HashMap::new();
    let mut rate_model: HashMap<String, SystemTime> = HashMap::new();
    let mut queued: Vec<(i64, SystemTime)> = Vec::new();
    let mut quarantined: Vec<(String, SystemTime)> = Vec::new();
    let mut peak = StateSizes::default();
    let day = 86_400;
    for step in 0..=day / 60 {
        let now = t(step * 60);
        for (i, (kind, ttl)) in CACHE_KINDS.iter().enumerate() {
            // Keys repeat now and then (a retried message, the same network), so updates
            // of a live key are covered too.
            let key = format!("{kind}:{}", (step * 7 + i as u64) % 1000 + step / 3);
            let expires = now + Duration::from_secs(*ttl);
            store.cache_put(&key, "1", expires).expect("put");
            cache_model.insert(key, expires);
        }
        let rate_key = format!("abuse:198.51.100.{}", step % 200);
        let interval = Duration::from_secs(600 + (step % 4) * 900);
        if let RateDecision::Send { .. } = store.rate_check(&rate_key, interval, now).expect("rate")
        {
            rate_model.insert(rate_key, now);
        }
        if step % 10 == 0 {
            let id = store.queue_push(&mail(step, now)).expect("push");
            queued.push((id, now));
        }
        // The outbox sends what is 20 minutes old (done or given up: both delete the row).
        for (id, _) in queued
            .iter()
            .filter(|(_, at)| *at + Duration::from_secs(1200) <= now)
        {
            store.queue_done(*id).expect("done");
        }
        queued.retain(|(_, at)| *at + Duration::from_secs(1200) > now);
        if step % 15 == 0 {
            let id = format!("q{step}");
            q.store(&entry(&id, now, &["alice@example.test"]), b"EICAR")
                .expect("quarantine");
            quarantined.push((id, now));
        }
        if step % 60 == 0 || step == day / 60 {
            // The server's passes.
            let expired = store.expire(now, RATE_KEEP).expect("expire");
            let purged = q
                .purge(now.checked_sub(retention).expect("time"), |_, _| {})
                .expect("purge");
            assert!(purged.failed.is_empty(), "{purged:?}");
            let live_cache = cache_model.values().filter(|e| **e > now).count();
            let before = cache_model.len() + rate_model.len();
            cache_model.retain(|_, e| *e > now);
            rate_model.retain(|_, l| *l + RATE_KEEP >= now);
            quarantined.retain(|(_, at)| *at >= now.checked_sub(retention).expect("time"));
            let sizes = store.sizes().expect("sizes");
            assert_eq!(sizes.cache as usize, live_cache, "cache at step {step}");
            assert_eq!(sizes.rate as usize, rate_model.len(), "rate at step {step}");
            assert_eq!(sizes.queue as usize, queued.len(), "outbox at step {step}");
            assert_eq!(
                sizes.quarantine as usize,
                quarantined.len(),
                "quarantine at step {step}"
            );
            assert_eq!(
                expired.cache + expired.rate,
                (before - cache_model.len() - rate_model.len()) as u64
            );
            peak.cache = peak.cache.max(sizes.cache);
            peak.rate = peak.rate.max(sizes.rate);
        }
    }
    eprintln!(
        "day of traffic: peak cache rows {}, peak rate rows {}, {} cache entries written",
        peak.cache,
        peak.rate,
        (day / 60 + 1) * CACHE_KINDS.len() as u64
    );
    let end = t(day);
    // Every remaining row is readable and unexpired; every expired one is gone.
    for (key, expires) in &cache_model {
        assert!(*expires > end);
        assert_eq!(
            store.cache_get(key, end).expect("get").as_deref(),
            Some("1")
        );
    }
    let vacation = cache_model
        .keys()
        .filter(|k| k.starts_with("vacation:"))
        .count();
    let rdap = cache_model
        .keys()
        .filter(|k| k.starts_with("rdap:"))
        .count();
    assert!(
        vacation > 1000,
        "2-day vacation records all kept: {vacation}"
    );
    assert!(
        rdap <= 6,
        "5-minute RDAP answers: only the last ones: {rdap}"
    );
    // The quarantine's messages and index agree: files beside the index, or in the
    // store itself (then no file at all).
    let mut files: Vec<String> = std::fs::read_dir(q.dir())
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut want: Vec<String> = quarantined
        .iter()
        .map(|(id, _)| format!("{id}.eml"))
        .collect();
    want.sort();
    if store.holds_quarantine_messages() {
        assert!(files.is_empty(), "{files:?}");
        for (id, _) in &quarantined {
            assert!(q.raw(id).is_ok(), "{id}");
        }
    } else {
        assert_eq!(files, want);
    }
    assert_eq!(
        quarantined.len(),
        6 * 4 + 1,
        "the last 6 h at one per 15 min"
    );
    // Bounded by the TTLs, not by the day: the largest table is the 2-day vacation family
    // (one a minute) plus what the shorter families keep alive.
    let inserted = (day / 60 + 1) * CACHE_KINDS.len() as u64;
    assert!(
        peak.cache < inserted * 6 / 10,
        "peak {} of {inserted} inserted",
        peak.cache
    );
    assert!(
        peak.rate <= 200,
        "one row per rate key at most: {}",
        peak.rate
    );
}

super::on_every_store! {
    a_day_of_traffic_leaves_only_unexpired_rows => a_day_of_traffic;
    per_recipient_quarantine => |store: Arc<dyn StateStore>| per_recipient(&*store);
}

#[test]
fn memory_state_stays_within_its_bound_evicting_expired_then_oldest() {
    let store = MemoryState::bounded(1000, Duration::from_secs(3600));
    // 500 entries that expire at t(100), then 2000 that expire later and later.
    for n in 0..500 {
        store
            .cache_put(&format!("short:{n}"), "1", t(100))
            .expect("put");
    }
    // The clock (as the callers tell it) moves past the short entries' expiry.
    assert_eq!(store.cache_get("short:0", t(200)).expect("get"), None);
    for n in 0..2000u64 {
        store
            .cache_put(&format!("long:{n}"), "1", t(10_000 + n))
            .expect("put");
        let sizes = store.sizes().expect("sizes");
        assert!(sizes.cache + sizes.rate <= 1000, "{sizes:?} after {n}");
    }
    // The expired entries went first, then the oldest of the live ones: the newest stay.
    for n in 1100..2000 {
        let key = format!("long:{n}");
        assert_eq!(
            store.cache_get(&key, t(200)).expect("get").as_deref(),
            Some("1"),
            "{key}"
        );
    }
    for n in 0..500 {
        assert_eq!(
            store.cache_get(&format!("long:{n}"), t(200)).expect("get"),
            None
        );
    }
    // Rate keys count toward the same bound.
    for n in 0..3000u64 {
        store
            .rate_check(&format!("rate:{n}"), Duration::from_secs(60), t(300 + n))
            .expect("rate");
    }
    let sizes = store.sizes().expect("sizes");
    assert!(sizes.cache + sizes.rate <= 1000, "{sizes:?}");
}

/// The per-recipient quarantine operations, on one store.
fn per_recipient(store: &dyn StateStore) {
    let e = entry("m1", t(10), &["alice@example.test"]);
    store.quarantine_insert(&e).expect("insert");
    assert!(store
        .quarantine_add_recipient("m1", "Bob+x@example.test", "bob@example.test")
        .expect("add"));
    // Twice is once.
    assert!(store
        .quarantine_add_recipient("m1", "Bob+x@example.test", "bob@example.test")
        .expect("add"));
    assert!(!store
        .quarantine_add_recipient("nope", "a@b", "a@b")
        .expect("add"));
    let got = store.quarantine_get("m1").expect("get").expect("m1");
    assert_eq!(got.recipients, ["alice@example.test", "Bob+x@example.test"]);
    assert_eq!(got.resolved, ["alice@example.test", "bob@example.test"]);
    let by_rcpt = QuarantineFilter {
        rcpt: Some("bob@example.test".into()),
        ..Default::default()
    };
    assert_eq!(store.quarantine_list(&by_rcpt).expect("list").len(), 1);
    assert_eq!(got.held(), ["alice@example.test", "Bob+x@example.test"]);

    // Alice first: the entry is not released as a whole yet.
    assert!(store
        .quarantine_release_rcpts("m1", &["alice@example.test".into()], t(20), "anna")
        .expect("release"));
    let got = store.quarantine_get("m1").expect("get").expect("m1");
    assert_eq!(got.held(), ["Bob+x@example.test"]);
    assert_eq!(
        got.releases,
        [RcptRelease {
            rcpt: "alice@example.test".into(),
            at: t(20),
            by: "anna".into()
        }]
    );
    assert_eq!(got.released_at, None);
    // Alice again keeps her first record; Bob completes the entry. A user name with a
    // line break cannot forge a record.
    store
        .quarantine_release_rcpts(
            "m1",
            &["alice@example.test".into(), "Bob+x@example.test".into()],
            t(30),
            "eve\n\tx",
        )
        .expect("release");
    let got = store.quarantine_get("m1").expect("get").expect("m1");
    assert!(got.held().is_empty());
    assert_eq!(got.releases.len(), 2);
    assert_eq!(got.releases[0].at, t(20));
    assert_eq!(got.releases[1].by, "eve??x");
    assert_eq!(got.released_at, Some(t(30)));
    assert_eq!(
        store
            .quarantine_list(&QuarantineFilter::default())
            .expect("list")[0],
        got
    );
    assert!(!store
        .quarantine_release_rcpts("nope", &[], t(30), "anna")
        .expect("release"));
    // Deleting the entry takes its releases along (a new entry with the id starts clean).
    store.quarantine_delete("m1").expect("delete");
    store.quarantine_insert(&e).expect("insert again");
    let got = store.quarantine_get("m1").expect("get").expect("m1");
    assert!(got.releases.is_empty());
}

#[test]
fn sqlite_migrates_a_version_1_store_keeping_its_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE)).expect("raw");
        conn.execute_batch(sqlite::MIGRATIONS[0]).expect("v1");
        conn.execute_batch("PRAGMA user_version = 1").expect("v1");
    }
    let store = SqliteState::open(dir.path()).expect("migrate");
    store
        .quarantine_insert(&entry("old", t(1), &["a@example.test"]))
        .expect("insert");
    store
        .quarantine_release_rcpts("old", &["a@example.test".into()], t(2), "anna")
        .expect("release");
    assert_eq!(
        store
            .quarantine_get("old")
            .expect("get")
            .expect("old")
            .released_at,
        Some(t(2))
    );
}
