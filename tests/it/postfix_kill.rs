//! Nothing is lost when sievegate dies: Postfix delivers 100 messages at concurrency 20,
//! sievegate gets SIGKILL half-way, comes back on the same socket, and Postfix retries.
//! Afterwards every clean message is in the Maildir exactly once, and every infected one (one
//! in ten) in the quarantine exactly once and nowhere else, or twice only where Postfix got
//! no 250 for an attempt (its maillog says so); no file in new/ or cur/ or the quarantine is
//! truncated; the state store (written by the quarantine index during the kill) passes
//! `PRAGMA integrity_check`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Options};
use crate::support::postfix::{Gate, Lmtp};

const MESSAGES: usize = 100;
const CONCURRENCY: usize = 20;

/// Message `n`: a unique Message-ID and a 32 KiB body whose last line names it, so a
/// truncated file shows. Every tenth carries EICAR near its end.
fn message(n: usize) -> (String, Vec<u8>, Vec<u8>) {
    let id = format!("<kill-{n:03}@remote.example>");
    let mut body = Vec::new();
    for line in 0..512 {
        body.extend_from_slice(
            format!("message {n:03} line {line:03} {}\r\n", "x".repeat(40)).as_bytes(),
        );
    }
    if infected(n) {
        body.extend_from_slice(&crate::support::eicar());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("end of message {n:03}\r\n").as_bytes());
    let mut m = format!(
        "From: sender@remote.example\r\nTo: {user}@example.test\r\nSubject: kill {n}\r\n\
         Message-ID: {id}\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n\r\n",
        user = user(n)
    )
    .into_bytes();
    m.extend_from_slice(&body);
    (id, m, body)
}

/// Four recipients, so 20 parallel deliveries stay within a per-user concurrency limit of
/// 10 (Dovecot's default `lmtp_user_concurrency_limit`).
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn user(n: usize) -> &'static str {
    USERS[n % USERS.len()]
}

fn infected(n: usize) -> bool {
    n % 10 == 9
}

