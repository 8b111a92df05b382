//! `[state] backend = "postgres"` through the real binary, against a private PostgreSQL:
//! `state status` / `state migrate`, a schema newer than the binary refused at startup,
//! the failure rule (the database down means 451 for a recipient whose delivery needs it, a
//! quarantine write; the database back means 250 without a restart), the quarantined bytes
//! shown from another process, and two processes on one database answering a sender once.

use std::process::{Command, Output};

use crate::quarantine::{cli, list, quarantine_options, send};
use crate::support::binary::{bin, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::infected_message;
use crate::support::postgres::{fresh_database, shared, Cluster};

/// The `[state]` section of a store at `url`, with short timeouts.
fn state_section(url: &str) -> String {
    format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\nconnect_timeout_secs = 2\nstatement_timeout_secs = 2\n"
    )
}

/// A config with the quarantine on and its index in PostgreSQL at `url`.
fn env_on(url: &str) -> Env {
    let mut options: Options = quarantine_options(Clamd::shared());
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\ndir = \"quarantine\"\n".to_string(),
        state_section(url),
    ];
    Env::new(options)
}

fn state_cli(env: &Env, action: &str) -> Output {
    Command::new(bin())
        .args(["state", action, "-c"])
        .arg(&env.config_path)
        .output()
        .expect("run sievegate state")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_and_migrate_and_a_newer_schema_refused_at_startup() {
    let (name, url) = fresh_database();
    let env = env_on(&url);
    let known = sievegate::state::postgres::KNOWN_SCHEMA;

    let status = stdout(&state_cli(&env, "status"));
    assert!(status.contains("backend: postgres"), "{status}");
    assert!(
        status.contains(&format!("schema: 0 (this sievegate: {known})")),
        "{status}"
    );
    assert!(
        status.contains("pending: run `sievegate state migrate`"),
        "{status}"
    );
    assert!(!status.contains("password"), "{status}");

    let migrated = stdout(&state_cli(&env, "migrate"));
    assert!(
        migrated.contains(&format!("migrated: from 0 to {known}")),
        "{migrated}"
    );
    let status = stdout(&state_cli(&env, "status"));
    assert!(
        status.contains(&format!("schema: {known} (this sievegate: {known})")),
        "{status}"
    );
    assert!(
        status.contains("rows: cache 0 rate 0 queue 0 quarantine 0"),
        "{status}"
    );

    // A newer sievegate migrated this database: this one refuses to start on it.
    let newer = known + 1;
    shared()
        .psql(
            &name,
            &format!("INSERT INTO schema_version (version) VALUES ({newer})"),
        )
        .expect("a newer schema");
    let out = Command::new(bin())
        .args(["serve", "-c"])
        .arg(&env.config_path)
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "schema version {newer} is newer than this sievegate knows ({known})"
        )),
        "{stderr}"
    );
    let refused = state_cli(&env, "status");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is newer than this sievegate knows"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn database_down_is_451_and_back_is_250_without_a_restart() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("sg").expect("createdb");
    let env = env_on(&url);
    cluster.stop();
    // The server starts while the database is down (it cannot migrate yet).
    let server = Running::start(&env.config_path);
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("451 4."), "{out}");
    assert!(!out.contains("250 2.0.0 <alice@example.test>"), "{out}");

    cluster.resume().expect("database back");
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    // The entry and its bytes are in the database: the CLI (another process) lists it and
    // shows it byte for byte, and no file was written.
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let id = entries[0]["id"].as_str().expect("id").to_string();
    let raw = cli(&env.config_path, &["show", &id, "--raw"]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        raw.stdout,
        infected_message(),
        "show --raw is byte for byte"
    );
    let files = std::fs::read_dir(env.dir.path().join("quarantine"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "no quarantine file with the bytes in PostgreSQL");
    drop(server);
}

/// Two sievegate processes sharing one database (two hosts), one vacation user: 50
/// deliveries from one sender at once, spread over both, give exactly one reply; 20
/// senders, 20 replies. Every message is kept.
#[test]
fn fifty_deliveries_at_once_over_two_hosts_answer_once() {
    use crate::support::smtp_sink::SmtpSink;
    use std::time::Duration;

    let sink = SmtpSink::start();
    let (_, url) = fresh_database();
    let host = || {
        let mut options = Options::new(Clamd::shared().addr());
        options.before = Some(vec![]);
        options.mailbox_extra = vec!["user_concurrency_limit = 0".into()];
        options.max_connections = 128;
        options.extra_sections = vec![
            state_section(&url),
            format!("[notify]\nrelay = \"{}\"", sink.addr()),
        ];
        let env = Env::new(options);
        env.set_personal(
            "alice",
            r#"require "vacation"; vacation :days 1 :subject "Away" "Back on Monday.";"#,
        );
        let server = Running::start(&env.config_path);
        (env, server)
    };
    let (env_a, a) = host();
    let (env_b, b) = host();
    let (rounds, per_round) = (20, 50);
    for round in 0..rounds {
        let sender = format!("bob{round}@remote.example");
        let threads: Vec<_> = (0..per_round)
            .map(|i| {
                let addr = if i % 2 == 0 { a.addr } else { b.addr };
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let message = format!(
                        "From: {sender}\r\nTo: alice@example.test\r\nSubject: hello\r\n\
                         Message-ID: <{i}.{sender}>\r\n\r\nHello.\r\n"
                    );
                    let input = crate::support::messages::transaction_as(
                        "",
                        &sender,
                        &["alice@example.test"],
                        message.as_bytes(),
                    );
                    let mut stream = crate::support::binary::tcp(addr);
                    std::io::Write::write_all(&mut stream, &input).expect("write");
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(&mut stream, &mut out).expect("read");
                    String::from_utf8_lossy(&out).into_owned()
                })
            })
            .collect();
        for t in threads {
            let out = t.join().expect("client");
            assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
        }
    }
    let kept = env_a.messages("alice", "").len() + env_b.messages("alice", "").len();
    assert_eq!(kept, rounds * per_round, "every message kept");
    sink.wait_for(rounds, Duration::from_secs(60));
    // Anything more would be a second reply: give it time to arrive.
    std::thread::sleep(Duration::from_secs(3));
    let replies = sink.transactions();
    let mut to: Vec<String> = replies.iter().flat_map(|t| t.rcpt_to.clone()).collect();
    to.sort();
    let mut want: Vec<String> = (0..rounds)
        .map(|r| format!("<bob{r}@remote.example>"))
        .collect();
    want.sort();
    assert_eq!(
        to,
        want,
        "one reply per sender\nA: {}\nB: {}",
        a.logs()
            .lines()
            .filter(|l| l.contains("vacation"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n"),
        b.logs()
            .lines()
            .filter(|l| l.contains("vacation"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `state status` on SQLite: the file, its schema (migrated as it opens) and rows.
#[test]
fn status_on_sqlite() {
    let env = Env::new(quarantine_options(Clamd::shared()));
    let status = stdout(&state_cli(&env, "status"));
    let known = sievegate::state::sqlite::KNOWN_SCHEMA;
    assert!(status.contains("backend: sqlite"), "{status}");
    assert!(status.contains("sievegate.db"), "{status}");
    assert!(
        status.contains(&format!("schema: {known} (this sievegate: {known})")),
        "{status}"
    );
    assert!(
        status.contains("rows: cache 0 rate 0 queue 0 quarantine 0"),
        "{status}"
    );
}
