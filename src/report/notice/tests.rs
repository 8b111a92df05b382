use std::sync::Arc;

use mail_parser::{MessageParser, MimeHeaders};

use super::*;
use crate::state::{MemoryState, StateStore};

fn config(max_per_minute: u32) -> Config {
    let toml = format!(
        r#"
[server]
listen = ["127.0.0.1:2424"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:/nonexistent/clamd.ctl"
[mailbox]
domains = ["example.test"]
maildir = "/nonexistent/%d/%n/Maildir"
[notify]
postmaster = "postmaster@example.net"
max_per_minute = {max_per_minute}
"#
    );
    Config::from_toml(&toml, std::path::Path::new("/etc/sievegate/sievegate.toml"))
        .expect("valid config")
}

fn notifier(max_per_minute: u32) -> (Notifier, Arc<MemoryState>) {
    let state = Arc::new(MemoryState::default());
    let config = config(max_per_minute);
    let outbox = Outbox::new(&config, state.clone());
    let notifier = Notifier::new(&config, outbox).expect("postmaster set");
    (notifier, state)
}

const HEADERS: &str = "Return-Path: <sender@example.org>\r\n\
From: Sender <sender@example.org>\r\n\
To: Recipient <rcpt@example.test>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n a folded line\r\n\
Message-ID: <eicar-base64@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n";

fn infected(quarantine_id: Option<&str>) -> InfectedMessage {
    let message = format!(
        "{HEADERS}--b\r\nContent-Type: text/plain\r\n\r\nX5O!P%@AP[4\\PZX54(P^)7CC)7}}$EICAR\r\n--b--\r\n"
    );
    InfectedMessage {
        id: "4f2a9c".into(),
        received_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        mail_from: "sender@example.org".into(),
        rcpts: vec!["alice@example.test".into(), "bob+x@example.test".into()],
        client: Client {
            name: Some("mail.example.org".into()),
            addr: "203.0.113.7".parse().ok(),
            helo: Some("helo.example.org".into()),
            queue_id: Some("4XQZ1".into()),
        },
        viruses: vec!["Eicar-Test-Signature".into()],
        virustest: 5,
        headers: original_headers(message.as_bytes()).to_vec(),
        headers_withheld: None,
        size: message.len(),
        quarantine_id: quarantine_id.map(str::to_string),
        backscatter: false,
    }
}

#[test]
fn original_headers_table() {
    let cases: &[(&str, &str, &str)] = &[
        ("plain", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n"),
        ("LF only", "A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n"),
        (
            "folded",
            "A: 1\r\n 2\r\n\tthree\r\nB: x\r\n\r\nb",
            "A: 1\r\n 2\r\n\tthree\r\nB: x\r\n",
        ),
        (
            "no blank line",
            "A: 1\r\nX5O!P%@AP body line\r\n",
            "A: 1\r\n",
        ),
        ("headerless", "X5O!P%@AP[4\\PZX54\r\n\r\n", ""),
        ("leading continuation", " A: 1\r\n\r\n", ""),
        ("colon first", ": x\r\n\r\n", ""),
        ("space in name", "Bad Name: x\r\nA: 1\r\n\r\n", ""),
        ("unterminated last line", "A: 1\r\nB: 2", "A: 1\r\n"),
        ("empty", "", ""),
    ];
    for (name, input, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(original_headers(input.as_bytes())),
            *want,
            "{name}"
        );
    }
    // Capped at a line end.
    let line = format!("X-Filler: {}\r\n", "a".repeat(900));
    let big = format!("{}\r\nbody", line.repeat(100));
    let cut = original_headers(big.as_bytes());
    assert!(cut.len() <= MAX_ATTACHED_HEADERS);
    assert_eq!(cut.len() % line.len(), 0);
    assert!(cut.len() > MAX_ATTACHED_HEADERS - line.len());
}

#[test]
fn notice_is_multipart_with_the_headers_only() {
    let (notifier, _) = notifier(10);
    let m = infected(Some("20261128-0641-abcd"));
    let bytes = notifier.compose_notice(&m).expect("compose");
    let raw = String::from_utf8(bytes.clone()).expect("ASCII message");
    assert!(!raw.contains("X5O!"), "no infected content:\n{raw}");
    assert!(
        !raw.contains('\n') || raw.split('\n').all(|l| l.is_empty() || l.ends_with('\r')),
        "CRLF only"
    );

    let parsed = MessageParser::new().parse(&bytes).expect("parses");
    let header = |name: &str| {
        parsed
            .header_raw(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} missing:\n{raw}"))
    };
    assert_eq!(header("From"), "<MAILER-DAEMON@mx.example.test>");
    assert_eq!(header("To"), "<postmaster@example.net>");
    assert_eq!(header("Auto-Submitted"), "auto-generated");
    assert!(header("Message-ID").ends_with("@mx.example.test>"));
    assert!(parsed.date().is_some());
    assert_eq!(
        parsed.subject(),
        Some("[sievegate] virus found: Eicar-Test-Signature (quarantined)")
    );
    assert_eq!(parsed.content_type().map(|c| c.ctype()), Some("multipart"));
    assert_eq!(
        parsed.content_type().and_then(|c| c.subtype()),
        Some("mixed")
    );
    // Part 0 is the message itself; then the two leaves, in order.
    let leaves: Vec<_> = parsed.parts.iter().skip(1).collect();
    assert_eq!(leaves.len(), 2, "{raw}");
    let ctype = |p: &mail_parser::MessagePart| {
        let c = p.content_type().expect("content type");
        format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
    };
    assert_eq!(ctype(leaves[0]), "text/plain");
    assert_eq!(ctype(leaves[1]), "text/rfc822-headers");
    assert_eq!(
        leaves[1].contents(),
        HEADERS
            .trim_end_matches("\r\n")
            .as_bytes()
            .iter()
            .chain(b"\r\n")
            .copied()
            .collect::<Vec<u8>>()
            .as_slice()
    );

    let text = parsed.body_text(0).expect("text part").into_owned();
    for want in [
        "Virus:            Eicar-Test-Signature (virustest 5)",
        "Quarantine id:    20261128-0641-abcd",
        "Release with:     sievegate quarantine release 20261128-0641-abcd -c /etc/sievegate/sievegate.toml",
        "Envelope sender:  <sender@example.org>",
        "Recipients:       <alice@example.test>, <bob+x@example.test>",
        "Client address:   203.0.113.7",
        "Client name:      mail.example.org",
        "Client HELO:      helo.example.org",
        "MTA queue id:     4XQZ1",
        "sievegate id:     4f2a9c",
        "Message-ID:       <eicar-base64@example.org>",
        "From:             Sender <sender@example.org>",
        "Subject:          Grüße and a folded line",
        "Received:         ",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert!(!text.contains("Backscatter"));
}

#[test]
fn notice_without_quarantine_and_for_backscatter() {
    let (notifier, _) = notifier(10);
    let mut m = infected(None);
    m.mail_from = String::new();
    m.backscatter = true;
    m.client = Client::default();
    let bytes = notifier.compose_notice(&m).expect("compose");
    let parsed = MessageParser::new().parse(&bytes).expect("parses");
    assert_eq!(
        parsed.subject(),
        Some("[sievegate] virus found: Eicar-Test-Signature (discarded)")
    );
    let text = parsed.body_text(0).expect("text").into_owned();
    for want in [
        "Quarantine:       none, the message is gone",
        "Backscatter:      yes",
        "Envelope sender:  <>",
        "Client address:   unknown",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert!(!text.contains("quarantine release"));
}

#[test]
fn hostile_values_stay_on_their_line() {
    let (notifier, _) = notifier(10);
    let mut m = infected(Some("q1"));
    m.viruses = vec!["Evil\r\nBcc: victim@example.net".into()];
    m.client.helo = Some("x\r\nSubject: forged".into());
    let bytes = notifier.compose_notice(&m).expect("compose");
    let parsed = MessageParser::new().parse(&bytes).expect("parses");
    assert!(parsed.header_raw("Bcc").is_none());
    assert_eq!(
        parsed
            .headers()
            .iter()
            .filter(|h| h.name() == "Subject")
            .count(),
        1
    );
    let text = parsed.body_text(0).expect("text").into_owned();
    assert!(
        text.contains("Client HELO:      xSubject: forged"),
        "{text}"
    );
}

fn queued(state: &MemoryState) -> Vec<crate::state::QueuedMail> {
    state
        .queue_due(SystemTime::now() + Duration::from_secs(3600), 1000)
        .expect("queue")
}

#[test]
fn rate_limit_then_one_digest_per_window() {
    let (notifier, state) = notifier(2);
    let notifier = notifier.with_window(Duration::from_millis(300));
    for n in 0..5 {
        let mut m = infected(Some(&format!("q{n}")));
        m.id = format!("id{n}");
        notifier.infected(&m);
    }
    let mails = queued(&state);
    assert_eq!(mails.len(), 2, "only max_per_minute notices at once");
    assert!(mails
        .iter()
        .all(|m| m.kind == NOTICE_KIND && m.from.is_empty()));
    assert!(mails.iter().all(|m| m.to == ["postmaster@example.net"]));
    assert!(!notifier.flush_expired(), "window still open");

    std::thread::sleep(Duration::from_millis(350));
    assert!(notifier.flush_expired(), "window over: digest");
    assert!(!notifier.flush_expired(), "only one digest");
    let mails = queued(&state);
    assert_eq!(mails.len(), 3);
    let digest = mails
        .iter()
        .find(|m| m.kind == DIGEST_KIND)
        .expect("digest");
    let parsed = MessageParser::new().parse(&digest.message).expect("parses");
    assert_eq!(
        parsed.subject(),
        Some("[sievegate] 3 more infected messages (digest)")
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let text = parsed.body_text(0).expect("text").into_owned();
    for n in 2..5 {
        let want = format!("sievegate quarantine release q{n} -c /etc/sievegate/sievegate.toml");
        assert!(text.contains(&want), "{want} missing:\n{text}");
    }
    assert!(
        !text.contains("release q0 "),
        "sent ones are not listed:\n{text}"
    );
    assert!(!text.contains("X5O!"));

    // The next window starts fresh: a notice again.
    notifier.infected(&infected(Some("q9")));
    let notices = queued(&state)
        .into_iter()
        .filter(|m| m.kind == NOTICE_KIND)
        .count();
    assert_eq!(notices, 3);
}

#[test]
fn a_late_message_sends_the_previous_digest_first() {
    let (notifier, state) = notifier(1);
    let notifier = notifier.with_window(Duration::from_millis(100));
    notifier.infected(&infected(Some("a")));
    notifier.infected(&infected(Some("b")));
    std::thread::sleep(Duration::from_millis(150));
    // No timer ran: the next message ends the old window itself.
    notifier.infected(&infected(Some("c")));
    let kinds: Vec<String> = queued(&state).into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [NOTICE_KIND, DIGEST_KIND, NOTICE_KIND]);
}

#[tokio::test]
async fn shutdown_queues_the_pending_digest() {
    let (notifier, state) = notifier(1);
    notifier.infected(&infected(Some("a")));
    notifier.infected(&infected(Some("b")));
    // A window of one minute is still open; stopping must not lose "b".
    notifier.run(async {}).await;
    let kinds: Vec<String> = queued(&state).into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [NOTICE_KIND, DIGEST_KIND]);
}

#[test]
fn off_without_postmaster() {
    let mut config = config(10);
    config.notify.postmaster = None;
    let outbox = Outbox::new(&config, Arc::new(MemoryState::default()));
    assert!(Notifier::new(&config, outbox).is_none());
}

#[test]
fn a_digest_lists_a_bounded_number_of_entries() {
    let (notifier, state) = notifier(1);
    let m = infected(Some("q"));
    for _ in 0..(1 + MAX_DIGEST_ENTRIES + 7) {
        notifier.infected(&m);
    }
    let pending = notifier.lock().take().expect("held back");
    assert_eq!(pending.entries.len(), MAX_DIGEST_ENTRIES);
    assert_eq!(pending.uncounted, 7);
    let bytes = notifier.compose_digest(&pending).expect("digest");
    let parsed = MessageParser::new().parse(&bytes).expect("parses");
    let total = MAX_DIGEST_ENTRIES + 7;
    assert_eq!(
        parsed.subject().map(str::to_string),
        Some(format!(
            "[sievegate] {total} more infected messages (digest)"
        ))
    );
    let text = parsed.body_text(0).expect("text").into_owned();
    assert!(
        text.contains("- and 7 more, not listed (see the log)"),
        "{text}"
    );
    assert_eq!(queued(&state).len(), 1, "only the first notice went out");
}

/// Two hosts sharing one state store share `max_per_minute`: the second host's notice
/// within the window goes into its digest instead (issue 16: limits must not multiply by
/// the number of hosts).
#[test]
fn hosts_sharing_the_store_share_max_per_minute() {
    let state = Arc::new(MemoryState::default());
    let config = config(2);
    let host = || {
        Notifier::new(&config, Outbox::new(&config, state.clone()))
            .expect("postmaster set")
            .with_window(Duration::from_secs(3600))
    };
    let (a, b) = (host(), host());
    a.infected(&infected(Some("a1")));
    a.infected(&infected(Some("a2")));
    b.infected(&infected(Some("b1")));
    let notices = queued(&state)
        .into_iter()
        .filter(|m| m.kind == NOTICE_KIND)
        .count();
    assert_eq!(notices, 2, "two in all, not two per host");
    // b's window ends (shutdown here): its digest lists b1.
    let pending = b.lock().take().expect("b held one");
    assert_eq!(pending.entries.len(), 1);
}
