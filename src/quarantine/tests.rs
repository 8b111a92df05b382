use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::state::MemoryState;

fn entry(id: &str, at: u64) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: UNIX_EPOCH + Duration::from_secs(at),
        sender: String::new(),
        recipients: vec!["a@example.test".into()],
        resolved: vec!["a@example.test".into()],
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["V".into()],
        message_id: String::new(),
        subject: String::new(),
        from: String::new(),
        size: 3,
        backscatter: true,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn id_table() {
    for (id, ok) in [
        ("6929A1B00001-1F2A", true),
        ("a.b-c", true),
        ("", false),
        (".hidden", false),
        ("../x", false),
        ("a/b", false),
        ("a b", false),
        (&"x".repeat(65), false),
    ] {
        assert_eq!(valid_id(id), ok, "{id:?}");
    }
    assert!(valid_id(&new_id("6929A1B00001")));
}

#[test]
fn store_keeps_exact_bytes_and_cleans_up_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(MemoryState::default());
    let q = Quarantine::new(dir.path().join("q"), state.clone());
    let bytes = b"X-Virus-Status: Clean\r\n\r\n\x00\xffbody\n\r\n.\r\n".to_vec();
    q.store(&entry("one", 1), &bytes).expect("store");
    assert_eq!(q.raw("one").expect("raw"), bytes);
    assert_eq!(files(q.dir()), ["one.eml"]);

    // The index refuses (duplicate id): the file written for it is taken back.
    state
        .quarantine_insert(&entry("two", 2))
        .expect("index only");
    assert!(matches!(
        q.store(&entry("two", 2), b"x"),
        Err(QuarantineError::Index(_))
    ));
    assert_eq!(files(q.dir()), ["one.eml"]);

    // A file where the directory should be: nothing indexed, nothing left.
    let blocked = Quarantine::new(dir.path().join("file"), state.clone());
    fs::write(dir.path().join("file"), b"in the way").expect("write");
    assert!(matches!(
        blocked.store(&entry("three", 3), b"x"),
        Err(QuarantineError::Write { .. })
    ));
    assert!(state.quarantine_get("three").expect("get").is_none());

    assert!(matches!(q.get("nope"), Err(QuarantineError::NotFound(_))));
    assert!(matches!(
        q.raw("../etc/passwd"),
        Err(QuarantineError::BadId(_))
    ));
}

#[test]
fn delete_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Quarantine::new(dir.path().to_path_buf(), Arc::new(MemoryState::default()));
    for (id, at) in [("a", 10), ("b", 20), ("c", 30)] {
        q.store(&entry(id, at), id.as_bytes()).expect("store");
    }
    q.delete("b").expect("delete");
    assert!(matches!(q.delete("b"), Err(QuarantineError::NotFound(_))));
    // A file already gone does not stop the purge.
    fs::remove_file(q.path("a")).expect("rm");
    let mut seen = Vec::new();
    let n = q
        .purge(UNIX_EPOCH + Duration::from_secs(30), |done, total| {
            seen.push((done, total))
        })
        .expect("purge");
    assert_eq!(n.removed, 1);
    assert!(n.failed.is_empty());
    assert_eq!(seen, [(1, 1)]);
    assert_eq!(files(dir.path()), ["c.eml"]);
    assert!(q.get("c").is_ok());
}

#[test]
fn purge_goes_on_past_an_entry_it_cannot_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Quarantine::new(dir.path().to_path_buf(), Arc::new(MemoryState::default()));
    for (id, at) in [("a", 10), ("b", 20), ("c", 30)] {
        q.store(&entry(id, at), id.as_bytes()).expect("store");
    }
    // b's file replaced by a non-empty directory: unlink(2) fails (EISDIR), even as root.
    fs::remove_file(q.path("b")).expect("rm");
    fs::create_dir(q.path("b")).expect("mkdir");
    fs::write(q.path("b").join("x"), b"x").expect("write");
    let purged = q
        .purge(UNIX_EPOCH + Duration::from_secs(100), |_, _| {})
        .expect("purge");
    assert_eq!(purged.removed, 2, "a and c, after b failed");
    assert_eq!(purged.failed.len(), 1);
    assert_eq!(purged.failed[0].0, "b");
    assert!(q.get("a").is_err() && q.get("c").is_err());
    assert!(q.get("b").is_ok(), "kept for the next purge");
    assert_eq!(files(dir.path()), ["b.eml"]);
}

