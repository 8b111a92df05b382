//! The quarantine's and the state store's lifetime through the real binary: fields printed
//! escaped, periodic expiry with its gauges, a purge that goes on past a bad entry and
//! sweeps what a crash left (issue 14, item 7 and section 9).

use serde_json::Value;

use crate::quarantine::{cli, failed, list, ok, quarantine_options, send};
use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::Env;
use crate::support::messages::infected_message;

#[test]
fn list_and_show_print_hostile_fields_escaped() {
    use sievegate::state::{QuarantineEntry, SqliteState, StateStore};
    let clamd = Clamd::shared();
    let env = Env::new(quarantine_options(clamd));
    // Through the wire: ESC (a colour/title sequence) inside the quoted local part.
    let server = Running::start(&env.config_path);
    let sender = "\"x\x1b]0;owned\x07\x1b[31my\"@evil.example";
    let out = send(
        &server,
        sender,
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    drop(server);
    // And an entry holding CR, LF, NUL, DEL and C1 in every text field, as a hostile or
    // damaged index could (the wire's line reader may not pass CR or NUL).
    let hostile = "\"a\x1b[2J\rb\nc\0d\x7f\u{9b}e\"@evil.example";
    {
        let state = SqliteState::open(&env.dir.path().join("state")).expect("open state");
        let entry = QuarantineEntry {
            id: "hostile".into(),
            received_at: std::time::SystemTime::now(),
            sender: hostile.into(),
            recipients: vec![hostile.into()],
            resolved: vec![hostile.into()],
            client_ip: Some(hostile.into()),
            client_helo: Some(hostile.into()),
            queue_id: Some(hostile.into()),
            verdict: hostile.into(),
            virustest: 5,
            viruses: vec![hostile.into()],
            message_id: hostile.into(),
            subject: hostile.into(),
            from: hostile.into(),
            size: 1,
            backscatter: false,
            released_at: None,
            released_by: None,
            releases: Vec::new(),
        };
        state.quarantine_insert(&entry).expect("insert");
        std::fs::write(
            env.dir.path().join("quarantine").join("hostile.eml"),
            b"Subject: x\r\n\r\nbody\r\n",
        )
        .expect("write");
    }
    let no_controls = |out: &[u8], what: &str| {
        let bad: Vec<u8> = out
            .iter()
            .copied()
            .filter(|&b| (b < 0x20 && b != b'\n' && b != b'\r') || b == 0x7f)
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: control bytes {bad:?} in {}",
            String::from_utf8_lossy(out)
        );
        assert!(
            !String::from_utf8_lossy(out).contains('\u{9b}'),
            "{what}: a C1 control"
        );
    };
    let table = cli(&env.config_path, &["list"]);
    let text = ok(&table);
    no_controls(&table.stdout, "list");
    // (the LMTP parser drops the quotes of the first sender; the columns are clipped)
    assert!(text.contains("x\\x1b]0;owned\\x07\\x1b[31my@"), "{text}");
    assert!(
        text.contains("\"a\\x1b[2J\\rb\\nc\\0d\\x7f\\x9be"),
        "{text}"
    );
    // Every row is one line: a CR or LF in a field cannot start another.
    assert_eq!(
        text.lines().count(),
        4,
        "header, two entries, total: {text}"
    );
    let json = cli(&env.config_path, &["list", "--json"]);
    no_controls(&json.stdout, "list --json");
    let entries = list(&env.config_path, &[]);
    let entry = entries
        .iter()
        .find(|e| e["id"] == "hostile")
        .expect("hostile");
    assert_eq!(entry["sender"], hostile, "JSON still holds the exact value");
    let shown = cli(&env.config_path, &["show", "hostile"]);
    let text = ok(&shown);
    // The metadata part (before the header section) holds no control byte but line ends.
    let meta = text.split("\n\n").next().expect("metadata");
    no_controls(meta.as_bytes(), "show");
    assert!(
        meta.contains("sender:       \"a\\x1b[2J\\rb\\nc\\0d"),
        "{meta}"
    );
    assert!(!meta.contains('\r'), "{meta}");
}

#[test]
fn the_server_expires_state_and_reports_its_sizes() {
    let clamd = Clamd::shared();
    let mut options = quarantine_options(clamd);
    options.extra_sections[1] = "[state]\ndir = \"state\"\nexpire_interval_secs = 1\n".into();
    options
        .server_extra
        .push("metrics_listen = \"127.0.0.1:0\"".into());
    let env = Env::new(options);
    {
        use sievegate::state::{SqliteState, StateStore};
        use std::time::{Duration, SystemTime};
        let state = SqliteState::open(&env.dir.path().join("state")).expect("open state");
        let now = SystemTime::now();
        state
            .cache_put("dup:old", "1", now - Duration::from_secs(60))
            .expect("put");
        state
            .cache_put("dup:live", "1", now + Duration::from_secs(3600))
            .expect("put");
    }
    let server = Running::start(&env.config_path);
    let metrics = crate::metrics::metrics_addr(&server);
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0"), "{out}");
    // The expiry pass runs every second: the expired row goes, the gauges follow.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = crate::metrics::scrape(metrics);
        let rows = |table: &str| {
            m.get(&format!("sievegate_state_rows{{table=\"{table}\"}}"))
                .copied()
        };
        // Left in the cache: dup:live, and this hour's quarantine purge turn.
        if rows("quarantine") == Some(1.0) && rows("cache") == Some(2.0) {
            assert_eq!(
                m.get("sievegate_state_expired_rows_total{table=\"cache\"}")
                    .copied(),
                Some(1.0),
                "{m:#?}"
            );
            assert_eq!(rows("outbox"), Some(0.0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gauges never settled: {m:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn purge_goes_on_past_an_entry_it_cannot_remove_and_sweeps_orphans() {
    use sievegate::state::{SqliteState, StateStore};
    use std::time::{Duration, SystemTime};
    let clamd = Clamd::shared();
    let env = Env::new(quarantine_options(clamd));
    let qdir = env.dir.path().join("quarantine");
    std::fs::create_dir_all(&qdir).expect("mkdir");
    let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
    {
        let state = SqliteState::open(&env.dir.path().join("state")).expect("open state");
        for id in ["a", "b", "c"] {
            let entry = crate::quarantine::index_entry(id, old);
            state.quarantine_insert(&entry).expect("insert");
        }
    }
    std::fs::write(qdir.join("a.eml"), b"x").expect("write");
    // b's "file" is a non-empty directory: unlink(2) fails, even for root.
    std::fs::create_dir_all(qdir.join("b.eml").join("in")).expect("mkdir");
    std::fs::write(qdir.join("c.eml"), b"x").expect("write");
    // Crash leftovers, two hours old: an unindexed message and a temporary file.
    for name in ["orphan.eml", ".crashed.tmp"] {
        let path = qdir.join(name);
        std::fs::write(&path, b"x").expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .expect("mtime");
    }
    let output = cli(&env.config_path, &["purge", "--older-than", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = failed(&output);
    assert!(stdout.contains("2 entries purged"), "{stdout}");
    assert!(
        stdout.contains("2 orphaned files and 0 index entries without a file removed"),
        "{stdout}"
    );
    assert!(stderr.contains("cannot purge b: "), "{stderr}");
    assert!(
        stderr.contains("1 entries or files could not be removed"),
        "{stderr}"
    );
    let ids: Vec<Value> = list(&env.config_path, &[])
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["b"]);
    let mut left: Vec<String> = std::fs::read_dir(&qdir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["b.eml"]);
}
