//! The Sieve actions that send, through the real binary with a real clamd and Postfix's
//! smtp-sink as `[notify] relay`: redirect (envelope sender kept, `:copy`, relay down: queued,
//! limits, loops), vacation (once per period, never to lists, auto mail or `<>`),
//! `duplicate` across a restart, notify's rate limit, and nothing at all for infected mail.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::eicar;
use crate::support::env::{Env, Options};
use crate::support::messages::transaction_as;
use crate::support::smtp_sink::{free_port, SmtpSink, Transaction};

/// How long a test waits for mail that must not come.
const QUIET: Duration = Duration::from_secs(3);

/// A server whose relay is `relay` (a sink, or a port nobody listens on), with a state
/// directory; `sieve_extra` lines go into `[sieve]`. No before script: the personal
/// scripts run even for infected mail, so the virus policy itself is what is tested.
pub(crate) fn start(relay: &str, sieve_extra: &[&str]) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    options.before = Some(vec![]);
    options.sieve_extra = sieve_extra.iter().map(|s| s.to_string()).collect();
    options.extra_sections = vec![
        "[state]\ndir = \"state\"".into(),
        format!("[notify]\nrelay = \"{relay}\""),
    ];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    (env, server)
}

/// One LMTP transaction; returns the server's replies.
pub(crate) fn send(server: &Running, from: &str, rcpts: &[&str], message: &[u8]) -> String {
    let input = transaction_as("", from, rcpts, message);
    let mut stream = tcp(server.addr);
    stream.write_all(&input).expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// A message from `from` to `to` with Message-ID `id` and `extra` header lines.
fn message(from: &str, to: &str, id: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: hello\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello.\r\n"
    )
    .into_bytes()
}

fn text(t: &Transaction) -> String {
    String::from_utf8_lossy(&t.message).into_owned()
}

/// The replies after DATA, one per recipient (LHLO, MAIL, RCPT lines come first).
fn data_replies(out: &str, rcpts: usize) -> Vec<String> {
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("250-")).collect();
    // greeting, LHLO, MAIL, RCPT*n, DATA(354), then n replies, then QUIT.
    let start = 3 + rcpts + 1;
    lines[start..start + rcpts]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn redirect_reaches_the_relay_with_the_envelope_sender() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    env.set_personal("alice", r#"redirect "carol@elsewhere.example";"#);
    env.set_personal(
        "bob",
        r#"require "copy"; redirect :copy "dave@elsewhere.example";"#,
    );
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test", "bob@example.test"],
        &message(
            "sender@remote.example",
            "alice@example.test",
            "r1@remote",
            "",
        ),
    );
    let replies = data_replies(&out, 2);
    assert!(
        replies.iter().all(|r| r.starts_with("250 ")),
        "{out}\n{}",
        server.logs()
    );
    let sent = sink.wait_for(2, Duration::from_secs(30));
    let to_carol = sent
        .iter()
        .find(|t| t.rcpt_to == ["<carol@elsewhere.example>"])
        .expect("redirect to carol");
    assert_eq!(to_carol.mail_from, "<sender@remote.example>");
    let body = text(to_carol);
    assert!(
        body.starts_with("X-Sievegate-Redirected-By: alice@example.test\r\n"),
        "{body}"
    );
    assert!(
        body.contains("Delivered-To: alice@example.test\r\n"),
        "{body}"
    );
    assert!(body.contains("Message-ID: <r1@remote>"), "{body}");
    assert!(sent
        .iter()
        .any(|t| t.rcpt_to == ["<dave@elsewhere.example>"]
            && t.mail_from == "<sender@remote.example>"));
    // redirect cancels alice's keep; bob's :copy keeps his.
    assert!(env.messages("alice", "").is_empty());
    assert_eq!(env.messages("bob", "").len(), 1);

    // The null sender stays null.
    let out = send(
        &server,
        "",
        &["alice@example.test"],
        &message(
            "MAILER-DAEMON@remote.example",
            "alice@example.test",
            "r2@remote",
            "",
        ),
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    let sent = sink.wait_for(3, Duration::from_secs(30));
    let bounce = sent
        .iter()
        .find(|t| text(t).contains("<r2@remote>"))
        .expect("redirected bounce");
    assert_eq!(bounce.mail_from, "<>");
}

