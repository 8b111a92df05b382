//! The AV policy through the real binary and the real clamd: `[scanner] ignore_signatures`,
//! `[domain."..."]` (ignore_signatures, min_virustest, notices) and `[quarantine]
//! sample_recipients`. The test database has two families of each kind (`PUA.Sievegate.*`
//! and `PUA.Test.*`, `Heuristics.Sievegate.*` and `Heuristics.Test.*`), so a glob can be
//! shown to ignore one family and not its neighbour.

use std::path::PathBuf;
use std::time::Duration;

use crate::metrics::{metrics_addr, scrape};
use crate::quarantine::{cli, failed, list, ok, send, strings};
use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message};
use crate::support::smtp_sink::SmtpSink;

/// What `PUA.Test.Sample` matches (virustest 4).
const PUA_TEST: &str = "SIEVEGATE-PUA-TEST-MARKER-2c7e51d9";
/// What `PUA.Sievegate.TestPattern` matches (virustest 4).
const PUA_SIEVEGATE: &str = "SIEVEGATE-PUA-MARKER-8b3d6a07";
/// What `Heuristics.Test.Phishing` matches (virustest 4).
const PHISHING_TEST: &str = "SIEVEGATE-PHISHING-TEST-MARKER-93a0f6b4";

/// A message whose body carries `marker`, with a Message-ID of its own.
fn marked(marker: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: tool {id}\r\nMessage-ID: <{id}@remote.example>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\n\r\nsee the attached tool: {marker}\r\n"
    )
    .into_bytes()
}

/// EICAR with a Message-ID of its own.
fn eicar(id: &str) -> Vec<u8> {
    let message = String::from_utf8(infected_message()).expect("ASCII");
    message
        .replace(
            "<virus.1@forged.example>",
            &format!("<{id}@forged.example>"),
        )
        .into_bytes()
}

/// Quarantine and state on; `extra` sections and `scanner` keys added.
fn options(scanner: &[&str], extra: &[&str]) -> Options {
    let mut options = Options::new(Clamd::shared().addr());
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\ndir = \"quarantine\"".to_string(),
        "[state]\ndir = \"state\"".to_string(),
    ];
    options
        .extra_sections
        .extend(extra.iter().map(|s| s.to_string()));
    options.scanner_extra = scanner.iter().map(|s| s.to_string()).collect();
    options
}

/// Puts `key = value` lines into the `[quarantine]` table of `options`.
fn quarantine_keys(options: &mut Options, keys: &str) {
    options.extra_sections[0].push_str(&format!("\n{keys}"));
}

/// Every message file of `user@other.example`'s INBOX.
fn other_inbox(env: &Env, user: &str) -> Vec<PathBuf> {
    let base = env
        .dir
        .path()
        .join("mail/other.example")
        .join(user)
        .join("Maildir");
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(base.join(sub)) {
            out.extend(entries.flatten().map(|e| e.path()));
        }
    }
    out
}

/// The 250 of every recipient, in order.
fn all_accepted(out: &str, rcpts: &[&str], server: &Running) {
    for rcpt in rcpts {
        assert!(
            out.contains(&format!("250 2.0.0 <{rcpt}>")),
            "{rcpt}: {out}\n{}",
            server.logs()
        );
    }
}

