//! Hostile input in every field a generated message takes from the incoming message or a
//! match variable, through the real binary, with Postfix's smtp-sink as the relay: the bytes
//! the relay received hold no injected header line, our Auto-Submitted, Message-ID and
//! MIME-Version once each, a text/plain body; a redirect target holding CR/LF never becomes
//! an SMTP command, and the user's copy is kept.

use std::time::Duration;

use crate::sieve_send::{send, start as start_with};
use crate::support::binary::Running;
use crate::support::env::Env;
use crate::support::smtp_sink::{SmtpSink, Transaction};

/// `hi\r\nContent-Type: text/html\r\nX-Injected: yes\r\n\r\n<a href="http://evil.test">click</a>`.
const SUBJECT: &str = "=?utf-8?b?aGkNCkNvbnRlbnQtVHlwZTogdGV4dC9odG1sDQpYLUluamVjdGVkOiB5ZXMNCg0KPGEgaHJlZj0iaHR0cDovL2V2aWwudGVzdCI+Y2xpY2s8L2E+?=";
/// `Eve\r\nX-Injected: yes\0`.
const NAME: &str = "=?utf-8?b?RXZlDQpYLUluamVjdGVkOiB5ZXMA?=";
/// `"a\r\nRCPT TO:<injected@remote.test>\r\n"@remote.test`.
const REDIRECT: &str =
    "=?utf-8?b?ImENClJDUFQgVE86PGluamVjdGVkQHJlbW90ZS50ZXN0Pg0KIkByZW1vdGUudGVzdA==?=";

fn start(relay: &str) -> (Env, Running) {
    start_with(relay, &[])
}

/// Checks one generated message as the relay received it.
fn assert_built_by_us(t: &Transaction, auto: &str) {
    let text = String::from_utf8_lossy(&t.message).into_owned();
    let at = text.find("\r\n\r\n").expect("a header section");
    let header = &text[..at + 2];
    for line in header.split("\r\n") {
        assert!(!line.contains('\0'), "{text}");
        let name = line.split(':').next().unwrap_or_default();
        assert!(
            !name.eq_ignore_ascii_case("X-Injected") && !name.eq_ignore_ascii_case("X-Evil"),
            "injected line {line:?} in\n{text}"
        );
    }
    for (field, n) in [
        ("Auto-Submitted", 1),
        ("Message-ID", 1),
        ("MIME-Version", 1),
        ("Content-Type", 1),
    ] {
        let count = header
            .split("\r\n")
            .filter(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", field.to_ascii_lowercase()))
            })
            .count();
        assert_eq!(count, n, "{field} in\n{text}");
    }
    assert!(
        header.contains(&format!("\r\nAuto-Submitted: {auto}\r\n")),
        "{text}"
    );
    assert!(header.contains("Content-Type: text/plain"), "{text}");
    assert!(
        !t.message.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "{text}"
    );
    assert!(!t.message.contains(&0), "{text}");
}

