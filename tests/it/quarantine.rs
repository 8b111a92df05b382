//! The quarantine through the real binary: `serve` quarantines, the `quarantine` CLI reads
//! the same SQLite index and files, a real clamd scans (and rescans on release).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::binary::{bin, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message, transaction_as};

pub(crate) fn quarantine_options(clamd: &Clamd) -> Options {
    let mut options = Options::new(clamd.addr());
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\ndir = \"quarantine\"\n".to_string(),
        "[state]\ndir = \"state\"\n".to_string(),
    ];
    options
}

/// One transaction with XFORWARD (the MTA's client) from `mail_from` to `rcpts`.
pub(crate) fn send(server: &Running, mail_from: &str, rcpts: &[&str], message: &[u8]) -> String {
    let input = transaction_as(
        "XFORWARD ADDR=203.0.113.7 HELO=bad.example IDENT=4QxYz1\r\n",
        mail_from,
        rcpts,
        message,
    );
    let mut stream = tcp(server.addr);
    stream.write_all(&input).expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `sievegate quarantine -c CONFIG args...`.
pub(crate) fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("quarantine")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("run sievegate quarantine")
}

pub(crate) fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn list(config: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let out = ok(&cli(config, &all));
    match serde_json::from_str(&out).expect("one JSON document") {
        Value::Array(entries) => entries,
        other => panic!("not an array: {other}"),
    }
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn infected_mail_to_two_recipients_is_quarantined_once() {
    let clamd = Clamd::shared();
    let env = Env::new(quarantine_options(clamd));
    let server = Running::start(&env.config_path);
    let message = infected_message();

    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test", "Bob+x@example.test"],
        &message,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert!(out.contains("250 2.0.0 <Bob+x@example.test>"), "{out}");
    assert_eq!(env.total_messages(), 0, "nothing in any Maildir");

    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    let id = e["id"].as_str().expect("id").to_string();
    assert_eq!(
        strings(&e["recipients"]),
        ["alice@example.test", "Bob+x@example.test"]
    );
    assert_eq!(
        strings(&e["resolved_recipients"]),
        ["alice@example.test", "bob@example.test"]
    );
    assert_eq!(strings(&e["viruses"]), ["Sievegate.Test.EICAR.UNOFFICIAL"]);
    assert_eq!(e["sender"], "mallory@forged.example");
    assert_eq!(e["client_ip"], "203.0.113.7");
    assert_eq!(e["client_helo"], "bad.example");
    assert_eq!(e["queue_id"], "4QxYz1");
    assert_eq!(e["subject"], "invoice");
    assert_eq!(e["message_id"], "<virus.1@forged.example>");
    assert_eq!(e["size"], message.len() as u64);
    assert_eq!(e["backscatter"], false);
    assert!(
        e["received_at"].as_str().expect("time").ends_with('Z'),
        "{e}"
    );
    let logs = server.wait_for_log(&format!("quarantined {id}"));
    assert_eq!(
        logs.matches(&format!("actions=quarantined {id}")).count(),
        2,
        "{logs}"
    );

    // show --raw: the bytes as received; show: metadata and headers.
    let raw = cli(&env.config_path, &["show", &id, "--raw"]);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, message, "show --raw is byte for byte");
    let shown = ok(&cli(&env.config_path, &["show", &id]));
    assert!(shown.contains("Sievegate.Test.EICAR.UNOFFICIAL"), "{shown}");
    assert!(shown.contains("Subject: invoice\r\n"), "{shown}");
    assert!(!shown.contains("X5O!P%"), "headers only: {shown}");
    let table = ok(&cli(&env.config_path, &["list"]));
    assert!(
        table.contains(&id) && table.contains("1 entries"),
        "{table}"
    );

    // An infected bounce (null sender) is marked backscatter.
    let out = send(&server, "", &["alice@example.test"], &message);
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["backscatter"], true);
    assert_eq!(entries[1]["sender"], "");

    // Filters.
    assert_eq!(
        list(&env.config_path, &["--rcpt", "bob@example.test"]).len(),
        1
    );
    assert_eq!(
        list(&env.config_path, &["--rcpt", "ALICE@example.test"]).len(),
        2
    );
    assert_eq!(list(&env.config_path, &["--virus", "eicar"]).len(), 2);
    assert_eq!(list(&env.config_path, &["--virus", "trojan"]).len(), 0);
    assert_eq!(list(&env.config_path, &["--since", "2000-01-01"]).len(), 2);
    assert_eq!(list(&env.config_path, &["--since", "2999-01-01"]).len(), 0);
    let err = failed(&cli(&env.config_path, &["list", "--since", "soon"]));
    assert!(err.contains("not a date"), "{err}");

    // Clean mail is not quarantined.
    let out = send(
        &server,
        "a@remote.example",
        &["alice@example.test"],
        &clean_message("hello"),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(env.messages("alice", "").len(), 1);
    assert_eq!(list(&env.config_path, &[]).len(), 2);

    // Delete; unknown ids fail clearly.
    ok(&cli(&env.config_path, &["delete", &id]));
    assert!(!env
        .dir
        .path()
        .join("quarantine")
        .join(format!("{id}.eml"))
        .exists());
    assert_eq!(list(&env.config_path, &[]).len(), 1);
    for args in [
        vec!["show", id.as_str()],
        vec!["delete", id.as_str()],
        vec!["release", id.as_str()],
    ] {
        let err = failed(&cli(&env.config_path, &args));
        assert!(
            err.contains(&format!("no quarantine entry \"{id}\"")),
            "{args:?}: {err}"
        );
    }
    let err = failed(&cli(
        &env.config_path,
        &["show", "../../etc/passwd", "--raw"],
    ));
    assert!(err.contains("is not a quarantine id"), "{err}");

    // Purge: nothing is a day old; everything is older than 0 days.
    assert!(
        ok(&cli(&env.config_path, &["purge", "--older-than", "1"])).contains("0 entries purged")
    );
    assert!(
        ok(&cli(&env.config_path, &["purge", "--older-than", "0"])).contains("1 entries purged")
    );
    assert!(list(&env.config_path, &[]).is_empty());
    let left: Vec<_> = std::fs::read_dir(env.dir.path().join("quarantine"))
        .expect("dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn quarantine_write_failure_defers_every_recipient() {
    let clamd = Clamd::shared();
    let env = Env::new(quarantine_options(clamd));
    // A file where the quarantine directory should be.
    std::fs::write(env.dir.path().join("quarantine"), b"in the way").expect("write");
    let server = Running::start(&env.config_path);
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test", "bob@example.test"],
        &infected_message(),
    );
    assert!(out.contains("451 4.3.0 <alice@example.test>"), "{out}");
    assert!(out.contains("451 4.3.0 <bob@example.test>"), "{out}");
    assert_eq!(env.total_messages(), 0);
    let logs = server.wait_for_log("quarantine write failed");
    assert!(logs.contains("quarantine write failed"), "{logs}");

    // Fixed: the MTA's retry is quarantined; nothing was lost.
    std::fs::remove_file(env.dir.path().join("quarantine")).expect("rm");
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test", "bob@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(list(&env.config_path, &[]).len(), 1);
}