#[test]
fn relay_down_queues_a_redirect_and_keeps_retrying() {
    // Nobody listens on this port: the connect is refused at once.
    let (env, server) = start(&format!("127.0.0.1:{}", free_port()), &[]);
    env.set_personal("alice", r#"redirect "carol@elsewhere.example";"#);
    env.set_personal(
        "bob",
        r#"require "copy"; redirect :copy "dave@elsewhere.example";"#,
    );
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test", "bob@example.test"],
        &message(
            "sender@remote.example",
            "alice@example.test",
            "d1@remote",
            "",
        ),
    );
    // Both redirects are durably queued: 250 for both, no 451 loop at the MTA.
    let replies = data_replies(&out, 2);
    assert!(replies.iter().all(|r| r.starts_with("250 ")), "{out}");
    assert!(env.messages("alice", "").is_empty());
    assert_eq!(env.messages("bob", "").len(), 1);
    // The log reader runs on its own thread: wait for the line rather than race it. A
    // refused connection is not a refusal for good: retried later, nothing kept yet.
    let started = std::time::Instant::now();
    let mut logs = server.wait_for_log("will retry");
    while logs.matches("will retry").count() < 2 && started.elapsed() < QUIET * 3 {
        std::thread::sleep(Duration::from_millis(20));
        logs = server.logs();
    }
    assert!(logs.contains("redirect queued"), "{logs}");
    assert_eq!(
        logs.matches("will retry").count(),
        2,
        "both redirects are retried: {logs}"
    );
    assert!(env.messages("alice", "").is_empty());
}

#[test]
fn redirect_limit_resend_and_delivered_to_loop() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &["max_redirects = 2"]);
    env.set_personal(
        "alice",
        r#"redirect "a@elsewhere.example"; redirect "b@elsewhere.example"; redirect "c@elsewhere.example";"#,
    );
    env.set_personal("bob", r#"redirect "carol@elsewhere.example";"#);
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        &message(
            "sender@remote.example",
            "alice@example.test",
            "l1@remote",
            "",
        ),
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    sink.wait_for(2, Duration::from_secs(30));
    // The same message again (an MTA retry after a later redirect failed): the targets it
    // already reached are not sent it twice within a day.
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        &message(
            "sender@remote.example",
            "alice@example.test",
            "l1@remote",
            "",
        ),
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    // A message that was already delivered to carol: no redirect, kept in INBOX.
    let out = send(
        &server,
        "sender@remote.example",
        &["bob@example.test"],
        &message(
            "sender@remote.example",
            "bob@example.test",
            "l2@remote",
            "Delivered-To: carol@elsewhere.example\r\n",
        ),
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    std::thread::sleep(QUIET);
    let sent = sink.transactions();
    let to: Vec<&str> = sent.iter().map(|t| t.rcpt_to[0].as_str()).collect();
    assert_eq!(
        to,
        ["<a@elsewhere.example>", "<b@elsewhere.example>"],
        "{}",
        server.logs()
    );
    assert_eq!(env.messages("bob", "").len(), 1);
}

#[test]
fn vacation_once_per_period_never_to_lists_auto_mail_or_null_sender() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    env.set_personal(
        "alice",
        r#"require "vacation"; vacation :days 1 :subject "Away" "Back on Monday.";"#,
    );
    let alice = "alice@example.test";
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "bob@remote.example",
            message("bob@remote.example", alice, "v1@remote", ""),
        ),
        // The same sender within the period: no second reply.
        (
            "bob@remote.example",
            message("bob@remote.example", alice, "v2@remote", ""),
        ),
        (
            "list@remote.example",
            message(
                "list@remote.example",
                alice,
                "v3@remote",
                "List-Id: <dev.remote.example>\r\n",
            ),
        ),
        (
            "robot@remote.example",
            message(
                "robot@remote.example",
                alice,
                "v4@remote",
                "Auto-Submitted: auto-generated\r\n",
            ),
        ),
        (
            "news@remote.example",
            message(
                "news@remote.example",
                alice,
                "v5@remote",
                "Precedence: bulk\r\n",
            ),
        ),
        (
            "",
            message("MAILER-DAEMON@remote.example", alice, "v6@remote", ""),
        ),
    ];
    for (from, msg) in &cases {
        let out = send(&server, from, &[alice], msg);
        assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    }
    // Every message is kept.
    assert_eq!(env.messages("alice", "").len(), cases.len());
    let sent = sink.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(QUIET);
    let sent_later = sink.transactions();
    assert_eq!(sent_later.len(), 1, "{sent_later:#?}\n{}", server.logs());
    let reply = &sent[0];
    assert_eq!(reply.mail_from, "<>");
    assert_eq!(reply.rcpt_to, ["<bob@remote.example>"]);
    let body = text(reply);
    for want in [
        "Auto-Submitted: auto-replied\r\n",
        "In-Reply-To: <v1@remote>\r\n",
        "References: <v1@remote>",
        "Subject: Away\r\n",
        "Back on Monday.",
    ] {
        assert!(body.contains(want), "{want:?} missing:\n{body}");
    }
}

