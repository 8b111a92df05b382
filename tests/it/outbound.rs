//! Outbound mail and the postmaster notice against real peers: Postfix's `smtp-sink` as the
//! relay, a real clamd for the "the notice itself is clean" check, and a real Maildir for a
//! local postmaster. Fault injection (a port that refuses, a peer that never greets) uses
//! plain sockets.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use sievegate::address::Recipient;
use sievegate::config::Config;
use sievegate::delivery::{Client, Envelope};
use sievegate::outbound::{Outbox, OutboxOptions, Pass, RetryPolicy, Timeouts};
use sievegate::report::notice::{original_headers, InfectedMessage, Notifier, NOTICE_KIND};
use sievegate::scan::{Scanner, Verdict};
use sievegate::state::{MemoryState, QueuedMail, StateStore};
use tempfile::TempDir;

use crate::support::clamd::Clamd;
use crate::support::smtp_sink::{free_port, SmtpSink};
use crate::support::{load_message, INFECTED_FIXTURES};

/// How long a test waits for the sink to see mail.
const WAIT: Duration = Duration::from_secs(20);

/// A config file in a temporary directory, an in-memory state store, and the outbox.
struct Setup {
    dir: TempDir,
    config: Config,
    state: Arc<MemoryState>,
    outbox: Outbox,
}

/// Quick retries, so a test sees several attempts in well under a second.
fn fast() -> OutboxOptions {
    OutboxOptions {
        retry: RetryPolicy {
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_millis(400),
            give_up_after: Duration::from_secs(3600),
            poll: Duration::from_millis(50),
            batch: 50,
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
            transaction: Duration::from_secs(20),
        },
    }
}

fn setup(relay_port: u16, postmaster: &str, notify_extra: &str, options: OutboxOptions) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("sievegate-outbound-")
        .tempdir()
        .expect("tempdir");
    let toml = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:clamd.ctl"
[mailbox]
domains = ["example.test"]
maildir = "mail/%d/%n/Maildir"
[notify]
postmaster = "{postmaster}"
relay = "127.0.0.1:{relay_port}"
{notify_extra}
"#
    );
    let path = dir.path().join("sievegate.toml");
    std::fs::write(&path, &toml).expect("write config");
    let config = Config::load(&path).expect("valid config");
    let state = Arc::new(MemoryState::default());
    let outbox = Outbox::with_options(&config, state.clone(), options);
    Setup {
        dir,
        config,
        state,
        outbox,
    }
}

impl Setup {
    fn notifier(&self) -> Notifier {
        Notifier::new(&self.config, self.outbox.clone()).expect("postmaster set")
    }

    /// Everything still queued, due or not.
    fn queued(&self) -> Vec<QueuedMail> {
        self.state
            .queue_due(
                std::time::SystemTime::now() + Duration::from_secs(86400),
                1000,
            )
            .expect("queue")
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("mail/example.test")
            .join(user)
            .join("Maildir")
    }
}

/// An infected message as the pipeline would describe it: `fixture` received from
/// 203.0.113.7 for alice and bob.
fn infected(fixture: &str, quarantine_id: Option<&str>) -> (InfectedMessage, Vec<u8>) {
    let message = load_message(fixture);
    let domains = ["example.test".to_string()];
    let rcpt = |a: &str| Recipient::resolve(a, &domains, "+").expect("recipient");
    let envelope = Envelope {
        id: "7d1c0a".into(),
        mail_from: "sender@example.org".into(),
        rcpts: vec![rcpt("alice@example.test"), rcpt("bob@example.test")],
        helo: Some("postfix.example.test".into()),
        peer_addr: None,
        client: Client {
            name: Some("mail.example.org".into()),
            addr: Some("203.0.113.7".into()),
            helo: Some("mail.example.org".into()),
            queue_id: Some("4XQZ1".into()),
        },
        client_trusted: true,
        started: Instant::now(),
        default_mailbox: None,
    };
    let verdict = Verdict::Infected {
        name: "Eicar-Signature".into(),
        heuristic: false,
    };
    let mut m = InfectedMessage::new(&envelope, &verdict, &message);
    m.quarantine_id = quarantine_id.map(str::to_string);
    (m, message)
}

