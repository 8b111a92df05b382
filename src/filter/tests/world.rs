//! What scripts look up beyond the message: `mailboxexists`, `:specialuse`, `spamtest`
//! from the trusted header, and the `vnd.sievegate.*` environment items.

use std::path::Path;

use super::*;
use crate::filter::SpamScore;

fn plan_with(filter: &Filter, message: &[u8], maildir: Option<&Path>, verdict: &Verdict) -> Plan {
    let rcpt = rcpt();
    filter.plan(&FilterInput {
        message,
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict,
        remote_ip: None,
        remote_host: None,
        maildir,
        queue_id: Some("4ABCD12345"),
    })
}

fn folders(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Store { folder, .. } => Some(folder.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn mailboxexists_and_specialuse() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("Maildir");
    for dir in [".Junk/cur", ".Work/cur", ".Spam/cur"] {
        fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    let cases: &[(&str, &[&str])] = &[
        (
            r#"require ["mailbox", "fileinto"];
               if mailboxexists "Work" { fileinto "Yes"; } else { fileinto "No"; }"#,
            &["Yes"],
        ),
        (
            r#"require ["mailbox", "fileinto"];
               if mailboxexists ["Work", "Missing"] { fileinto "Yes"; } else { fileinto "No"; }"#,
            &["No"],
        ),
        (
            r#"require ["mailbox", "fileinto"];
               if mailboxexists "INBOX" { fileinto "Yes"; } else { fileinto "No"; }"#,
            &["Yes"],
        ),
        // RFC 8579: the \Junk folder (configured: Spam) wins over the named one.
        (
            r#"require ["special-use", "fileinto"]; fileinto :specialuse "\\Junk" "Junk";"#,
            &["Spam"],
        ),
        // No such special use configured, or its folder missing: the named folder.
        (
            r#"require ["special-use", "fileinto"]; fileinto :specialuse "\\Trash" "Junk";"#,
            &["Junk"],
        ),
        (
            r#"require ["special-use", "fileinto"]; fileinto :specialuse "\\Sent" "Work";"#,
            &["Work"],
        ),
        (
            r#"require ["special-use", "fileinto"];
               if specialuse_exists "\\Junk" { fileinto "Yes"; } else { fileinto "No"; }"#,
            &["Yes"],
        ),
        (
            r#"require ["special-use", "fileinto"];
               if specialuse_exists "Junk" "\\Junk" { fileinto "Yes"; } else { fileinto "No"; }"#,
            &["No"],
        ),
    ];
    for (script, want) in cases {
        let mut setup = Setup::new().personal(script);
        setup.config.special_use = vec![
            ("\\Junk".into(), "Spam".into()),
            ("\\Trash".into(), "Trash".into()),
        ];
        let filter = Filter::new(setup.config.clone());
        let plan = plan_with(&filter, MESSAGE, Some(&root), &Verdict::Clean);
        assert_eq!(folders(&plan), *want, "{script}\n{plan}");
    }
    // Without a Maildir (a dry run), only INBOX exists.
    let setup = Setup::new().personal(
        r#"require ["mailbox", "fileinto"];
           if mailboxexists "Work" { fileinto "Yes"; } else { fileinto "No"; }"#,
    );
    let filter = Filter::new(setup.config.clone());
    let plan = plan_with(&filter, MESSAGE, None, &Verdict::Clean);
    assert_eq!(folders(&plan), ["No"]);
}

#[test]
fn spamtest_from_the_topmost_trusted_header() {
    let script = r#"require ["spamtest", "spamtestplus", "relational", "comparator-i;ascii-numeric",
                             "fileinto", "copy"];
        if spamtest :value "ge" :comparator "i;ascii-numeric" "10" { fileinto :copy "Spam"; }
        if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto :copy "Untested"; }
        if spamtest :value "eq" :comparator "i;ascii-numeric" "1" { fileinto :copy "Ham"; }
        if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "50" { fileinto :copy "Half"; }"#;
    let cases: &[(&str, &[&str])] = &[
        (
            "X-Spam-Score: 20\r\nX-Spam-Score: 0\r\n",
            &["Spam", "INBOX"],
        ),
        // The sender's own header further down is not trusted.
        (
            "X-Spam-Score: -2\r\nSubject: x\r\nX-Spam-Score: 50\r\n",
            &["Ham", "INBOX"],
        ),
        ("X-Spam-Score: 7.5\r\n", &["Half", "INBOX"]),
        ("Subject: no score\r\n", &["Untested", "INBOX"]),
    ];
    let mut setup = Setup::new().personal(script);
    setup.config.spam_score = Some(SpamScore {
        header: "X-Spam-Score".into(),
        max: 15.0,
    });
    let filter = Filter::new(setup.config.clone());
    for (headers, want) in cases {
        let message = format!("{headers}From: a@example.org\r\n\r\nhi\r\n");
        let plan = plan_with(&filter, message.as_bytes(), None, &Verdict::Clean);
        assert_eq!(folders(&plan), *want, "{headers:?}\n{plan}");
    }
    // Not configured: never tested, whatever the message says.
    let setup = Setup::new().personal(script);
    let filter = Filter::new(setup.config.clone());
    let plan = plan_with(
        &filter,
        b"X-Spam-Score: 20\r\n\r\nhi\r\n",
        None,
        &Verdict::Clean,
    );
    assert_eq!(folders(&plan), ["Untested", "INBOX"]);
}

#[test]
fn sievegate_environment_items() {
    let script = r#"require ["environment", "variables", "fileinto", "copy"];
        if environment :matches "vnd.sievegate.queue-id" "*" { fileinto :copy "Q-${1}"; }
        if environment :matches "vnd.sievegate.virus-name" "?*" { fileinto :copy "V-${1}${2}"; }"#;
    let setup = Setup::new().personal(script);
    let filter = Filter::new(setup.config.clone());
    let plan = plan_with(&filter, MESSAGE, None, &Verdict::Clean);
    assert_eq!(folders(&plan), ["Q-4ABCD12345", "INBOX"], "{plan}");
    let infected = Verdict::Infected {
        name: "Eicar-Signature".into(),
        heuristic: false,
    };
    // The virus policy drops every store of infected mail; the plan's notes still name them.
    let plan = plan_with(&filter, MESSAGE, None, &infected);
    assert!(
        plan.notes.iter().any(|n| n.contains("V-Eicar-Signature")),
        "{plan}"
    );
}
