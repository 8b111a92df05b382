//! Limits, envelope, message parsing, and the sieve-rs behaviour we pin.

use super::*;

#[test]
fn cpu_limit_ends_in_keep() {
    let body = "if header :contains \"subject\" \"nothing\" { discard; }\n".repeat(500);
    let mut setup =
        Setup::new().personal(&format!("require \"fileinto\"; fileinto \"X\";\n{body}"));
    setup.config.cpu_limit = 100;
    let filter = Filter::new(setup.config.clone());
    for verdict in [Verdict::Clean, virus(false)] {
        let plan = plan_for(&filter, &verdict);
        let want = if verdict == Verdict::Clean {
            vec![inbox(&[])]
        } else {
            vec![]
        };
        assert_eq!(plan.actions, want, "{plan}");
        assert!(plan.notes.iter().any(|n| n.contains("CPU limit")), "{plan}");
    }
}

#[test]
fn null_sender_in_envelope() {
    let setup = Setup::new().personal(
        r#"require ["envelope", "fileinto"]; if envelope :is "from" "" { fileinto "Bounces"; }"#,
    );
    let filter = Filter::new(setup.config.clone());
    let rcpt = rcpt();
    let plan = filter.plan(&FilterInput {
        message: MESSAGE,
        mail_from: "",
        rcpt: &rcpt,
        verdict: &Verdict::Clean,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    });
    assert_eq!(plan.actions, vec![store("Bounces", &[], false)], "{plan}");
}

#[test]
fn parsed_once_for_many_recipients() {
    let setup = Setup::new().personal(
        "require \"fileinto\"; if header :is \"subject\" \"hello\" { fileinto \"Hello\"; }",
    );
    let filter = Filter::new(setup.config.clone());
    let parsed = ParsedMessage::new(MESSAGE);
    let rcpt = rcpt();
    let input = FilterInput {
        message: MESSAGE,
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict: &Verdict::Clean,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    };
    for _ in 0..2 {
        let plan = filter.plan_parsed(&input, &parsed);
        assert_eq!(plan.actions, vec![store("Hello", &[], false)], "{plan}");
    }
}

#[test]
fn unparseable_message_still_keeps() {
    let filter = Filter::new(Setup::new().config.clone());
    let rcpt = rcpt();
    let plan = filter.plan(&FilterInput {
        message: b"",
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict: &Verdict::Clean,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    });
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
}

/// RFC 5228: an explicit `keep` is an action of its own. `discard` cancels only the implicit
/// keep (§4.4) and `fileinto` does not undo an earlier keep (§4.2), with or without flags.
/// sieve-rs 0.7.3 had one final-action slot and got the first two wrong; patch #1 fixes it.
#[test]
fn explicit_keep_is_an_action() {
    let cases: Vec<(&str, Vec<Action>)> = vec![
        ("keep; discard;", vec![inbox(&[])]),
        (
            "require [\"fileinto\", \"mailbox\"]; keep; fileinto :create \"Copy\";",
            vec![store("Copy", &[], true), inbox(&[])],
        ),
        (
            "require [\"fileinto\", \"mailbox\", \"imap4flags\"]; \
             keep :flags \"\\\\Seen\"; fileinto :create \"Copy\";",
            vec![store("Copy", &[], true), inbox(&["\\Seen"])],
        ),
        (
            "require \"fileinto\"; fileinto \"X\"; keep;",
            vec![store("X", &[], false), inbox(&[])],
        ),
        ("discard; keep;", vec![inbox(&[])]),
        ("keep; keep; discard;", vec![inbox(&[])]),
        ("keep; stop; discard;", vec![inbox(&[])]),
        ("discard;", vec![]),
    ];
    for (script, want) in cases {
        let setup = Setup::new().personal(script);
        let filter = Filter::new(setup.config.clone());
        let plan = plan_for(&filter, &Verdict::Clean);
        assert_eq!(plan.actions, want, "{script}\n{plan}");
    }
}
