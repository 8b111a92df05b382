//! Layer 2: the LMTP session over an in-memory stream, with a real clamd and real Maildirs.
//! Every transcript is also replayed split at every byte.

use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::messages::{clean_message, eicar, infected_message, transaction};
use sievegate::lmtp::Peer;

fn env() -> Env {
    Env::new(Options::new(Clamd::shared().addr()))
}

const LHLO_REPLY: &str = "250-mx.example.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250-SMTPUTF8\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n";
const GREETING: &str = "220 mx.example.test LMTP sievegate ready\r\n";

fn expected(rcpt_replies: &[&str], finals: &[String]) -> String {
    let mut out = format!("{GREETING}{LHLO_REPLY}250 2.1.0 Sender ok\r\n");
    for r in rcpt_replies {
        out.push_str(r);
        out.push_str("\r\n");
    }
    out.push_str("354 Start mail input; end with <CRLF>.<CRLF>\r\n");
    for f in finals {
        out.push_str(f);
        out.push_str("\r\n");
    }
    out.push_str("221 2.0.0 Bye\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_mail_to_two_recipients_split_at_every_byte() {
    let env = env();
    let message = clean_message("split test");
    let input = transaction(&["alice@example.test", "Bob+news@Example.TEST"], &message);
    let want = expected(
        &["250 2.1.5 Recipient ok", "250 2.1.5 Recipient ok"],
        &[
            "250 2.0.0 <alice@example.test> ID Saved".into(),
            "250 2.0.0 <Bob+news@Example.TEST> ID Saved".into(),
        ],
    );
    let mut runs = 0;
    for k in 0..=input.len() {
        let got = env.transcript(&[&input[..k], &input[k..]]).await;
        assert_eq!(got, want, "split at byte {k}");
        runs += 1;
    }
    // Two recipients: one file hard-linked into both Maildirs, whose trace headers name
    // neither (as Dovecot's LMTP writes a message with several recipients).
    let alice = env.messages("alice", "");
    let bob = env.messages("bob", "");
    assert_eq!(
        (alice.len(), bob.len()),
        (runs, runs),
        "one file per run each"
    );
    for (path, bytes) in alice.iter().chain(&bob) {
        let (trace, rest) = split_trace(bytes);
        assert_eq!(
            rest,
            &message[..],
            "{}: byte-identical below our headers",
            path.display()
        );
        let trace = String::from_utf8_lossy(trace);
        assert!(
            trace.starts_with("Return-Path: <sender@remote.example>\r\n"),
            "{trace}"
        );
        assert!(!trace.contains("Delivered-To:"), "{trace}");
        assert!(!trace.contains("\tfor <"), "{trace}");
        assert!(trace.contains("X-Virus-Status: Clean\r\n"), "{trace}");
        assert!(
            path.to_string_lossy()
                .contains(&format!(",S={}", bytes.len())),
            "{}",
            path.display()
        );
        assert_eq!(nlink(path), 2, "{}: linked, not copied", path.display());
    }
}

fn nlink(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stored file").nlink()
}

/// With `link_copies = false` every recipient gets a file of its own with its own
/// Delivered-To, +detail included (as Postfix's local(8) writes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_link_copies_each_recipient_has_its_own_delivered_to() {
    let mut options = Options::new(Clamd::shared().addr());
    options.mailbox_extra = vec!["link_copies = false".into()];
    let env = Env::new(options);
    let message = clean_message("own copies");
    let input = transaction(&["alice@example.test", "Bob+news@Example.TEST"], &message);
    let got = env.transcript(&[&input]).await;
    assert!(got.contains("<Bob+news@Example.TEST> ID Saved"), "{got}");
    for (user, rcpt) in [
        ("alice", "alice@example.test"),
        ("bob", "Bob+news@Example.TEST"),
    ] {
        let stored = env.messages(user, "");
        assert_eq!(stored.len(), 1, "{user}");
        let (path, bytes) = &stored[0];
        let (trace, rest) = split_trace(bytes);
        assert_eq!(rest, &message[..]);
        let trace = String::from_utf8_lossy(trace);
        assert!(
            trace.contains(&format!("Delivered-To: {rcpt}\r\n")),
            "{trace}"
        );
        assert!(trace.contains(&format!("\tfor <{rcpt}>;")), "{trace}");
        assert_eq!(nlink(path), 1, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infected_mail_gets_250_per_recipient_and_lands_nowhere_split_at_every_byte() {
    let env = env();
    // bob's script would reject, carol's would file it: the virus policy wins for both.
    env.set_personal("bob", "require \"reject\";\nreject \"go away\";\n");
    env.set_personal(
        "carol",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Keep\";\n",
    );
    let message = infected_message();
    let input = transaction(
        &[
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
        ],
        &message,
    );
    let want = expected(
        &["250 2.1.5 Recipient ok"; 3],
        &[
            "250 2.0.0 <alice@example.test> ID Ok".into(),
            "250 2.0.0 <bob@example.test> ID Ok".into(),
            "250 2.0.0 <carol@example.test> ID Ok".into(),
        ],
    );
    for k in 0..=input.len() {
        assert_eq!(
            env.transcript(&[&input[..k], &input[k..]]).await,
            want,
            "split at byte {k}"
        );
    }
    assert_eq!(env.total_messages(), 0, "infected mail must land nowhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_with_different_scripts_get_their_own_outcomes() {
    let env = env();
    env.set_personal("alice", "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\nfileinto :create :flags \"\\\\Seen\" \"Work.Reports\";\n");
    env.set_personal(
        "bob",
        "require \"reject\";\nreject \"I do not want this\";\n",
    );
    env.set_personal("carol", "discard;\n");
    env.set_personal(
        "dave",
        "require \"fileinto\";\nfileinto \"../../../../etc\";\n",
    );
    let message = clean_message("outcomes");
    let input = transaction(
        &[
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
            "dave@example.test",
            "erin@example.test",
        ],
        &message,
    );
    let got = env.transcript(&[&input]).await;
    let want = expected(
        &["250 2.1.5 Recipient ok"; 5],
        &[
            "250 2.0.0 <alice@example.test> ID Saved".into(),
            "550 5.7.1 <bob@example.test> I do not want this".into(),
            "250 2.0.0 <carol@example.test> ID Ok".into(),
            "250 2.0.0 <dave@example.test> ID Saved".into(),
            "250 2.0.0 <erin@example.test> ID Saved".into(),
        ],
    );
    assert_eq!(got, want);
    let work = env.messages("alice", ".Work.Reports");
    assert_eq!(work.len(), 1);
    assert!(
        work[0].0.to_string_lossy().ends_with(":2,S"),
        "{}",
        work[0].0.display()
    );
    assert!(env.messages("alice", "").is_empty());
    assert!(env.messages("bob", "").is_empty());
    assert!(env.messages("carol", "").is_empty());
    assert_eq!(
        env.messages("dave", "").len(),
        1,
        "bad folder name falls back to INBOX"
    );
    assert_eq!(
        env.messages("erin", "").len(),
        1,
        "no personal script: default keep"
    );
    assert!(!env.dir.path().join("etc").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infected_variants_never_reach_a_mailbox() {
    let env = env();
    env.set_personal(
        "alice",
        "require \"vacation\";\nvacation \"away\";\nkeep;\n",
    );
    for (name, message) in crate::support::messages::infected_fixtures() {
        let input = transaction(&["alice@example.test", "bob@example.test"], &message);
        let got = env.transcript(&[&input]).await;
        assert!(
            got.contains(
                "250 2.0.0 <alice@example.test> ID Ok\r\n250 2.0.0 <bob@example.test> ID Ok\r\n"
            ),
            "{name}: {got}"
        );
    }
    assert_eq!(env.total_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_mail_mentioning_eicar_is_delivered() {
    let env = env();
    let message = crate::support::load_message("clean-mentions-eicar.eml");
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], &message)])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
    assert_eq!(env.messages("alice", "").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_table() {
    let env = env();
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "mail before lhlo",
            b"MAIL FROM:<a@b>\r\n",
            "503 5.5.1 Send LHLO first\r\n",
        ),
        (
            "ehlo",
            b"EHLO x\r\n",
            "500 5.5.1 This is an LMTP server: use LHLO\r\n",
        ),
        (
            "helo",
            b"HELO x\r\n",
            "500 5.5.1 This is an LMTP server: use LHLO\r\n",
        ),
        (
            "unknown",
            b"FOO bar\r\n",
            "500 5.5.2 Command unrecognized\r\n",
        ),
        ("noop", b"NOOP\r\n", "250 2.0.0 Ok\r\n"),
        (
            "vrfy",
            b"VRFY alice\r\n",
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n",
        ),
        (
            "rcpt before mail",
            b"LHLO x\r\nRCPT TO:<alice@example.test>\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "data before rcpt",
            b"LHLO x\r\nMAIL FROM:<>\r\nDATA\r\n",
            "503 5.5.1 No valid recipients\r\n",
        ),
        (
            "data before mail",
            b"LHLO x\r\nDATA\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "nested mail",
            b"LHLO x\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n",
            "503 5.5.1 Nested MAIL command\r\n",
        ),
        (
            "8bitmime and smtputf8",
            b"LHLO x\r\nMAIL FROM:<j\xc3\xb6rg@example.org> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n",
            "250 2.1.0 Sender ok\r\n",
        ),
        (
            "binarymime",
            b"LHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\n",
            "555 5.5.4 Unsupported parameter BODY=BINARYMIME\r\n",
        ),
        (
            "size too big",
            b"LHLO x\r\nMAIL FROM:<a@b> SIZE=999999999\r\n",
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        ),
        (
            "unknown domain",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@elsewhere.test>\r\n",
            "550 5.1.1 <alice@elsewhere.test> User unknown in local recipient table\r\n",
        ),
        (
            "dotdot",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<../../etc@example.test>\r\n",
            "550 5.1.3 <../../etc@example.test> Invalid local part\r\n",
        ),
        (
            "slash",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a/b@example.test>\r\n",
            "550 5.1.3 <a/b@example.test> Invalid local part\r\n",
        ),
        (
            "leading dot",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<.x@example.test>\r\n",
            "550 5.1.3 <.x@example.test> Invalid local part\r\n",
        ),
        (
            "bad rcpt syntax",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\n",
            "501 5.1.3 Bad recipient address syntax\r\n",
        ),
        (
            "starttls",
            b"STARTTLS\r\n",
            "502 5.5.1 Command not implemented\r\n",
        ),
        (
            "bdat",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nBDAT 10 LAST\r\n",
            "502 5.5.1 Command not implemented\r\n",
        ),
        ("too long", long.as_bytes(), "500 5.5.2 Line too long\r\n"),
        (
            "rset ends transaction",
            b"LHLO x\r\nMAIL FROM:<>\r\nRSET\r\nRCPT TO:<alice@example.test>\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "xforward in transaction",
            b"LHLO x\r\nMAIL FROM:<>\r\nXFORWARD NAME=x\r\n",
            "503 5.5.1 XFORWARD not allowed within a mail transaction\r\n",
        ),
        (
            "xforward ok",
            b"LHLO x\r\nXFORWARD NAME=mx.remote ADDR=192.0.2.1\r\n",
            "250 2.0.0 Ok\r\n",
        ),
        (
            "xforward addr not an ip",
            b"LHLO x\r\nXFORWARD NAME=mx.remote ADDR=mx.remote\r\n",
            "501 5.5.4 Syntax error: XFORWARD ADDR must be an IP address or [UNAVAILABLE]\r\n",
        ),
        (
            "xforward addr ipv6",
            b"LHLO x\r\nXFORWARD ADDR=IPV6:2001:db8::7\r\n",
            "250 2.0.0 Ok\r\n",
        ),
        (
            "xforward bad attr",
            b"LHLO x\r\nXFORWARD COLOUR=red\r\n",
            "501 5.5.4 Syntax error: unknown XFORWARD attribute\r\n",
        ),
    ];
    for (name, input, want_last) in cases {
        let mut full = input.to_vec();
        full.extend_from_slice(b"QUIT\r\n");
        let got = env.transcript_every_split(&full).await;
        let lines: Vec<&str> = got.split_inclusive("\r\n").collect();
        assert!(lines.len() >= 2, "{name}: {got}");
        assert_eq!(lines[lines.len() - 2], *want_last, "{name}: {got}");
        assert_eq!(lines[lines.len() - 1], "221 2.0.0 Bye\r\n", "{name}");
    }
    assert!(!env.dir.path().join("etc").exists());
    assert!(!env.dir.path().join("mail/example.test/a").exists());
    assert_eq!(env.total_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_only_from_allowed_peers() {
    let mut options = Options::new(Clamd::shared().addr());
    options.xforward_from = vec!["10.0.0.0/8".into()];
    let env = Env::new(options);
    let got = env
        .transcript_as(&[b"LHLO x\r\nXFORWARD NAME=a\r\nQUIT\r\n"], Peer::Unix)
        .await;
    assert!(!got.contains("XFORWARD NAME"), "not advertised: {got}");
    assert!(
        got.contains("550 5.7.0 XFORWARD not permitted from this client\r\n"),
        "{got}"
    );
    let got = env
        .transcript_as(
            &[b"LHLO x\r\nXFORWARD NAME=a\r\nQUIT\r\n"],
            Peer::Tcp("10.1.2.3:25".parse().expect("addr")),
        )
        .await;
    assert!(
        got.contains("250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_client_shows_in_received_header() {
    let env = env();
    let message = clean_message("xforward");
    let mut input = b"LHLO postfix.local\r\nXFORWARD NAME=mail.remote.example ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP HELO=remote-helo IDENT=4QueueId SOURCE=REMOTE\r\n".to_vec();
    input.extend_from_slice(
        &transaction(&["alice@example.test"], &message)[b"LHLO client.example\r\n".len()..],
    );
    let got = env.transcript(&[&input]).await;
    assert!(got.contains("<alice@example.test> ID Saved"), "{got}");
    let stored = env.messages("alice", "");
    let (trace, _) = split_trace(&stored[0].1);
    let trace = String::from_utf8_lossy(trace);
    assert!(trace.contains("remote-helo"), "{trace}");
    assert!(trace.contains("mail.remote.example"), "{trace}");
    assert!(trace.contains("[192.0.2.7]"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_recipients_and_oversized_message() {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_recipients = 2;
    options.max_message_size = 2048;
    let env = Env::new(options);
    let mut input = b"LHLO x\r\nMAIL FROM:<>\r\n".to_vec();
    for r in ["a", "b", "c"] {
        input.extend_from_slice(format!("RCPT TO:<{r}@example.test>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\n");
    input.extend_from_slice(&clean_message(&"big ".repeat(1000)));
    input.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\n");
    let got = env.transcript(&[&input]).await;
    assert!(got.contains("452 4.5.3 Too many recipients\r\n"), "{got}");
    assert!(
        got.contains("552 5.3.4 <a@example.test> Message size exceeds fixed maximum message size\r\n552 5.3.4 <b@example.test> Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"),
        "one 552 per accepted recipient, then the session goes on: {got}"
    );
    assert_eq!(env.total_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_delivered_and_the_session_survives() {
    let env = env();
    let long_line = format!("Subject: long\r\n\r\n{}\r\n", "y".repeat(5000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bare LF",
            b"Subject: bare\nFrom: a@b\n\nline one\nline two\n".to_vec(),
        ),
        (
            "NUL bytes",
            b"Subject: nul\r\n\r\nbefore\0after\r\n".to_vec(),
        ),
        ("5000-char line", long_line.into_bytes()),
        (
            "broken MIME",
            crate::support::load_message("broken-mime.eml"),
        ),
        ("no header", b"just a body line\r\n".to_vec()),
        ("empty", Vec::new()),
        (
            "dot stuffing",
            b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..\r\n".to_vec(),
        ),
    ];
    for (name, message) in cases {
        let input = transaction(&["alice@example.test"], &message);
        let got = env.transcript_every_split(&input).await;
        assert!(
            got.contains("250 2.0.0 <alice@example.test> ID Saved\r\n221 2.0.0 Bye\r\n"),
            "{name}: {got}"
        );
    }
    assert!(env.messages("alice", "").len() >= 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_unstuffing_and_smuggling() {
    let env = env();
    // "\n.\n" (bare LF) does not end DATA; only CRLF.CRLF does.
    let input = b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: s\r\n\r\n..a\r\nb\n.\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n";
    let got = env.transcript_every_split(input).await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved\r\n221 2.0.0 Bye\r\n"),
        "{got}"
    );
    for (path, stored) in env.messages("alice", "") {
        let (_, body) = split_trace(&stored);
        assert_eq!(
            body,
            b"Subject: s\r\n\r\n.a\r\nb\n.\nMAIL FROM:<evil@x>\r\n",
            "{}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_scan_headers_are_removed() {
    let env = env();
    let message =
        b"X-Virus-Status: Clean\r\nX-Virus-Scanned: by a liar\r\nSubject: s\r\n\r\nbody\r\n";
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], message)])
        .await;
    assert!(got.contains("ID Saved"), "{got}");
    let stored = env.messages("alice", "");
    let text = String::from_utf8_lossy(&stored[0].1);
    assert_eq!(text.matches("X-Virus-Status:").count(), 1, "{text}");
    assert!(!text.contains("by a liar"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_failures_give_451_for_every_recipient() {
    for mode in [Mode::Hang, Mode::Garbage, Mode::Close, Mode::Error] {
        let fake = FakeClamd::start(mode);
        let mut options = Options::new(fake.addr());
        options.scan_timeout_secs = 1;
        let env = Env::new(options);
        let input = transaction(
            &["alice@example.test", "bob@example.test"],
            &clean_message("x"),
        );
        let got = env.transcript(&[&input]).await;
        assert!(
            got.contains("451 4.7.0 <alice@example.test> Virus scan unavailable, try again later\r\n451 4.7.0 <bob@example.test> Virus scan unavailable, try again later\r\n221"),
            "{mode:?}: {got}"
        );
        assert_eq!(env.total_messages(), 0, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_unscanned_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = Options::new(sievegate::scan::ClamdAddr::Unix(
        dir.path().join("missing.sock"),
    ));
    options.on_failure = "deliver-unscanned";
    let env = Env::new(options);
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], &clean_message("x"))])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
    let stored = env.messages("alice", "");
    assert!(String::from_utf8_lossy(&stored[0].1).contains("X-Virus-Status: Not scanned\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_get_421_on_shutdown() {
    use tokio::io::AsyncWriteExt;
    let env = env();
    let mut live = env.start_session(Peer::Unix);
    live.client.write_all(b"LHLO x\r\n").await.expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    live.stop.send(true).expect("send");
    let out = live.finish().await;
    assert!(
        out.ends_with("421 4.3.2 Service shutting down, closing transmission channel\r\n"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_with_421() {
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    let env = Env::new(options);
    let out = env.start_session(Peer::Unix).finish().await;
    assert!(out.ends_with("421 4.4.2 Timeout, closing transmission channel\r\n"));
}

#[test]
fn eicar_constant_is_the_standard_68_bytes() {
    assert_eq!(eicar().len(), 68);
}

/// A 1 MiB tmpfs as the mail store: a message that does not fit gets 452 4.2.2 for that
/// recipient, nothing is left behind, and the next small message still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_gives_452_and_leaves_no_file() {
    let mnt = tempfile::tempdir().expect("tempdir");
    // Tests never skip: without root (or with mount refused) this fails, it does not pass.
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.path())
        .output();
    match &mount {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "disk_full_gives_452_and_leaves_no_file needs root to mount a 1 MiB tmpfs: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("disk_full_gives_452_and_leaves_no_file: cannot run mount: {e}"),
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Umount(mnt.path().to_path_buf());
    let mut options = Options::new(Clamd::shared().addr());
    options.maildir = Some(format!("{}/%d/%n/Maildir", mnt.path().display()));
    let env = Env::new(options);
    let mut big = clean_message("big");
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".as_slice(),
            32 * 1024,
        )
        .flatten(),
    );
    let got = env
        .transcript(&[&transaction(&["alice@example.test"], &big)])
        .await;
    assert!(
        got.contains(
            "452 4.2.2 <alice@example.test> Mailbox full or disk full, try again later\r\n"
        ),
        "{got}"
    );
    let leftovers: Vec<_> = ["tmp", "new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(mnt.path().join("example.test/alice/Maildir").join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    assert!(leftovers.is_empty(), "no file left behind: {leftovers:?}");
    let got = env
        .transcript(&[&transaction(
            &["alice@example.test"],
            &clean_message("small"),
        )])
        .await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved"),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_timeout_answers_421_and_delivers_nothing() {
    use tokio::io::AsyncWriteExt;
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    let env = Env::new(options);
    let mut live = env.start_session(Peer::Unix);
    live.client
        .write_all(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: half\r\n\r\nand then silence")
        .await
        .expect("write");
    let out = live.finish().await;
    assert!(
        out.ends_with("354 Start mail input; end with <CRLF>.<CRLF>\r\n421 4.4.2 Timeout, closing transmission channel\r\n"),
        "{out}"
    );
    assert_eq!(env.total_messages(), 0);
}

/// RFC 5321 §4.5.2 as the server applies it: a "." right after a CRLF (or at the start of
/// the data) is removed. Used to say what the stored body of a smuggling attempt must be.
fn unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let line_start = i == 0 || (i >= 2 && &data[i - 2..i] == b"\r\n");
        if !(b == b'.' && line_start) {
            out.push(b);
        }
    }
    out
}

/// Every end-of-data look-alike from the SMTP smuggling advisories (SEC Consult, Postfix,
/// sendmail, chasquid): none of them may end DATA. The smuggled MAIL/RCPT/DATA must become
/// body text of the first message, and bob (the smuggled recipient) must get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_variants_never_end_data() {
    let env = env();
    let variants: &[(&str, &[u8])] = &[
        ("LF.LF", b"\n.\n"),
        ("CRLF.LF", b"\r\n.\n"),
        ("LF.CRLF", b"\n.\r\n"),
        ("CR.CRLF", b"\r.\r\n"),
        ("CRLF.CR", b"\r\n.\r"),
        ("CR.CR", b"\r.\r"),
        ("CR.LF", b"\r.\n"),
        ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
        ("CRLF.CRCRCRLF", b"\r\n.\r\r\r\n"),
        ("CRLF NUL.CRLF", b"\r\n\0.\r\n"),
        ("CRLF.NUL CRLF", b"\r\n.\0\r\n"),
        ("CRLF.CR NUL LF", b"\r\n.\r\0\n"),
        ("CRLF.SP CRLF", b"\r\n. \r\n"),
    ];
    let smuggled = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n";
    for (name, sep) in variants {
        let mut data = b"Subject: first\r\n\r\nhello".to_vec();
        data.extend_from_slice(sep);
        data.extend_from_slice(smuggled);
        let mut input =
            b"LHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                .to_vec();
        input.extend_from_slice(&data);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let before = 0;
        let got = env.transcript_every_split(&input).await;
        let want = format!(
            "{GREETING}{LHLO_REPLY}250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n250 2.0.0 <alice@example.test> ID Saved\r\n221 2.0.0 Bye\r\n"
        );
        assert_eq!(got, want, "{name}: exactly one transaction");
        assert!(
            env.messages("bob", "").is_empty(),
            "{name}: smuggled delivery to bob"
        );
        let stored = env.messages("alice", "");
        assert!(stored.len() > before, "{name}");
        let want_body = unstuff(&data);
        for (path, bytes) in &stored[before..] {
            let (_, body) = split_trace(bytes);
            assert_eq!(
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&want_body),
                "{name}: {}",
                path.display()
            );
        }
        // Clean up so the next variant counts only its own files.
        for (path, _) in stored {
            std::fs::remove_file(path).expect("remove");
        }
    }
}

/// A command line must end in CRLF and hold no other CR or LF (RFC 5321 §2.3.8). Acting on
/// a bare-LF line would let "DATA\n" turn the message into commands, so such a line is
/// refused and the connection closed (as Postfix's `smtpd_forbid_bare_newline` does): no
/// reply of the table's lines after it may appear, and nothing is executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_cr_or_lf_in_a_command_line_is_refused_and_closes() {
    let env = env();
    let refused = "500 5.5.2 Bare CR or LF in command line, closing connection\r\n";
    let cases: &[(&str, &[u8])] = &[
        ("bare LF", b"NOOP\nNOOP\r\n"),
        ("bare LF after MAIL", b"LHLO x\r\nMAIL FROM:<>\nRCPT TO:<alice@example.test>\r\n"),
        ("bare CR inside", b"NOOP\rRSET\r\n"),
        ("CR CR LF", b"NOOP\r\r\n"),
        ("LF only line", b"\n"),
        (
            "DATA with bare LF",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\nMAIL FROM:<evil@x>\r\n",
        ),
    ];
    for (name, input) in cases {
        let mut full = input.to_vec();
        full.extend_from_slice(b"QUIT\r\n");
        let got = closing_transcript(&env, &[&full]).await;
        for k in 1..full.len() {
            let split = closing_transcript(&env, &[&full[..k], &full[k..]]).await;
            assert_eq!(split, got, "{name}: split at byte {k}");
        }
        assert!(got.ends_with(refused), "{name}: {got}");
        assert_eq!(got.matches(refused).count(), 1, "{name}: {got}");
        assert!(
            !got.contains("221 "),
            "{name}: nothing after the refusal: {got}"
        );
        assert!(!got.contains("354 "), "{name}: {got}");
    }
    assert_eq!(env.total_messages(), 0);
}

/// Like `Env::transcript`, for sessions the server closes early: writes after the close
/// fail, which is expected here.
async fn closing_transcript(env: &Env, chunks: &[&[u8]]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut live = env.start_session(Peer::Tcp("127.0.0.1:40000".parse().expect("addr")));
    for chunk in chunks {
        if live.client.write_all(chunk).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    live.finish().await
}

/// Writes `first`, then drips `drip` one byte every `every` until the server closes or
/// `for_at_most` passes; returns the server's output and when (since `first`) it closed.
async fn drip(
    env: &Env,
    first: &[u8],
    drip: &[u8],
    every: std::time::Duration,
    for_at_most: std::time::Duration,
) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = env.start_session(Peer::Tcp("127.0.0.1:40000".parse().expect("addr")));
    let (mut rx, mut tx) = tokio::io::split(live.client);
    let start = std::time::Instant::now();
    tx.write_all(first).await.expect("write");
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rx.read_to_end(&mut out).await;
        (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
    });
    for byte in drip.iter().cycle() {
        if reader.is_finished() || start.elapsed() > for_at_most {
            break;
        }
        if tx.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(every).await;
    }
    drop(tx);
    reader.await.expect("reader")
}

/// Item 10: a command line must arrive whole within idle_timeout. Before, every byte
/// restarted the timer, so one byte every 250 ms held the session for as long as the
/// client liked (here: until the drip stops after 4 s, then 1 s more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dripping_a_command_line_does_not_restart_the_deadline() {
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    let env = Env::new(options);
    let every = std::time::Duration::from_millis(250);
    let (out, closed) = drip(
        &env,
        b"LHLO x\r\n",
        b"NOOP and on and on ",
        every,
        std::time::Duration::from_secs(4),
    )
    .await;
    assert!(
        out.ends_with("421 4.4.2 Timeout, closing transmission channel\r\n"),
        "{out}"
    );
    eprintln!("command-line dripper dropped after {closed:?} (idle_timeout 1 s)");
    assert!(
        closed < std::time::Duration::from_millis(2500),
        "dropped after {closed:?}, want about 1 s"
    );
}

/// Item 10: DATA has a total deadline, data_timeout plus 1/min_data_rate seconds per byte
/// received. A byte every 250 ms (4 B/s, far below the 500 B/s minimum) earns 2 ms each,
/// so the dripper is out after about data_timeout (1 s here). Before, it never was while
/// it kept dripping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dripping_data_hits_the_total_data_deadline() {
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    let env = Env::new(options);
    let (out, closed) = drip(
        &env,
        b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
        b"Subject: slow\r\n\r\nslow body\r\n",
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(4),
    )
    .await;
    assert!(
        out.ends_with(
            "354 Start mail input; end with <CRLF>.<CRLF>\r\n421 4.4.2 Timeout, closing transmission channel\r\n"
        ),
        "{out}"
    );
    eprintln!("DATA dripper dropped after {closed:?} (data_timeout 1 s, min_data_rate 500 B/s)");
    assert!(
        closed < std::time::Duration::from_millis(2500),
        "dropped after {closed:?}, want about 1 s"
    );
    assert_eq!(env.total_messages(), 0);
}

/// A client that sends at least min_data_rate is not cut off by the DATA deadline even
/// when the whole transfer takes longer than data_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_at_the_minimum_rate_is_not_cut_off() {
    use tokio::io::AsyncWriteExt;
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    options.server_extra = vec!["min_data_rate = 1000".into()];
    let env = Env::new(options);
    let mut live = env.start_session(Peer::Tcp("127.0.0.1:40000".parse().expect("addr")));
    live.client
        .write_all(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: steady\r\n\r\n")
        .await
        .expect("write");
    // 2.5 s at 2000 B/s: twice the minimum rate, 2.5 times data_timeout.
    let line = [b"x".repeat(198), b"\r\n".to_vec()].concat();
    for _ in 0..25 {
        live.client.write_all(&line).await.expect("write");
        live.client.write_all(&line).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    live.client
        .write_all(b".\r\nQUIT\r\n")
        .await
        .expect("write");
    let out = live.finish().await;
    assert!(
        out.contains("<alice@example.test>") && out.contains(" Saved\r\n"),
        "{out}"
    );
}

/// The `Received` id and the id in the final replies belong to the transaction: two
/// messages in one session get two ids. Before, both carried the session id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transaction_gets_its_own_id() {
    let env = env();
    let one = transaction(&["alice@example.test"], &clean_message("first"));
    let two = transaction(&["alice@example.test"], &clean_message("second one"));
    // One session: the first transaction without its QUIT, the second without its LHLO.
    let mut input = one[..one.len() - b"QUIT\r\n".len()].to_vec();
    input.extend_from_slice(&two[b"LHLO client.example\r\n".len()..]);
    let mut live = env.start_session(Peer::Tcp("127.0.0.1:40000".parse().expect("addr")));
    tokio::io::AsyncWriteExt::write_all(&mut live.client, &input)
        .await
        .expect("write");
    let out = live.finish().await;
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("250 2.0.0 <alice@example.test> "))
        .filter_map(|l| l.strip_suffix(" Saved"))
        .collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert_ne!(ids[0], ids[1], "one id per transaction: {out}");
    let stored = env.messages("alice", "");
    assert_eq!(stored.len(), 2);
    let mut received_ids: Vec<String> = stored
        .iter()
        .map(|(_, bytes)| {
            let text = String::from_utf8_lossy(bytes);
            let at = text.find("with LMTP id ").expect("Received id") + "with LMTP id ".len();
            text[at..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    received_ids.sort();
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(received_ids, want, "Received ids match the replies");
}

/// Item 15: a unix-socket peer is trusted by its uid. One not in xforward_from gets no
/// XFORWARD in the LHLO reply, and its XFORWARD is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_trust_follows_the_unix_peer_uid() {
    use sievegate::lmtp::Session;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = Options::new(Clamd::shared().addr());
    options.xforward_from = vec!["unix:4242".into(), "10.0.0.0/8".into()];
    let env = Env::new(options);
    for (uid, trusted) in [(Some(4242), true), (Some(4243), false), (None, false)] {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let session =
            Session::new(server, Arc::clone(&env.services), Peer::Unix, stop_rx).peer_uid(uid);
        let task = tokio::spawn(session.run());
        client
            .write_all(b"LHLO x\r\nXFORWARD NAME=forged.example ADDR=192.0.2.66\r\nQUIT\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("read");
        task.await.expect("task").expect("session");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(
            out.contains("250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"),
            trusted,
            "uid {uid:?}: {out}"
        );
        assert_eq!(
            out.contains("550 5.7.0 XFORWARD not permitted from this client\r\n"),
            !trusted,
            "uid {uid:?}: {out}"
        );
    }
}

/// A client that pipelines commands but never reads the replies cannot hold the session:
/// writing replies has the same total deadline as reading a command line. Before, the
/// session waited for the client to read forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_replies_is_dropped() {
    use sievegate::lmtp::Session;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    let mut options = Options::new(Clamd::shared().addr());
    options.idle_timeout_secs = 1;
    let env = Env::new(options);
    // A small pipe, so unread replies fill it quickly.
    let (client, server) = tokio::io::duplex(1024);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let session = Session::new(
        server,
        Arc::clone(&env.services),
        Peer::Tcp("127.0.0.1:40000".parse().expect("addr")),
        stop_rx,
    );
    let started = std::time::Instant::now();
    let task = tokio::spawn(session.run());
    let (_rx, mut tx) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        // LHLO: a command that moves no mail but is not junk either (NOOPs would be cut off
        // by the junk limit first), with a long reply that fills the pipe fast.
        let noops = b"LHLO x\r\n".repeat(2000);
        let _ = tx.write_all(&noops).await;
        tx
    });
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("session ended within 10 s")
        .expect("task");
    let took = started.elapsed();
    let err = result.expect_err("the session ends with a write timeout");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    eprintln!("non-reading client dropped after {took:?} (idle_timeout 1 s)");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    drop(writer);
}

/// Item 10's last gap: a client that meets every deadline with a NOOP now and then held its
/// slot forever. After 100 commands that move no mail (Postfix's
/// `smtpd_junk_command_limit`) the session is closed; a delivered message starts the count
/// again, so an MTA that sends RSET/NOOP between messages is never cut off.
#[tokio::test]
async fn junk_commands_without_mail_close_the_session() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    let mut input = b"LHLO x\r\n".to_vec();
    for _ in 0..101 {
        input.extend_from_slice(b"NOOP\r\n");
    }
    input.extend_from_slice(b"NOOP\r\n");
    let out = env.transcript(&[&input]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("250 2.0.0 Ok"))
            .count(),
        100,
        "{out}"
    );
    assert!(
        out.ends_with("421 4.7.0 Too many commands without mail, closing transmission channel\r\n"),
        "{out}"
    );

    // 80 junk commands, a message, 80 more: never closed.
    let mut input = b"LHLO x\r\n".to_vec();
    let message = clean_message("between noops");
    for _ in 0..2 {
        for _ in 0..40 {
            input.extend_from_slice(b"RSET\r\nNOOP\r\n");
        }
        let txn = transaction(&["alice@example.test"], &message);
        // transaction() starts with LHLO and ends with QUIT: take the middle.
        let txn = &txn[b"LHLO client.example\r\n".len()..txn.len() - b"QUIT\r\n".len()];
        input.extend_from_slice(txn);
    }
    input.extend_from_slice(b"QUIT\r\n");
    let out = env.transcript(&[&input]).await;
    assert!(!out.contains("421"), "{out}");

    // Errors count too: MAIL again and again earns 503s, not a slot for ever.
    let mut input = b"LHLO x\r\nMAIL FROM:<>\r\n".to_vec();
    for _ in 0..150 {
        input.extend_from_slice(b"MAIL FROM:<>\r\n");
    }
    let out2 = env.transcript(&[&input]).await;
    assert!(
        out2.ends_with(
            "421 4.7.0 Too many commands without mail, closing transmission channel\r\n"
        ),
        "{out2}"
    );
    assert_eq!(
        out.matches("250 2.0.0 <alice@example.test>").count(),
        2,
        "{out}"
    );
}