#[test]
fn kill9_during_100_postfix_deliveries_loses_nothing() {
    let mut options = Options::new(Clamd::shared().addr());
    options
        .extra_sections
        .push("[state]\ndir = \"state\"\n".to_string());
    options
        .extra_sections
        .push("[quarantine]\nenabled = true\ndir = \"quarantine\"\n".to_string());
    let mut gate = Gate::start(Lmtp::Unix, options);
    let postfix = gate.postfix(|o| o.concurrency = CONCURRENCY);

    // Queue all 100 while sievegate is away, so they leave together when it is back.
    gate.kill9();
    let mut client = postfix.client();
    let mut bodies = BTreeMap::new();
    let mut queued = Vec::new();
    for n in 0..MESSAGES {
        let (id, m, body) = message(n);
        let rcpt = format!("{}@example.test", user(n));
        queued.push(client.send("sender@remote.example", &[&rcpt], &m));
        bodies.insert(id, (body, infected(n)));
    }
    client.quit();
    postfix.wait_for_log("100 deferrals", Duration::from_secs(60), |log| {
        queued.iter().all(|q| log.contains(&format!("{q}: to=<")))
    });

    // From here on, a deferral of a queue id means an attempt without 250.
    let before_restart = postfix.maillog().len();
    gate.restart();
    postfix.flush();
    let started = Instant::now();
    let delivered_at_kill = loop {
        // Names only: reading every file each millisecond would slow the race down.
        let n: usize = USERS
            .iter()
            .map(|u| {
                std::fs::read_dir(gate.env.maildir(u).join("new"))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum();
        if n >= MESSAGES / 5 {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {n} delivered after 60 s:\n{}",
            postfix.maillog()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let logs = gate.kill9();
    assert!(
        delivered_at_kill < MESSAGES,
        "all {MESSAGES} were delivered before the kill: the test proves nothing"
    );
    gate.restart();
    postfix.wait_queue_empty(Duration::from_secs(120));

    // What Postfix saw, per queue id, after the first start.
    let maillog = postfix.maillog();
    let after = &maillog[before_restart..];
    let ids: BTreeMap<String, String> = postfix.message_ids().into_iter().collect();
    assert_eq!(ids.len(), MESSAGES, "{maillog}");
    let mut sent = BTreeMap::<String, usize>::new();
    let mut failed_attempts = BTreeMap::<String, usize>::new();
    let mut reasons = std::collections::BTreeSet::new();
    // Attempts that sent the whole message but got no reply: the only ones that may have
    // stored a copy without a 250 ("message may be sent more than once").
    let mut lost_reply = std::collections::BTreeSet::new();
    for line in after.lines() {
        let Some(d) = crate::support::postfix::parse_delivery(line) else {
            continue;
        };
        match d.status.as_str() {
            "sent" => *sent.entry(d.queue_id).or_default() += 1,
            // Not reaching sievegate at all stores nothing; any other deferral is an
            // attempt that may have stored a copy without Postfix getting its 250.
            "deferred" if d.line.contains("connect to ") => {}
            "deferred" => {
                let reason = d.line.split("status=deferred ").nth(1).unwrap_or("");
                reasons.insert(reason.replace(&d.queue_id, "QID"));
                if d.line.contains("while sending end of data") {
                    lost_reply.insert(d.queue_id.clone());
                }
                *failed_attempts.entry(d.queue_id).or_default() += 1;
            }
            _ => panic!("unexpected delivery status: {line}"),
        }
    }

    // What is on disk, per Message-ID; every file whole.
    let mut copies = BTreeMap::<String, usize>::new();
    for (path, bytes) in USERS.iter().flat_map(|u| gate.stored(u)) {
        let (_, message) = split_trace(&bytes);
        let id = String::from_utf8_lossy(message)
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
            .unwrap_or_else(|| panic!("{}: no Message-ID", path.display()));
        let (body, infected) = &bodies[&id];
        assert!(
            !infected,
            "{id} is infected and was stored in {}",
            path.display()
        );
        assert!(
            message.ends_with(body),
            "{} is not whole ({} bytes)",
            path.display(),
            bytes.len()
        );
        *copies.entry(id).or_default() += 1;
    }

    // The quarantine: one file per entry of the index, whole.
    let db = gate.env.dir.path().join("state/sievegate.db");
    let conn = rusqlite::Connection::open(&db).expect("open state db");
    let entries: Vec<(String, String)> = conn
        .prepare("SELECT id, message_id FROM quarantine")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (entry, message_id) in &entries {
        let id = format!("<{}>", message_id.trim_matches(['<', '>']));
        let path = gate
            .env
            .dir
            .path()
            .join("quarantine")
            .join(format!("{entry}.eml"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (body, infected) = &bodies[&id];
        assert!(infected, "{id} is clean and was quarantined");
        assert!(bytes.ends_with(body), "{} is not whole", path.display());
        *copies.entry(id).or_default() += 1;
    }

    let (mut once, mut twice, mut lost) = (0, 0, 0);
    for (qid, id) in &ids {
        assert_eq!(
            sent.get(qid),
            Some(&1),
            "{qid} ({id}) not sent exactly once:\n{maillog}"
        );
        match copies.get(id).copied().unwrap_or(0) {
            0 => lost += 1,
            1 => once += 1,
            2 => {
                assert!(
                    lost_reply.contains(qid),
                    "{id} stored twice but Postfix got 250 at once ({qid}):\n{maillog}"
                );
                twice += 1;
            }
            n => panic!("{id} stored {n} times"),
        }
    }
    let leftovers: usize = USERS
        .iter()
        .map(|u| {
            std::fs::read_dir(gate.env.maildir(u).join("tmp"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum();
    eprintln!(
        "kill -9 with {delivered_at_kill} of {MESSAGES} stored: once {once}, twice {twice}, \
         lost {lost} ({} quarantine entries); retried after the kill {}; tmp/ leftovers \
         {leftovers}",
        entries.len(),
        failed_attempts.len()
    );
    eprintln!("Postfix's deferral reasons after the kill: {reasons:#?}");
    assert_eq!(lost, 0, "lost messages; sievegate before the kill:\n{logs}");

    // The state store survived the kill.
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}
