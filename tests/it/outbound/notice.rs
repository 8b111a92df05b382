//! What the postmaster notice carries to the relay: the notice as built, clean by a real
//! clamd, the rate limit's digest, and dot lines and the last line intact on the wire.

use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use sievegate::outbound::Pass;
use sievegate::report::notice::{original_headers, NOTICE_KIND};
use sievegate::scan::{Scanner, Verdict};

use super::{fast, infected, setup, WAIT};
use crate::support::clamd::Clamd;
use crate::support::smtp_sink::{free_port, SmtpSink};
use crate::support::INFECTED_FIXTURES;

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
            dropped: 0,
            kept: 0
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
