//! Redirects without a durable state store (no `[state] dir`), through the real binary: a
//! queued row would not survive a restart, so the redirect is sent now, by the pipeline's
//! async stage after the stores (never from the blocking stage), before the reply: 250
//! once the relay took it; a refusal for good (550) is kept in INBOX (250); a relay that
//! cannot be reached gives 451 when no copy was stored, 250 when one was.

use std::io::{Read, Write};

use super::fake_relay::{FakeRelay, Script};
use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::transaction_as;
use crate::support::smtp_sink::free_port;

fn start(relay: &str) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    options.before = Some(vec![]);
    options.sieve_extra = vec!["redirect_timeout_secs = 5".into()];
    options.extra_sections = vec![format!("[notify]\nrelay = \"{relay}\"")];
    let env = Env::new(options);
    env.set_personal("alice", r#"redirect "carol@remote.test";"#);
    env.set_personal(
        "bob",
        r#"require "copy"; redirect :copy "dave@remote.test";"#,
    );
    let server = Running::start(&env.config_path);
    (env, server)
}

const MESSAGE: &[u8] = b"From: sender@remote.example\r\nTo: alice@example.test\r\n\
Subject: hello\r\nMessage-ID: <now1@remote>\r\n\r\nHello.\r\n";

/// One transaction for alice and bob; their replies after DATA.
fn deliver(server: &Running) -> Vec<String> {
    let input = transaction_as(
        "",
        "sender@remote.example",
        &["alice@example.test", "bob@example.test"],
        MESSAGE,
    );
    let mut stream = tcp(server.addr);
    stream.write_all(&input).expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read");
    let out = String::from_utf8_lossy(&out).into_owned();
    // greeting, LHLO (last line), MAIL, RCPT x2, DATA, then the replies.
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("250-")).collect();
    lines
        .iter()
        .skip(6)
        .take(2)
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn without_a_state_dir_a_redirect_is_sent_before_the_reply() {
    let relay = FakeRelay::start(vec![Script::OK, Script::OK]);
    let (env, server) = start(&relay.addr().to_string());
    let replies = deliver(&server);
    assert!(
        replies.iter().all(|r| r.starts_with("250 ")),
        "{replies:?}\n{}",
        server.logs()
    );
    // Sent, not queued: the relay has both before the replies were written.
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), 2, "{}", server.logs());
    let logs = server.wait_for_log("redirected to <dave@remote.test>");
    assert!(logs.contains("redirected to <carol@remote.test>"), "{logs}");
    assert!(!logs.contains("redirect queued"), "{logs}");
    assert!(env.messages("alice", "").is_empty());
    assert_eq!(env.messages("bob", "").len(), 1);
}

#[test]
fn without_a_state_dir_a_refusal_for_good_is_kept_in_inbox() {
    let refuse = Script::Answer {
        rcpt: "550 5.1.1 no such user",
        data_end: "250 ok",
    };
    let relay = FakeRelay::start(vec![refuse.clone(), refuse]);
    let (env, server) = start(&relay.addr().to_string());
    let replies = deliver(&server);
    assert!(
        replies.iter().all(|r| r.starts_with("250 ")),
        "{replies:?}\n{}",
        server.logs()
    );
    // alice's failure keep, at once; bob's copy stays the only one.
    assert_eq!(env.messages("alice", "").len(), 1, "{}", server.logs());
    assert_eq!(env.messages("bob", "").len(), 1, "{}", server.logs());
    let logs = server.wait_for_log("kept in INBOX");
    assert!(logs.contains("the copy in INBOX stays"), "{logs}");
}

#[test]
fn without_a_state_dir_an_unreachable_relay_defers_only_the_recipient_without_a_copy() {
    let (env, server) = start(&format!("127.0.0.1:{}", free_port()));
    let replies = deliver(&server);
    assert_eq!(replies.len(), 2, "{}", server.logs());
    assert!(replies[0].starts_with("451 "), "alice: {replies:?}");
    assert!(replies[1].starts_with("250 "), "bob: {replies:?}");
    assert!(env.messages("alice", "").is_empty());
    assert_eq!(env.messages("bob", "").len(), 1);
}
