//! LDA mode through the real binary (`sievegate deliver`), with the real clamd: the exit
//! statuses Postfix acts on, and what lands in the Maildir.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::binary::bin;
use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::messages::{clean_message, infected_message};
use sievegate::scan::ClamdAddr;

/// What one `sievegate deliver` run ended with.
struct Run {
    code: i32,
    stderr: String,
}

/// Runs `sievegate deliver -c <env's config> ARGS < message`.
fn deliver(env: &Env, args: &[&str], message: &[u8]) -> Run {
    let mut child = Command::new(bin())
        .arg("deliver")
        .arg("-c")
        .arg(&env.config_path)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sievegate deliver");
    let mut stdin = child.stdin.take().expect("stdin");
    // A process that exits early (too big) closes the pipe: that is not the test's failure.
    let _ = stdin.write_all(message);
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().expect("exit code, not a signal"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The message with LF line ends and an mbox `From ` line first, as Postfix's local(8)
/// hands it to a mailbox_command.
fn as_local_hands_it(message: &[u8]) -> Vec<u8> {
    let mut out = b"From sender@remote.example  Sat Nov 28 09:00:00 2026\n".to_vec();
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    out.extend_from_slice(text.as_bytes());
    out
}

fn env_with(users: Option<&str>) -> Env {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = users.map(str::to_string);
    Env::new(options)
}

#[test]
fn clean_mail_is_stored_with_crlf_and_trace_headers_exit_0() {
    let env = env_with(None);
    let message = clean_message("lda clean");
    let run = deliver(
        &env,
        &["-f", "sender@remote.example", "-a", "bob@example.test"],
        &as_local_hands_it(&message),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stored = env.messages("bob", "");
    assert_eq!(stored.len(), 1, "{}", run.stderr);
    let (trace, body) = split_trace(&stored[0].1);
    // The body exactly as an LMTP client would have sent it: CRLF, no From_ line.
    assert_eq!(body, &message[..]);
    let trace = String::from_utf8_lossy(trace);
    assert!(
        trace.contains("Return-Path: <sender@remote.example>"),
        "{trace}"
    );
    assert!(trace.contains("X-Virus-Status: Clean"), "{trace}");
    assert!(run.stderr.contains("delivered"), "{}", run.stderr);
}

/// A message past `spool_threshold` is read into a spool file, normalised on the way (the
/// From_ line dropped, LF → CRLF), and scanned and stored like a small one.
#[test]
fn a_large_message_is_spooled_and_stored_whole() {
    let mut options = Options::new(Clamd::shared().addr());
    options.server_extra = vec!["spool_threshold = 65536".into()];
    let env = Env::new(options);
    let mut message = clean_message("lda large");
    for i in 0..40_000 {
        message.extend_from_slice(format!("line {i} of a large message body\r\n").as_bytes());
    }
    assert!(message.len() > 1_000_000);
    let run = deliver(
        &env,
        &["-a", "bob@example.test"],
        &as_local_hands_it(&message),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stored = env.messages("bob", "");
    assert_eq!(stored.len(), 1, "{}", run.stderr);
    let (trace, body) = split_trace(&stored[0].1);
    assert_eq!(body.len(), message.len());
    assert!(body == &message[..], "byte for byte");
    let trace = String::from_utf8_lossy(trace);
    assert!(
        trace.contains("Return-Path: <sender@remote.example>"),
        "{trace}"
    );
    assert!(trace.contains("X-Virus-Status: Clean"), "{trace}");
}

#[test]
fn sender_from_the_mbox_line_without_f() {
    let env = env_with(None);
    let run = deliver(
        &env,
        &["-a", "bob@example.test"],
        &as_local_hands_it(&clean_message("no -f")),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stored = env.messages("bob", "");
    let trace = String::from_utf8_lossy(split_trace(&stored[0].1).0).into_owned();
    assert!(
        trace.contains("Return-Path: <sender@remote.example>"),
        "{trace}"
    );
}

#[test]
fn eicar_exits_0_and_stores_nothing() {
    let env = env_with(Some("bob@example.test\n"));
    // Also for an unknown recipient: a 67 would make Postfix bounce infected mail.
    for rcpts in [
        vec!["-a", "bob@example.test"],
        vec!["-a", "nobody@example.test"],
        vec!["-a", "bob@example.test", "-a", "nobody@example.test"],
    ] {
        let mut args = vec!["-f", "mallory@forged.example"];
        args.extend(rcpts.iter().copied());
        let run = deliver(&env, &args, &as_local_hands_it(&infected_message()));
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(env.total_messages(), 0, "{args:?}");
    }
}

#[test]
fn unknown_user_exits_67() {
    let env = env_with(Some("bob@example.test\n"));
    let message = as_local_hands_it(&clean_message("who"));
    let run = deliver(&env, &["-a", "nobody@example.test"], &message);
    assert_eq!(run.code, 67, "{}", run.stderr);
    assert!(
        run.stderr.contains("<nobody@example.test>: user unknown"),
        "{}",
        run.stderr
    );
    let run = deliver(&env, &["-a", "bob@elsewhere.example"], &message);
    assert_eq!(run.code, 67, "a domain that is not ours: {}", run.stderr);
    assert_eq!(env.total_messages(), 0);
    // With a known recipient as well, the known one is stored and the status still says
    // 67 (one status covers both).
    let run = deliver(
        &env,
        &["-a", "bob@example.test", "-a", "nobody@example.test"],
        &message,
    );
    assert_eq!(run.code, 67, "{}", run.stderr);
    assert_eq!(env.messages("bob", "").len(), 1);
}

#[test]
fn clamd_down_exits_75_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::new(Options::new(ClamdAddr::Unix(
        dir.path().join("no-clamd.sock"),
    )));
    let run = deliver(
        &env,
        &["-a", "bob@example.test"],
        &as_local_hands_it(&clean_message("scan fails")),
    );
    assert_eq!(run.code, 75, "{}", run.stderr);
    assert_eq!(env.total_messages(), 0);
    // Nothing internal (the socket path) in what Postfix copies into its log and DSN,
    // except the log lines an admin asked for with RUST_LOG.
    let last = run.stderr.lines().last().unwrap_or("");
    assert_eq!(
        last,
        "<bob@example.test>: temporary failure, try again later"
    );
}

#[test]
fn configuration_and_usage_errors_exit_75() {
    let env = env_with(None);
    let message = as_local_hands_it(&clean_message("cfg"));
    // A config file that does not parse.
    let broken = env.dir.path().join("broken.toml");
    std::fs::write(&broken, "[server\n").expect("write");
    let out = Command::new(bin())
        .args(["deliver", "-c"])
        .arg(&broken)
        .args(["-a", "bob@example.test"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(75));
    // No -a at all (a master.cf slip).
    let out = Command::new(bin())
        .args(["deliver", "-c"])
        .arg(&env.config_path)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(
        deliver(&env, &["-a", "bob@example.test", "-m", ".."], &message).code,
        75
    );
    // Options before the verb (the config path where a master.cf line often puts it): clap
    // refuses it, and that refusal is a usage error of LDA mode too.
    for args in [
        &["-c", "CONFIG", "deliver", "-a", "bob@example.test"][..],
        &["--config", "CONFIG", "deliver", "-a", "bob@example.test"][..],
        &["-c", "CONFIG", "deliver"][..],
    ] {
        let config = env.config_path.to_string_lossy().into_owned();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "CONFIG" { config.as_str() } else { a })
            .collect();
        let out = Command::new(bin())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(75),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Outside LDA mode a usage error keeps clap's status 2.
    let out = Command::new(bin())
        .args(["-c", "x", "serve"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.total_messages(), 0);
}

#[test]
fn too_big_exits_65() {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_message_size = 1000;
    let env = Env::new(options);
    let big = as_local_hands_it(&[clean_message("big"), vec![b'x'; 2000]].concat());
    let run = deliver(&env, &["-a", "bob@example.test"], &big);
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert_eq!(env.total_messages(), 0);
}

#[test]
fn m_folder_takes_the_keep_and_falls_back_to_inbox() {
    let env = env_with(None);
    let message = as_local_hands_it(&clean_message("to work"));
    // The folder exists (made by an earlier delivery with :create, as Dovecot would have).
    env.set_personal(
        "bob",
        "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"make\" { fileinto :create \"Work\"; }\n",
    );
    let run = deliver(
        &env,
        &["-a", "bob@example.test"],
        &as_local_hands_it(&clean_message("make work")),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.messages("bob", ".Work").len(), 1);
    let run = deliver(&env, &["-a", "bob@example.test", "-m", "Work"], &message);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.messages("bob", ".Work").len(),
        2,
        "the keep went to Work"
    );
    assert_eq!(env.messages("bob", "").len(), 0);
    // A folder that does not exist is not created: the keep goes to INBOX.
    let run = deliver(&env, &["-a", "bob@example.test", "-m", "Missing"], &message);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!env.maildir("bob").join(".Missing").exists());
    assert_eq!(env.messages("bob", "").len(), 1);
}

#[test]
fn personal_sieve_fileinto_and_reject() {
    let env = env_with(None);
    env.set_personal(
        "carol",
        "require [\"fileinto\", \"mailbox\", \"reject\"];\n\
         if header :contains \"subject\" \"list\" { fileinto :create \"Lists\"; stop; }\n\
         if header :contains \"subject\" \"spam\" { reject \"not wanted here\"; stop; }\n",
    );
    let run = deliver(
        &env,
        &["-a", "carol@example.test"],
        &as_local_hands_it(&clean_message("a list post")),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.messages("carol", ".Lists").len(), 1);
    assert_eq!(env.messages("carol", "").len(), 0);
    // reject of clean mail: 77, the reason as the last line (Postfix's bounce text).
    let run = deliver(
        &env,
        &["-a", "carol@example.test"],
        &as_local_hands_it(&clean_message("spam offer")),
    );
    assert_eq!(run.code, 77, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().last(),
        Some("<carol@example.test>: not wanted here")
    );
    // The same script on infected mail: the virus policy wins, nothing bounces.
    let mut infected = b"Subject: spam offer\r\n".to_vec();
    infected.extend_from_slice(&infected_message());
    let run = deliver(&env, &["-a", "carol@example.test"], &infected);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.total_messages(), 1);
}

/// LDA mode has no background sender: a vacation reply goes out before the process exits;
/// with the relay down it stays queued in the state store (and the status is still 0).
#[test]
fn vacation_is_sent_before_exit_or_kept_queued() {
    use crate::support::smtp_sink::{free_port, SmtpSink};
    let sink = SmtpSink::start();
    let env_for = |relay: String| {
        let mut options = Options::new(Clamd::shared().addr());
        options.extra_sections = vec![
            "[state]\ndir = \"state\"".into(),
            format!("[notify]\nrelay = \"{relay}\""),
        ];
        let env = Env::new(options);
        env.set_personal("alice", r#"require "vacation"; vacation "Away.";"#);
        env
    };
    // clean_message is addressed To: alice, so vacation answers it.
    let message = clean_message("hello alice");
    let env = env_for(sink.addr().to_string());
    let run = deliver(
        &env,
        &["-f", "bob@remote.example", "-a", "alice@example.test"],
        &message,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sent = sink.wait_for(1, std::time::Duration::from_secs(5));
    assert_eq!(sent[0].rcpt_to, ["<bob@remote.example>"]);
    assert!(String::from_utf8_lossy(&sent[0].message).contains("Away."));

    let down = env_for(format!("127.0.0.1:{}", free_port()));
    let run = deliver(
        &down,
        &["-f", "bob@remote.example", "-a", "alice@example.test"],
        &message,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("kept in the state store"),
        "{}",
        run.stderr
    );
    assert_eq!(down.messages("alice", "").len(), 1);
}