#[test]
fn duplicate_survives_a_restart() {
    let sink = SmtpSink::start();
    let (env, mut server) = start(&sink.addr().to_string(), &[]);
    env.set_personal(
        "alice",
        r#"require ["duplicate", "fileinto", "mailbox"];
        if duplicate { fileinto :create "Dups"; }"#,
    );
    let msg = message(
        "bob@remote.example",
        "alice@example.test",
        "dup1@remote",
        "",
    );
    let out = send(&server, "bob@remote.example", &["alice@example.test"], &msg);
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    assert_eq!(env.messages("alice", "").len(), 1);
    server.terminate(Duration::from_secs(10));
    let server = Running::start(&env.config_path);
    let out = send(&server, "bob@remote.example", &["alice@example.test"], &msg);
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    assert_eq!(env.messages("alice", "").len(), 1);
    assert_eq!(env.messages("alice", ".Dups").len(), 1, "{}", server.logs());
}

#[test]
fn notify_is_rate_limited_and_auto_notified() {
    let sink = SmtpSink::start();
    let (env, server) = start(
        &sink.addr().to_string(),
        &["notify_min_interval_secs = 3600"],
    );
    env.set_personal(
        "alice",
        r#"require "enotify"; notify :message "new mail" "mailto:alice-phone@elsewhere.example";"#,
    );
    for id in ["n1@remote", "n2@remote"] {
        let msg = message("bob@remote.example", "alice@example.test", id, "");
        let out = send(&server, "bob@remote.example", &["alice@example.test"], &msg);
        assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    }
    assert_eq!(env.messages("alice", "").len(), 2);
    let sent = sink.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(QUIET);
    assert_eq!(sink.transactions().len(), 1, "{}", server.logs());
    assert_eq!(sent[0].mail_from, "<>");
    assert_eq!(sent[0].rcpt_to, ["<alice-phone@elsewhere.example>"]);
    assert!(
        text(&sent[0]).contains("Auto-Submitted: auto-notified\r\n"),
        "{}",
        text(&sent[0])
    );
}