#[test]
fn release_refuses_infected_forces_into_inbox_and_delivers_through_sieve_once_clean() {
    let mut clamd = Clamd::start();
    let env = Env::new(quarantine_options(&clamd));
    // Sieve must run on a clean release, and must not on a forced one.
    env.set_personal(
        "alice",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Released\";\n",
    );
    env.set_personal(
        "bob",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Elsewhere\";\n",
    );
    let server = Running::start(&env.config_path);
    let message = crate::support::load_message("eicar-plain.eml");
    let out = send(
        &server,
        "sender@example.org",
        &["alice@example.test", "bob@example.test"],
        &message,
    );
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
    let entries = list(&env.config_path, &[]);
    let id = entries[0]["id"].as_str().expect("id").to_string();

    // Still infected: refused without --force.
    let err = failed(&cli(&env.config_path, &["release", &id]));
    assert!(err.contains("still infected"), "{err}");
    assert_eq!(env.total_messages(), 0);
    // --rcpt must be one of the entry's recipients.
    let err = failed(&cli(
        &env.config_path,
        &["release", &id, "--rcpt", "carol@example.test", "--force"],
    ));
    assert!(err.contains("not a recipient"), "{err}");

    // --force for bob: INBOX, no Sieve, and the log names who did it.
    let forced = Command::new(bin())
        .args([
            "quarantine",
            "release",
            "--force",
            "--rcpt",
            "bob@example.test",
            "-c",
        ])
        .arg(&env.config_path)
        .arg(&id)
        .env("SUDO_USER", "admin-anna")
        .output()
        .expect("run");
    let stdout = ok(&forced);
    assert!(stdout.contains("released by admin-anna"), "{stdout}");
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(
        stderr.contains("released from quarantine by admin-anna with --force"),
        "{stderr}"
    );
    assert_eq!(env.messages("bob", "").len(), 1, "bob's INBOX");
    assert!(
        env.messages("bob", ".Elsewhere").is_empty(),
        "Sieve did not run"
    );
    assert!(env.messages("alice", "").is_empty() && env.messages("alice", ".Released").is_empty());
    // Release is per recipient: bob is recorded, alice is still held.
    let entry = &list(&env.config_path, &[])[0];
    assert_eq!(entry["releases"][0]["rcpt"], "bob@example.test");
    assert_eq!(entry["releases"][0]["released_by"], "admin-anna");
    assert!(entry["releases"][0]["released_at"].is_string(), "{entry}");
    assert_eq!(strings(&entry["held"]), ["alice@example.test"]);
    assert!(entry["released_at"].is_null(), "{entry}");
    // Bob a second time: refused, clearly, and nothing delivered.
    let err = failed(&cli(
        &env.config_path,
        &["release", &id, "--rcpt", "bob@example.test", "--force"],
    ));
    assert!(
        err.contains(&format!(
            "bob@example.test was already released from {id} by admin-anna at "
        )) && err.contains("not delivered again"),
        "{err}"
    );
    assert_eq!(env.messages("bob", "").len(), 1);

    // The signature turns out to be a false positive: remove it, restart clamd, release.
    let ndb = clamd.db_dir().join("sievegate-test.ndb");
    let kept: String = std::fs::read_to_string(&ndb)
        .expect("ndb")
        .lines()
        .filter(|l| !l.starts_with("Sievegate.Test.EICAR:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&ndb, kept).expect("write ndb");
    clamd.restart();
    let stdout = ok(&cli(
        &env.config_path,
        &["release", &id, "--rcpt", "alice@example.test"],
    ));
    assert!(
        stdout.contains("alice@example.test: stored Released"),
        "{stdout}"
    );
    let stored = env.messages("alice", ".Released");
    assert_eq!(stored.len(), 1, "delivered through alice's Sieve script");
    let (_, body) = crate::support::env::split_trace(&stored[0].1);
    assert_eq!(
        body,
        message.as_slice(),
        "the original bytes after our trace headers"
    );
    let entry = &list(&env.config_path, &[])[0];
    assert!(entry["released_at"].is_string(), "{entry}");
    assert!(strings(&entry["held"]).is_empty(), "{entry}");
    assert_eq!(entry["releases"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        env.messages("bob", "").len(),
        1,
        "bob untouched by the second release"
    );
    // A third release (no --rcpt: every held recipient) finds no one: refused, and no
    // second copy for anyone.
    let err = failed(&cli(&env.config_path, &["release", &id]));
    assert!(
        err.contains(&format!("{id}: every recipient was already released")),
        "{err}"
    );
    assert_eq!(env.messages("alice", ".Released").len(), 1);
    assert_eq!(env.messages("bob", "").len(), 1);
    let shown = ok(&cli(&env.config_path, &["show", &id]));
    assert!(
        shown.contains("released rcpt: bob@example.test at ") && shown.contains(" by admin-anna"),
        "{shown}"
    );
}

#[test]
fn state_survives_kill_9_of_the_server() {
    let clamd = Clamd::shared();
    let env = Env::new(quarantine_options(clamd));
    let mut server = Running::start(&env.config_path);
    for n in 0..3 {
        let out = send(
            &server,
            "mallory@forged.example",
            &[&format!("u{n}@example.test")],
            &infected_message(),
        );
        assert!(out.contains("250 2.0.0"), "{out}");
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.pid(), libc::SIGKILL) };
    drop(server);
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 3, "{entries:?}");
    for e in &entries {
        let id = e["id"].as_str().expect("id");
        let raw = cli(&env.config_path, &["show", id, "--raw"]);
        assert_eq!(raw.stdout, infected_message());
    }
    // And the server starts again on the same store.
    server = Running::start(&env.config_path);
    let out = send(
        &server,
        "mallory@forged.example",
        &["u9@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0"), "{out}");
    assert_eq!(list(&env.config_path, &[]).len(), 4);
}

#[test]
fn a_global_sieve_script_quarantines_per_domain_and_a_personal_one_cannot() {
    let clamd = Clamd::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.sieve");
    // Heuristic hits (virustest 4) are below min_virustest = 5: only the script decides.
    std::fs::write(
        &policy,
        "require [\"vnd.sievegate.quarantine\", \"virustest\", \"relational\", \"comparator-i;ascii-numeric\", \"envelope\"];\n\
         if virustest :value \"ge\" :comparator \"i;ascii-numeric\" \"4\" {\n\
         \x20   if envelope :domain \"to\" \"other.example\" { quarantine; }\n\
         \x20   discard;\n\
         \x20   stop;\n\
         }\n",
    )
    .expect("write policy");
    let mut options = quarantine_options(clamd);
    options.extra_sections[0] =
        "[quarantine]\nenabled = true\ndir = \"quarantine\"\nmin_virustest = 5\n".into();
    options.before = Some(vec![policy.display().to_string()]);
    let env = Env::new(options);
    env.set_personal(
        "carol",
        "require \"vnd.sievegate.quarantine\";\nquarantine;\n",
    );
    let server = Running::start(&env.config_path);
    let heuristic = crate::support::load_message("heuristic.eml");

    let out = send(
        &server,
        "sender@example.org",
        &[
            "alice@other.example",
            "bob@example.test",
            "dave@other.example",
        ],
        &heuristic,
    );
    assert_eq!(out.matches("250 2.0.0 <").count(), 3, "{out}");
    assert_eq!(env.total_messages(), 0);
    let entries = list(&env.config_path, &[]);
    assert_eq!(
        entries.len(),
        1,
        "once per message: {entries:?}\n{}",
        server.logs()
    );
    assert_eq!(
        strings(&entries[0]["viruses"]),
        ["Heuristics.Sievegate.TestPattern.UNOFFICIAL"]
    );
    assert_eq!(entries[0]["virustest"], 4);
    // Only the recipients whose chain asked for quarantine are held by the entry: bob's
    // copy was discarded, so a release must never reach him.
    assert_eq!(
        strings(&entries[0]["recipients"]),
        ["alice@other.example", "dave@other.example"]
    );
    let id = entries[0]["id"].as_str().expect("id").to_string();
    let logs = server.wait_for_log(&format!("actions=quarantined {id}"));
    // Each recipient's line says what became of its copy: alice and dave are held, bob's
    // own chain discarded it (not "quarantined", which would send an admin looking for it).
    for (rcpt, held) in [
        ("alice@other.example", true),
        ("bob@example.test", false),
        ("dave@other.example", true),
    ] {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("to={rcpt} ")) && l.contains("actions="))
            .unwrap_or_else(|| panic!("no line for {rcpt}:\n{logs}"));
        assert_eq!(
            line.contains(&format!("actions=quarantined {id}")),
            held,
            "{line}"
        );
    }

    // Release (forced: heuristics still hit): alice and dave once each, bob never; a second
    // release delivers nothing.
    let stdout = ok(&cli(&env.config_path, &["release", &id, "--force"]));
    assert!(
        stdout.contains("alice@other.example: ") && stdout.contains("dave@other.example: "),
        "{stdout}"
    );
    assert!(!stdout.contains("bob@"), "{stdout}");
    for user in ["alice", "dave"] {
        let new = env
            .dir
            .path()
            .join("mail/other.example")
            .join(user)
            .join("Maildir/new");
        let n = std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 1, "{user}: one copy in INBOX");
    }
    assert!(env.messages("bob", "").is_empty());
    assert_eq!(env.total_messages(), 2, "nothing for bob");
    let err = failed(&cli(&env.config_path, &["release", &id, "--force"]));
    assert!(
        err.contains("every recipient was already released"),
        "{err}"
    );
    let err = failed(&cli(
        &env.config_path,
        &["release", &id, "--force", "--rcpt", "bob@example.test"],
    ));
    assert!(err.contains("is not a recipient"), "{err}");
    assert_eq!(env.total_messages(), 2);

    // Not for other.example: discarded, not quarantined.
    let out = send(
        &server,
        "sender@example.org",
        &["bob@example.test"],
        &heuristic,
    );
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
    assert_eq!(list(&env.config_path, &[]).len(), 1);

    // A personal script's quarantine is ignored: the keep stands.
    let out = send(
        &server,
        "a@remote.example",
        &["carol@example.test"],
        &clean_message("hi"),
    );
    assert!(out.contains("250 2.0.0 <carol@example.test>"), "{out}");
    assert_eq!(env.messages("carol", "").len(), 1);
    assert_eq!(list(&env.config_path, &[]).len(), 1);
    let logs = server.wait_for_log("only global (before/after) scripts may quarantine");
    assert!(
        logs.contains("only global (before/after) scripts may quarantine"),
        "{logs}"
    );
}

