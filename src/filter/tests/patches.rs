//! The behaviour our sieve-rs patches (patches/sieve-rs/PATCHES.md) give, seen through the
//! filter: message origin (#2), virustest `:count` (#3), the wall-clock limit (#4), the
//! linear `:matches` (#5), variables past their block (#15); and redirects that carry the
//! edits. Patch #1 (explicit keep) is pinned in `run.rs`, #14 and #16 in `send.rs`.

use std::time::Instant;

use sieve::runtime::tests::glob::GlobPattern;

use super::*;

/// An incoming message that says it is an auto-reply.
const AUTO_REPLIED: &[u8] = b"From: Bob <bob@example.org>\r\n\
To: Alice <alice@example.test>\r\n\
Subject: Out of office\r\n\
Auto-Submitted: auto-replied\r\n\
Message-ID: <2@example.org>\r\n\
\r\n\
Away.\r\n";

fn plan_message(filter: &Filter, message: &[u8], verdict: &Verdict) -> Plan {
    let rcpt = rcpt();
    filter.plan(&FilterInput {
        message,
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    })
}

/// Each Store's folder and the header section of what it stores (`None`: the original).
fn stored_headers(plan: &Plan) -> Vec<(String, Option<String>)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Store { folder, edited, .. } => Some((
                folder.to_string(),
                edited.as_ref().map(|m| {
                    let text = String::from_utf8_lossy(m);
                    let end = text.find("\r\n\r\n").unwrap_or(text.len());
                    text[..end].to_string()
                }),
            )),
            _ => None,
        })
        .collect()
}

/// Issue item 1: an edited incoming message that carries `Auto-Submitted: auto-replied` was
/// taken for a generated vacation reply, its fileinto skipped, and the mail lost with 250.
#[test]
fn edited_auto_replied_message_is_stored() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            r#"require ["editheader", "fileinto"]; addheader "X-Tag" "1"; fileinto "Tagged";"#,
            vec!["Tagged"],
        ),
        (
            r#"require ["editheader"]; addheader "X-Tag" "1"; keep;"#,
            vec!["INBOX"],
        ),
        (
            r#"require ["editheader", "fileinto", "copy"]; addheader "X-Tag" "1";
               fileinto :copy "Tagged";"#,
            vec!["Tagged", "INBOX"],
        ),
    ];
    for (script, want) in cases {
        let setup = Setup::new().personal(script);
        let filter = Filter::new(setup.config.clone());
        for message in [AUTO_REPLIED, MESSAGE] {
            let plan = plan_message(&filter, message, &Verdict::Clean);
            let got = stored_headers(&plan);
            let folders: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(folders, want, "{script}\n{plan}");
            for (folder, headers) in &got {
                let headers = headers.as_deref().unwrap_or_default();
                assert!(headers.starts_with("X-Tag: 1\r\n"), "{folder}: {headers:?}");
            }
        }
    }
}

/// Edits are stored as they were when the action was taken (RFC 5293 §3); the keep stores
/// the message as the whole chain left it, including edits after the last action.
#[test]
fn each_copy_stores_the_edits_made_before_it() {
    /// Personal script, before script, (folder, a header its copy must have; `None`: original).
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, Option<&'static str>)>,
    );
    let cases: Vec<Case> = vec![
        (
            r#"require ["editheader", "fileinto", "copy"];
               fileinto :copy "Plain"; addheader "X-A" "1"; fileinto :copy "A";
               addheader :last "X-B" "2";"#,
            "",
            vec![
                ("Plain", None),
                ("A", Some("X-A: 1")),
                ("INBOX", Some("X-B: 2")),
            ],
        ),
        // The before script edits after its explicit keep: the personal script's fileinto
        // sees the edit; the deferred keep stores the message as it was at `keep`, as
        // Pigeonhole does (differential case `edit_after_explicit_keep_in_before`).
        (
            r#"require ["editheader", "fileinto", "copy"]; fileinto :copy "Personal";"#,
            r#"require "editheader"; keep; addheader "X-Before" "1";"#,
            vec![("Personal", Some("X-Before: 1")), ("INBOX", None)],
        ),
    ];
    for (personal, before, want) in cases {
        let mut setup = Setup::new().personal(personal);
        if !before.is_empty() {
            setup = setup.before(before);
        }
        let filter = Filter::new(setup.config.clone());
        let plan = plan_message(&filter, MESSAGE, &Verdict::Clean);
        let got = stored_headers(&plan);
        assert_eq!(got.len(), want.len(), "{personal}\n{plan}");
        for ((folder, headers), (want_folder, want_header)) in got.iter().zip(&want) {
            assert_eq!(folder, want_folder, "{personal}\n{plan}");
            match want_header {
                None => assert!(headers.is_none(), "{folder}: {headers:?}"),
                Some(h) => assert!(
                    headers.as_deref().is_some_and(|t| t.contains(h)),
                    "{folder}: {headers:?}"
                ),
            }
        }
    }
}

