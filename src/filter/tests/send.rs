//! The actions that send: the RFC 3834 rules for vacation, redirect loop protection and
//! limits, `duplicate` and vacation answered from the state store.

use std::sync::Arc;

use super::*;
use crate::state::{MemoryState, StateStore};

const VACATION: &str = r#"require "vacation"; vacation :days 3 "I am away";"#;

fn plan_from(filter: &Filter, message: &[u8], mail_from: &str, verdict: &Verdict) -> Plan {
    let rcpt = rcpt();
    filter.plan(&FilterInput {
        message,
        mail_from,
        rcpt: &rcpt,
        verdict,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    })
}

fn replies(plan: &Plan) -> Vec<(SendKind, Vec<String>)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { kind, to, .. } => Some((*kind, to.clone())),
            _ => None,
        })
        .collect()
}

/// Commits what a successful delivery commits: the ids of `plan.remember`.
fn commit(state: &dyn StateStore, plan: &Plan) {
    for r in &plan.remember {
        state
            .cache_put(&r.key, "1", SystemTime::now() + r.ttl)
            .expect("put");
    }
}

/// RFC 3834 §2 and RFC 5230 §4.5-4.6: when a vacation response is sent, and when not.
#[test]
fn rfc3834_rule_table() {
    let base = "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.test>\r\n\
                Subject: hello\r\nMessage-ID: <1@example.org>\r\n";
    // (name, extra header lines or a whole header, envelope sender, reply expected)
    let cases: Vec<(&str, String, &str, bool)> = vec![
        ("plain personal mail", base.into(), "bob@example.org", true),
        ("null sender", base.into(), "", false),
        (
            "Auto-Submitted: auto-replied",
            format!("{base}Auto-Submitted: auto-replied\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "Auto-Submitted: auto-generated",
            format!("{base}Auto-Submitted: auto-generated\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "Auto-Submitted: no",
            format!("{base}Auto-Submitted: no\r\n"),
            "bob@example.org",
            true,
        ),
        (
            "Precedence: bulk",
            format!("{base}Precedence: bulk\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "Precedence: list",
            format!("{base}Precedence: list\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "Precedence: junk",
            format!("{base}Precedence: junk\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "List-Id",
            format!("{base}List-Id: <dev.example.org>\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "List-Post",
            format!("{base}List-Post: <mailto:dev@example.org>\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "List-Unsubscribe",
            format!("{base}List-Unsubscribe: <mailto:leave@example.org>\r\n"),
            "bob@example.org",
            false,
        ),
        (
            "MAILER-DAEMON",
            base.into(),
            "MAILER-DAEMON@example.org",
            false,
        ),
        ("owner- sender", base.into(), "owner-dev@example.org", false),
        (
            "-request sender",
            base.into(),
            "dev-request@example.org",
            false,
        ),
        (
            "user not in To/Cc",
            "From: Bob <bob@example.org>\r\nTo: Team <team@example.test>\r\n\
             Subject: hello\r\nMessage-ID: <1@example.org>\r\n"
                .into(),
            "bob@example.org",
            false,
        ),
        (
            "user in Cc",
            "From: Bob <bob@example.org>\r\nTo: Team <team@example.test>\r\n\
             Cc: alice@example.test\r\nSubject: hello\r\n"
                .into(),
            "bob@example.org",
            true,
        ),
    ];
    for (name, header, from, want) in cases {
        let setup = Setup::new().personal(VACATION);
        let filter = Filter::new(setup.config.clone());
        let message = format!("{header}\r\nHi.\r\n");
        let plan = plan_from(&filter, message.as_bytes(), from, &Verdict::Clean);
        let got = replies(&plan);
        assert_eq!(!got.is_empty(), want, "{name}:\n{plan}");
        if want {
            assert_eq!(
                got,
                vec![(SendKind::Vacation, vec![from.to_string()])],
                "{name}"
            );
        }
        // The message itself is always kept.
        assert!(plan.actions.contains(&inbox(&[])), "{name}:\n{plan}");
    }

    // `:addresses` names the address that is in To.
    let setup = Setup::new()
        .personal(r#"require "vacation"; vacation :addresses ["team@example.test"] "I am away";"#);
    let filter = Filter::new(setup.config.clone());
    let message = b"From: bob@example.org\r\nTo: team@example.test\r\n\r\nHi.\r\n";
    let plan = plan_from(&filter, message, "bob@example.org", &Verdict::Clean);
    assert_eq!(replies(&plan).len(), 1, "{plan}");
}

/// RFC 5436 §2.7 / RFC 3834 for notifications: mail a person wrote (`Auto-Submitted: no`,
/// or no such field) is notified; automatic mail is not. sieve-rs patch #9 once read the
/// value of only one of the two header names it checks, so `Auto-Submitted: no` silenced
/// every notification.
#[test]
fn notify_follows_auto_submitted() {
    let base = "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.test>\r\n\
                Subject: hello\r\nMessage-ID: <1@example.org>\r\n";
    for (name, extra, want) in [
        ("no Auto-Submitted", "", true),
        ("Auto-Submitted: no", "Auto-Submitted: no\r\n", true),
        ("Auto-Submitted: NO", "Auto-Submitted: NO\r\n", true),
        (
            "Auto-Submitted: auto-generated",
            "Auto-Submitted: auto-generated\r\n",
            false,
        ),
        (
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-replied\r\n",
            false,
        ),
    ] {
        let setup =
            Setup::new().personal(r#"require "enotify"; notify "mailto:alice-phone@example.org";"#);
        let filter = Filter::new(setup.config.clone());
        let message = format!("{base}{extra}\r\nHi.\r\n");
        let plan = plan_from(
            &filter,
            message.as_bytes(),
            "bob@example.org",
            &Verdict::Clean,
        );
        let notified = replies(&plan)
            .iter()
            .any(|(kind, _)| *kind == SendKind::Notify);
        assert_eq!(notified, want, "{name}:\n{plan}");
        assert!(plan.actions.contains(&inbox(&[])), "{name}:\n{plan}");
    }
}

/// The reply itself: Auto-Submitted, In-Reply-To and References (RFC 3834 §3.1.4/§5).
#[test]
fn vacation_reply_headers() {
    let setup = Setup::new().personal(
        r#"require "vacation"; vacation :subject "Away" :from "alice@example.test" "Back on Monday";"#,
    );
    let filter = Filter::new(setup.config.clone());
    let message = b"From: bob@example.org\r\nTo: alice@example.test\r\n\
        Message-ID: <2@example.org>\r\nReferences: <1@example.org>\r\n\r\nHi.\r\n";
    let plan = plan_from(&filter, message, "bob@example.org", &Verdict::Clean);
    let text = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Send { message, .. } => Some(String::from_utf8_lossy(message).into_owned()),
            _ => None,
        })
        .expect("a reply");
    for want in [
        "Auto-Submitted: auto-replied\r\n",
        // Patch #16 (RFC 2045 §4).
        "MIME-Version: 1.0\r\n",
        "In-Reply-To: <2@example.org>\r\n",
        // RFC 5322 §3.6.4: the parent's References, then its Message-ID (built by
        // outbound::compose from validated ids, never the raw field).
        "References: <1@example.org> <2@example.org>\r\n",
        "Subject: Away\r\n",
        "From: <alice@example.test>\r\n",
        "\r\n\r\nBack on Monday",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
}

/// The reply's `From` without `:from` (RFC 5230 erratum 2035, as Pigeonhole): the user's
/// address the message was sent to. The recipient is `Alice+tag@example.test`, the user
/// `alice@example.test`. Pigeonhole's order: To, Cc, Bcc, Resent-*; within one field the
/// envelope recipient, then the `:addresses`, then the user's address (`sieve_user_email`).
#[test]
fn vacation_reply_from_table() {
    // (script arguments, header fields naming the user, the reply's From)
    let cases: [(&str, &str, &str); 8] = [
        ("", "To: alice@example.test\r\n", "alice@example.test"),
        (
            "",
            "To: Alice+tag@example.test\r\n",
            "Alice+tag@example.test",
        ),
        (
            ":addresses [\"al@example.test\"]",
            "To: Al <al@example.test>\r\n",
            "al@example.test",
        ),
        (
            ":addresses [\"al@example.test\", \"a.l@example.test\"]",
            "To: a.l@example.test, al@example.test\r\n",
            "al@example.test",
        ),
        (
            ":addresses [\"al@example.test\"]",
            "To: alice@example.test, al@example.test\r\n",
            "al@example.test",
        ),
        // To before Cc, whatever the order in the message.
        (
            ":addresses [\"al@example.test\"]",
            "Cc: alice@example.test\r\nTo: al@example.test\r\n",
            "al@example.test",
        ),
        (
            "",
            "To: alice@example.test\r\nCc: Alice+tag@example.test\r\n",
            "alice@example.test",
        ),
        (
            ":from \"office@example.test\" :addresses [\"al@example.test\"]",
            "To: al@example.test\r\n",
            "office@example.test",
        ),
    ];
    for (arguments, fields, want) in cases {
        let setup = Setup::new().personal(&format!(
            "require \"vacation\"; vacation {arguments} \"Away\";"
        ));
        let filter = Filter::new(setup.config.clone());
        let message =
            format!("From: bob@example.org\r\n{fields}Message-ID: <3@example.org>\r\n\r\nHi.\r\n");
        let plan = plan_from(
            &filter,
            message.as_bytes(),
            "bob@example.org",
            &Verdict::Clean,
        );
        let reply = plan
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Send { message, .. } => Some(String::from_utf8_lossy(message).into_owned()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no reply for {arguments:?} / {fields:?}: {plan}"));
        assert!(
            reply.starts_with(&format!("From: <{want}>\r\n")),
            "{arguments:?} / {fields:?}: want From {want}, got:\n{reply}"
        );
    }
}

/// A vacation reply once per period; `duplicate` remembered; both only once committed.
#[test]
fn vacation_and_duplicate_remembered_in_the_state_store() {
    let state = Arc::new(MemoryState::default());
    let setup = Setup::new().personal(
        r#"require ["vacation", "duplicate", "fileinto"];
        if duplicate { fileinto "Dups"; stop; }
        vacation "I am away";"#,
    );
    let filter = Filter::new(setup.config.clone()).with_state(state.clone());
    let first = plan_from(&filter, MESSAGE, "bob@example.org", &Verdict::Clean);
    assert_eq!(replies(&first).len(), 1, "{first}");
    assert_eq!(first.remember.len(), 2, "{first:?}");
    // Not committed (a deferred delivery; its claim released as the plan is dropped):
    // the same again.
    drop(first);
    let retried = plan_from(&filter, MESSAGE, "bob@example.org", &Verdict::Clean);
    assert_eq!(replies(&retried).len(), 1, "{retried}");
    commit(state.as_ref(), &retried);
    drop(retried);
    let second = plan_from(&filter, MESSAGE, "bob@example.org", &Verdict::Clean);
    assert_eq!(second.actions, vec![store("Dups", &[], false)], "{second}");
    // Another message from the same sender: no duplicate, no second reply.
    let other = b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\n\
        Message-ID: <other@example.org>\r\n\r\nAgain.\r\n";
    let third = plan_from(&filter, other, "bob@example.org", &Verdict::Clean);
    assert_eq!(third.actions, vec![inbox(&[])], "{third}");
    // Infected: nothing to remember.
    let infected = plan_from(&filter, other, "carol@example.org", &virus(false));
    assert!(
        infected.remember.is_empty() && infected.actions.is_empty(),
        "{infected}"
    );
}

/// `[sieve] max_redirects` over the chain, one copy per address, and loops.
#[test]
fn redirect_limits_and_loops() {
    let redirects = |plan: &Plan| plan.redirects().map(str::to_string).collect::<Vec<_>>();
    // Four per script is sieve-rs's limit; the chain adds up to the same limit.
    let mut setup = Setup::new()
        .before(
            r#"require "copy"; redirect :copy "a@x.test"; redirect :copy "b@x.test"; redirect :copy "a@x.test";"#,
        )
        .personal(r#"redirect "c@x.test"; redirect "d@x.test"; redirect "e@x.test";"#);
    setup.config.max_redirects = 4;
    let filter = Filter::new(setup.config.clone());
    let plan = plan_from(&filter, MESSAGE, "bob@example.org", &Verdict::Clean);
    assert_eq!(
        redirects(&plan),
        ["a@x.test", "b@x.test", "c@x.test", "d@x.test"],
        "{plan}"
    );
    assert!(!plan.stores(), "{plan}");

    // Delivered-To of the target: no redirect, the message is kept.
    let setup = Setup::new().personal(r#"redirect "carol@example.net";"#);
    let filter = Filter::new(setup.config.clone());
    let looped = [
        b"Delivered-To: carol@example.net\r\nFrom: bob@example.org\r\n\r\nHi.\r\n".as_slice(),
        b"X-Sievegate-Redirected-By: alice@example.test\r\nFrom: bob@example.org\r\n\r\nHi.\r\n",
    ];
    for message in looped {
        let plan = plan_from(&filter, message, "bob@example.org", &Verdict::Clean);
        assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
        assert!(plan.notes.iter().any(|n| n.contains("mail loop")), "{plan}");
    }
    // Someone else's Delivered-To: redirected.
    let message = b"Delivered-To: dave@example.net\r\nFrom: bob@example.org\r\n\r\nHi.\r\n";
    let plan = plan_from(&filter, message, "bob@example.org", &Verdict::Clean);
    assert_eq!(redirects(&plan), ["carol@example.net"], "{plan}");
}