#[test]
fn a_released_message_is_not_quarantined_again_by_the_rule_that_held_it() {
    let clamd = Clamd::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.sieve");
    // A policy rule on clean mail: it still matches when the message is released.
    std::fs::write(
        &policy,
        "require \"vnd.sievegate.quarantine\";\n\
         if header :contains \"subject\" \"HOLD\" { quarantine; discard; stop; }\n",
    )
    .expect("write policy");
    let mut options = quarantine_options(clamd);
    options.before = Some(vec![policy.display().to_string()]);
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let out = send(
        &server,
        "sender@example.org",
        &["alice@example.test"],
        &clean_message("HOLD this one"),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let logs = server.wait_for_log("actions=");
    assert_eq!(env.total_messages(), 0, "{logs}");
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let id = entries[0]["id"].as_str().expect("id").to_string();

    // While another process (another host, the web page) releases alice, this run does
    // nothing and says so; given back, the release goes ahead.
    {
        use sievegate::state::{SqliteState, StateStore};
        let state: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(
            SqliteState::open(&env.dir.path().join("state")).expect("open state"),
        );
        let q = sievegate::quarantine::Quarantine::new(env.dir.path().join("quarantine"), state);
        let held = sievegate::delivery::release::claim(&q, &id, &["alice@example.test".into()])
            .expect("claim");
        let busy = cli(&env.config_path, &["release", &id]);
        let err = failed(&busy);
        assert!(err.contains("is being released right now"), "{err}");
        assert_eq!(env.messages("alice", "").len(), 0);
        drop(held);
    }
    // Released (clean: no --force): through alice's chain, whose `quarantine` is dropped and
    // the implicit keep stands in; no second entry.
    let stdout = ok(&cli(&env.config_path, &["release", &id]));
    assert!(stdout.contains("alice@example.test: "), "{stdout}");
    assert_eq!(env.messages("alice", "").len(), 1, "{stdout}");
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "no new entry: {entries:?}");
    // A second release is refused and delivers nothing.
    let again = cli(&env.config_path, &["release", &id]);
    assert!(!again.status.success() || String::from_utf8_lossy(&again.stdout).contains("already"));
    assert_eq!(env.messages("alice", "").len(), 1);
}