#[test]
fn ignore_signatures_globally_turns_one_family_clean_and_counts_it() {
    let mut options = options(&["ignore_signatures = [\"PUA.Test.*\"]"], &[]);
    options
        .server_extra
        .push("metrics_listen = \"127.0.0.1:0\"".into());
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let metrics = metrics_addr(&server);

    // The ignored family: clean for everyone, stored, Sieve saw virustest 1.
    let out = send(
        &server,
        "s@remote.example",
        &["alice@example.test"],
        &marked(PUA_TEST, "ignored"),
    );
    all_accepted(&out, &["alice@example.test"], &server);
    let inbox = env.messages("alice", "");
    assert_eq!(inbox.len(), 1, "{}", server.logs());
    let stored = String::from_utf8_lossy(&inbox[0].1);
    assert!(stored.contains("X-Virus-Status: Clean\r\n"), "{stored}");
    assert!(stored.contains(PUA_TEST), "stored unmodified");
    let needle = "signature PUA.Test.Sample.UNOFFICIAL ignored for alice@example.test";
    let logs = server.wait_for_log(needle);
    let line = (logs.lines())
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line about the ignored signature:\n{logs}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("(ignore_signatures \"PUA.Test.*\")"),
        "{line}"
    );

    // The neighbouring families are still infected: quarantined, nowhere in a Maildir.
    for (marker, id) in [(PUA_SIEVEGATE, "pua"), (PHISHING_TEST, "phishing")] {
        let out = send(
            &server,
            "s@remote.example",
            &["alice@example.test"],
            &marked(marker, id),
        );
        all_accepted(&out, &["alice@example.test"], &server);
    }
    let out = send(
        &server,
        "s@remote.example",
        &["alice@example.test"],
        &eicar("eicar"),
    );
    all_accepted(&out, &["alice@example.test"], &server);
    assert_eq!(env.messages("alice", "").len(), 1, "only the ignored one");
    let entries = list(&env.config_path, &[]);
    let mut viruses: Vec<String> = entries
        .iter()
        .flat_map(|e| strings(&e["viruses"]))
        .collect();
    viruses.sort();
    assert_eq!(
        viruses,
        [
            "Heuristics.Test.Phishing.UNOFFICIAL",
            "PUA.Sievegate.TestPattern.UNOFFICIAL",
            "Sievegate.Test.EICAR.UNOFFICIAL"
        ]
    );

    let samples = scrape(metrics);
    assert_eq!(
        samples.get("sievegate_ignored_signatures_total{pattern=\"PUA.Test.*\"}"),
        Some(&1.0),
        "{samples:#?}"
    );
}

#[test]
fn one_message_is_clean_for_an_ignoring_domain_and_quarantined_for_a_strict_one() {
    let options = options(
        &[],
        &["[domain.\"example.test\"]\nignore_signatures = [\"PUA.Test.*\"]"],
    );
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let rcpts = ["alice@example.test", "bob@other.example"];
    let out = send(
        &server,
        "s@remote.example",
        &rcpts,
        &marked(PUA_TEST, "two-domains"),
    );
    all_accepted(&out, &rcpts, &server);

    let inbox = env.messages("alice", "");
    assert_eq!(
        inbox.len(),
        1,
        "alice's domain ignores it: {}",
        server.logs()
    );
    let stored = String::from_utf8_lossy(&inbox[0].1);
    assert!(stored.contains("X-Virus-Status: Clean\r\n"), "{stored}");
    assert!(
        other_inbox(&env, "bob").is_empty(),
        "bob's copy is not delivered"
    );
    assert_eq!(env.total_messages(), 1);

    // The entry holds bob only: a release can never give alice a second copy.
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(strings(&entries[0]["recipients"]), ["bob@other.example"]);
    assert_eq!(
        strings(&entries[0]["viruses"]),
        ["PUA.Test.Sample.UNOFFICIAL"]
    );
    let logs = server.logs();
    assert!(
        logs.contains("signature PUA.Test.Sample.UNOFFICIAL ignored for alice@example.test"),
        "{logs}"
    );
    assert!(
        !logs.contains("ignored for bob@other.example"),
        "the strict domain ignores nothing: {logs}"
    );
}

