//! Recipients missing from `[mailbox] users_file`. By default (`unknown_users =
//! "after-scan"`) they are accepted at RCPT and refused after the scan, only when the
//! message is not infected: a 550 makes the MTA bounce, and a bounce of infected mail goes
//! to its forged sender. `"at-rcpt"` keeps the RCPT-time 550.

use super::{expected, GREETING, LHLO_REPLY};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message, transaction};

/// alice exists; nobody else does.
fn env_with_users(mode: Option<&str>) -> Env {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("alice@example.test\n".into());
    if let Some(mode) = mode {
        options.mailbox_extra = vec![format!("unknown_users = \"{mode}\"")];
    }
    Env::new(options)
}

const UNKNOWN_550: &str = "550 5.1.1 <ghost@example.test> User unknown in local recipient table";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infected_mail_to_an_unknown_user_gets_250_split_at_every_byte() {
    let env = env_with_users(None);
    let input = transaction(&["ghost@example.test"], &infected_message());
    let got = env.transcript_every_split(&input).await;
    let want = expected(
        &["250 2.1.5 Recipient ok"],
        &["250 2.0.0 <ghost@example.test> ID Ok".into()],
    );
    assert_eq!(got, want);
    assert_eq!(env.total_messages(), 0);
    assert!(!env.dir.path().join("mail/example.test/ghost").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_mail_to_an_unknown_user_gets_550_after_data_split_at_every_byte() {
    let env = env_with_users(Some("after-scan"));
    let input = transaction(&["ghost@example.test"], &clean_message("to nobody"));
    let got = env.transcript_every_split(&input).await;
    let want = expected(&["250 2.1.5 Recipient ok"], &[UNKNOWN_550.into()]);
    assert_eq!(got, want);
    assert_eq!(env.total_messages(), 0);
    assert!(!env.dir.path().join("mail/example.test/ghost").exists());
}

/// Known and unknown recipients in one transaction: one scan, each gets its own reply in
/// RCPT order; the known one is delivered (clean) or discarded (infected) as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_recipients_in_one_transaction() {
    let env = env_with_users(None);
    let rcpts = [
        "ghost@example.test",
        "alice@example.test",
        "nobody@example.test",
    ];
    let ok = "250 2.1.5 Recipient ok";
    let got = env
        .transcript_every_split(&transaction(&rcpts, &clean_message("mixed")))
        .await;
    let want = expected(
        &[ok, ok, ok],
        &[
            UNKNOWN_550.into(),
            "250 2.0.0 <alice@example.test> ID Saved".into(),
            "550 5.1.1 <nobody@example.test> User unknown in local recipient table".into(),
        ],
    );
    assert_eq!(got, want);
    let runs = env.messages("alice", "").len();
    assert!(runs > 1, "every split delivered alice's copy");

    let got = env
        .transcript(&[&transaction(&rcpts, &infected_message())])
        .await;
    let want = expected(
        &[ok, ok, ok],
        &[
            "250 2.0.0 <ghost@example.test> ID Ok".into(),
            "250 2.0.0 <alice@example.test> ID Ok".into(),
            "250 2.0.0 <nobody@example.test> ID Ok".into(),
        ],
    );
    assert_eq!(got, want);
    assert_eq!(
        env.messages("alice", "").len(),
        runs,
        "the virus is nowhere"
    );
}

/// `unknown_users = "at-rcpt"`: the old behaviour, 550 at RCPT before anything is scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rcpt_refuses_before_data_split_at_every_byte() {
    let env = env_with_users(Some("at-rcpt"));
    let input = transaction(
        &["ghost@example.test", "alice@example.test"],
        &infected_message(),
    );
    let got = env.transcript_every_split(&input).await;
    let want = expected(
        &[UNKNOWN_550, "250 2.1.5 Recipient ok"],
        &["250 2.0.0 <alice@example.test> ID Ok".into()],
    );
    assert_eq!(got, want);
    // Only unknown recipients: no DATA.
    let got = env
        .transcript(&[&transaction(&["ghost@example.test"], &clean_message("x"))])
        .await;
    assert!(
        got.starts_with(&format!(
            "{GREETING}{LHLO_REPLY}250 2.1.0 Sender ok\r\n{UNKNOWN_550}\r\n503 5.5.1"
        )),
        "{got}"
    );
    assert_eq!(env.total_messages(), 0);
}

/// A scan failure defers the unknown recipients too (the message may be infected), so
/// nothing bounces before a verdict exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scan_defers_unknown_recipients_too() {
    let fake =
        crate::support::fake_clamd::FakeClamd::start(crate::support::fake_clamd::Mode::Close);
    let mut options = Options::new(fake.addr());
    options.users = Some("alice@example.test\n".into());
    let env = Env::new(options);
    let got = env
        .transcript(&[&transaction(&["ghost@example.test"], &clean_message("x"))])
        .await;
    assert!(
        got.contains("451 4.7.0 <ghost@example.test> Virus scan unavailable"),
        "{got}"
    );
}

/// DSN (RFC 3461) is advertised, and its parameters are taken: RET and ENVID on MAIL,
/// NOTIFY and ORCPT on RCPT. Infected mail with NOTIFY=SUCCESS still gets a plain 250 (and
/// we send no DSN of our own), so the MTA has nothing to notify either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_parameters_are_accepted_split_at_every_byte() {
    let env = super::env();
    let mut input = b"LHLO x\r\nMAIL FROM:<sender@remote.example> RET=HDRS ENVID=QQ314159\r\n\
RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test\r\n\
RCPT TO:<bob@example.test> NOTIFY=NEVER\r\nDATA\r\n"
        .to_vec();
    input.extend_from_slice(&infected_message());
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let got = env.transcript_every_split(&input).await;
    let want = expected(
        &["250 2.1.5 Recipient ok", "250 2.1.5 Recipient ok"],
        &[
            "250 2.0.0 <alice@example.test> ID Ok".into(),
            "250 2.0.0 <bob@example.test> ID Ok".into(),
        ],
    );
    assert_eq!(got, want);
    assert!(LHLO_REPLY.contains("250-DSN\r\n"));
    assert_eq!(env.total_messages(), 0);
    let far = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400 * 365);
    let queued = env.services.state.queue_due(far, 100).expect("queue");
    assert!(queued.is_empty(), "nothing queued to send: {queued:?}");
}
