//! Layer 3: SIGHUP reload of the real binary with a real clamd. The new config, users file
//! and global script apply to the next transaction; a session opened before the reload
//! stays usable; a bad config is refused with one log line and the old one keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::lmtp::{Peer, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, transaction};

/// A global script that files everything into `folder`.
fn file_into(folder: &str) -> String {
    format!("require [\"fileinto\", \"mailbox\"];\nfileinto :create \"{folder}\";\n")
}

/// An environment whose only global script is `<scripts>/one.sieve` (files into `One`) and
/// whose users file lists alice only; `scripts` also holds `two.sieve` (files into `Two`).
fn env_with_scripts(scripts: &Path) -> Env {
    env_with_scripts_and(scripts, Vec::new())
}

/// [`env_with_scripts`] with `server_extra` lines in `[server]`.
fn env_with_scripts_and(scripts: &Path, server_extra: Vec<String>) -> Env {
    std::fs::write(scripts.join("one.sieve"), file_into("One")).expect("write one.sieve");
    std::fs::write(scripts.join("two.sieve"), file_into("Two")).expect("write two.sieve");
    let mut options = Options::new(Clamd::shared().addr());
    options.server_extra = server_extra;
    options.before = Some(vec![scripts.join("one.sieve").display().to_string()]);
    options.users = Some("alice\n".into());
    Env::new(options)
}

/// Rewrites the config file with `edit` applied.
fn edit_config(env: &Env, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(&env.config_path, edited).expect("write config");
}

fn hangup(server: &Running) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(server.pid(), libc::SIGHUP) };
    assert_eq!(rc, 0, "kill -HUP");
}

