//! Delivery through the session: clean and infected mail to one or several recipients,
//! per-recipient scripts and outcomes, malformed messages, trace headers and transaction ids.

use super::{env, expected};
use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::messages::{clean_message, eicar, infected_message, transaction};
use sievegate::lmtp::Peer;

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

#[test]
fn eicar_constant_is_the_standard_68_bytes() {
    assert_eq!(eicar().len(), 68);
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
