//! Postfix → sievegate → Maildir, end to end with the real peers: a private Postfix
//! (tests/it/support/postfix/) takes mail over SMTP and hands it to the real sievegate
//! binary by `lmtp:unix:` and `lmtp:inet:`, with a real clamd behind it.

use std::time::Duration;

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::Options;
use crate::support::messages::eicar;
use crate::support::postfix::{Gate, Lmtp, Postfix, PostfixOptions};

/// The SMTP client's address: not the address sievegate's TCP peer has (127.0.0.1), so
/// finding it in sievegate's log proves it came by XFORWARD.
const CLIENT_IP: &str = "127.0.0.2";

/// What Postfix logs when sievegate cannot scan: the per-recipient reply after DATA, or
/// (with health gating, once sievegate knows clamd is down) the reply to MAIL.
pub const SCANNER_DEFERRALS: [&str; 2] = [
    "451 4.7.0 <alice@example.test> Virus scan unavailable, try again later (in reply to end of DATA command)",
    "451 4.7.1 Virus scanner unavailable, try again later (in reply to MAIL FROM command)",
];

pub fn is_scanner_deferral(line: &str) -> bool {
    SCANNER_DEFERRALS.iter().any(|d| line.contains(d))
}

/// A clean message with a unique Message-ID.
pub fn clean(tag: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\n\
         Subject: {tag}\r\nMessage-ID: <{tag}@remote.example>\r\n\
         Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n\r\n\
         Hello,\r\n\r\nthis is {tag}.\r\n"
    )
    .into_bytes()
}

/// EICAR in a message from a local sender (bob): a bounce would be delivered to bob's
/// Maildir through sievegate, so "no bounce" is visible on disk as well as in the log.
fn infected(tag: &str) -> Vec<u8> {
    let mut m = format!(
        "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {tag}\r\n\
         Message-ID: <{tag}@example.test>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&eicar());
    m.extend_from_slice(b"\r\n");
    m
}

/// The log line sievegate wrote for `rcpt` of Postfix's `queue_id`.
fn log_line_of(running: &Running, queue_id: &str, rcpt: &str) -> String {
    let needle = format!("queue_id=\"{queue_id}\"");
    let to = format!(" to={rcpt} ");
    let logs = running.wait_for_log(&needle);
    logs.lines()
        .find(|l| l.contains(&needle) && l.contains(&to))
        .unwrap_or_else(|| panic!("no sievegate log line with {needle}:\n{logs}"))
        .to_string()
}

/// No bounce anywhere: no `status=bounced`, no non-delivery notification, an empty queue,
/// and no MAILER-DAEMON message in any Maildir.
pub fn assert_no_bounce(postfix: &Postfix, gate: &Gate) {
    let log = postfix.maillog();
    assert!(!log.contains("status=bounced"), "a bounce:\n{log}");
    assert!(
        !log.contains("sender non-delivery notification"),
        "Postfix made a bounce:\n{log}"
    );
    postfix.wait_queue_empty(Duration::from_secs(30));
    for user in ["alice", "bob"] {
        for (path, bytes) in gate.stored(user) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("MAILER-DAEMON"),
                "a bounce in {}",
                path.display()
            );
        }
    }
}

fn clean_and_infected(lmtp: Lmtp) {
    let gate = Gate::start(lmtp, Options::new(Clamd::shared().addr()));
    if lmtp == Lmtp::Unix {
        // What lets Postfix's lmtp client (user postfix) in, and no one else.
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(gate.socket()).expect("stat socket");
        let postfix_gid = nix::unistd::Group::from_name("postfix")
            .expect("group lookup")
            .expect("postfix group")
            .gid
            .as_raw();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), postfix_gid);
    }
    let postfix = gate
        .postfix(|o| o.users = Some(vec!["alice@example.test".into(), "bob@example.test".into()]));

    // Postfix itself refuses who is not in virtual_mailbox_maps.
    let mut client = postfix.client();
    let reply = client.try_rcpt("sender@remote.example", "nobody@example.test");
    assert!(reply.starts_with("550 5.1.1 "), "{reply}");
    client.quit();

    // Clean mail reaches both Maildirs in one LMTP transaction (two RCPTs: Postfix's
    // lmtp_destination_recipient_limit), with the client's address and Postfix's queue id
    // in sievegate's log lines.
    let message = clean("e2e-clean");
    let qid = postfix.submit_from(
        CLIENT_IP,
        "sender@remote.example",
        &["alice@example.test", "bob@example.test"],
        &message,
    );
    let mut transactions = Vec::new();
    for rcpt in ["alice@example.test", "bob@example.test"] {
        let sent = postfix.wait_status(&qid, rcpt, "sent");
        assert!(
            sent.line.contains(&format!("250 2.0.0 <{rcpt}> ")),
            "{}",
            sent.line
        );
        assert!(sent.line.contains(" Saved)"), "{}", sent.line);
        let line = log_line_of(gate.running(), &qid, rcpt);
        assert!(line.contains(": delivered id="), "{line}");
        assert!(line.contains(&format!("client=\"{CLIENT_IP}\"")), "{line}");
        let id = line.split(" id=").nth(1).and_then(|r| r.split(' ').next());
        transactions.push(id.expect("id= in the log line").to_string());
    }
    assert_eq!(transactions[0], transactions[1], "one LMTP transaction");
    assert_eq!(postfix.client_of(&qid).as_deref(), Some(CLIENT_IP));
    let body = b"Hello,\r\n\r\nthis is e2e-clean.\r\n";
    for user in ["alice", "bob"] {
        let stored = gate.stored(user);
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert!(
            stored[0].1.ends_with(body),
            "{:?}",
            String::from_utf8_lossy(&stored[0].1)
        );
    }

    // EICAR: 250 (status=sent), no copy, and no bounce anywhere.
    let qid = postfix.submit_from(
        CLIENT_IP,
        "bob@example.test",
        &["alice@example.test"],
        &infected("e2e-virus"),
    );
    let sent = postfix.wait_status(&qid, "alice@example.test", "sent");
    assert!(
        sent.line.contains("250 2.0.0 <alice@example.test> "),
        "{}",
        sent.line
    );
    assert!(sent.line.contains(" Ok)"), "{}", sent.line);
    let line = log_line_of(gate.running(), &qid, "alice@example.test");
    assert!(line.contains("verdict=\"infected\""), "{line}");
    assert!(line.contains(": discarded id="), "{line}");
    assert!(!line.contains("virus=\"\""), "the virus is named: {line}");
    assert!(line.contains(&format!("client=\"{CLIENT_IP}\"")), "{line}");
    assert_eq!(gate.stored("alice").len(), 1, "the virus was stored");
    assert_no_bounce(&postfix, &gate);
    assert_eq!(gate.stored("bob").len(), 1, "bob got more mail: a bounce");
}

