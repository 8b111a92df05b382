//! Scanner failures, a full disk and limits: 451 when clamd fails (or delivery unscanned
//! when configured), 452 on a full store, and the recipient and size limits.

use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::messages::{clean_message, transaction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_recipients_and_oversized_message() {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_recipients = 2;
    options.max_message_size = 2048;
    let env = Env::new(options);
    let mut input = b"LHLO x\r\nMAIL FROM:<>\r\n".to_vec();
    for r in ["a", "b", "c"] {
        input.extend_from_slice(format!("RCPT TO:<{r}@example.test>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\n");
    input.extend_from_slice(&clean_message(&"big ".repeat(1000)));
    input.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\n");
    let got = env.transcript(&[&input]).await;
    assert!(got.contains("452 4.5.3 Too many recipients\r\n"), "{got}");
    assert!(
        got.contains("552 5.3.4 <a@example.test> Message size exceeds fixed maximum message size\r\n552 5.3.4 <b@example.test> Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"),
        "one 552 per accepted recipient, then the session goes on: {got}"
    );
    assert_eq!(env.total_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_failures_give_451_for_every_recipient() {
    for mode in [Mode::Hang, Mode::Garbage, Mode::Close, Mode::Error] {
        let fake = FakeClamd::start(mode);
        let mut options = Options::new(fake.addr());
        options.scan_timeout_secs = 1;
        let env = Env::new(options);
        let input = transaction(
            &["alice@example.test", "bob@example.test"],
            &clean_message("x"),
        );
        let got = env.transcript(&[&input]).await;
        assert!(
            got.contains("451 4.7.0 <alice@example.test> Virus scan unavailable, try again later\r\n451 4.7.0 <bob@example.test> Virus scan unavailable, try again later\r\n221"),
            "{mode:?}: {got}"
        );
        assert_eq!(env.total_messages(), 0, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_unscanned_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = Options::new(sievegate::scan::ClamdAddr::Unix(
        dir.path().join("missing.sock"),
    ));
    options.on_failure = "deliver-unscanned";
    let env = Env::new(options);
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], &clean_message("x"))])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
    let stored = env.messages("alice", "");
    assert!(String::from_utf8_lossy(&stored[0].1).contains("X-Virus-Status: Not scanned\r\n"));
}

/// A 1 MiB tmpfs as the mail store: a message that does not fit gets 452 4.2.2 for that
/// recipient, nothing is left behind, and the next small message still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_gives_452_and_leaves_no_file() {
    let mnt = tempfile::tempdir().expect("tempdir");
    // Tests never skip: without root (or with mount refused) this fails, it does not pass.
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.path())
        .output();
    match &mount {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "disk_full_gives_452_and_leaves_no_file needs root to mount a 1 MiB tmpfs: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("disk_full_gives_452_and_leaves_no_file: cannot run mount: {e}"),
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Umount(mnt.path().to_path_buf());
    let mut options = Options::new(Clamd::shared().addr());
    options.maildir = Some(format!("{}/%d/%n/Maildir", mnt.path().display()));
    let env = Env::new(options);
    let mut big = clean_message("big");
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".as_slice(),
            32 * 1024,
        )
        .flatten(),
    );
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], &big)])
        .await;
    assert!(
        got.contains(
            "452 4.2.2 <alice@example.test> Mailbox full or disk full, try again later\r\n"
        ),
        "{got}"
    );
    let leftovers: Vec<_> = ["tmp", "new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(mnt.path().join("example.test/alice/Maildir").join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    assert!(leftovers.is_empty(), "no file left behind: {leftovers:?}");
    let got = env
        .transcript(&[&transaction(
            &["alice@example.test"],
            &clean_message("small"),
        )])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
}

/// A state store that panics in one method and passes every other call to an in-memory
/// store: the trait seam through which a test injects a bug into one per-message step
/// (the quarantine entry writes its index row; the postmaster notice queues a mail).
struct PanicIn {
    method: &'static str,
    inner: sievegate::state::MemoryState,
}

impl PanicIn {
    fn check(&self, method: &str) {
        if self.method == method {
            panic!("injected panic in StateStore::{method}");
        }
    }
}

mod panic_in {
    use std::time::{Duration, SystemTime};

    use sievegate::state::{
        Expired, QuarantineEntry, QuarantineFilter, QueuedMail, RateDecision, StateError,
        StateSizes, StateStore,
    };

