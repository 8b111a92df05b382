//! Redirects through the real binary (real clamd, a `[state] dir`) with a scripted relay:
//! a relay that refuses for good (550 5.1.1 at RCPT, 552 after DATA) gives 250 and a
//! failure keep in the user's INBOX, logged with the relay's reply and noted in the user's
//! Sieve log; a relay that hangs does not hold the reply, and the redirect stays queued.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use sievegate::state::{SqliteState, StateStore};

use super::fake_relay::{FakeRelay, Script};
use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::transaction_as;

/// How long a failure keep may take to show up (the outbox is woken at once).
const KEEP_WITHIN: Duration = Duration::from_secs(10);

fn start(relay: &FakeRelay, redirect_timeout_secs: u64) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    options.before = Some(vec![]);
    options.sieve_extra = vec![format!("redirect_timeout_secs = {redirect_timeout_secs}")];
    options.extra_sections = vec![
        "[state]\ndir = \"state\"".into(),
        format!("[notify]\nrelay = \"{}\"", relay.addr()),
    ];
    let env = Env::new(options);
    env.set_personal("alice", r#"redirect "typo@remote.test";"#);
    let server = Running::start(&env.config_path);
    (env, server)
}

const MESSAGE: &[u8] = b"From: sender@remote.example\r\nTo: alice@example.test\r\n\
Subject: hello\r\nMessage-ID: <k1@remote>\r\n\r\nHello.\r\n";

/// One LMTP transaction for alice; the reply after DATA and how long the whole
/// conversation took.
fn deliver(server: &Running) -> (String, Duration) {
    let input = transaction_as(
        "",
        "sender@remote.example",
        &["alice@example.test"],
        MESSAGE,
    );
    let started = Instant::now();
    let mut stream = tcp(server.addr);
    stream.write_all(&input).expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read");
    let took = started.elapsed();
    let out = String::from_utf8_lossy(&out).into_owned();
    // greeting, LHLO (last line), MAIL, RCPT, DATA, then the reply for alice.
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("250-")).collect();
    (lines.get(5).map_or(out.clone(), |l| l.to_string()), took)
}

fn wait_for_inbox(env: &Env, n: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let started = Instant::now();
    loop {
        let messages = env.messages("alice", "");
        if messages.len() >= n || started.elapsed() > KEEP_WITHIN {
            return messages;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn user_log(env: &Env) -> String {
    std::fs::read_to_string(env.maildir("alice").join("../.dovecot.sieve.log")).unwrap_or_default()
}

#[test]
fn a_redirect_refused_for_good_is_kept_in_inbox_not_deferred() {
    let cases = [
        (
            "550 5.1.1 <typo@remote.test>: Recipient address rejected: User unknown",
            "250 2.0.0 queued",
            "RCPT TO with 550 <typo@remote.test>: Recipient address rejected",
        ),
        (
            "250 2.1.5 ok",
            "552 5.3.4 Message size exceeds fixed limit",
            "DATA with 552 Message size exceeds fixed limit",
        ),
    ];
    // The relay client logs the reply's code and text (mail-send parses the enhanced
    // status code apart).
    for (rcpt, data_end, reply) in cases {
        let relay = FakeRelay::start(vec![Script::Answer { rcpt, data_end }]);
        let (env, server) = start(&relay, 30);
        let started = Instant::now();
        let (answer, _) = deliver(&server);
        assert!(answer.starts_with("250 "), "{answer}\n{}", server.logs());
        let kept = wait_for_inbox(&env, 1);
        let kept_after = started.elapsed();
        assert_eq!(kept.len(), 1, "{reply}: failure keep\n{}", server.logs());
        let stored = String::from_utf8_lossy(&kept[0].1).into_owned();
        assert!(
            stored.starts_with("Return-Path: <sender@remote.example>\r\n"),
            "{stored}"
        );
        assert!(
            stored.contains("Delivered-To: alice@example.test\r\n"),
            "{stored}"
        );
        assert!(
            stored.ends_with("Message-ID: <k1@remote>\r\n\r\nHello.\r\n"),
            "{stored}"
        );
        assert!(!stored.contains("X-Sievegate-Redirected-By"), "{stored}");
        let logs = server.wait_for_log("failure keep into the user's INBOX");
        let line = logs
            .lines()
            .find(|l| l.contains("failure keep into the user's INBOX"))
            .unwrap_or_else(|| panic!("no warn line\n{logs}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains(reply), "the relay's reply in: {line}");
        let note = user_log(&env);
        assert!(
            note.contains("redirect to <typo@remote.test> failed") && note.contains(reply),
            "user log: {note:?}"
        );
        assert_eq!(relay.connections(), 1, "one attempt, no retry loop");
        eprintln!("{reply}: 250, kept in INBOX after {kept_after:?}");
    }
}

#[test]
fn a_hanging_relay_does_not_hold_the_reply_and_the_redirect_stays_queued() {
    let relay = FakeRelay::start(vec![Script::Hang]);
    let (env, server) = start(&relay, 2);
    let (answer, took) = deliver(&server);
    assert!(answer.starts_with("250 "), "{answer}\n{}", server.logs());
    assert!(
        took < Duration::from_secs(1),
        "the reply took {took:?} with a hanging relay"
    );
    eprintln!("LMTP conversation with a hanging relay: {took:?}");
    relay.wait_connections(1, Duration::from_secs(10));
    // The attempt ends at redirect_timeout_secs (2 s); the row is scheduled again.
    let logs = server.wait_for_log("will retry");
    assert!(logs.contains("will retry"), "{logs}");
    let state = SqliteState::open(&env.dir.path().join("state")).expect("state");
    let queued = state
        .queue_due(SystemTime::now() + Duration::from_secs(86_400), 10)
        .expect("queue");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].kind, "redirect");
    assert_eq!(queued[0].attempts, 1);
    assert!(queued[0].next_attempt > SystemTime::now());
    assert_eq!(
        queued[0].redirect.as_ref().map(|o| o.rcpt.as_str()),
        Some("alice@example.test")
    );
    assert!(queued[0].last_error.is_some());
    assert!(
        env.messages("alice", "").is_empty(),
        "a hang is not a refusal: no failure keep"
    );
}
