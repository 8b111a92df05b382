//! Outbound mail and the postmaster notice against real peers: Postfix's `smtp-sink` as the
//! relay, a real clamd for the "the notice itself is clean" check, and a real Maildir for a
//! local postmaster. Fault injection (a port that refuses, a peer that never greets) uses
//! plain sockets.
//!
//! This module holds what the files below share: the configuration and outbox of one test,
//! quick retry options, an infected message as the pipeline describes it, and a sender loop.

mod fake_relay;
mod injection;
mod local;
mod notice;
mod redirect;
mod redirect_binary;
mod redirect_now;
mod relay;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sievegate::config::Config;
use sievegate::mail::address::Recipient;
use sievegate::mail::envelope::{Client, Envelope};
use sievegate::outbound::{Outbox, OutboxOptions, Pass, RetryPolicy, Timeouts};
use sievegate::report::notice::{InfectedMessage, Notifier};
use sievegate::scan::Verdict;
use sievegate::state::{MemoryState, QueuedMail, StateStore};
use tempfile::TempDir;

use crate::support::load_message;

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
        lease: Duration::from_secs(60),
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
            addr: "203.0.113.7".parse().ok(),
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