    impl StateStore for super::PanicIn {
        fn quarantine_insert(&self, entry: &QuarantineEntry) -> Result<(), StateError> {
            self.check("quarantine_insert");
            self.inner.quarantine_insert(entry)
        }
        fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
            self.inner.quarantine_get(id)
        }
        fn quarantine_list(
            &self,
            filter: &QuarantineFilter,
        ) -> Result<Vec<QuarantineEntry>, StateError> {
            self.inner.quarantine_list(filter)
        }
        fn quarantine_mark_released(
            &self,
            id: &str,
            at: SystemTime,
            by: &str,
        ) -> Result<bool, StateError> {
            self.inner.quarantine_mark_released(id, at, by)
        }
        fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
            self.inner.quarantine_delete(id)
        }
        fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
            self.inner.quarantine_older_than(before)
        }
        fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
            self.inner.cache_get(key, now)
        }
        fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
            self.inner.cache_put(key, value, expires)
        }
        fn remember_once(
            &self,
            key: &str,
            expires: SystemTime,
            now: SystemTime,
        ) -> Result<bool, StateError> {
            self.inner.remember_once(key, expires, now)
        }
        fn rate_check(
            &self,
            key: &str,
            min_interval: Duration,
            now: SystemTime,
        ) -> Result<RateDecision, StateError> {
            self.inner.rate_check(key, min_interval, now)
        }
        fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
            self.check("queue_push");
            self.inner.queue_push(mail)
        }
        fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
            self.inner.queue_due(now, limit)
        }
        fn queue_claim(
            &self,
            now: SystemTime,
            limit: usize,
            lease: Duration,
        ) -> Result<Vec<QueuedMail>, StateError> {
            self.inner.queue_claim(now, limit, lease)
        }
        fn queue_done(&self, id: i64) -> Result<(), StateError> {
            self.inner.queue_done(id)
        }
        fn queue_retry(
            &self,
            id: i64,
            next_attempt: SystemTime,
            error: &str,
        ) -> Result<(), StateError> {
            self.inner.queue_retry(id, next_attempt, error)
        }
        fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError> {
            self.inner.expire(now, rate_keep)
        }
        fn sizes(&self) -> Result<StateSizes, StateError> {
            self.inner.sizes()
        }
        fn quarantine_add_recipient(
            &self,
            id: &str,
            given: &str,
            resolved: &str,
        ) -> Result<bool, StateError> {
            self.inner.quarantine_add_recipient(id, given, resolved)
        }
        fn quarantine_release_rcpts(
            &self,
            id: &str,
            rcpts: &[String],
            at: SystemTime,
            by: &str,
        ) -> Result<bool, StateError> {
            self.inner.quarantine_release_rcpts(id, rcpts, at, by)
        }
        fn digest_listed(&self, rcpt: &str) -> Result<Vec<String>, StateError> {
            self.inner.digest_listed(rcpt)
        }
        fn digest_mark_listed(
            &self,
            rcpt: &str,
            entries: &[String],
            at: SystemTime,
        ) -> Result<(), StateError> {
            self.inner.digest_mark_listed(rcpt, entries, at)
        }
        fn is_durable(&self) -> bool {
            self.inner.is_durable()
        }
    }
}

/// An env whose state store panics in `method`, with a postmaster and the quarantine on.
fn env_panicking_in(method: &'static str) -> Env {
    let mut options = Options::new(Clamd::shared().addr());
    options.extra_sections = vec![
        "[notify]\npostmaster = \"postmaster@example.test\"\nrelay = \"127.0.0.1:9\"".into(),
        "[state]\ndir = \"state\"".into(),
        "[quarantine]\nenabled = true\ndir = \"quarantine\"".into(),
    ];
    let mut env = Env::new(options);
    let config = sievegate::config::Config::load(&env.config_path).expect("config");
    let state = std::sync::Arc::new(PanicIn {
        method,
        inner: sievegate::state::MemoryState::default(),
    });
    env.services = std::sync::Arc::new(sievegate::delivery::Services::with_state(config, state));
    env
}

/// A panic while the postmaster notice is queued (after every recipient has its outcome)
/// loses that notice only: infected mail still gets 250 for every recipient (never 451
/// for all, which would end in a bounce), and clean mail is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_reporting_does_not_touch_the_replies() {
    let env = env_panicking_in("queue_push");
    let input = crate::support::messages::transaction_as(
        "",
        "mallory@forged.example",
        &["alice@example.test", "bob@example.test"],
        &crate::support::messages::infected_message(),
    );
    let got = env.transcript_every_split(&input).await;
    assert!(
        got.contains(
            "250 2.0.0 <alice@example.test> ID Ok\r\n250 2.0.0 <bob@example.test> ID Ok\r\n"
        ),
        "{got}"
    );
    assert!(
        !got.contains("451"),
        "no deferral for a reporting bug: {got}"
    );
    assert_eq!(env.total_messages(), 0, "infected mail is never stored");
}

/// A panic while the quarantine entry is written counts as a failed quarantine write (the
/// documented rule): every recipient is deferred, nothing is stored, the MTA retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_quarantine_entry_is_a_failed_write() {
    let env = env_panicking_in("quarantine_insert");
    let input = crate::support::messages::transaction_as(
        "",
        "mallory@forged.example",
        &["alice@example.test", "bob@example.test"],
        &crate::support::messages::infected_message(),
    );
    let got = env.transcript(&[&input]).await;
    assert!(
        got.contains("451 4.3.0 <alice@example.test>")
            && got.contains("451 4.3.0 <bob@example.test>"),
        "{got}"
    );
    assert_eq!(env.total_messages(), 0);
    // Clean mail is not quarantined, so the same bug does not touch it.
    let got = env
        .transcript(&[&transaction(
            &["alice@example.test"],
            &clean_message("fine"),
        )])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
}