#[test]
fn the_server_purges_entries_past_retention_at_startup() {
    use sievegate::state::{SqliteState, StateStore};
    use std::time::{Duration, SystemTime};
    let clamd = Clamd::shared();
    let mut options = quarantine_options(clamd);
    options.extra_sections[0] =
        "[quarantine]\nenabled = true\ndir = \"quarantine\"\nretention_days = 10\n".into();
    let env = Env::new(options);
    let qdir = env.dir.path().join("quarantine");
    std::fs::create_dir_all(&qdir).expect("mkdir");
    {
        let state = SqliteState::open(&env.dir.path().join("state")).expect("open state");
        for (id, days) in [("old", 11u64), ("recent", 9)] {
            let entry = index_entry(id, SystemTime::now() - Duration::from_secs(days * 86_400));
            state.quarantine_insert(&entry).expect("insert");
            std::fs::write(qdir.join(format!("{id}.eml")), b"x").expect("write");
        }
    }
    let server = Running::start(&env.config_path);
    let logs = server.wait_for_log("entries past retention purged");
    assert!(
        logs.contains("quarantine: 1 entries past retention purged"),
        "{logs}"
    );
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], "recent");
    assert!(!qdir.join("old.eml").exists() && qdir.join("recent.eml").exists());
}

/// An index entry for `alice@example.test` received at `at`, as the tests write straight
/// into the state store (purge, retention, sweep).
pub(crate) fn index_entry(
    id: &str,
    at: std::time::SystemTime,
) -> sievegate::state::QuarantineEntry {
    sievegate::state::QuarantineEntry {
        id: id.into(),
        received_at: at,
        sender: String::new(),
        recipients: vec!["alice@example.test".into()],
        resolved: vec!["alice@example.test".into()],
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["V".into()],
        message_id: String::new(),
        subject: String::new(),
        from: String::new(),
        size: 1,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}