#[test]
fn min_virustest_per_domain_decides_quarantine_or_discard() {
    let mut options = options(&[], &["[domain.\"other.example\"]\nmin_virustest = 5"]);
    quarantine_keys(&mut options, "min_virustest = 4");
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let rcpts = ["alice@example.test", "bob@other.example"];

    // virustest 4: held for alice (global 4), discarded for bob (his domain says 5).
    let out = send(
        &server,
        "s@remote.example",
        &rcpts,
        &marked(PHISHING_TEST, "heuristic"),
    );
    all_accepted(&out, &rcpts, &server);
    // virustest 5: held for both.
    let out = send(&server, "s@remote.example", &rcpts, &eicar("named"));
    all_accepted(&out, &rcpts, &server);
    assert_eq!(env.total_messages(), 0, "nothing in any Maildir");

    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let held = |virus: &str| {
        let e = (entries.iter())
            .find(|e| strings(&e["viruses"])[0] == virus)
            .unwrap_or_else(|| panic!("no entry for {virus}: {entries:?}"));
        strings(&e["recipients"])
    };
    assert_eq!(
        held("Heuristics.Test.Phishing.UNOFFICIAL"),
        ["alice@example.test"]
    );
    assert_eq!(
        held("Sievegate.Test.EICAR.UNOFFICIAL"),
        ["alice@example.test", "bob@other.example"]
    );
    let logs = server.logs();
    let bob_heuristic = logs
        .lines()
        .find(|l| l.contains("to=bob@other.example") && l.contains("virustest=4"))
        .unwrap_or_else(|| panic!("no log line for bob's heuristic copy:\n{logs}"));
    assert!(
        bob_heuristic.contains("actions=discarded"),
        "{bob_heuristic}"
    );
}

#[test]
fn notices_off_for_a_domain_send_no_postmaster_notice() {
    let sink = SmtpSink::start();
    let notify = format!(
        "[notify]\npostmaster = \"postmaster@noc.example.net\"\nrelay = \"{}\"",
        sink.addr()
    );
    let options = options(
        &[],
        &[&notify, "[domain.\"other.example\"]\nnotices = false"],
    );
    let env = Env::new(options);
    let server = Running::start(&env.config_path);

    let out = send(
        &server,
        "s@remote.example",
        &["bob@other.example"],
        &eicar("silent"),
    );
    all_accepted(&out, &["bob@other.example"], &server);
    let out = send(
        &server,
        "s@remote.example",
        &["alice@example.test"],
        &eicar("told"),
    );
    all_accepted(&out, &["alice@example.test"], &server);

    // The second message's notice arrives; the first's (queued earlier) never does.
    let sent = sink.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let sent_now = sink.transactions();
    assert_eq!(sent_now.len(), 1, "{sent:#?}\n{}", server.logs());
    let notice = String::from_utf8_lossy(&sent_now[0].message).into_owned();
    assert!(notice.contains("told@forged.example"), "{notice}");
    assert!(!notice.contains("silent@forged.example"), "{notice}");
    // Both were quarantined all the same: notices are about telling, not keeping.
    assert_eq!(list(&env.config_path, &[]).len(), 2);
    assert_eq!(env.total_messages(), 0);
}

