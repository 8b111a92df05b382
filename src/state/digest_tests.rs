//! The digest bookkeeping ([`StateStore::digest_listed`], [`StateStore::digest_mark_listed`])
//! on every store: per recipient, case-insensitive, idempotent, gone with its entry.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn entry(id: &str, rcpts: &[&str]) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        sender: "mallory@forged.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        resolved: rcpts.iter().map(|r| r.to_lowercase()).collect(),
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["Eicar".into()],
        message_id: String::new(),
        subject: "invoice".into(),
        from: String::new(),
        size: 10,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn listed(store: &dyn StateStore) {
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_100);
    for (id, rcpts) in [
        ("a", &["alice@example.test", "bob@example.test"][..]),
        ("b", &["alice@example.test"][..]),
        ("c", &["bob@example.test"][..]),
    ] {
        store.quarantine_insert(&entry(id, rcpts)).expect("insert");
    }
    assert!(store
        .digest_listed("alice@example.test")
        .expect("listed")
        .is_empty());
    let ab = ["b".to_string(), "a".to_string(), "gone".to_string()];
    store
        .digest_mark_listed("Alice@Example.test", &ab, at)
        .expect("mark");
    // Sorted, lowercased key, unknown ids skipped; marking again changes nothing.
    assert_eq!(
        store.digest_listed("alice@example.test").expect("listed"),
        ["a", "b"]
    );
    store
        .digest_mark_listed("alice@example.test", &ab[..1], at)
        .expect("mark again");
    assert_eq!(
        store.digest_listed("ALICE@example.test").expect("listed"),
        ["a", "b"]
    );
    // Per recipient.
    assert!(store
        .digest_listed("bob@example.test")
        .expect("listed")
        .is_empty());
    store
        .digest_mark_listed("bob@example.test", &["c".to_string()], at)
        .expect("mark bob");
    assert_eq!(
        store.digest_listed("bob@example.test").expect("listed"),
        ["c"]
    );
    // Deleting an entry forgets its rows (no growth past the quarantine's retention).
    assert!(store.quarantine_delete("a").expect("delete"));
    assert_eq!(
        store.digest_listed("alice@example.test").expect("listed"),
        ["b"]
    );
    assert!(store.quarantine_delete("c").expect("delete"));
    assert!(store
        .digest_listed("bob@example.test")
        .expect("listed")
        .is_empty());
}

super::on_every_store! {
    digest_listed_on => |store: Arc<dyn StateStore>| listed(&*store);
}
