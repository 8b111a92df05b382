//! `[state] backend = "postgres"` through the real binary, against a private PostgreSQL:
//! `state status` / `state migrate`, a schema newer than the binary refused at startup,
//! the failure rule (the database down means 451 for a recipient whose delivery needs it, a
//! quarantine write; the database back means 250 without a restart), the quarantined bytes
//! shown from another process, an entry made on one host released from the other's CLI
//! and from the other's web page, and two processes on one database answering a sender
//! once.

use std::process::{Command, Output};

use crate::quarantine::{cli, failed, list, ok, quarantine_options, send, strings};
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

/// A config with the quarantine on, its index and messages in PostgreSQL at `url`, and no
/// `[quarantine] dir` (PostgreSQL holds the messages, so none is needed).
fn env_on(url: &str) -> Env {
    let mut options: Options = quarantine_options(Clamd::shared());
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\n".to_string(),
        state_section(url),
    ];
    Env::new(options)
}

/// With PostgreSQL, `[quarantine] dir` may be left out: check-config accepts the file.
#[test]
fn the_quarantine_needs_no_dir_with_postgres() {
    let (_, url) = fresh_database();
    let env = env_on(&url);
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&env.config_path)
        .output()
        .expect("run check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("quarantine.dir"), "{text}");
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

/// The MAIL gate covers the state store: started with the database down, the server
/// answers MAIL with 451 4.3.0 (the probe found it unreachable); once the database is back
/// the probe lifts the gate and infected mail is quarantined (250) without a restart. The
/// metrics show the pool, the calls by kind and the failed ones.
#[test]
fn database_down_is_451_at_mail_and_back_is_250_without_a_restart() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("sg").expect("createdb");
    let mut options: Options = quarantine_options(Clamd::shared());
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\ndir = \"quarantine\"\n".to_string(),
        state_section(&url),
    ];
    options
        .server_extra
        .push("metrics_listen = \"127.0.0.1:0\"".into());
    let env = Env::new(options);
    cluster.stop();
    // The server starts while the database is down (it cannot migrate yet).
    let server = Running::start(&env.config_path);
    let metrics = crate::metrics::metrics_addr(&server);
    let logs = server.wait_for_log("state store does not answer yet");
    assert!(logs.contains("state store does not answer yet"), "{logs}");
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(
        out.contains("451 4.3.0 Temporary local problem, try again later"),
        "{out}"
    );
    assert!(!out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let before = crate::metrics::scrape(metrics);
    let failed = before
        .get("sievegate_state_errors_total{kind=\"maintenance\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "the failed migration and probes: {before:?}");

    cluster.resume().expect("database back");
    let logs = server.wait_for_log("state store answers again: accepting mail");
    assert!(
        logs.contains("state store answers again: accepting mail"),
        "{logs}"
    );
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let after = crate::metrics::scrape(metrics);
    let quarantine_calls = after
        .get("sievegate_state_call_duration_seconds_count{kind=\"quarantine\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(quarantine_calls >= 1.0, "{after:?}");
    let open = after
        .get("sievegate_state_pool{what=\"open\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(open >= 1.0, "a connection is open: {after:?}");
    for what in ["idle", "waiting"] {
        let key = format!("sievegate_state_pool{{what=\"{what}\"}}");
        assert!(after.contains_key(&key), "{key}: {after:?}");
    }
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

/// How one delivery of the load was answered (the reply for the one recipient, or the
/// first refusal before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Stored,
    Deferred,
    Refused,
}

/// PostgreSQL stopped in the middle of a load and started again: 8 connections deliver
/// clean and infected mail (quarantine on, no `[quarantine] dir`) one after another, step by step like Postfix
/// (no pipelining past a refused MAIL). Every message answered 250 is stored (a Maildir
/// file, or a quarantine entry with its bytes in the database), every other one got a
/// 4xx, none a 5xx; after the start the same process delivers both kinds again.
#[test]
fn database_stopped_mid_load_loses_nothing_and_recovers_without_a_restart() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("sg").expect("createdb");
    let env = env_on(&url);
    let server = Running::start(&env.config_path);
    let logs = server.wait_for_log("state store answers");
    assert!(logs.contains("state store answers"), "{logs}");

    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let done = Arc::clone(&done);
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut lmtp = crate::pigeonhole::lmtp::Lmtp::connect(addr);
                let mut answers = Vec::new();
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let id = format!("load.{w}.{n}@remote.example");
                    let infected = n % 2 == 0;
                    let mut message = format!(
                        "From: bob@remote.example\r\nTo: alice@example.test\r\n\
                         Subject: load\r\nMessage-ID: <{id}>\r\n\r\n"
                    )
                    .into_bytes();
                    if infected {
                        message.extend_from_slice(&crate::support::eicar());
                        message.extend_from_slice(b"\r\n");
                    } else {
                        message.extend_from_slice(b"Hello.\r\n");
                    }
                    let reply = lmtp.deliver("bob@remote.example", "alice@example.test", &message);
                    let answer = match reply.code.as_bytes().first() {
                        Some(b'2') => Answer::Stored,
                        Some(b'4') => Answer::Deferred,
                        _ => Answer::Refused,
                    };
                    assert_ne!(answer, Answer::Refused, "{id}: {}", reply.text);
                    if answer == Answer::Deferred {
                        // Like an MTA: a new connection for the next try, not in a tight
                        // loop (the session closes one that only earns refusals).
                        lmtp.quit();
                        std::thread::sleep(Duration::from_millis(50));
                        lmtp = crate::pigeonhole::lmtp::Lmtp::connect(addr);
                    }
                    answers.push((id, infected, answer));
                }
                lmtp.quit();
                answers
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    cluster.stop();
    std::thread::sleep(Duration::from_secs(5));
    cluster.resume().expect("database back");
    let logs = server.wait_for_log("state store answers again: accepting mail");
    assert!(
        logs.contains("state store answers again: accepting mail"),
        "{logs}"
    );
    std::thread::sleep(Duration::from_secs(2));
    done.store(true, Ordering::Relaxed);
    let answers: Vec<(String, bool, Answer)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();

    let stored: std::collections::HashSet<String> = env
        .messages("alice", "")
        .iter()
        .filter_map(|(_, bytes)| {
            let text = String::from_utf8_lossy(bytes);
            let id = text.split("Message-ID: <").nth(1)?.split('>').next()?;
            Some(id.to_string())
        })
        .collect();
    let quarantined: std::collections::HashSet<String> = list(&env.config_path, &[])
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_string())
        .collect();
    let count = |infected: bool, answer: Answer| {
        answers
            .iter()
            .filter(|(_, i, a)| *i == infected && *a == answer)
            .count()
    };
    for (id, infected, answer) in &answers {
        let kept = if *infected {
            quarantined.contains(id)
        } else {
            stored.contains(id)
        };
        match answer {
            Answer::Stored => assert!(kept, "{id} was answered 250 but is not stored"),
            // A deferred message may not be kept twice over: at most its retry stores it.
            Answer::Deferred => {}
            Answer::Refused => unreachable!(),
        }
    }
    eprintln!(
        "mid-load: clean 250 {} / 4xx {}, infected 250 {} / 4xx {}",
        count(false, Answer::Stored),
        count(false, Answer::Deferred),
        count(true, Answer::Stored),
        count(true, Answer::Deferred),
    );
    assert!(
        count(true, Answer::Deferred) > 0,
        "the outage was seen: {answers:?}"
    );
    assert!(count(true, Answer::Stored) > 0 && count(false, Answer::Stored) > 0);

    // The same process, no restart: both kinds delivered again.
    let mut lmtp = crate::pigeonhole::lmtp::Lmtp::connect(server.addr);
    for (n, body) in [
        (0, b"Hello.\r\n".to_vec()),
        (1, [crate::support::eicar(), b"\r\n".to_vec()].concat()),
    ] {
        let message = [
            format!(
                "From: bob@remote.example\r\nTo: alice@example.test\r\nSubject: after\r\n\
                 Message-ID: <after.{n}@remote.example>\r\n\r\n"
            )
            .into_bytes(),
            body,
        ]
        .concat();
        let reply = lmtp.deliver("bob@remote.example", "alice@example.test", &message);
        assert_eq!(reply.code, "250", "{}", reply.text);
    }
    lmtp.quit();
    drop(server);
}