/// Waits until `needle` occurs `n` times in the server's log; returns the log.
fn wait_for_count(server: &Running, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = server.logs();
        if logs.matches(needle).count() >= n {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "{n}× {needle:?} not logged in time:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads from `stream` until `until` has occurred `n` times in everything read.
fn read_until(stream: &mut TcpStream, until: &str, n: usize) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches(until).count() < n {
        let got = stream.read(&mut buf).expect("read replies");
        assert!(got > 0, "server closed early; so far:\n{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
    text
}

/// `transaction` without its QUIT, so the session stays open.
fn open_transaction(rcpts: &[&str], subject: &str) -> Vec<u8> {
    let mut input = transaction(rcpts, &clean_message(subject));
    input.truncate(input.len() - b"QUIT\r\n".len());
    input
}

fn folder_count(env: &Env, user: &str, folder: &str) -> usize {
    env.messages(user, folder).len()
}

#[test]
fn sighup_applies_new_config_users_and_scripts_while_an_open_session_stays_usable() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let env = env_with_scripts(scripts.path());
    std::fs::write(env.dir.path().join("users2"), "alice\nbob\n").expect("write users2");
    let server = Running::start(&env.config_path);

    // A session opened (and used) before the reload.
    let mut early = tcp(server.addr);
    early
        .write_all(&open_transaction(
            &["alice@example.test", "bob@example.test"],
            "before reload, early session",
        ))
        .expect("write");
    let got = read_until(&mut early, "Saved\r\n", 1);
    assert!(got.contains("550 5.1.1"), "bob is not a user yet: {got}");
    assert_eq!(folder_count(&env, "alice", ".One"), 1, "{}", server.logs());

    // A new config: another users file, another global script, and one restart-only key.
    let one = scripts.path().join("one.sieve").display().to_string();
    let two = scripts.path().join("two.sieve").display().to_string();
    edit_config(&env, |text| {
        text.replace("users_file = \"users\"", "users_file = \"users2\"")
            .replace(&one, &two)
            .replace("max_connections = 64", "max_connections = 8")
    });
    hangup(&server);
    let logs = wait_for_count(&server, "reloaded ", 1);
    assert!(
        logs.contains("server.max_connections changed but needs a restart"),
        "the restart-only key is named: {logs}"
    );

    // A new connection follows the new config.
    let got = server.converse(&transaction(
        &["alice@example.test", "bob@example.test"],
        &clean_message("after reload, new session"),
    ));
    assert_eq!(got.matches("Saved\r\n").count(), 2, "{got}");
    assert_eq!(folder_count(&env, "alice", ".Two"), 1);
    assert_eq!(folder_count(&env, "bob", ".Two"), 1);

    // The early session is still open and its next transaction uses the new config too.
    early
        .write_all(&open_transaction(
            &["bob@example.test"],
            "after reload, early session",
        ))
        .expect("write to the early session");
    let got = read_until(&mut early, "Saved\r\n", 1);
    assert!(!got.contains("550"), "bob exists now: {got}");
    early.write_all(b"QUIT\r\n").expect("quit");
    let mut rest = String::new();
    let _ = early.read_to_string(&mut rest);
    assert!(rest.contains("221"), "{rest}");
    assert_eq!(folder_count(&env, "bob", ".Two"), 2);
    assert_eq!(
        folder_count(&env, "alice", ".One"),
        1,
        "nothing more in One"
    );

    // The connection limit kept its startup value: 9 connections at once are all served.
    let many: Vec<TcpStream> = (0..9).map(|_| tcp(server.addr)).collect();
    for mut c in many {
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).expect("greeting");
        assert!(
            buf[..n].starts_with(b"220 "),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

#[test]
fn a_bad_config_on_sighup_is_refused_and_the_old_one_keeps_serving() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let env = env_with_scripts_and(
        scripts.path(),
        vec!["metrics_listen = \"127.0.0.1:0\"".into()],
    );
    let server = Running::start(&env.config_path);
    let good = std::fs::read_to_string(&env.config_path).expect("read config");
    let deliver = |subject: &str| {
        let got = server.converse(&transaction(
            &["alice@example.test"],
            &clean_message(subject),
        ));
        assert!(got.contains("Saved\r\n"), "{got}\n{}", server.logs());
    };

    // Two problems at once: both named in the one refusal line.
    edit_config(&env, |text| {
        text.replace("on_failure = \"tempfail\"", "on_failure = \"sometimes\"")
            + "\n[log]\nformat = \"xml\"\n"
    });
    hangup(&server);
    let logs = wait_for_count(&server, "reload refused", 1);
    let line = logs
        .lines()
        .find(|l| l.contains("reload refused"))
        .expect("refusal line");
    assert!(line.contains("scanner.on_failure"), "{line}");
    assert!(line.contains("log.format"), "{line}");
    deliver("old config still serves");
    assert_eq!(folder_count(&env, "alice", ".One"), 1);

    // A config that parses but names a global script that does not compile.
    let broken = scripts.path().join("broken.sieve");
    std::fs::write(&broken, "if true {\n  fileinto \"x\"\n").expect("write broken.sieve");
    let one = scripts.path().join("one.sieve").display().to_string();
    std::fs::write(
        &env.config_path,
        good.replace(&one, &broken.display().to_string()),
    )
    .expect("write config");
    hangup(&server);
    let logs = wait_for_count(&server, "reload refused", 2);
    let line = logs
        .lines()
        .filter(|l| l.contains("reload refused"))
        .nth(1)
        .expect("second refusal line");
    assert!(
        line.contains(&broken.display().to_string()),
        "names the script: {line}"
    );
    deliver("old config still serves, again");
    assert_eq!(folder_count(&env, "alice", ".One"), 2);

    // Fixed: the next SIGHUP applies it.
    let two = scripts.path().join("two.sieve").display().to_string();
    std::fs::write(&env.config_path, good.replace(&one, &two)).expect("write config");
    hangup(&server);
    let logs = wait_for_count(&server, "reloaded ", 1);
    assert_eq!(
        logs.matches("reload refused").count(),
        2,
        "one line per refused reload: {logs}"
    );
    deliver("fixed config");
    assert_eq!(folder_count(&env, "alice", ".Two"), 1);
    assert_eq!(folder_count(&env, "alice", ".One"), 2);

    let m = crate::metrics::scrape(crate::metrics::metrics_addr(&server));
    assert_eq!(
        m.get("sievegate_reloads_total{result=\"refused\"}"),
        Some(&2.0)
    );
    assert_eq!(m.get("sievegate_reloads_total{result=\"ok\"}"), Some(&1.0));
}

/// Reads from the in-memory client end until `until` has occurred `n` times in all.
async fn read_until_async(client: &mut DuplexStream, text: &mut String, until: &str, n: usize) {
    let mut buf = [0u8; 4096];
    while text.matches(until).count() < n {
        let got = tokio::time::timeout(Duration::from_secs(30), client.read(&mut buf))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(got > 0, "session closed early; so far:\n{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
}

/// Layer 2: the session over an in-memory stream. A reload between RCPT and DATA does not
/// touch the transaction in flight (its message goes where the old script says); the
/// session's next transaction takes the new services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_in_flight_keeps_its_services_and_the_next_takes_the_new() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let env = env_with_scripts(scripts.path());
    let one = scripts.path().join("one.sieve").display().to_string();
    let two = scripts.path().join("two.sieve").display().to_string();
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    let new_path = env.dir.path().join("new.toml");
    std::fs::write(&new_path, text.replace(&one, &two)).expect("write new config");
    let new = Arc::new(Services::new(Config::load(&new_path).expect("new config")));

    let (current, follow) = tokio::sync::watch::channel(Arc::clone(&env.services));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let peer = Peer::Tcp("127.0.0.1:40000".parse().expect("addr"));
    let session = Session::new(server, Arc::clone(&env.services), peer, stop_rx).follow(follow);
    let task = tokio::spawn(session.run());

    let mut replies = String::new();
    client
        .write_all(b"LHLO x\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.test>\r\n")
        .await
        .expect("write");
    read_until_async(&mut client, &mut replies, "2.1.5", 1).await;
    current.send_replace(new);
    let message = clean_message("in flight during the reload");
    let mut data = b"DATA\r\n".to_vec();
    data.extend_from_slice(&message);
    data.extend_from_slice(b".\r\n");
    client.write_all(&data).await.expect("write");
    read_until_async(&mut client, &mut replies, "Saved\r\n", 1).await;
    assert_eq!(folder_count(&env, "alice", ".One"), 1, "{replies}");
    assert_eq!(folder_count(&env, "alice", ".Two"), 0);

    let next = transaction(&["alice@example.test"], &clean_message("next transaction"));
    // The same session: skip its LHLO (a second one would only be answered again).
    let next = &next[b"LHLO client.example\r\n".len()..];
    client.write_all(next).await.expect("write");
    read_until_async(&mut client, &mut replies, "Saved\r\n", 2).await;
    read_until_async(&mut client, &mut replies, "221 ", 1).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert_eq!(folder_count(&env, "alice", ".Two"), 1, "{replies}");
    assert_eq!(folder_count(&env, "alice", ".One"), 1);
}

/// Sends MAIL on new connections until its reply contains `want` (at most 20 s).
fn wait_for_mail_reply(server: &Running, want: &str) {
    let mail_only = b"LHLO client.example\r\nMAIL FROM:<sender@remote.example>\r\nQUIT\r\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.converse(mail_only);
        if out.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "MAIL never got {want:?}; last answer:\n{out}\nlog:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn health_gating_keeps_working_across_reloads() {
    let mut clamd = Clamd::start();
    let env = Env::new(Options::new(clamd.addr()));
    let server = Running::start(&env.config_path);
    server.wait_for_log("clamd answers");

    // [scanner] unchanged: the same scanner, its probe carries on (no second probe).
    edit_config(&env, |t| {
        t.replace("max_recipients = 100", "max_recipients = 99")
    });
    hangup(&server);
    let logs = wait_for_count(&server, "reloaded ", 1);
    assert_eq!(logs.matches("clamd answers").count(), 1, "{logs}");

    // A new scan timeout: a new scanner, and a new probe that watches it.
    edit_config(&env, |t| {
        t.replace("timeout_secs = 10", "timeout_secs = 11")
    });
    hangup(&server);
    wait_for_count(&server, "reloaded ", 2);
    wait_for_count(&server, "clamd answers", 2);

    clamd.stop();
    wait_for_mail_reply(&server, "451 4.7.1");
    clamd.restart();
    wait_for_mail_reply(&server, "250 2.1.0");
    let got = server.converse(&transaction(
        &["alice@example.test"],
        &clean_message("after the reloads"),
    ));
    assert!(got.contains("Saved\r\n"), "{got}");
}
