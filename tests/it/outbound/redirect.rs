//! Queued Sieve redirects in the outbox against a scripted relay: a temporary refusal is
//! retried and sent once; a permanent refusal (RCPT or DATA), or the end of the retry
//! period, is kept in the redirecting user's INBOX; a keep that cannot be stored leaves the
//! row queued; and after a reload the outbox stores with the new `[mailbox]` settings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::outbound::{Outbox, Pass, Redirect};
use sievegate::reload::{self, Current};

use super::fake_relay::{FakeRelay, Script};
use super::{fast, pass_until, setup};

const HEADER: &[u8] =
    b"Return-Path: <sender@remote.example>\r\nDelivered-To: alice@example.test\r\n";
const CONTENT: &[u8] = b"From: sender@remote.example\r\nSubject: hi\r\n\r\nHello.\r\n";
const MARK: &str = "X-Sievegate-Redirected-By: alice@example.test";

fn redirect(inbox_copy: bool) -> Redirect<'static> {
    Redirect {
        from: "sender@remote.example",
        to: "typo@remote.test",
        owner: "alice@example.test",
        inbox_copy,
        mark: MARK,
        header: HEADER,
        content: CONTENT,
    }
}

/// The message files in `maildir`'s INBOX.
fn inbox(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
        .flatten()
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// What a failure keep must store: the recipient's trace fields and the content, exactly
/// what a keep would have stored (no loop mark).
fn kept_bytes() -> Vec<u8> {
    [HEADER, CONTENT].concat()
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_and_redirected_once() {
    let relay = FakeRelay::start(vec![
        Script::Answer {
            rcpt: "451 4.3.0 try again later",
            data_end: "250 ok",
        },
        Script::OK,
    ]);
    let s = setup(relay.addr().port(), "postmaster@example.net", "", fast());
    s.outbox.enqueue_redirect(&redirect(false)).expect("queued");
    let first = s.outbox.send_due().await;
    assert_eq!((first.retried, first.sent, first.kept), (1, 0, 0));
    assert!(s.queued()[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("451")));
    let pass = pass_until(&s.outbox, |p| p.sent > 0).await;
    assert_eq!(pass.kept, 0);
    assert!(s.queued().is_empty());
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), 1, "redirected once");
    assert_eq!(accepted[0].mail_from, "<sender@remote.example>");
    assert_eq!(accepted[0].rcpt_to, ["<typo@remote.test>"]);
    let mut want = format!("{MARK}\r\n").into_bytes();
    want.extend_from_slice(HEADER);
    want.extend_from_slice(CONTENT);
    assert_eq!(accepted[0].message, want);
    assert!(inbox(&s.maildir("alice")).is_empty(), "no INBOX copy");
}

#[tokio::test]
async fn a_permanent_refusal_is_kept_in_the_owners_inbox() {
    let cases = [
        (
            "550 5.1.1 <typo@remote.test>: Recipient address rejected",
            "250 ok",
        ),
        ("250 ok", "552 5.3.4 Message size exceeds fixed limit"),
    ];
    for (rcpt, data_end) in cases {
        let relay = FakeRelay::start(vec![Script::Answer { rcpt, data_end }]);
        let s = setup(relay.addr().port(), "postmaster@example.net", "", fast());
        s.outbox.enqueue_redirect(&redirect(false)).expect("queued");
        let pass = s.outbox.send_due().await;
        assert_eq!(
            pass,
            Pass {
                taken: 1,
                sent: 0,
                retried: 0,
                dropped: 0,
                kept: 1
            },
            "{rcpt} / {data_end}"
        );
        assert!(
            s.queued().is_empty(),
            "the row goes once the keep is stored"
        );
        let files = inbox(&s.maildir("alice"));
        assert_eq!(files.len(), 1, "{rcpt} / {data_end}");
        assert_eq!(std::fs::read(&files[0]).expect("read"), kept_bytes());
        assert_eq!(relay.connections(), 1, "asked once, not again");
    }
}

#[tokio::test]
async fn a_copy_already_in_inbox_is_not_stored_twice() {
    let relay = FakeRelay::start(vec![Script::Answer {
        rcpt: "550 5.1.1 no such user",
        data_end: "250 ok",
    }]);
    let s = setup(relay.addr().port(), "postmaster@example.net", "", fast());
    s.outbox.enqueue_redirect(&redirect(true)).expect("queued");
    assert_eq!(s.outbox.send_due().await.kept, 1);
    assert!(s.queued().is_empty());
    assert!(inbox(&s.maildir("alice")).is_empty());
}