#[test]
fn vacation_and_notify_are_built_from_validated_parts() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string());
    // The subject of the message (no :subject).
    env.set_personal("alice", r#"require "vacation"; vacation :days 1 "Away.";"#);
    // Match variables in :subject, :from's name and the reason.
    env.set_personal(
        "bob",
        r#"require ["vacation", "variables"];
           if header :matches "subject" "*" {
             vacation :days 1 :subject "${1}" :from "${1} <bob@example.test>" "Reason ${1}";
           }"#,
    );
    // Match variable in :message, hostile mailto headers.
    env.set_personal(
        "carol",
        r#"require ["enotify", "variables"];
           if header :matches "subject" "*" {
             notify :message "${1}"
               "mailto:carol-phone@elsewhere.example?subject=x%0D%0AX-Injected:%20yes&X-Evil=1%0D%0AX-Injected:%20yes&body=b%0D%0A%0D%0AX-Injected:%20yes";
           }"#,
    );
    // The default "Notification: <subject>" and the subject as the body.
    env.set_personal(
        "dave",
        r#"require "enotify"; notify "mailto:dave-phone@elsewhere.example";"#,
    );
    let message = format!(
        "From: {NAME} <sender@remote.example>\r\n\
         To: alice@example.test, bob@example.test, carol@example.test, dave@example.test\r\n\
         Subject: {SUBJECT}\r\n\
         Message-ID: <m1@remote.example>\r\n\
         References: <r0@remote.example> {SUBJECT}\r\n\
         \r\n\
         Hello.\r\n"
    );
    let rcpts = [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ];
    let out = send(&server, "sender@remote.example", &rcpts, message.as_bytes());
    assert!(out.matches("\r\n250 2.").count() >= 4, "{out}");
    let sent = sink.wait_for(4, Duration::from_secs(30));
    assert_eq!(sent.len(), 4, "{}", server.logs());
    for t in &sent {
        assert_eq!(t.mail_from, "<>");
        let auto = if t.rcpt_to == ["<sender@remote.example>"] {
            "auto-replied"
        } else {
            "auto-notified"
        };
        assert_built_by_us(t, auto);
    }
    let vacations = sent
        .iter()
        .filter(|t| t.rcpt_to == ["<sender@remote.example>"])
        .count();
    assert_eq!(vacations, 2);
    // The reply threads only under valid ids.
    let alice = sent
        .iter()
        .map(|t| String::from_utf8_lossy(&t.message).into_owned())
        .find(|m| m.starts_with("From: <alice@example.test>"))
        .expect("alice's reply");
    assert!(
        alice.contains("\r\nIn-Reply-To: <m1@remote.example>\r\n"),
        "{alice}"
    );
    assert!(
        alice.contains("\r\nReferences: <r0@remote.example> <m1@remote.example>\r\n"),
        "{alice}"
    );
}

#[test]
fn redirect_to_an_address_with_line_ends_is_refused_and_kept() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string());
    env.set_personal(
        "alice",
        r#"require "variables"; if header :matches "subject" "*" { redirect "${1}"; }"#,
    );
    let message = format!(
        "From: sender@remote.example\r\nTo: alice@example.test\r\nSubject: {REDIRECT}\r\n\
         Message-ID: <m2@remote.example>\r\n\r\nHello.\r\n"
    );
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        message.as_bytes(),
    );
    assert!(out.contains("\r\n250 2."), "{out}");
    // The user's copy is kept.
    assert_eq!(env.messages("alice", "").len(), 1, "{}", server.logs());
    // Nothing reached the relay: no transaction, so no RCPT of the attacker's.
    std::thread::sleep(Duration::from_secs(3));
    let sent = sink.transactions();
    assert!(
        sent.iter()
            .all(|t| !t.rcpt_to.iter().any(|r| r.contains("injected"))),
        "{sent:?}"
    );
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn rejection_mdn_reason_from_a_match_variable_stays_text() {
    let sink = SmtpSink::start();
    let (env, server) = start_with(&sink.addr().to_string(), &["allow_reject_mdn = true"]);
    env.set_personal(
        "alice",
        r#"require ["reject", "variables"]; if header :matches "subject" "*" { reject "${1}"; }"#,
    );
    let message = format!(
        "From: {NAME} <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: {SUBJECT}\r\n\
         Message-ID: <m3@remote.example>\r\n\r\nHello.\r\n"
    );
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        message.as_bytes(),
    );
    assert!(out.contains("\r\n250 2."), "{out}");
    let sent = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(sent.len(), 1, "{}", server.logs());
    let t = &sent[0];
    assert_eq!(t.mail_from, "<>");
    assert_eq!(t.rcpt_to, ["<sender@remote.example>"]);
    let text = String::from_utf8_lossy(&t.message).into_owned();
    let header = &text[..text.find("\r\n\r\n").expect("header section") + 2];
    for field in [
        "Auto-Submitted",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ] {
        let n = header
            .split("\r\n")
            .filter(|l| l.starts_with(&format!("{field}:")))
            .count();
        assert_eq!(n, 1, "{field} in\n{text}");
    }
    // No line anywhere in the MDN (its parts included) is one of the attacker's: the reason
    // is one line of the text part.
    assert!(
        !text.split("\r\n").any(|l| l.starts_with("X-Injected")),
        "{text}"
    );
    // The reason is one line of the text/plain part, its line ends removed.
    assert!(
        text.contains("\r\n\r\nhiContent-Type: text/htmlX-Injected: yes<a href=\"http://evil.test\">click</a>\r\n"),
        "{text}"
    );
    assert!(!t.message.contains(&0));
    // Rejected by MDN: accepted and discarded.
    assert_eq!(env.messages("alice", "").len(), 0);
}