#[test]
fn postfix_lmtp_unix_clean_and_infected() {
    clean_and_infected(Lmtp::Unix);
}

#[test]
fn postfix_lmtp_inet_clean_and_infected() {
    clean_and_infected(Lmtp::Inet);
}

/// clamd down: Postfix defers (4xx), nothing is stored; clamd back and the queue flushed:
/// delivered once.
fn clamd_down_defers(lmtp: Lmtp) {
    let mut clamd = Clamd::start();
    let gate = Gate::start(lmtp, Options::new(clamd.addr()));
    let postfix = gate.postfix(|_| {});
    clamd.stop();
    let qid = postfix.submit(
        "sender@remote.example",
        &["alice@example.test"],
        &clean("e2e-down"),
    );
    let deferred = postfix.wait_status(&qid, "alice@example.test", "deferred");
    assert!(is_scanner_deferral(&deferred.line), "{}", deferred.line);
    assert!(gate.stored("alice").is_empty());
    clamd.restart();
    postfix.flush();
    postfix.wait_status(&qid, "alice@example.test", "sent");
    postfix.wait_queue_empty(Duration::from_secs(30));
    assert_eq!(gate.stored("alice").len(), 1);
    assert!(!postfix.maillog().contains("status=bounced"));
}

#[test]
fn postfix_lmtp_unix_clamd_down_defers_then_delivers() {
    clamd_down_defers(Lmtp::Unix);
}

#[test]
fn postfix_lmtp_inet_clamd_down_defers_then_delivers() {
    clamd_down_defers(Lmtp::Inet);
}

/// Debian's master.cf runs the lmtp client chrooted to the queue directory: the socket
/// lives in a directory there that `postfix` may search, and the transport names it
/// relative to the chroot (the README's "Chrooted" recipe).
#[test]
fn postfix_chrooted_lmtp_client_reaches_a_socket_in_the_queue_directory() {
    let postfix = Postfix::start(PostfixOptions {
        lmtp_chroot: true,
        ..PostfixOptions::new("lmtp:unix:sievegate/lmtp.sock")
    });
    let dir = postfix.root().join("queue/sievegate");
    std::fs::create_dir(&dir).expect("mkdir");
    let postfix_gid = nix::unistd::Group::from_name("postfix")
        .expect("group lookup")
        .expect("postfix group")
        .gid;
    std::os::unix::fs::chown(&dir, None, Some(postfix_gid.as_raw())).expect("chown");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .expect("chmod");
    let gate = Gate::start_at(
        Lmtp::Unix,
        Options::new(Clamd::shared().addr()),
        dir.join("lmtp.sock"),
    );

    let qid = postfix.submit_from(
        CLIENT_IP,
        "sender@remote.example",
        &["alice@example.test"],
        &clean("e2e-chroot"),
    );
    postfix.wait_status(&qid, "alice@example.test", "sent");
    let line = log_line_of(gate.running(), &qid, "alice@example.test");
    assert!(line.contains(&format!("client=\"{CLIENT_IP}\"")), "{line}");
    assert_eq!(gate.stored("alice").len(), 1);
    let qid = postfix.submit(
        "bob@example.test",
        &["alice@example.test"],
        &infected("e2e-chroot-virus"),
    );
    postfix.wait_status(&qid, "alice@example.test", "sent");
    assert_no_bounce(&postfix, &gate);
    assert_eq!(gate.stored("alice").len(), 1);
}
