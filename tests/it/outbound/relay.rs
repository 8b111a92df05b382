//! Relay faults and retries: a relay that is down, refuses for now or for good, never
//! greets, or refuses EHLO; the queue retries, gives up, or drops accordingly.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sievegate::outbound::Pass;

use super::{fast, infected, setup, WAIT};
use crate::support::smtp_sink::{free_port, SmtpSink};

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
            dropped: 0,
            kept: 0
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
            dropped: 1,
            kept: 0
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