/// RFC 5293 §7: the trace fields, `Auto-Submitted` and our scan headers can be neither
/// added nor deleted, in any spelling; other fields can.
#[test]
fn protected_headers_cannot_be_edited() {
    const TRACED: &[u8] = b"Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
Delivered-To: alice@example.test\r\n\
Return-Path: <bob@example.org>\r\n\
Auto-Submitted: no\r\n\
X-Other: x\r\n\
From: Bob <bob@example.org>\r\n\
Subject: hi\r\n\
\r\n\
Hi.\r\n";
    let cases: Vec<(&str, Option<&str>)> = vec![
        (r#"deleteheader "Received";"#, None),
        (r#"deleteheader "received";"#, None),
        (r#"deleteheader "DELIVERED-TO";"#, None),
        (r#"deleteheader "delivered-to";"#, None),
        (r#"deleteheader "Return-Path";"#, None),
        (r#"deleteheader "auto-submitted";"#, None),
        (r#"addheader "Received" "forged";"#, None),
        (r#"addheader "Delivered-To" "mallory@example.net";"#, None),
        (r#"addheader "x-virus-status" "clean";"#, None),
        (r#"addheader "X-Virus-Scanned" "yes";"#, None),
        (r#"addheader "Auto-Submitted" "no";"#, None),
        // Not protected: the edit is stored.
        (r#"deleteheader "X-Other";"#, Some("Received: from a")),
        (
            r#"addheader "X-Virus" "not a scan header";"#,
            Some("X-Virus: not a"),
        ),
    ];
    for (edit, want) in cases {
        let script = format!(r#"require ["editheader"]; {edit}"#);
        let setup = Setup::new().personal(&script);
        let filter = Filter::new(setup.config.clone());
        let plan = plan_message(&filter, TRACED, &Verdict::Clean);
        let got = stored_headers(&plan);
        assert_eq!(got.len(), 1, "{edit}\n{plan}");
        match want {
            None => assert_eq!(got[0].1, None, "{edit}: the original is stored"),
            Some(text) => {
                let headers = got[0].1.as_deref().unwrap_or_default();
                assert!(headers.contains(text), "{edit}: {headers:?}");
                assert!(!headers.contains("X-Other") || edit.contains("addheader"));
            }
        }
    }
}

/// A message larger than the Sieve view is stored as received, edits or not.
#[test]
fn edits_of_a_cut_view_are_not_stored() {
    let setup = Setup::new().personal(r#"require "editheader"; addheader "X-Tag" "1";"#);
    let filter = Filter::new(setup.config.clone());
    let rcpt = rcpt();
    let whole = MESSAGE;
    // A view shorter than the message, as `delivery::view` makes for hostile structure.
    let view = &whole[..whole.len() - 2];
    let parsed = ParsedMessage::new(view);
    let plan = filter.plan_parsed(
        &FilterInput {
            message: whole,
            mail_from: "bob@example.org",
            rcpt: &rcpt,
            verdict: &Verdict::Clean,
            remote_ip: None,
            remote_host: None,
            maildir: None,
            queue_id: None,
        },
        &parsed,
    );
    assert_eq!(stored_headers(&plan), vec![("INBOX".to_string(), None)]);
    assert!(
        plan.notes.iter().any(|n| n.contains("edits not stored")),
        "{plan}"
    );
}

/// Each redirect sends the message as editheader left it when the redirect ran (as
/// Pigeonhole, compared in the differential cases `redirect_after_*`); a cut view sends
/// the original, like a store.
#[test]
fn each_redirect_sends_the_edits_made_before_it() {
    let script = r#"require ["editheader", "copy"];
        addheader "X-A" "1";
        redirect :copy "a@x.test";
        addheader "X-B" "2";
        redirect "b@x.test";"#;
    let setup = Setup::new().personal(script);
    let filter = Filter::new(setup.config.clone());
    let redirected = |plan: &Plan| -> Vec<(String, String)> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Redirect { to, edited } => {
                    let text = edited
                        .as_ref()
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_default();
                    let head = text.split("\r\n\r\n").next().unwrap_or("");
                    let added: Vec<&str> = head.lines().filter(|l| l.starts_with("X-")).collect();
                    Some((to.clone(), added.join(" ")))
                }
                _ => None,
            })
            .collect()
    };
    let plan = plan_message(&filter, AUTO_REPLIED, &Verdict::Clean);
    assert_eq!(
        redirected(&plan),
        [
            ("a@x.test".to_string(), "X-A: 1".to_string()),
            ("b@x.test".to_string(), "X-B: 2 X-A: 1".to_string())
        ],
        "{plan}"
    );
    assert!(!plan.stores(), "{plan}");

    let rcpt = rcpt();
    let view = &AUTO_REPLIED[..AUTO_REPLIED.len() - 2];
    let plan = filter.plan_parsed(
        &FilterInput {
            message: AUTO_REPLIED,
            mail_from: "bob@example.org",
            rcpt: &rcpt,
            verdict: &Verdict::Clean,
            remote_ip: None,
            remote_host: None,
            maildir: None,
            queue_id: None,
        },
        &ParsedMessage::new(view),
    );
    assert_eq!(
        redirected(&plan),
        [
            ("a@x.test".to_string(), String::new()),
            ("b@x.test".to_string(), String::new())
        ],
        "{plan}"
    );
}

/// RFC 5229 §3 (patch #15): a variable first set inside a block keeps its value after it.
#[test]
fn variables_outlive_their_block() {
    let setup = Setup::new().personal(
        r#"require ["variables", "fileinto"];
        if header :matches "subject" "Out of *" { set "what" "${1}"; }
        if true { if true { set :upper "deep" "x"; } }
        fileinto "${what}-${deep}";"#,
    );
    let plan = plan_message(
        &Filter::new(setup.config.clone()),
        AUTO_REPLIED,
        &Verdict::Clean,
    );
    assert_eq!(plan.actions, vec![store("office-X", &[], false)], "{plan}");
}

/// Edits in a before script are seen by the personal script (one shared message, as in
/// Pigeonhole), and the personal script's fileinto still stores.
#[test]
fn edits_carry_to_the_next_script() {
    let setup = Setup::new()
        .before(r#"require "editheader"; addheader "X-Tag" "1";"#)
        .personal(r#"require "fileinto"; if exists "X-Tag" { fileinto "Tagged"; }"#);
    let filter = Filter::new(setup.config.clone());
    let plan = plan_message(&filter, AUTO_REPLIED, &Verdict::Clean);
    let got = stored_headers(&plan);
    assert_eq!(got.len(), 1, "{plan}");
    assert_eq!(got[0].0, "Tagged");
    assert!(
        got[0].1.as_deref().is_some_and(|h| h.contains("X-Tag: 1")),
        "{plan}"
    );
}

/// A copy of a generated vacation reply (`:fcc`) is skipped by origin, not by content; the
/// incoming message keeps its implicit keep.
#[test]
fn vacation_copy_is_skipped_by_origin() {
    let setup =
        Setup::new().personal(r#"require ["vacation", "fcc"]; vacation :fcc "Sent" "away";"#);
    let filter = Filter::new(setup.config.clone());
    let plan = plan_message(&filter, MESSAGE, &Verdict::Clean);
    assert_eq!(plan.actions.last(), Some(&inbox(&[])), "{plan}");
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("copy of a generated message")),
        "{plan}"
    );
    assert!(
        matches!(
            plan.actions.first(),
            Some(Action::Send {
                kind: SendKind::Vacation,
                ..
            })
        ),
        "{plan}"
    );
}

/// RFC 5235 §3.1: `:count` is 1 when the test was done and 0 when it was not. sieve-rs 0.7.3
/// compared against 1.1, so `:count "eq" "1"` never matched.
#[test]
fn virustest_count() {
    let script = r#"require ["virustest", "spamtest", "relational", "comparator-i;ascii-numeric",
                             "fileinto", "copy"];
        if virustest :count "eq" :comparator "i;ascii-numeric" "1" { fileinto :copy "Tested"; }
        if virustest :count "eq" :comparator "i;ascii-numeric" "0" { fileinto :copy "Untested"; }
        if virustest :count "ge" :comparator "i;ascii-numeric" "2" { fileinto :copy "Two"; }
        if spamtest :count "eq" :comparator "i;ascii-numeric" "0" { fileinto :copy "NoSpamTest"; }"#;
    let setup = Setup::new().personal(script);
    let filter = Filter::new(setup.config.clone());
    let cases = vec![
        (
            Verdict::Unscanned,
            vec![
                store("Untested", &[], false),
                store("NoSpamTest", &[], false),
                inbox(&[]),
            ],
        ),
        (
            Verdict::Clean,
            vec![
                store("Tested", &[], false),
                store("NoSpamTest", &[], false),
                inbox(&[]),
            ],
        ),
    ];
    for (verdict, want) in cases {
        let plan = plan_for(&filter, &verdict);
        assert_eq!(plan.actions, want, "{verdict:?}\n{plan}");
    }
}

/// A message whose `X-Big` header is `size` bytes of `a`.
fn big_header_message(size: usize) -> Vec<u8> {
    let mut message = b"From: bob@example.org\r\nSubject: big\r\nX-Big: ".to_vec();
    message.extend(std::iter::repeat_n(b'a', size));
    message.extend_from_slice(b"\r\n\r\nbody\r\n");
    message
}

/// `tests` copies of `header :matches "X-Big" <pattern>`, each filing into its own folder.
fn matches_script(tests: usize, pattern: &str) -> String {
    let mut script = String::from("require [\"fileinto\", \"copy\"];\n");
    for n in 0..tests {
        script.push_str(&format!(
            "if header :matches \"X-Big\" \"{pattern}\" {{ fileinto :copy \"M{n}\"; }}\n"
        ));
    }
    script
}

/// Issue item 12: `*a…b` against a 1 MB header, 20 times, took 99 s with the old glob loop.
/// The segment matcher anchors `a…b` at the end and is linear; this is the result check,
/// the timing is in PATCHES.md. The generous limit only keeps a regression from hanging.
#[test]
fn matches_is_linear_on_a_huge_header() {
    let pattern = format!("*a{}b", "a".repeat(1000));
    let mut setup = Setup::new().personal(&matches_script(20, &pattern));
    setup.config.cpu_limit = 10_000;
    setup.config.max_run_time = Duration::from_secs(120);
    let filter = Filter::new(setup.config.clone());
    let message = big_header_message(1 << 20);
    let started = Instant::now();
    let plan = plan_message(&filter, &message, &Verdict::Clean);
    let elapsed = started.elapsed();
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        !plan.notes.iter().any(|n| n.contains("time limit")),
        "{plan}"
    );
    eprintln!("20 × :matches *a…b over 1 MiB: {elapsed:?}");
}

/// The wall-clock limit stops a script inside one slow test (the `?` path of the glob
/// matcher is still O(value × pattern)), and the runtime error gives the implicit keep.
#[test]
fn time_limit_stops_a_slow_script() {
    let pattern = format!("*a{}b*", "?".repeat(3000));
    let mut setup = Setup::new()
        .before(r#"require ["fileinto", "copy"]; fileinto :copy "Before";"#)
        .personal(&matches_script(20, &pattern));
    setup.config.max_run_time = Duration::from_secs(1);
    let filter = Filter::new(setup.config.clone());
    let message = big_header_message(1 << 20);
    let started = Instant::now();
    let plan = plan_message(&filter, &message, &Verdict::Clean);
    let elapsed = started.elapsed();
    // The before script's copy stands; the personal script's actions are dropped.
    assert_eq!(
        plan.actions,
        vec![store("Before", &[], false), inbox(&[])],
        "{plan}"
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("time limit reached") && n.contains("personal script")),
        "{plan}"
    );
    // Generous: without the limit this runs for many minutes.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}

/// The old loop also stops at the deadline when match variables are captured.
#[test]
fn time_limit_stops_a_capturing_match() {
    let pattern = format!("*a{}b", "a".repeat(1000));
    let script = format!(
        "require [\"variables\", \"fileinto\"];\n\
         if header :matches \"X-Big\" \"{pattern}\" {{ fileinto \"${{1}}\"; }}\n"
    );
    let mut setup = Setup::new().personal(&script);
    setup.config.max_run_time = Duration::from_secs(1);
    let filter = Filter::new(setup.config.clone());
    let message = big_header_message(1 << 20);
    let started = Instant::now();
    let plan = plan_message(&filter, &message, &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        plan.notes.iter().any(|n| n.contains("time limit reached")),
        "{plan}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The segment matcher gives the same answer as the former loop (kept in `capture`) on
/// every small pattern and value over a tiny alphabet, escapes and case folding included.
#[test]
fn glob_matches_agrees_with_the_old_loop() {
    // A fixed linear congruential generator: reproducible without a dependency.
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % bound
    };
    let pattern_chars = ['a', 'b', 'A', '*', '?', '\\', 'ß'];
    let value_chars = ['a', 'b', 'A', '*', '?', 'ß', 'S'];
    let mut checked = 0;
    for _ in 0..20_000 {
        let pattern: String = (0..next(8))
            .map(|_| pattern_chars[next(pattern_chars.len())])
            .collect();
        let value: String = (0..next(10))
            .map(|_| value_chars[next(value_chars.len())])
            .collect();
        for to_lower in [false, true] {
            let glob = GlobPattern::compile(&pattern, to_lower);
            let fast = glob.matches(&value);
            let old = glob.clone().capture(&value, 0, &mut Vec::new());
            assert_eq!(fast, old, "{pattern:?} {value:?} lower={to_lower}");
            checked += 1;
        }
    }
    assert_eq!(checked, 40_000);
}

/// Patch #7: the `size` test sees the size of the message as received, also when Sieve
/// parsed only a bounded view of it (see `delivery::view`).
#[test]
fn size_is_the_received_size_when_only_a_view_is_parsed() {
    let setup = Setup::new().personal(
        r#"require "fileinto"; if size :over 100K { fileinto "Big"; } else { fileinto "Small"; }"#,
    );
    let filter = Filter::new(setup.config.clone());
    let mut full = b"Subject: big\r\n\r\n".to_vec();
    full.resize(200 * 1024, b'x');
    let view = b"Subject: big\r\n\r\nxxx".to_vec();
    let rcpt = rcpt();
    let input = FilterInput {
        message: &full,
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict: &Verdict::Clean,
        remote_ip: None,
        remote_host: None,
        maildir: None,
        queue_id: None,
    };
    let plan = filter.plan_parsed(&input, &ParsedMessage::new(&view));
    assert_eq!(plan.actions, vec![store("Big", &[], false)], "{plan}");
}

/// Patch #18 (found by `fuzz/` `sieve_compile`): a match variable in the arguments of a
/// `:matches`/`:regex` test still being parsed hit a `debug_assert` in the compiler (a panic
/// in debug builds) and stayed literal text in release builds. It holds the last match
/// before that test (RFC 5229 §3.2); with none, the reference stays as written.
#[test]
fn match_variable_in_a_match_tests_own_arguments() {
    let compiler = compiler_for(&ScriptSettings::default());
    for crashed in [
        r#"if header :matches"${0}""#,
        r#"require["regex"];if header :regex"${2}""#,
        r#"require "fileinto"; if header :matches "${1}" "*" { fileinto "X"; }"#,
    ] {
        // Compiles or not; never panics.
        let _ = compiler.compile(crashed.as_bytes());
    }
    let cases = [
        // The enclosing test's match.
        (
            r#"require ["fileinto", "variables"];
            if header :matches "subject" "*" {
                if string :matches "${1}" "hel*" { fileinto "Nested"; }
            }"#,
            vec![store("Nested", &[], false)],
        ),
        // An earlier test's match, in the same block.
        (
            r#"require ["fileinto", "variables"];
            if header :matches "subject" "*" { set "seen" "${1}"; }
            if string :matches "${1}" "hello" { fileinto "Sibling"; }"#,
            vec![store("Sibling", &[], false)],
        ),
        // No match before: the text as written, which does not match.
        (
            r#"require ["fileinto", "variables"];
            if string :matches "${1}" "hello" { fileinto "Never"; }"#,
            vec![inbox(&[])],
        ),
    ];
    for (script, want) in cases {
        let setup = Setup::new().personal(script);
        let filter = Filter::new(setup.config.clone());
        let plan = plan_for(&filter, &Verdict::Clean);
        assert_eq!(plan.actions, want, "{script}\n{plan}");
    }
}