/// Two `sievegate serve` processes on one database at `url` (two hosts), relaying to
/// `sink`, alice's personal script `script` on both.
fn two_hosts(
    url: &str,
    sink: &crate::support::smtp_sink::SmtpSink,
    script: &str,
) -> [(Env, Running); 2] {
    let host = || {
        let mut options = Options::new(Clamd::shared().addr());
        options.before = Some(vec![]);
        options.mailbox_extra = vec!["user_concurrency_limit = 0".into()];
        options.max_connections = 128;
        options.extra_sections = vec![
            state_section(url),
            format!("[notify]\nrelay = \"{}\"", sink.addr()),
        ];
        let env = Env::new(options);
        env.set_personal("alice", script);
        let server = Running::start(&env.config_path);
        (env, server)
    };
    [host(), host()]
}

/// Delivers `count` messages to alice at once, alternating between the two hosts;
/// `message(i)` gives (envelope sender, message). Every reply must be 250.
fn deliver_at_once(
    hosts: &[(Env, Running); 2],
    count: usize,
    message: impl Fn(usize) -> (String, String),
) {
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let addr = hosts[i % 2].1.addr;
            let (sender, message) = message(i);
            std::thread::spawn(move || {
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

/// The sorted envelope recipients of everything the sink received, once `want` messages
/// came and a quiet moment passed (anything more would be a second copy).
fn received(sink: &crate::support::smtp_sink::SmtpSink, want: usize) -> Vec<String> {
    sink.wait_for(want, std::time::Duration::from_secs(60));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut to: Vec<String> = sink
        .transactions()
        .iter()
        .flat_map(|t| t.rcpt_to.clone())
        .collect();
    to.sort();
    to
}

/// Two sievegate processes sharing one database (two hosts), one vacation user: 50
/// deliveries from one sender at once, spread over both, give exactly one reply; 20
/// senders, 20 replies. Every message is kept.
#[test]
fn fifty_deliveries_at_once_over_two_hosts_answer_once() {
    let sink = crate::support::smtp_sink::SmtpSink::start();
    let (_, url) = fresh_database();
    let hosts = two_hosts(
        &url,
        &sink,
        r#"require "vacation"; vacation :days 1 :subject "Away" "Back on Monday.";"#,
    );
    let (rounds, per_round) = (20, 50);
    for round in 0..rounds {
        deliver_at_once(&hosts, per_round, |i| {
            let sender = format!("bob{round}@remote.example");
            let message = format!(
                "From: {sender}\r\nTo: alice@example.test\r\nSubject: hello\r\n\
                 Message-ID: <{i}.{sender}>\r\n\r\nHello.\r\n"
            );
            (sender, message)
        });
    }
    let kept = hosts[0].0.messages("alice", "").len() + hosts[1].0.messages("alice", "").len();
    assert_eq!(kept, rounds * per_round, "every message kept");
    let mut want: Vec<String> = (0..rounds)
        .map(|r| format!("<bob{r}@remote.example>"))
        .collect();
    want.sort();
    assert_eq!(received(&sink, rounds), want, "one reply per sender");
}

/// The same message (one Message-ID) delivered 50 times at once over two hosts to a user
/// who redirects: the target gets it once (the redirect's record is claimed before it is
/// queued), and every copy is kept.
#[test]
fn one_message_delivered_at_once_on_two_hosts_is_redirected_once() {
    let sink = crate::support::smtp_sink::SmtpSink::start();
    let (_, url) = fresh_database();
    let hosts = two_hosts(
        &url,
        &sink,
        r#"require "copy"; redirect :copy "carol@remote.example";"#,
    );
    deliver_at_once(&hosts, 50, |_| {
        let message = "From: bob@remote.example\r\nTo: alice@example.test\r\n\
                       Subject: hello\r\nMessage-ID: <same@remote.example>\r\n\r\nHello.\r\n";
        ("bob@remote.example".to_string(), message.to_string())
    });
    let kept = hosts[0].0.messages("alice", "").len() + hosts[1].0.messages("alice", "").len();
    assert_eq!(kept, 50, "every copy kept");
    assert_eq!(received(&sink, 1), ["<carol@remote.example>"]);
}

/// RFC 7352 `duplicate` across hosts: the same message (one Message-ID) delivered 50 times
/// at once over two hosts to a user whose script discards duplicates: exactly one copy is
/// stored, and every delivery is answered 250 (the others wait on the first's claim and
/// then see its record).
#[test]
fn one_message_delivered_at_once_on_two_hosts_is_kept_once_with_duplicate() {
    let sink = crate::support::smtp_sink::SmtpSink::start();
    let (_, url) = fresh_database();
    let hosts = two_hosts(
        &url,
        &sink,
        r#"require "duplicate"; if duplicate { discard; stop; }"#,
    );
    for round in 0..3 {
        deliver_at_once(&hosts, 50, |_| {
            let message = format!(
                "From: bob@remote.example\r\nTo: alice@example.test\r\n\
                 Subject: hello\r\nMessage-ID: <dup.{round}@remote.example>\r\n\r\nHello.\r\n"
            );
            ("bob@remote.example".to_string(), message)
        });
    }
    let kept = hosts[0].0.messages("alice", "").len() + hosts[1].0.messages("alice", "").len();
    assert_eq!(kept, 3, "one copy per message over 150 deliveries");
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

/// A `duplicate` claim is released on a path that never reaches the sending step: a global
/// script tests `duplicate` (taking the claim) and then quarantines, and the quarantine
/// write fails in the database (a trigger refuses it), so the recipient gets 451. The claim
/// is released at once (not left for its 120 s lease), so the MTA's retry takes it without
/// waiting and is stored; the next delivery of the same message is a duplicate.
#[test]
fn a_deferred_delivery_releases_its_duplicate_claim() {
    let (db, url) = fresh_database();
    let scripts = tempfile::tempdir().expect("tempdir");
    let before = scripts.path().join("dup-then-quarantine.sieve");
    std::fs::write(
        &before,
        "require [\"duplicate\", \"vnd.sievegate.quarantine\"];\n\
         if duplicate { discard; stop; }\nquarantine;\n",
    )
    .expect("write script");
    let mut options: Options = quarantine_options(Clamd::shared());
    options.before = Some(vec![before.display().to_string()]);
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\n".to_string(),
        state_section(&url),
    ];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let psql = |sql: &str| shared().psql(&db, sql).unwrap_or_else(|e| panic!("{e}"));
    psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON quarantine \
         FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let message = b"From: bob@remote.example\r\nTo: alice@example.test\r\n\
        Subject: hello\r\nMessage-ID: <claim.1@remote.example>\r\n\r\nHello.\r\n";
    let out = send(
        &server,
        "bob@remote.example",
        &["alice@example.test"],
        message,
    );
    assert!(out.contains("451 4.3.0 <alice@example.test>"), "{out}");
    let claims = |held: bool| {
        let now = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";
        let cmp = if held { ">" } else { "<=" };
        psql(&format!(
            "SELECT count(*) FROM cache WHERE key LIKE 'sieve-dup-claim:%' AND expires {cmp} {now}"
        ))
    };
    assert_eq!(claims(false), "1", "the claim was taken and released");
    assert_eq!(claims(true), "0", "no claim left held");

    psql("DROP TRIGGER refuse ON quarantine;");
    let started = std::time::Instant::now();
    let out = send(
        &server,
        "bob@remote.example",
        &["alice@example.test"],
        message,
    );
    let took = started.elapsed();
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert!(
        took < sievegate::filter::memory::CLAIM_WAIT,
        "the retry did not wait on a stale claim: {took:?}"
    );
    assert!(
        !server.logs().contains("holds its id for too long"),
        "{}",
        server.logs()
    );
    assert_eq!(list(&env.config_path, &[]).len(), 1, "quarantined once");
    let out = send(
        &server,
        "bob@remote.example",
        &["alice@example.test"],
        message,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(
        list(&env.config_path, &[]).len(),
        1,
        "the third delivery is a duplicate"
    );
    drop(server);
}

/// `[state] ca_file` through the binary: `state migrate` reaches a TLS server whose
/// certificate a CA made by the test signed (the CA in `ca_file`, relative to the config);
/// `sslmode=require` against a server without TLS is refused cleanly: exit 1 with the
/// reason, no panic.
#[test]
fn tls_with_a_ca_file_and_require_refused_without_tls() {
    let cluster = Cluster::start_tcp(true).unwrap_or_else(|e| panic!("{e}"));
    cluster.create_database("sg").expect("createdb");
    let env = env_on(&cluster.tcp_url("sg", "sslmode=require"));
    std::fs::copy(cluster.ca_file(), env.dir.path().join("db-ca.pem")).expect("copy CA");
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    let text = text.replace("[state]\n", "[state]\nca_file = \"db-ca.pem\"\n");
    std::fs::write(&env.config_path, text).expect("config");
    let migrated = stdout(&state_cli(&env, "migrate"));
    assert!(migrated.contains("migrated: from 0 to"), "{migrated}");
    let applied = cluster
        .psql("sg", "SELECT count(*) FROM schema_version")
        .expect("psql");
    assert_ne!(applied, "0", "the schema was written over TLS");

    let (_, plain) = fresh_database();
    let env = env_on(&format!("{plain} sslmode=require"));
    let out = state_cli(&env, "status");
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("server does not support TLS"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `[state] pooler = "transaction"` (behind PgBouncer in transaction mode): no startup
/// `options` are sent, so the role's or database's `statement_timeout` is what applies.
/// The server reads it at startup: none set is a warning; a database setting of 7 s is
/// what the connection has (with the startup option it would be the configured 2 s).
#[test]
fn behind_a_transaction_pooler_the_roles_statement_timeout_applies() {
    let (db, url) = fresh_database();
    let start = || {
        let mut options = Options::new(Clamd::shared().addr());
        options.extra_sections = vec![state_section(&url) + "pooler = \"transaction\"\n"];
        let env = Env::new(options);
        let server = Running::start(&env.config_path);
        (env, server)
    };
    let (_env, server) = start();
    let logs = server.wait_for_log("sets no statement_timeout");
    assert!(
        logs.contains("sets no statement_timeout for this role"),
        "{logs}"
    );
    drop(server);

    shared()
        .psql(
            &db,
            &format!("ALTER DATABASE {db} SET statement_timeout = '7s'"),
        )
        .expect("psql");
    let (_env, server) = start();
    let logs = server.wait_for_log("the role's statement_timeout applies");
    assert!(
        logs.contains("the role's statement_timeout applies") && logs.contains("7s"),
        "{logs}"
    );
    assert!(!logs.contains("sets no statement_timeout"), "{logs}");
}

/// Moves directories out of their place while it lives (back on drop, also on a panic), so a
/// process that reads them fails.
struct Hidden(Vec<(std::path::PathBuf, std::path::PathBuf)>);

impl Hidden {
    fn hide(dirs: &[&std::path::Path]) -> Hidden {
        Hidden(
            dirs.iter()
                .map(|dir| {
                    let away = dir.with_extension("hidden");
                    std::fs::rename(dir, &away).expect("hide a directory");
                    (dir.to_path_buf(), away)
                })
                .collect(),
        )
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        for (dir, away) in &self.0 {
            let _ = std::fs::rename(away, dir);
        }
    }
}

/// `sievegate quarantine -c CONFIG args...` run as `user` (through sudo: `$SUDO_USER`).
fn cli_as(config: &std::path::Path, user: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("quarantine")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("SUDO_USER", user)
        .output()
        .expect("run sievegate quarantine")
}

/// One host of a two-host setup on the database at `url`: its own config directory and a
/// policy script (in the returned directory) holding mail whose subject says "HOLD", the
/// quarantine's bytes in PostgreSQL (no `[quarantine] dir`), Maildirs under the shared
/// `maildirs` root. With `web` (`base_url`, key bytes): the page on a free port of
/// 127.0.0.1, signing with its own copy of the key (`link.key`, 0600, in that directory).
fn policy_host(
    url: &str,
    maildirs: &std::path::Path,
    web: Option<(&str, &[u8])>,
) -> (Env, tempfile::TempDir) {
    let scripts = tempfile::tempdir().expect("scripts");
    let policy = scripts.path().join("policy.sieve");
    std::fs::write(
        &policy,
        "require \"vnd.sievegate.quarantine\";\n\
         if header :contains \"subject\" \"HOLD\" { quarantine; discard; stop; }\n",
    )
    .expect("write policy");
    let mut options: Options = quarantine_options(Clamd::shared());
    options.before = Some(vec![policy.display().to_string()]);
    options.maildir = Some(format!("{}/%d/%n/Maildir", maildirs.display()));
    options.extra_sections = vec![
        "[quarantine]\nenabled = true\n".to_string(),
        state_section(url),
    ];
    if let Some((base_url, key)) = web {
        use std::os::unix::fs::PermissionsExt;
        let key_path = scripts.path().join("link.key");
        std::fs::write(&key_path, key).expect("write key");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod key");
        options.extra_sections.push(format!(
            "[web]\nlisten = [\"127.0.0.1:0\"]\nbase_url = \"{base_url}\"\nsecret_file = {:?}\n",
            key_path.display().to_string()
        ));
    }
    (Env::new(options), scripts)
}

/// The messages in alice's INBOX under the Maildir root `maildirs`.
fn alice_inbox(maildirs: &std::path::Path) -> Vec<Vec<u8>> {
    let maildir = maildirs.join("example.test/alice/Maildir");
    ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten())
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("read message"))
        .collect()
}

/// Two hosts on one database, each with its own directories (config, policy script) and a
/// shared Maildir root: a clean message a policy rule holds on host A (`sievegate serve`,
/// no `[quarantine] dir`: the bytes are in PostgreSQL) is listed, shown byte for byte and
/// released from host B's CLI while A's directories are out of reach. It lands once in
/// alice's INBOX, the release (by whom) is seen from both hosts, and a second release from
/// A's CLI is refused as already released and delivers nothing.
#[test]
fn a_quarantine_entry_made_on_one_host_is_released_from_the_other() {
    let (_db, url) = fresh_database();
    let maildirs = tempfile::tempdir().expect("maildir root");
    let host = || policy_host(&url, maildirs.path(), None);
    let (a, a_scripts) = host();
    let (b, _b_scripts) = host();
    let b_config = std::fs::read_to_string(&b.config_path).expect("B's config");
    for dir in [a.dir.path(), a_scripts.path()] {
        assert!(!b_config.contains(&*dir.to_string_lossy()), "{b_config}");
    }
    let inbox = || alice_inbox(maildirs.path());

    let server = Running::start(&a.config_path);
    let message = crate::support::messages::clean_message("HOLD on host A");
    let out = send(
        &server,
        "sender@remote.example",
        &["alice@example.test"],
        &message,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert!(inbox().is_empty(), "held, not delivered");
    assert!(
        !a.dir.path().join("quarantine").exists(),
        "no quarantine file on host A: the bytes are in PostgreSQL"
    );

    // Host B's CLI, with A's directories out of reach.
    let id = {
        let _hidden = Hidden::hide(&[a.dir.path(), a_scripts.path()]);
        let entries = list(&b.config_path, &[]);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let id = entries[0]["id"].as_str().expect("id").to_string();
        assert_eq!(strings(&entries[0]["held"]), ["alice@example.test"]);
        let raw = cli(&b.config_path, &["show", &id, "--raw"]);
        ok(&raw);
        assert_eq!(raw.stdout, message, "show --raw from B is byte for byte");
        let released = ok(&cli_as(&b.config_path, "admin-bea", &["release", &id]));
        assert!(
            released.contains("alice@example.test: ")
                && released.contains(&format!("{id}: released by admin-bea")),
            "{released}"
        );
        let stored = inbox();
        assert_eq!(stored.len(), 1, "{released}");
        let (_, body) = crate::support::env::split_trace(&stored[0]);
        assert_eq!(
            body,
            message.as_slice(),
            "the original bytes after the trace"
        );
        let shown = ok(&cli(&b.config_path, &["show", &id]));
        assert!(
            shown.contains("released rcpt: alice@example.test at ")
                && shown.contains(" by admin-bea"),
            "{shown}"
        );
        id
    };

    // Host A sees the release, and its own release is refused and delivers nothing.
    let entries = list(&a.config_path, &[]);
    assert_eq!(entries.len(), 1, "no new entry: {entries:?}");
    let entry = &entries[0];
    assert!(entry["released_at"].is_string(), "{entry}");
    assert!(strings(&entry["held"]).is_empty(), "{entry}");
    assert_eq!(entry["releases"][0]["rcpt"], "alice@example.test");
    assert_eq!(entry["releases"][0]["released_by"], "admin-bea");
    let shown = ok(&cli(&a.config_path, &["show", &id]));
    assert!(
        shown.contains("released rcpt: alice@example.test at ") && shown.contains(" by admin-bea"),
        "{shown}"
    );
    let table = ok(&cli(&a.config_path, &["list"]));
    assert!(
        table.contains(&id) && table.contains("[released]"),
        "{table}"
    );
    let refused = failed(&cli_as(&a.config_path, "admin-abe", &["release", &id]));
    assert!(
        refused.contains(&format!(
            "{id}: every recipient was already released (last: alice@example.test by admin-bea at "
        )) && refused.contains("nothing delivered"),
        "{refused}"
    );
    assert_eq!(inbox().len(), 1, "exactly one copy");
    assert_eq!(
        list(&a.config_path, &[])[0]["releases"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    drop(server);
}

/// The action (the release token) and the nonce of the "Release to my mailbox" form of an
/// entry page.
fn release_form(page: &str) -> (String, String) {
    let form = page
        .split("<form")
        .find(|f| f.contains("Release to my mailbox"))
        .unwrap_or_else(|| panic!("no release form in:\n{page}"));
    let attr = |marker: &str| {
        form.split(marker)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {marker} in the form:\n{form}"))
            .to_string()
    };
    (attr("action=\""), attr("name=\"nonce\" value=\""))
}

/// Issue 17, the page: two hosts on one database serve the quarantine's web page under one
/// `base_url`, each with its own copy of one key. A view link made with the key for a
/// message held on host A opens on host B's page (A's directories out of reach), and the
/// page's release form, posted there as a browser does, releases it once into alice's
/// INBOX. The same form posted to A's page is refused as already released (409) and
/// delivers nothing; A's page and CLI show the release by `web:alice@example.test`.
#[test]
fn a_link_made_on_one_host_releases_on_the_other_hosts_page() {
    use std::time::{Duration, SystemTime};

    use sievegate::quarantine::link::{self, Action, LinkKey};

    use crate::web::http;
    use crate::web_admin::web_addr;

    const KEY: &[u8] = b"one key for the page of every host, 48 bytes...\n";
    const BASE_URL: &str = "https://quarantine.example.test";
    let (_db, url) = fresh_database();
    let maildirs = tempfile::tempdir().expect("maildir root");
    let host = || policy_host(&url, maildirs.path(), Some((BASE_URL, KEY)));
    let (a, a_scripts) = host();
    let (b, _b_scripts) = host();
    let server_a = Running::start(&a.config_path);
    let server_b = Running::start(&b.config_path);
    let (port_a, port_b) = (web_addr(&server_a).port(), web_addr(&server_b).port());
    let inbox = || alice_inbox(maildirs.path());

    let message = crate::support::messages::clean_message("HOLD for the page");
    let out = send(
        &server_a,
        "sender@remote.example",
        &["alice@example.test"],
        &message,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert!(inbox().is_empty(), "held, not delivered");
    let entries = list(&a.config_path, &[]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let id = entries[0]["id"].as_str().expect("id").to_string();
    let key = LinkKey::from_bytes(KEY).expect("key");
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let view = link::sign(&key, &id, "alice@example.test", Action::View, expires);
    // Posted as a browser posts the page's form, both hosts behind the one `base_url`.
    let post = |port: u16, action: &str, nonce: &str| {
        http(
            port,
            "POST",
            &format!("/q/{action}"),
            &format!(
                "Content-Type: application/x-www-form-urlencoded\r\n\
                 Origin: {BASE_URL}\r\nSec-Fetch-Site: same-origin\r\n"
            ),
            &format!("nonce={nonce}"),
        )
    };

    // Host B's page, with A's directories (its config, its key) out of reach.
    let (action, nonce) = {
        let _hidden = Hidden::hide(&[a.dir.path(), a_scripts.path()]);
        let page = http(port_b, "GET", &format!("/q/{view}"), "", "");
        assert_eq!(page.status, 200, "{}\n{}", page.body, server_b.logs());
        assert!(page.body.contains("HOLD for the page"), "{}", page.body);
        assert!(
            page.body.contains("This message was held for you"),
            "{}",
            page.body
        );
        let (action, nonce) = release_form(&page.body);
        let claims = link::verify(&key, &action, SystemTime::now()).expect("a release token");
        assert_eq!(
            (
                claims.entry_id.as_str(),
                claims.rcpt.as_str(),
                claims.action
            ),
            (id.as_str(), "alice@example.test", Action::Release)
        );
        let done = post(port_b, &action, &nonce);
        assert_eq!(done.status, 200, "{}\n{}", done.body, server_b.logs());
        assert!(done.body.contains("released to you"), "{}", done.body);
        let stored = inbox();
        assert_eq!(stored.len(), 1, "{}", server_b.logs());
        let (_, body) = crate::support::env::split_trace(&stored[0]);
        assert_eq!(
            body,
            message.as_slice(),
            "the original bytes after the trace"
        );
        (action, nonce)
    };

    // Host A's page: the same form is refused and delivers nothing; the page shows the
    // release and offers no buttons.
    let again = post(port_a, &action, &nonce);
    assert_eq!(again.status, 409, "{}\n{}", again.body, server_a.logs());
    assert!(
        again.body.contains("Already released")
            && again.body.contains("already released to you on"),
        "{}",
        again.body
    );
    assert_eq!(inbox().len(), 1, "exactly one copy");
    let page = http(port_a, "GET", &format!("/q/{view}"), "", "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("This message was released to you on"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<form"), "no buttons once released");
    let entries = list(&a.config_path, &[]);
    assert_eq!(entries.len(), 1, "no new entry: {entries:?}");
    let releases = entries[0]["releases"].as_array().expect("releases");
    assert_eq!(releases.len(), 1, "{entries:?}");
    assert_eq!(releases[0]["rcpt"], "alice@example.test");
    assert_eq!(releases[0]["released_by"], "web:alice@example.test");
    drop((server_a, server_b));
}