/// Runs sender passes until `done` says so (or fails after [`WAIT`]).
async fn pass_until(outbox: &Outbox, done: impl Fn(&Pass) -> bool) -> Pass {
    let started = Instant::now();
    loop {
        let pass = outbox.send_due().await;
        if done(&pass) {
            return pass;
        }
        assert!(
            started.elapsed() < WAIT,
            "no such pass within {WAIT:?}: last {pass:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn notice_reaches_the_relay_as_built() {
    let sink = SmtpSink::start();
    let s = setup(sink.addr().port(), "postmaster@example.net", "", fast());
    let (m, original) = infected("eicar-base64.eml", Some("Q-0001"));
    s.notifier().infected(&m);

    let queued = s.queued();
    assert_eq!(queued.len(), 1);
    let built = queued[0].message.clone();
    assert_eq!(queued[0].kind, NOTICE_KIND);

    let pass = s.outbox.send_due().await;
    assert_eq!(
        pass,
        Pass {
            taken: 1,
            sent: 1,
            retried: 0,
            dropped: 0
        }
    );
    assert!(s.queued().is_empty(), "sent mail leaves the queue");

    let got = sink.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let t = &got[0];
    assert_eq!(t.mail_from, "<>", "null envelope sender");
    assert_eq!(t.rcpt_to, ["<postmaster@example.net>"]);
    assert_eq!(t.helo.as_deref(), Some("mx.example.test"));
    assert_eq!(
        t.message, built,
        "the relay got exactly the message we built"
    );

    // And that message is what a notice should be.
    let parsed = MessageParser::new().parse(&t.message).expect("parses");
    let header = |name: &str| parsed.header_raw(name).map(|v| v.trim().to_string());
    assert_eq!(
        header("From").as_deref(),
        Some("<MAILER-DAEMON@mx.example.test>")
    );
    assert_eq!(header("To").as_deref(), Some("<postmaster@example.net>"));
    assert_eq!(header("Auto-Submitted").as_deref(), Some("auto-generated"));
    assert!(header("Message-ID").is_some_and(|id| id.ends_with("@mx.example.test>")));
    assert!(header("Date").is_some());
    assert_eq!(
        parsed.subject(),
        Some("[sievegate] virus found: Eicar-Signature (quarantined)")
    );
    let ctypes: Vec<String> = parsed
        .parts
        .iter()
        .map(|p| {
            let c = p.content_type().expect("content type");
            format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        ctypes,
        ["multipart/mixed", "text/plain", "text/rfc822-headers"]
    );
    assert_eq!(
        parsed.parts[2].contents(),
        original_headers(&original),
        "the attachment is the original header section, byte for byte"
    );
    let text = parsed.body_text(0).expect("text").into_owned();
    let config_path = s.dir.path().join("sievegate.toml");
    for want in [
        "Virus:            Eicar-Signature (virustest 5)".to_string(),
        format!(
            "Release with:     sievegate quarantine release Q-0001 -c {}",
            config_path.display()
        ),
        "Envelope sender:  <sender@example.org>".into(),
        "Recipients:       <alice@example.test>, <bob@example.test>".into(),
        "Client address:   203.0.113.7".into(),
        "Client HELO:      mail.example.org".into(),
        "MTA queue id:     4XQZ1".into(),
        "Message-ID:       <eicar-base64@example.org>".into(),
        "From:             Sender <sender@example.org>".into(),
        "Subject:          EICAR base64".into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing:\n{text}");
    }
}

/// The notice must never carry what it reports: clamd finds nothing in it, for every
/// infected fixture, although each one's headers are attached.
#[tokio::test]
async fn notices_scan_clean_with_real_clamd() {
    let clamd = Clamd::shared();
    let scanner = Scanner::new(
        clamd.addr(),
        Duration::from_secs(30),
        vec!["Heuristics.".into(), "PUA.".into()],
    );
    let s = setup(free_port(), "postmaster@example.net", "", fast());
    let notifier = s.notifier();
    for fixture in INFECTED_FIXTURES {
        let (m, original) = infected(fixture, Some("Q-1"));
        let before = scanner.scan(&original).await.expect("scan original");
        assert!(before.virustest() >= 4, "{fixture} is infected: {before}");
        let notice = notifier.compose_notice(&m).expect("compose");
        let after = scanner.scan(&notice).await.expect("scan notice");
        assert_eq!(after, Verdict::Clean, "notice for {fixture}");
        assert!(!m.headers.is_empty(), "{fixture}: headers attached");
    }
}

#[tokio::test]
async fn relay_down_queues_and_retries_until_it_is_up() {
    let port = free_port();
    let s = setup(port, "postmaster@example.net", "", fast());
    let (m, _) = infected("eicar-plain.eml", None);
    s.notifier().infected(&m);

    // Nothing listens: connection refused, the mail stays queued with the reason.
    let pass = s.outbox.send_due().await;
    assert_eq!(
        pass,
        Pass {
            taken: 1,
            sent: 0,
            retried: 1,
            dropped: 0
        }
    );
    let queued = s.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].attempts, 1);
    let error = queued[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("connect to 127.0.0.1"), "{error}");
    assert!(queued[0].next_attempt > std::time::SystemTime::now());
    // Not due yet: the next pass takes nothing.
    assert_eq!(s.outbox.send_due().await.taken, 0);

    // The relay comes up; the background sender delivers at the next retry.
    let sink = SmtpSink::start_on(port, &[]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(s.outbox.clone().run(async {
        let _ = stopped.await;
    }));
    let got = tokio::task::spawn_blocking(move || {
        let got = sink.wait_for(1, WAIT);
        (got, sink)
    })
    .await
    .expect("wait");
    assert_eq!(got.0.len(), 1);
    assert_eq!(got.0[0].mail_from, "<>");
    let started = Instant::now();
    while !s.queued().is_empty() {
        assert!(started.elapsed() < WAIT, "still queued: {:?}", s.queued());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("sender stops")
        .expect("sender task");
}

#[tokio::test]
async fn temporary_refusal_is_retried_permanent_refusal_dropped() {
    // 4xx to RCPT: retried.
    let soft = SmtpSink::start_on(free_port(), &["-r", "RCPT"]);
    let s = setup(soft.addr().port(), "postmaster@example.net", "", fast());
    s.outbox
        .enqueue(
            "test",
            "",
            &["postmaster@example.net".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let pass = s.outbox.send_due().await;
    assert_eq!(pass.retried, 1, "{pass:?}");
    let error = s.queued()[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("RCPT TO with 450"), "{error}");

    // 5xx to RCPT: dropped at once, nothing delivered, nothing left to retry.
    let hard = SmtpSink::start_on(free_port(), &["-f", "RCPT"]);
    let s = setup(hard.addr().port(), "postmaster@example.net", "", fast());
    s.outbox
        .enqueue(
            "test",
            "",
            &["postmaster@example.net".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let pass = s.outbox.send_due().await;
    assert_eq!(
        pass,
        Pass {
            taken: 1,
            sent: 0,
            retried: 0,
            dropped: 1
        }
    );
    assert!(s.queued().is_empty());
    assert!(hard.transactions().is_empty());
}

#[tokio::test]
async fn gives_up_after_the_retry_period() {
    let mut options = fast();
    options.retry.first_retry = Duration::from_millis(10);
    options.retry.max_retry = Duration::from_millis(10);
    options.retry.give_up_after = Duration::from_millis(30);
    let s = setup(free_port(), "postmaster@example.net", "", options);
    s.outbox
        .enqueue(
            "test",
            "",
            &["postmaster@example.net".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    // Failures 1 and 2 are retried (10 + 10 ms < 30 ms); the third adds up to 30: dropped.
    let mut passes = Vec::new();
    while s.queued().len() == 1 {
        let pass = s.outbox.send_due().await;
        if pass.taken > 0 {
            passes.push((pass.retried, pass.dropped));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(passes.len() <= 3, "{passes:?}");
    }
    assert_eq!(passes, [(1, 0), (1, 0), (0, 1)]);
}

/// A relay that accepts the connection and never greets must not hold the sender.
#[tokio::test]
async fn a_silent_relay_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut options = fast();
    options.timeouts.command = Duration::from_millis(300);
    let s = setup(port, "postmaster@example.net", "", options);
    s.outbox
        .enqueue(
            "test",
            "",
            &["postmaster@example.net".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let started = Instant::now();
    let pass = s.outbox.send_due().await;
    assert_eq!(pass.retried, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let error = s.queued()[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("no greeting in time"), "{error}");
    drop(listener);
}

#[tokio::test]
async fn rate_limit_sends_the_rest_as_one_digest() {
    let sink = SmtpSink::start();
    let s = setup(
        sink.addr().port(),
        "postmaster@example.net",
        "max_per_minute = 2",
        fast(),
    );
    let notifier = Arc::new(s.notifier().with_window(Duration::from_millis(500)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let sender = tokio::spawn(s.outbox.clone().run(stopping(stopped.clone())));
    let digests = {
        let notifier = Arc::clone(&notifier);
        let stopped = stopping(stopped.clone());
        tokio::spawn(async move { notifier.run(stopped).await })
    };
    for n in 0..5 {
        let (m, _) = infected("eicar-zip.eml", Some(&format!("Q-{n}")));
        notifier.infected(&m);
    }
    let got = tokio::task::spawn_blocking(move || (sink.wait_for(3, WAIT), sink))
        .await
        .expect("wait");
    let (got, sink) = got;
    let subjects: Vec<String> = got
        .iter()
        .map(|t| {
            MessageParser::new()
                .parse(&t.message)
                .and_then(|m| m.subject().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "[sievegate] virus found: Eicar-Signature (quarantined)",
            "[sievegate] virus found: Eicar-Signature (quarantined)",
            "[sievegate] 3 more infected messages (digest)",
        ]
    );
    // The first two messages got their own notices, in order.
    for (n, t) in got[..2].iter().enumerate() {
        let notice = MessageParser::new().parse(&t.message).expect("notice");
        let text = notice.body_text(0).expect("text").into_owned();
        assert!(
            text.contains(&format!("Quarantine id:    Q-{n}\r\n")),
            "{text}"
        );
    }
    let digest = MessageParser::new().parse(&got[2].message).expect("digest");
    assert_eq!(got[2].mail_from, "<>");
    assert_eq!(
        digest.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let text = digest.body_text(0).expect("text").into_owned();
    for n in 2..5 {
        assert!(
            text.contains(&format!("sievegate quarantine release Q-{n} -c ")),
            "{text}"
        );
    }
    // Nothing else arrives: one digest for the window, no more.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.transactions().len(), 3);
    let _ = stop.send(true);
    for task in [sender, digests] {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops")
            .expect("task");
    }
    assert!(s.queued().is_empty());
}

#[tokio::test]
async fn local_postmaster_gets_it_in_their_inbox_without_a_relay() {
    // The relay port refuses: a local postmaster must not need it.
    let s = setup(free_port(), "postmaster@example.test", "", fast());
    let (m, _) = infected("eicar-qp.eml", Some("Q-7"));
    s.notifier().infected(&m);
    let built = s.queued()[0].message.clone();

    let pass = pass_until(&s.outbox, |p| p.taken > 0).await;
    assert_eq!(
        pass,
        Pass {
            taken: 1,
            sent: 1,
            retried: 0,
            dropped: 0
        }
    );
    assert!(s.queued().is_empty());

    let new = s.maildir("postmaster").join("new");
    let files: Vec<PathBuf> = std::fs::read_dir(&new)
        .expect("INBOX new/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = std::fs::read(&files[0]).expect("read");
    let mut want = b"Return-Path: <>\r\nDelivered-To: postmaster@example.test\r\n".to_vec();
    want.extend_from_slice(&built);
    assert_eq!(
        stored, want,
        "the notice as built, behind our two trace fields"
    );
    for sub in ["cur", "tmp"] {
        let dir = s.maildir("postmaster").join(sub);
        assert_eq!(std::fs::read_dir(&dir).expect(sub).count(), 0, "{sub}");
    }
}

#[tokio::test]
async fn unknown_local_user_is_dropped_not_retried() {
    let port = free_port();
    let s = setup(port, "postmaster@example.net", "", fast());
    // A users file that lists only alice: mail for nobody@example.test can never arrive.
    let users = s.dir.path().join("users");
    std::fs::write(&users, "alice@example.test::::::\n").expect("users");
    let toml = std::fs::read_to_string(s.dir.path().join("sievegate.toml")).expect("config");
    let toml = toml.replace(
        "maildir = \"mail/%d/%n/Maildir\"",
        "maildir = \"mail/%d/%n/Maildir\"\nusers_file = \"users\"",
    );
    let path = s.dir.path().join("with-users.toml");
    std::fs::write(&path, toml).expect("write");
    let config = Config::load(&path).expect("config");
    let outbox = Outbox::with_options(&config, s.state.clone(), fast());
    outbox
        .enqueue(
            "test",
            "",
            &["nobody@example.test".into(), "alice@example.test".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let pass = outbox.send_due().await;
    assert_eq!(
        pass,
        Pass {
            taken: 2,
            sent: 1,
            retried: 0,
            dropped: 1
        }
    );
    assert!(s.queued().is_empty());
    assert_eq!(
        std::fs::read_dir(s.maildir("alice").join("new"))
            .expect("alice")
            .count(),
        1
    );
    assert!(!s.maildir("nobody").exists());
}

/// Lines that start with a dot survive SMTP's transparency (RFC 5321 §4.5.2) both ways, and
/// the relay gets the message byte for byte (no empty line added at the end).
#[tokio::test]
async fn dot_lines_and_the_last_line_arrive_intact() {
    let sink = SmtpSink::start();
    let s = setup(sink.addr().port(), "postmaster@example.net", "", fast());
    let message = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n\r\nlast\r\n".to_vec();
    s.outbox
        .enqueue(
            "test",
            "",
            &["a@example.net".into(), "b@example.net".into()],
            message.clone(),
        )
        .expect("enqueue");
    let pass = s.outbox.send_due().await;
    assert_eq!(pass.sent, 2, "{pass:?}");
    let got = sink.wait_for(2, WAIT);
    let mut rcpts: Vec<&str> = got.iter().map(|t| t.rcpt_to[0].as_str()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["<a@example.net>", "<b@example.net>"],
        "one transaction per recipient"
    );
    for t in &got {
        assert_eq!(t.rcpt_to.len(), 1);
        assert_eq!(
            String::from_utf8_lossy(&t.message),
            String::from_utf8_lossy(&message)
        );
    }
}

/// A relay that refuses EHLO still gets the mail, after HELO.
#[tokio::test]
async fn falls_back_to_helo() {
    let sink = SmtpSink::start_on(free_port(), &["-f", "EHLO"]);
    let s = setup(sink.addr().port(), "postmaster@example.net", "", fast());
    s.outbox
        .enqueue(
            "test",
            "",
            &["postmaster@example.net".into()],
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .expect("enqueue");
    let pass = s.outbox.send_due().await;
    assert_eq!(pass.sent, 1, "{pass:?}");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].helo.as_deref(), Some("mx.example.test"));
    assert_eq!(got[0].message, b"Subject: t\r\n\r\nx\r\n");
}