#[test]
fn a_sample_recipient_gets_infected_mail_only_as_a_quarantine_entry() {
    // Named viruses only are quarantined for everyone else; the abuse desk still gets
    // heuristic samples.
    let mut options = options(&[], &[]);
    quarantine_keys(
        &mut options,
        "min_virustest = 5\nsample_recipients = [\"abuse@example.test\"]",
    );
    let env = Env::new(options);
    // Its scripts would file and keep: they are not run for infected mail.
    env.set_personal(
        "abuse",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Samples\";\nkeep;\n",
    );
    let server = Running::start(&env.config_path);

    let message = eicar("sample");
    let out = send(
        &server,
        "s@remote.example",
        &["Abuse@example.test"],
        &message,
    );
    all_accepted(&out, &["Abuse@example.test"], &server);
    let heuristic = marked(PHISHING_TEST, "sample-heuristic");
    let rcpts = ["abuse@example.test", "alice@example.test"];
    let out = send(&server, "s@remote.example", &rcpts, &heuristic);
    all_accepted(&out, &rcpts, &server);
    assert_eq!(
        env.total_messages(),
        0,
        "nothing in any Maildir: {}",
        server.logs()
    );

    // Where the desk finds its entries.
    let entries = list(&env.config_path, &["--rcpt", "abuse@example.test"]);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let entry = |virus: &str| {
        (entries.iter())
            .find(|e| strings(&e["viruses"])[0] == virus)
            .unwrap_or_else(|| panic!("no entry for {virus}: {entries:?}"))
    };
    let named = entry("Sievegate.Test.EICAR.UNOFFICIAL");
    assert_eq!(
        strings(&named["resolved_recipients"]),
        ["abuse@example.test"]
    );
    // alice's copy of the heuristic hit is discarded (min_virustest 5); the desk's is held.
    let heur = entry("Heuristics.Test.Phishing.UNOFFICIAL");
    assert_eq!(strings(&heur["recipients"]), ["abuse@example.test"]);

    // The desk fetches the exact bytes.
    let id = named["id"].as_str().expect("id");
    let raw = cli(&env.config_path, &["show", "--raw", id]);
    assert_eq!(ok(&raw).into_bytes(), message);
    // Never into its mailbox, not even by force.
    let err = failed(&cli(&env.config_path, &["release", id, "--force"]));
    assert!(err.contains("sample recipient"), "{err}");
    assert_eq!(env.total_messages(), 0);
    let logs = server.logs();
    assert!(
        logs.contains(
            "sample recipient: infected mail is kept in the quarantine only, Sieve not run"
        ),
        "{logs}"
    );

    // Clean mail to the desk is delivered normally, through its scripts.
    let out = send(
        &server,
        "s@remote.example",
        &["abuse@example.test"],
        &clean_message("hello desk"),
    );
    all_accepted(&out, &["abuse@example.test"], &server);
    assert_eq!(
        env.messages("abuse", ".Samples").len(),
        1,
        "{}",
        server.logs()
    );
    assert_eq!(env.messages("abuse", "").len(), 1);
}

#[test]
fn a_release_after_the_domain_ignores_the_signature_delivers_to_that_domain_only() {
    let env = Env::new(options(&[], &[]));
    let server = Running::start(&env.config_path);
    let rcpts = ["alice@example.test", "bob@other.example"];
    let out = send(
        &server,
        "s@remote.example",
        &rcpts,
        &marked(PUA_TEST, "held-first"),
    );
    all_accepted(&out, &rcpts, &server);
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(strings(&entries[0]["recipients"]), rcpts);
    let id = entries[0]["id"].as_str().expect("id").to_string();

    // The admin accepts the false positive for example.test only.
    let mut text = std::fs::read_to_string(&env.config_path).expect("config");
    text.push_str("\n[domain.\"example.test\"]\nignore_signatures = [\"PUA.Test.*\"]\n");
    std::fs::write(&env.config_path, text).expect("config");

    // bob's domain still calls it infected: releasing everyone is refused, nothing moves.
    let err = failed(&cli(&env.config_path, &["release", &id]));
    assert!(
        err.contains(&format!(
            "{id} is still infected (PUA.Test.Sample.UNOFFICIAL): not released"
        )),
        "{err}"
    );
    assert_eq!(env.total_messages(), 0);
    // alice alone: clean for her now, through the pipeline.
    let stdout = ok(&cli(
        &env.config_path,
        &["release", &id, "--rcpt", "alice@example.test"],
    ));
    assert!(
        stdout.contains("alice@example.test: stored INBOX"),
        "{stdout}"
    );
    let inbox = env.messages("alice", "");
    assert_eq!(inbox.len(), 1);
    let stored = String::from_utf8_lossy(&inbox[0].1);
    assert!(stored.contains("X-Virus-Status: Clean\r\n"), "{stored}");
    assert!(other_inbox(&env, "bob").is_empty());
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "no new entry: {entries:?}");
    assert_eq!(strings(&entries[0]["held"]), ["bob@other.example"]);
}