#[test]
fn sweep_removes_old_orphans_and_fileless_entries_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Quarantine::new(dir.path().to_path_buf(), Arc::new(MemoryState::default()));
    q.store(&entry("kept", 10), b"kept").expect("store");
    q.store(&entry("fileless", 20), b"x").expect("store");
    fs::remove_file(q.path("fileless")).expect("rm");
    // Left by crashes: a file without its index entry, a temporary file; and an unrelated
    // file and an invalid name, which are not ours to remove.
    fs::write(q.path("orphan"), b"x").expect("write");
    fs::write(dir.path().join(".crashed.tmp"), b"x").expect("write");
    fs::write(dir.path().join("README"), b"x").expect("write");
    fs::write(dir.path().join("a b.eml"), b"x").expect("write");
    let real_now = std::time::SystemTime::now();
    // Within the grace period (a store may be between its file and its index entry):
    // nothing goes, except the fileless entry, whose arrival time is long past.
    let swept = q.sweep(real_now, SWEEP_GRACE).expect("sweep");
    assert_eq!(swept.orphan_files, 0);
    assert_eq!(swept.dangling_entries, 1);
    assert!(matches!(
        q.get("fileless"),
        Err(QuarantineError::NotFound(_))
    ));
    assert_eq!(
        files(dir.path()),
        [
            ".crashed.tmp",
            "README",
            "a b.eml",
            "kept.eml",
            "orphan.eml"
        ]
    );
    // Two hours later they are old enough.
    let later = real_now + Duration::from_secs(7200);
    let swept = q.sweep(later, SWEEP_GRACE).expect("sweep");
    assert_eq!(
        swept,
        Swept {
            orphan_files: 2,
            dangling_entries: 0,
            failed: 0
        }
    );
    assert_eq!(files(dir.path()), ["README", "a b.eml", "kept.eml"]);
    assert_eq!(q.raw("kept").expect("raw"), b"kept");
}

#[test]
fn store_never_replaces_the_file_of_another_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(MemoryState::default());
    let q = Quarantine::new(dir.path().to_path_buf(), state.clone());
    q.store(&entry("same", 1), b"first").expect("store");
    // The index entry is gone (e.g. deleted by hand) but the file is there: a second
    // message with the same id must not overwrite it.
    state.quarantine_delete("same").expect("delete");
    let err = q
        .store(&entry("same", 2), b"second")
        .expect_err("collision");
    assert!(
        matches!(&err, QuarantineError::Write { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
        "{err}"
    );
    assert_eq!(fs::read(q.path("same")).expect("read"), b"first");
    assert!(state.quarantine_get("same").expect("get").is_none());
    assert_eq!(files(dir.path()), ["same.eml"], "no temporary file left");
}

/// Hosts sharing a store take turns at the hourly retention pass: the first to ask takes
/// it, the others skip it until the turn ends (the claim's atomicity across hosts is
/// `state::shared_tests`'s, on every store).
#[test]
fn one_host_takes_each_hours_purge_turn() {
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Quarantine::new(dir.path().join("a"), Arc::clone(&state));
    let b = Quarantine::new(dir.path().join("b"), Arc::clone(&state));
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(a.take_purge_turn(now).expect("turn"));
    assert!(!b.take_purge_turn(now).expect("turn"));
    assert!(!a
        .take_purge_turn(now + Duration::from_secs(60))
        .expect("turn"));
    // The next hour's pass, on whichever host comes first.
    let next = now + Duration::from_secs(3600);
    assert!(b.take_purge_turn(next).expect("turn"));
    assert!(!a.take_purge_turn(next).expect("turn"));
}