/// `reject` on clean mail: a protocol-level 550 by default; with `allow_reject_mdn`, a 250
/// and an RFC 5429 rejection message to the envelope sender, but never to `<>` or to an
/// automatic sender.
#[test]
fn reject_is_a_550_unless_allow_reject_mdn() {
    let script = r#"require "reject"; reject "no offers, please";"#;
    let msg = message("bob@remote.example", "alice@example.test", "r1@remote", "");

    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    env.set_personal("alice", script);
    let out = send(&server, "bob@remote.example", &["alice@example.test"], &msg);
    assert!(data_replies(&out, 1)[0].starts_with("550 5.7.1"), "{out}");
    drop(server);

    let (env, server) = start(&sink.addr().to_string(), &["allow_reject_mdn = true"]);
    env.set_personal("alice", script);
    let out = send(&server, "bob@remote.example", &["alice@example.test"], &msg);
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    let auto = message(
        "daemon@remote.example",
        "alice@example.test",
        "r2@remote",
        "Auto-Submitted: auto-replied\r\n",
    );
    let out = send(
        &server,
        "daemon@remote.example",
        &["alice@example.test"],
        &auto,
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    let out = send(&server, "", &["alice@example.test"], &msg);
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");

    let sent = sink.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(QUIET);
    assert_eq!(
        sink.transactions().len(),
        1,
        "only the first: {}",
        server.logs()
    );
    assert_eq!(sent[0].mail_from, "<>");
    assert_eq!(sent[0].rcpt_to, ["<bob@remote.example>"]);
    let mdn = text(&sent[0]);
    for want in [
        "report-type=\"disposition-notification\"",
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
        "Auto-Submitted: auto-replied",
        "no offers, please",
        "Original-Message-ID: <r1@remote>",
    ] {
        assert!(mdn.contains(want), "{want} missing:\n{mdn}");
    }
    assert!(
        env.messages("alice", "").is_empty(),
        "rejected mail is not stored"
    );
}

/// The never-bounce rule: whatever the scripts say, infected mail sends nothing.
#[test]
fn infected_mail_sends_nothing() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    env.set_personal(
        "alice",
        r#"require "copy"; redirect :copy "carol@elsewhere.example"; redirect "dave@elsewhere.example";"#,
    );
    env.set_personal("bob", r#"require "vacation"; vacation "Away.";"#);
    env.set_personal(
        "carol",
        r#"require "enotify"; notify "mailto:carol-phone@elsewhere.example";"#,
    );
    env.set_personal("dave", r#"require "reject"; reject "Go away.";"#);
    let rcpts = [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ];
    // Everyone in To, so vacation's own rules would answer this one if it were clean.
    let mut infected = format!(
        "From: Mallory <forged@victim.example>\r\nTo: {}\r\nSubject: invoice\r\n\
         Message-ID: <virus.2@victim.example>\r\n\r\n",
        rcpts.join(", ")
    )
    .into_bytes();
    infected.extend_from_slice(&eicar());
    infected.extend_from_slice(b"\r\n");
    let out = send(&server, "forged@victim.example", &rcpts, &infected);
    let replies = data_replies(&out, rcpts.len());
    assert!(
        replies.iter().all(|r| r.starts_with("250 ")),
        "{out}\n{}",
        server.logs()
    );
    std::thread::sleep(QUIET);
    assert!(sink.transactions().is_empty(), "{:#?}", sink.transactions());
    assert_eq!(env.total_messages(), 0);
    let logs = server.wait_for_log("reject replaced by discard");
    for note in [
        "redirect to <carol@elsewhere.example> suppressed",
        "vacation suppressed",
        "notify suppressed",
        "reject replaced by discard",
    ] {
        assert!(logs.contains(note), "{note:?} not logged:\n{logs}");
    }
}

#[test]
fn a_redirect_target_that_is_no_smtp_path_is_kept_in_inbox_at_once() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    env.set_personal(
        "alice",
        r#"require "variables"; if header :matches "subject" "*" { redirect "${1}"; }"#,
    );
    // The Subject decodes to `"a\r\nRCPT TO:<injected@remote.test>\r\n"@remote.test`.
    let message = b"From: sender@remote.example\r\nTo: alice@example.test\r\n\
Subject: =?utf-8?b?ImENClJDUFQgVE86PGluamVjdGVkQHJlbW90ZS50ZXN0Pg0KIkByZW1vdGUudGVzdA==?=\r\n\
Message-ID: <bad1@remote>\r\n\r\nHello.\r\n";
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        message,
    );
    assert!(data_replies(&out, 1)[0].starts_with("250 "), "{out}");
    // Whatever refused it (the filter or the outbox), the message is in INBOX, not lost,
    // and nothing reached the relay.
    let kept = env.messages("alice", "");
    assert_eq!(kept.len(), 1, "{}", server.logs());
    assert!(text_of(&kept[0].1).ends_with("Message-ID: <bad1@remote>\r\n\r\nHello.\r\n"));
    // The filter refuses the target (not a plain addr-spec) before the outbox sees it.
    let logs = server.wait_for_log("refused: not a plain address: kept");
    assert!(logs.contains("actions=stored INBOX"), "{logs}");
    std::thread::sleep(QUIET);
    assert!(sink.transactions().is_empty(), "{:?}", sink.transactions());
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