#[tokio::test]
async fn a_redirect_failing_past_the_retry_period_is_kept_not_dropped() {
    let relay = FakeRelay::start(vec![Script::Answer {
        rcpt: "451 4.3.0 try again later",
        data_end: "250 ok",
    }]);
    let mut options = fast();
    options.retry.give_up_after = Duration::from_millis(300);
    let s = setup(relay.addr().port(), "postmaster@example.net", "", options);
    s.outbox.enqueue_redirect(&redirect(false)).expect("queued");
    let pass = pass_until(&s.outbox, |p| p.kept > 0 || p.dropped > 0).await;
    assert_eq!((pass.kept, pass.dropped), (1, 0));
    assert!(s.queued().is_empty());
    let files = inbox(&s.maildir("alice"));
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).expect("read"), kept_bytes());
    assert!(relay.connections() >= 2, "retried before giving up");
}

#[tokio::test]
async fn a_failure_keep_that_cannot_store_leaves_the_row_queued() {
    let relay = FakeRelay::start(vec![Script::Answer {
        rcpt: "550 5.1.1 no such user",
        data_end: "250 ok",
    }]);
    let s = setup(relay.addr().port(), "postmaster@example.net", "", fast());
    // A file where alice's Maildir directory must go: the store fails.
    let blocked = s.maildir("alice");
    std::fs::create_dir_all(blocked.parent().expect("parent")).expect("mkdir");
    std::fs::write(&blocked, b"not a directory").expect("block");
    s.outbox.enqueue_redirect(&redirect(false)).expect("queued");
    let pass = s.outbox.send_due().await;
    assert_eq!((pass.retried, pass.kept, pass.dropped), (1, 0, 0));
    let queued = s.queued();
    assert_eq!(queued.len(), 1, "kept in the queue");
    let error = queued[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("550 no such user") || error.contains("550"),
        "{error}"
    );
    assert!(error.contains("failure keep failed"), "{error}");
    // Once the store works again, the next try keeps it.
    std::fs::remove_file(&blocked).expect("unblock");
    let pass = pass_until(&s.outbox, |p| p.kept > 0).await;
    assert_eq!(pass.dropped, 0);
    assert!(s.queued().is_empty());
    assert_eq!(inbox(&s.maildir("alice")).len(), 1);
}

fn reload_config(dir: &Path, relay: u16, maildir: &str, file_mode: &str) -> PathBuf {
    let path = dir.join("sievegate.toml");
    let toml = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:clamd.ctl"
[mailbox]
domains = ["example.test"]
maildir = "{maildir}"
file_mode = "{file_mode}"
[notify]
relay = "127.0.0.1:{relay}"
"#
    );
    std::fs::write(&path, toml).expect("write config");
    path
}

#[tokio::test]
async fn after_a_reload_the_outbox_stores_with_the_new_mailbox_settings() {
    let relay = FakeRelay::start(vec![Script::Answer {
        rcpt: "550 5.1.1 no such user",
        data_end: "250 ok",
    }]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = relay.addr().port();
    let path = reload_config(dir.path(), port, "old/%n", "0600");
    let services = Services::new(Config::load(&path).expect("config"));
    let current = Current::new(Arc::new(services));
    let outbox: Outbox = current.get().outbox.clone();

    reload_config(dir.path(), port, "new/%n", "0640");
    reload::apply(&path, &current)
        .await
        .expect("the reload is applied");
    // The outbox that runs is still the one from startup, with the new settings.
    outbox
        .enqueue(
            "postmaster-notice",
            "",
            &["postmaster@example.test".to_string()],
            b"Subject: notice\r\n\r\nbody\r\n".to_vec(),
        )
        .expect("queued");
    outbox
        .enqueue_redirect(&redirect(false))
        .expect("queued redirect");
    let pass = outbox.send_due().await;
    assert_eq!((pass.sent, pass.kept), (1, 1), "{pass:?}");
    for user in ["postmaster", "alice"] {
        let files = inbox(&dir.path().join("new").join(user));
        assert_eq!(files.len(), 1, "{user}");
        let mode = std::fs::metadata(&files[0])
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "{user}: the new file_mode");
    }
    assert!(
        !dir.path().join("old").exists(),
        "nothing stored with the startup settings"
    );
}
