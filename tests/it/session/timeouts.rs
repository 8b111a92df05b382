//! Timeouts, slow clients and shutdown: idle and DATA deadlines, clients that drip bytes or
//! never read replies, junk commands without mail, and 421 on shutdown.

use super::env;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, transaction};
use sievegate::lmtp::Peer;

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
