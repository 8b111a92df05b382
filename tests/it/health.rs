//! Health gating through the real binary with a real clamd: while clamd is down, MAIL gets
//! 451 4.7.1 (the probe notices within seconds); when it is back on the same socket, MAIL is
//! accepted again within seconds and mail is delivered.

use std::time::{Duration, Instant};

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::messages::{clean_message, transaction};

const MAIL_ONLY: &[u8] = b"LHLO client.example\r\nMAIL FROM:<sender@remote.example>\r\nQUIT\r\n";

/// Sends MAIL on new connections until the reply to it contains `want`; returns how long
/// that took. Fails after 15 s.
fn wait_for_mail_reply(server: &Running, want: &str) -> Duration {
    let started = Instant::now();
    loop {
        let out = server.converse(MAIL_ONLY);
        if out.contains(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "MAIL never got {want:?}; last answer:\n{out}\nlog:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Appends `line` to the `[scanner]` section of the env's config file.
fn scanner_key(env: &Env, line: &str) {
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    let text = text.replace("[scanner]\n", &format!("[scanner]\n{line}\n"));
    std::fs::write(&env.config_path, text).expect("write config");
}

#[test]
fn mail_is_refused_while_clamd_is_down_and_accepted_when_it_is_back() {
    let mut clamd = Clamd::start();
    let env = Env::new(Options::new(clamd.addr()));
    let server = Running::start(&env.config_path);
    let ok = server.converse(&transaction(
        &["bob@example.test"],
        &clean_message("before"),
    ));
    assert!(ok.contains("250 2.0.0 <bob@example.test>"), "{ok}");

    clamd.stop();
    let noticed = wait_for_mail_reply(&server, "451 4.7.1 Virus scanner unavailable");
    // The probe runs every 2 s (the default); "a few seconds" with room for a slow machine.
    eprintln!("clamd stopped: MAIL refused after {noticed:?}");
    assert!(noticed < Duration::from_secs(10), "took {noticed:?}");
    let out = server.converse(&transaction(&["bob@example.test"], &clean_message("down")));
    assert!(out.contains("451 4.7.1"), "{out}");
    assert!(!out.contains("354"), "no DATA while clamd is down: {out}");
    server.wait_for_log("clamd is down");

    clamd.restart();
    let back = wait_for_mail_reply(&server, "250 2.1.0 Sender ok");
    eprintln!("clamd restarted: MAIL accepted after {back:?}");
    assert!(back < Duration::from_secs(10), "took {back:?}");
    let out = server.converse(&transaction(&["bob@example.test"], &clean_message("after")));
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
    assert_eq!(env.messages("bob", "").len(), 2);
    server.wait_for_log("clamd answers again");
}

#[test]
fn a_failed_scan_marks_clamd_down_at_once() {
    let mut clamd = Clamd::start();
    let env = Env::new(Options::new(clamd.addr()));
    // A probe that would not look again for an hour: only the scan can have said so.
    scanner_key(&env, "health_interval_secs = 3600");
    let server = Running::start(&env.config_path);
    server.wait_for_log("clamd answers");
    clamd.stop();
    let out = server.converse(&transaction(&["bob@example.test"], &clean_message("x")));
    assert!(
        out.contains("451 4.7.0 <bob@example.test> Virus scan unavailable"),
        "{out}"
    );
    let out = server.converse(MAIL_ONLY);
    assert!(out.contains("451 4.7.1"), "{out}");
}

#[test]
fn no_gating_with_deliver_unscanned_or_without_the_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = sievegate::scan::ClamdAddr::Unix(dir.path().join("no-clamd.sock"));
    for (on_failure, key) in [
        ("deliver-unscanned", ""),
        ("tempfail", "health_interval_secs = 0"),
    ] {
        let mut options = Options::new(missing.clone());
        options.on_failure = on_failure;
        let env = Env::new(options);
        scanner_key(&env, key);
        let server = Running::start(&env.config_path);
        server.wait_for_log("clamd does not answer");
        // Two probe periods: gating, if it were on, would have started.
        std::thread::sleep(Duration::from_secs(5));
        let out = server.converse(MAIL_ONLY);
        assert!(out.contains("250 2.1.0"), "{on_failure} {key:?}: {out}");
    }
}

/// A scan that times out on a clamd that still answers PING defers that message only: MAIL
/// stays open for everyone else (the probe would not look again for an hour, so only the
/// scan path can have decided), and no "clamd is down" line is logged.
#[test]
fn a_scan_timeout_while_clamd_answers_ping_does_not_mark_it_down() {
    let fake = FakeClamd::start(Mode::StallScan);
    let mut options = Options::new(fake.addr());
    options.scan_timeout_secs = 1;
    let env = Env::new(options);
    scanner_key(&env, "health_interval_secs = 3600");
    let server = Running::start(&env.config_path);
    server.wait_for_log("clamd answers");
    let out = server.converse(&transaction(&["bob@example.test"], &clean_message("slow")));
    assert!(
        out.contains("451 4.7.0 <bob@example.test> Virus scan unavailable"),
        "the slow message itself is deferred: {out}"
    );
    let out = server.converse(MAIL_ONLY);
    assert!(
        out.contains("250 2.1.0 Sender ok"),
        "MAIL still accepted: {out}"
    );
    assert!(
        !server.logs().contains("clamd is down"),
        "{}",
        server.logs()
    );
}
