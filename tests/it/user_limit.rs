//! `[mailbox] user_concurrency_limit` over in-memory sessions sharing one server's
//! services: a user's slots are counted across sessions from RCPT to the end of the
//! transaction; beyond the limit RCPT gets 451 4.3.0, other users are not affected.

use std::sync::Arc;
use std::time::Duration;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::lmtp::Peer;
use tokio::io::AsyncWriteExt;

use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::clean_message;

/// An env whose services have `user_concurrency_limit = limit`.
fn env_with_limit(limit: usize) -> Env {
    let mut env = Env::new(Options::new(Clamd::shared().addr()));
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    let text = text.replace(
        "[mailbox]\n",
        &format!("[mailbox]\nuser_concurrency_limit = {limit}\n"),
    );
    std::fs::write(&env.config_path, text).expect("write config");
    let config = Config::load(&env.config_path).expect("config");
    env.services = Arc::new(Services::new(config));
    env
}

/// Waits until `user` has `n` slots taken (the session runs on its own task).
async fn wait_in_flight(env: &Env, user: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.services.user_limit.in_flight(user) != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user}: {} in flight, waited for {n}",
            env.services.user_limit.in_flight(user)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcpt_beyond_the_limit_gets_451_across_sessions() {
    let env = env_with_limit(2);
    const BOB: &str = "bob@example.test";

    // Session A holds two of bob's slots (a +detail address is the same user).
    let mut a = env.start_session(Peer::Unix);
    a.client
        .write_all(b"LHLO a\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<bob+x@example.test>\r\n")
        .await
        .expect("write");
    wait_in_flight(&env, BOB, 2).await;

    // Session B: bob is busy, alice is not.
    let out = env
        .transcript(&[b"LHLO b\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n"])
        .await;
    assert!(
        out.contains("451 4.3.0 <bob@example.test> Too many concurrent deliveries for user\r\n"),
        "{out}"
    );
    assert!(out.contains("250 2.1.5 Recipient ok\r\n"), "{out}");
    // B's transaction ended with its session: alice's slot is free again.
    wait_in_flight(&env, "alice@example.test", 0).await;

    // A delivers: the slots are held through DATA and freed after the replies.
    let mut data = b"DATA\r\n".to_vec();
    data.extend_from_slice(&clean_message("limited"));
    data.extend_from_slice(b".\r\n");
    a.client.write_all(&data).await.expect("write");
    wait_in_flight(&env, BOB, 0).await;
    assert_eq!(env.messages("bob", "").len(), 2);

    // RSET frees the slots too.
    a.client
        .write_all(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<bob@example.test>\r\n")
        .await
        .expect("write");
    wait_in_flight(&env, BOB, 2).await;
    a.client.write_all(b"RSET\r\n").await.expect("write");
    wait_in_flight(&env, BOB, 0).await;
    let out = env
        .transcript(&[
            b"LHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\nQUIT\r\n",
        ])
        .await;
    assert!(out.contains("250 2.1.5 Recipient ok\r\n"), "{out}");

    // A connection that goes away frees what it held.
    a.client
        .write_all(b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.test>\r\n")
        .await
        .expect("write");
    wait_in_flight(&env, BOB, 1).await;
    a.client.write_all(b"QUIT\r\n").await.expect("write");
    let out = a.finish().await;
    assert!(!out.contains("451"), "{out}");
    wait_in_flight(&env, BOB, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_means_unlimited() {
    let env = env_with_limit(0);
    let mut input = b"LHLO a\r\nMAIL FROM:<s@remote.example>\r\n".to_vec();
    for _ in 0..50 {
        input.extend_from_slice(b"RCPT TO:<bob@example.test>\r\n");
    }
    input.extend_from_slice(b"QUIT\r\n");
    let out = env.transcript(&[&input]).await;
    assert_eq!(out.matches("250 2.1.5").count(), 50, "{out}");
}
