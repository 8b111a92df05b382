//! Hostile user scripts through the real server: each hits a limit, the message is kept
//! (or handled within the limit), the reason is logged, and the server stays up for the next
//! message. Include loops are in `sieve_tools.rs`.

use std::time::Duration;

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, transaction};
use crate::support::smtp_sink::SmtpSink;

fn start(relay: &str, sieve_extra: &[&str]) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    options.before = Some(vec![]);
    options.sieve_extra = sieve_extra.iter().map(|s| s.to_string()).collect();
    options.extra_sections = vec![format!("[notify]\nrelay = \"{relay}\"")];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    (env, server)
}

fn deliver(server: &Running, rcpt: &str) -> String {
    server.converse(&transaction(&[rcpt], &clean_message("hostile")))
}

#[test]
fn a_script_past_the_cpu_limit_keeps_the_message() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &["cpu_limit = 200"]);
    let mut script = String::from("require [\"fileinto\", \"mailbox\"];\n");
    for i in 0..2000 {
        script.push_str(&format!(
            "if header :contains \"Subject\" \"never-{i}\" {{ discard; }}\n"
        ));
    }
    script.push_str("fileinto :create \"Reached\";\n");
    env.set_personal("alice", &script);
    let out = deliver(&server, "alice@example.test");
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(env.messages("alice", "").len(), 1, "implicit keep: INBOX");
    assert!(env.messages("alice", ".Reached").is_empty());
    let logs = server.wait_for_log("CPU limit");
    assert!(logs.contains("CPU limit"), "{logs}");
    // The server is still there for the next message.
    let out = deliver(&server, "bob@example.test");
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
}

#[test]
fn variables_doubled_to_megabytes_stay_bounded() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    // 4 KiB doubled 10 times would be 4 MiB: sieve-rs bounds a variable's size, so the
    // value is cut, the script goes on, and the memory stays small.
    let mut script = String::from("require [\"variables\", \"fileinto\", \"mailbox\"];\n");
    script.push_str(&format!("set \"a\" \"{}\";\n", "x".repeat(4000)));
    for _ in 0..10 {
        script.push_str("set \"a\" \"${a}${a}\";\n");
    }
    script.push_str("fileinto :create \"Done\";\n");
    env.set_personal("alice", &script);
    let before = server.peak_rss();
    let out = deliver(&server, "alice@example.test");
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(
        env.messages("alice", ".Done").len(),
        1,
        "the script ran to its end: {}",
        server.logs()
    );
    let growth = server.peak_rss().saturating_sub(before);
    assert!(growth < 64 * 1024 * 1024, "peak RSS grew by {growth} bytes");
}

#[test]
fn a_thousand_redirects_send_at_most_max_redirects() {
    let sink = SmtpSink::start();
    let (env, server) = start(&sink.addr().to_string(), &[]);
    let mut script = String::new();
    for i in 0..1000 {
        script.push_str(&format!("redirect \"target{i}@elsewhere.example\";\n"));
    }
    env.set_personal("alice", &script);
    let out = deliver(&server, "alice@example.test");
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let sent = sink.wait_for(4, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sent.len(), 4, "max_redirects (4)");
    assert_eq!(sink.transactions().len(), 4, "{}", server.logs());
    assert!(env.messages("alice", "").is_empty(), "redirected, not kept");
}
