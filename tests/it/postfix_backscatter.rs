//! MTA-level backscatter, proved with the real Postfix in front of the real binary: what
//! Postfix itself would send to a (forged) sender because of how sievegate answers.
//! - NOTIFY=SUCCESS: sievegate advertises DSN, so Postfix passes the request on instead of
//!   answering it with a "relayed" notice; sievegate sends none. A control run with
//!   `lmtp_discard_lhlo_keywords = dsn` shows the notice Postfix would send otherwise.
//! - Unknown users (`[mailbox] unknown_users = "after-scan"`): infected mail to them is not
//!   bounced; clean mail is, as before.
//! - Size: Postfix's lmtp client does not hold back on our LHLO SIZE, it bounces; only
//!   Postfix's `message_size_limit` at or below `max_message_size` refuses at SMTP time.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::postfix::{assert_no_bounce, clean};
use crate::support::clamd::Clamd;
use crate::support::env::Options;
use crate::support::messages::eicar;
use crate::support::postfix::{Gate, Lmtp, Postfix};

/// EICAR from bob (a local user, so any notice to the sender lands in bob's Maildir).
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

/// A plain SMTP session to smtpd: `commands` one by one (each reply read), then, when
/// `data` is given, DATA with it. Returns every reply, in order.
fn smtp(addr: SocketAddr, commands: &[&str], data: Option<&[u8]>) -> Vec<String> {
    let stream = TcpStream::connect(addr).expect("connect smtpd");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut read_reply = || {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "smtpd closed the connection: {reply}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    };
    let mut replies = vec![read_reply()];
    for c in ["EHLO client.remote.example"].iter().chain(commands) {
        writer
            .write_all(format!("{c}\r\n").as_bytes())
            .expect("write");
        replies.push(read_reply());
    }
    if let Some(message) = data {
        writer.write_all(b"DATA\r\n").expect("write");
        let go = read_reply();
        let ok = go.starts_with("354");
        replies.push(go);
        if ok {
            // The test messages have no line starting with a dot.
            writer.write_all(message).expect("write");
            writer.write_all(b".\r\n").expect("write");
            replies.push(read_reply());
        }
    }
    let _ = writer.write_all(b"QUIT\r\n");
    replies
}

/// The queue id in `250 2.0.0 Ok: queued as QID`.
fn queue_id(reply: &str) -> String {
    reply
        .split("queued as ")
        .nth(1)
        .map(|q| q.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

/// Submits `message` from bob to alice with `NOTIFY=SUCCESS`; the queue id.
fn submit_notify_success(postfix: &Postfix, message: &[u8]) -> String {
    let replies = smtp(
        postfix.smtp_addr(),
        &[
            "MAIL FROM:<bob@example.test> RET=HDRS ENVID=t1",
            "RCPT TO:<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;alice@example.test",
        ],
        Some(message),
    );
    assert!(replies[1].contains("DSN"), "smtpd offers DSN: {replies:?}");
    let last = replies.last().expect("a reply");
    assert!(last.starts_with("250"), "{replies:?}");
    queue_id(last)
}

#[test]
fn postfix_notify_success_produces_no_dsn_for_infected_or_clean_mail() {
    let gate = Gate::start(Lmtp::Unix, Options::new(Clamd::shared().addr()));
    let postfix = gate.postfix(|_| {});
    let virus = submit_notify_success(&postfix, &infected("dsn-virus"));
    postfix.wait_status(&virus, "alice@example.test", "sent");
    let clean_qid = submit_notify_success(&postfix, &clean("dsn-clean"));
    postfix.wait_status(&clean_qid, "alice@example.test", "sent");
    postfix.wait_queue_empty(Duration::from_secs(30));
    // Postfix logs "QID: sender delivery status notification: NEWQID" when it sends one.
    let log = postfix.maillog();
    assert!(!log.contains("delivery status notification"), "{log}");
    assert_no_bounce(&postfix, &gate);
    assert!(gate.stored("bob").is_empty(), "nothing reached the sender");
    assert_eq!(gate.stored("alice").len(), 1, "the clean message only");

    // Control: the same Postfix told to ignore our DSN keyword sends the "relayed" notice
    // for the discarded virus, to bob: what this change stops.
    let control = gate.postfix(|o| o.extra = vec!["lmtp_discard_lhlo_keywords = dsn".into()]);
    let virus = submit_notify_success(&control, &infected("dsn-virus-control"));
    control.wait_status(&virus, "alice@example.test", "sent");
    control.wait_for_log("a success notice", Duration::from_secs(30), |log| {
        log.contains(&format!("{virus}: sender delivery status notification"))
    });
}

#[test]
fn postfix_unknown_user_infected_is_not_bounced_clean_is() {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("alice@example.test\nbob@example.test\n".into());
    let gate = Gate::start(Lmtp::Unix, options);
    // No virtual_mailbox_maps: Postfix takes every local part and leaves the question to
    // sievegate, as with a users_file that Postfix does not read.
    let postfix = gate.postfix(|_| {});
    let virus = postfix.submit(
        "bob@example.test",
        &["ghost@example.test"],
        &infected("ghost-virus"),
    );
    let sent = postfix.wait_status(&virus, "ghost@example.test", "sent");
    assert!(
        sent.line.contains("250 2.0.0 <ghost@example.test> "),
        "{}",
        sent.line
    );
    assert_no_bounce(&postfix, &gate);
    assert!(gate.stored("bob").is_empty());

    let clean_qid = postfix.submit(
        "bob@example.test",
        &["ghost@example.test"],
        &clean("ghost-clean"),
    );
    let bounced = postfix.wait_status(&clean_qid, "ghost@example.test", "bounced");
    assert!(
        bounced
            .line
            .contains("550 5.1.1 <ghost@example.test> User unknown in local recipient table (in reply to end of DATA command)"),
        "{}",
        bounced.line
    );
    postfix.wait_queue_empty(Duration::from_secs(30));
    let bob = gate.stored("bob");
    assert_eq!(bob.len(), 1, "the bounce reached the (real) sender");
    assert!(String::from_utf8_lossy(&bob[0].1).contains("MAILER-DAEMON"));
}

/// The README's size advice, checked: with Postfix's limit above ours, Postfix's lmtp
/// client bounces the message on our LHLO SIZE without sending it (unscanned); with
/// `message_size_limit` at or below `max_message_size`, smtpd refuses it at end of DATA and
/// nothing is queued or bounced.
#[test]
fn postfix_size_limit_is_enforced_at_smtp_time_only_by_message_size_limit() {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_message_size = 20_000;
    let gate = Gate::start(Lmtp::Unix, options);
    let mut big = clean("big");
    big.extend(
        std::iter::repeat_n(b"0123456789abcdef0123456789abcdef\r\n".as_slice(), 1000).flatten(),
    );

    // Postfix's default limit (10240000) above ours: queued, then bounced by Postfix.
    let postfix = gate.postfix(|_| {});
    let qid = postfix.submit("bob@example.test", &["alice@example.test"], &big);
    let bounced = postfix.wait_status(&qid, "alice@example.test", "bounced");
    assert!(
        bounced.line.contains("exceeds size limit"),
        "{}",
        bounced.line
    );
    drop(postfix);

    // message_size_limit at our limit: refused at SMTP time, nothing queued or bounced.
    let postfix = gate.postfix(|o| o.extra = vec!["message_size_limit = 20000".into()]);
    let replies = smtp(
        postfix.smtp_addr(),
        &[
            "MAIL FROM:<bob@example.test>",
            "RCPT TO:<alice@example.test>",
        ],
        Some(&big),
    );
    let last = replies.last().expect("a reply");
    assert!(last.starts_with("552 5.3.4"), "{replies:?}");
    // SIZE in MAIL is refused at once, before any byte of the message.
    let replies = smtp(
        postfix.smtp_addr(),
        &[&format!("MAIL FROM:<bob@example.test> SIZE={}", big.len())],
        None,
    );
    assert!(replies[2].starts_with("552 5.3.4"), "{replies:?}");
    assert!(postfix.queue_is_empty());
    let log = postfix.maillog();
    assert!(
        !log.contains("status="),
        "nothing was delivered or bounced: {log}"
    );
    assert!(gate.stored("alice").is_empty() && gate.stored("bob").is_empty());
}
