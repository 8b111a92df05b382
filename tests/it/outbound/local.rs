//! A postmaster in one of our own domains: the notice goes straight into their Maildir
//! without a relay, and an unknown local user is dropped, not retried.

use std::path::PathBuf;

use sievegate::config::Config;
use sievegate::outbound::{Outbox, Pass};

use super::{fast, infected, pass_until, setup};
use crate::support::smtp_sink::free_port;

#[tokio::test]
async fn local_postmaster_gets_it_in_their_inbox_without_a_relay() {
    // The relay port refuses: a local postmaster must not need it.
    let s = setup(free_port(), "postmaster@example.test", "", fast());
    let (m, _) = infected("eicar-qp.eml", Some("Q-7"));
    s.notifier().infected(&m);
    let built = s.queued()[0].message.clone();

    let pass = pass_until(&s.outbox, |p| p.taken > 0).await;
    assert_eq!(
        pass,
        Pass {
            taken: 1,
            sent: 1,
            retried: 0,
            dropped: 0,
            kept: 0
        }
    );
    assert!(s.queued().is_empty());

    let new = s.maildir("postmaster").join("new");
    let files: Vec<PathBuf> = std::fs::read_dir(&new)
        .expect("INBOX new/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = std::fs::read(&files[0]).expect("read");
    let mut want = b"Return-Path: <>\r\nDelivered-To: postmaster@example.test\r\n".to_vec();
    want.extend_from_slice(&built);
    assert_eq!(
        stored, want,
        "the notice as built, behind our two trace fields"
    );
    for sub in ["cur", "tmp"] {
        let dir = s.maildir("postmaster").join(sub);
        assert_eq!(std::fs::read_dir(&dir).expect(sub).count(), 0, "{sub}");
    }
}

#[tokio::test]
async fn unknown_local_user_is_dropped_not_retried() {
    let port = free_port();
    let s = setup(port, "postmaster@example.net", "", fast());
    // A users file that lists only alice: mail for nobody@example.test can never arrive.
    let users = s.dir.path().join("users");
    std::fs::write(&users, "alice@example.test::::::\n").expect("users");
    let toml = std::fs::read_to_string(s.dir.path().join("sievegate.toml")).expect("config");
    let toml = toml.replace(
        "maildir = \"mail/%d/%n/Maildir\"",
        "maildir = \"mail/%d/%n/Maildir\"\nusers_file = \"users\"",
    );
    let path = s.dir.path().join("with-users.toml");
    std::fs::write(&path, toml).expect("write");
    let config = Config::load(&path).expect("config");
    let outbox = Outbox::with_options(&config, s.state.clone(), fast());
    outbox
        .enqueue(
            "test",
            "",
            &["nobody@example.test".into(), "alice@example.test".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let pass = outbox.send_due().await;
    assert_eq!(
        pass,
        Pass {
            taken: 2,
            sent: 1,
            retried: 0,
            dropped: 1,
            kept: 0
        }
    );
    assert!(s.queued().is_empty());
    assert_eq!(
        std::fs::read_dir(s.maildir("alice").join("new"))
            .expect("alice")
            .count(),
        1
    );
    assert!(!s.maildir("nobody").exists());
}
