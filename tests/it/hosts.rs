//! Several delivery hosts on one PostgreSQL database, through the real binary: a host
//! killed with SIGKILL while it holds outbox leases leaves its mail to the other host once
//! the lease (`[state] outbox_lease_secs`) runs out; a private Postfix with both hosts as
//! next hops (a failover list, and per-user affinity through `transport_maps`) delivers
//! every message of a load while one host is killed mid-load. The setup is the one the
//! book's "Running several hosts" chapter gives.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::postfix::{parse_delivery, Gate, Lmtp, Postfix, PostfixOptions};
use crate::support::postgres::{fresh_database, shared};
use crate::support::smtp_sink::SmtpSink;
use crate::support::tarpit::Tarpit;

/// The outbox lease of the kill test: long enough for host B to start and look while A
/// still holds it, short enough for a test.
const LEASE_SECS: u64 = 10;

/// The outbox poll of the kill test's hosts (`[state] outbox_poll_secs`): B finds the rows
/// of the dead host within this after their lease ends.
const POLL_SECS: u64 = 2;

/// `[state]` for a database at `url`, with short timeouts, `lease` seconds of outbox
/// lease and an outbox poll of [`POLL_SECS`].
fn state_section(url: &str, lease: u64) -> String {
    format!(
        "[state]\nbackend = \"postgres\"\nurl = \"{url}\"\nconnect_timeout_secs = 2\n\
         statement_timeout_secs = 2\noutbox_lease_secs = {lease}\n\
         outbox_poll_secs = {POLL_SECS}\n"
    )
}

/// One host: `sievegate serve` on database `url`, relaying to `relay`; alice answers with
/// a vacation reply.
fn vacation_host(url: &str, relay: std::net::SocketAddr) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    options.before = Some(vec![]);
    options.extra_sections = vec![
        state_section(url, LEASE_SECS),
        format!("[notify]\nrelay = \"{relay}\""),
    ];
    let env = Env::new(options);
    env.set_personal(
        "alice",
        r#"require "vacation"; vacation :days 1 :subject "Away" "Back on Monday.";"#,
    );
    let server = Running::start(&env.config_path);
    (env, server)
}

/// Delivers one message from `sender` to alice at `server`; it must get 250.
fn deliver(server: &Running, sender: &str) {
    let message = format!(
        "From: {sender}\r\nTo: alice@example.test\r\nSubject: hello\r\n\
         Message-ID: <m.{sender}>\r\n\r\nHello.\r\n"
    );
    let input = crate::support::messages::transaction_as(
        "",
        sender,
        &["alice@example.test"],
        message.as_bytes(),
    );
    let out = server.converse(&input);
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
}

/// Runs `sql` until it prints `want` (the outbox is written beside the replies); the last
/// output otherwise, after 20 s.
fn wait_sql(db: &str, sql: &str, want: &str) {
    let started = Instant::now();
    loop {
        let got = shared().psql(db, sql).expect("psql");
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{sql}: {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host A takes vacation replies from the outbox and sends them to a relay that never
/// answers, so it holds their leases; A is killed with SIGKILL. Host B, started while A
/// still held them, sends nothing before the lease ends and then every row, each at least
/// once, with the Message-ID A wrote. The one reply A had already tried (and scheduled for
/// a retry) is sent by B at its retry time: none is lost.
#[test]
fn a_host_killed_holding_outbox_leases_leaves_its_mail_to_the_other() {
    const REPLIES: usize = 10;
    let (db, url) = fresh_database();
    let tarpit = Tarpit::start();
    let sink = SmtpSink::start();
    let (_env_a, a) = vacation_host(&url, tarpit.addr());

    // A first reply: A's sender takes it and waits for the relay's greeting.
    deliver(&a, "first@remote.example");
    tarpit.wait_accepted(1, Duration::from_secs(20));
    // Ten more, queued while A's sender is stuck.
    let senders: Vec<String> = (0..REPLIES)
        .map(|i| format!("bob{i}@remote.example"))
        .collect();
    for sender in &senders {
        deliver(&a, sender);
    }
    wait_sql(
        &db,
        "SELECT count(*) FROM outbound_queue",
        &(REPLIES + 1).to_string(),
    );
    // The relay drops the first connection: that reply is scheduled for a retry, and A's
    // next pass takes the ten, leases them and is stuck on the relay again.
    tarpit.release();
    tarpit.wait_accepted(2, Duration::from_secs(20));
    wait_sql(
        &db,
        "SELECT count(*) FROM outbound_queue WHERE attempts = 0 \
         AND lease_until > (extract(epoch from clock_timestamp()) * 1000000)::bigint",
        &REPLIES.to_string(),
    );
    let lease_left: f64 = shared()
        .psql(
            &db,
            "SELECT min(lease_until) / 1000000.0 - extract(epoch from clock_timestamp()) \
             FROM outbound_queue WHERE attempts = 0",
        )
        .expect("psql")
        .parse()
        .expect("seconds");
    let lease_ends = Instant::now() + Duration::from_secs_f64(lease_left.max(0.0));
    let ids: BTreeMap<String, String> = shared()
        .psql(
            &db,
            "SELECT recipients || ' ' || substring(convert_from(message, 'UTF8') \
             from 'Message-ID: (<[^>]*>)') FROM outbound_queue",
        )
        .expect("psql")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(to, id)| (format!("<{to}>"), id.to_string()))
        .collect();
    assert_eq!(ids.len(), REPLIES + 1, "{ids:?}");

    // B starts while A holds the leases and is alive; then A dies without a word.
    let (_env_b, b) = vacation_host(&url, sink.addr());
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    unsafe { libc::kill(a.pid(), libc::SIGKILL) };
    drop(a); // reaps it
    assert!(
        Instant::now() < lease_ends,
        "B started after the lease ended ({lease_left:.1} s): nothing was proven"
    );
    while Instant::now() + Duration::from_millis(300) < lease_ends {
        assert!(
            sink.transactions().is_empty(),
            "B sent a row A still held:\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // B's sender looks every POLL_SECS: the ten leased rows by then, the retried one
    // after its minute.
    sink.wait_for(REPLIES, Duration::from_secs(40));
    let after_lease = Instant::now();
    let late = after_lease.saturating_duration_since(lease_ends);
    assert!(
        late < Duration::from_secs(POLL_SECS + 3),
        "B found the dead host's rows {late:?} after the lease, poll {POLL_SECS} s"
    );
    let got = sink.wait_for(REPLIES + 1, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.transactions().len(), got.len(), "no second copy");
    let mut seen = BTreeSet::new();
    for t in &got {
        assert_eq!(t.mail_from, "<>", "a vacation reply goes out from <>");
        let to = t.rcpt_to.join(",");
        let id = String::from_utf8_lossy(&t.message)
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
            .unwrap_or_default();
        assert_eq!(ids.get(&to), Some(&id), "{to}: the Message-ID A queued");
        seen.insert(to);
    }
    let want: BTreeSet<String> = ids.keys().cloned().collect();
    assert_eq!(seen, want, "every reply sent");
    wait_sql(&db, "SELECT count(*) FROM outbound_queue", "0");
    eprintln!(
        "kill -9 holding {REPLIES} leases ({LEASE_SECS} s, poll {POLL_SECS} s): B sent them \
         {:.1} s after the lease ended, the retried one too; {} transactions, 0 lost",
        late.as_secs_f64(),
        got.len()
    );
    drop(b);
}

/// Messages of the failover load.
const LOAD: usize = 200;

/// The failover load's recipients: alice and carol live on host A, bob and dave on B.
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Message `n` of the load: a unique Message-ID.
fn load_message(n: usize) -> (String, Vec<u8>) {
    let id = format!("<load-{n:03}@remote.example>");
    let message = format!(
        "From: sender@remote.example\r\nTo: {user}@example.test\r\nSubject: load {n}\r\n\
         Message-ID: {id}\r\nDate: Sat, 05 Dec 2026 09:00:00 +0000\r\n\r\nmessage {n}\r\n",
        user = USERS[n % USERS.len()]
    );
    (id, message.into_bytes())
}

/// Message files under `root` (every user's Maildir, new/ and cur/): (file name, bytes).
fn stored(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for user in USERS {
        let maildir = root.join("example.test").join(user).join("Maildir");
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                out.push((name, std::fs::read(e.path()).expect("read message")));
            }
        }
    }
    out
}

/// Postfix in front of two hosts sharing one database and one Maildir tree (as on shared
/// storage): per-user affinity with `transport_maps` (alice and carol go to A first, bob
/// and dave to B first), each entry a failover list `lmtp:inet:[A]:p, [B]:p`, the same
/// list as `virtual_transport`. (Postfix 3.7 takes `inet:` on the first destination only:
/// `inet:[B]:p` as the second is "valid hostname or network address required".) Host A is killed with SIGKILL mid-load: every
/// message is delivered (by B, at once or after Postfix's retry), none bounced, each
/// stored at least once; a second copy only where Postfix got no reply for an attempt.
#[test]
fn postfix_fails_over_to_the_other_host_when_one_is_killed_mid_load() {
    let (_db, url) = fresh_database();
    let maildirs = tempfile::tempdir().expect("maildir root");
    let host = || {
        let mut options = Options::new(Clamd::shared().addr());
        options.maildir = Some(format!("{}/%d/%n/Maildir", maildirs.path().display()));
        options.mailbox_extra = vec!["user_concurrency_limit = 0".into()];
        options.extra_sections = vec![state_section(&url, 900)];
        Gate::start(Lmtp::Inet, options)
    };
    let mut a = host();
    let b = host();
    let (addr_a, addr_b) = (a.running().addr, b.running().addr);
    let pid_a = a.running().pid();
    let a_first = format!(
        "lmtp:inet:[{}]:{}, [{}]:{}",
        addr_a.ip(),
        addr_a.port(),
        addr_b.ip(),
        addr_b.port()
    );
    let b_first = format!(
        "lmtp:inet:[{}]:{}, [{}]:{}",
        addr_b.ip(),
        addr_b.port(),
        addr_a.ip(),
        addr_a.port()
    );
    let map = maildirs.path().join("transport");
    let lines: String = USERS
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let next = if i % 2 == 0 { &a_first } else { &b_first };
            format!("{u}@example.test {next}\n")
        })
        .collect();
    std::fs::write(&map, lines).expect("transport map");
    let mut options = PostfixOptions::new(a_first.clone());
    options.concurrency = 10;
    options
        .extra
        .push(format!("transport_maps = texthash:{}", map.display()));
    let postfix = Postfix::start(options);

    // Submit the load from a thread; kill A once it has stored a tenth of it.
    let submit_to = postfix.smtp_addr();
    let submitter = std::thread::spawn(move || {
        let mut client = crate::support::postfix::SmtpClient::connect("127.0.0.1", submit_to);
        for n in 0..LOAD {
            let (_, m) = load_message(n);
            let rcpt = format!("{}@example.test", USERS[n % USERS.len()]);
            client.send("sender@remote.example", &[&rcpt], &m);
        }
        client.quit();
    });
    let by_a = |files: &[(String, Vec<u8>)]| {
        let mark = format!("P{pid_a}Q");
        files
            .iter()
            .filter(|(name, _)| name.contains(&mark))
            .count()
    };
    let started = Instant::now();
    let (at_kill, a_at_kill) = loop {
        let names: Vec<(String, Vec<u8>)> = USERS
            .iter()
            .flat_map(|u| {
                std::fs::read_dir(
                    maildirs
                        .path()
                        .join("example.test")
                        .join(u)
                        .join("Maildir/new"),
                )
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), Vec::new()))
            })
            .collect();
        if by_a(&names) >= LOAD / 10 {
            break (names.len(), by_a(&names));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "A stored {} of {LOAD} within 60 s:\n{}",
            by_a(&names),
            postfix.maillog()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let logs_a = a.kill9();
    submitter.join().expect("submitter");
    postfix.wait_queue_empty(Duration::from_secs(180));

    // What Postfix did, per queue id.
    let maillog = postfix.maillog();
    let ids: BTreeMap<String, String> = postfix.message_ids().into_iter().collect();
    assert_eq!(ids.len(), LOAD, "{maillog}");
    let mut sent = BTreeMap::<String, usize>::new();
    let mut no_reply = BTreeSet::new();
    let mut deferrals = 0;
    for line in maillog.lines() {
        // Postfix lost the host after sending the message and tried the next one in the same
        // attempt: the first host may have stored a copy it never answered for.
        if line.contains("message may be sent more than once") {
            if let Some(qid) = line
                .split("]: ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
            {
                no_reply.insert(qid.to_string());
            }
        }
        let Some(d) = parse_delivery(line) else {
            continue;
        };
        match d.status.as_str() {
            "sent" => *sent.entry(d.queue_id).or_default() += 1,
            "deferred" => {
                deferrals += 1;
                // An attempt that may have stored a copy without Postfix getting its 250.
                if !d.line.contains("connect to ") {
                    no_reply.insert(d.queue_id);
                }
            }
            _ => panic!("a message was not delivered or deferred: {line}\n{maillog}"),
        }
    }
    assert!(!maillog.contains("status=bounced"), "{maillog}");

    // What is on disk, per Message-ID.
    let files = stored(maildirs.path());
    let mut copies = BTreeMap::<String, usize>::new();
    for (name, bytes) in &files {
        let id = String::from_utf8_lossy(bytes)
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
            .unwrap_or_else(|| panic!("{name}: no Message-ID"));
        *copies.entry(id).or_default() += 1;
    }
    let mut twice = 0;
    for (qid, id) in &ids {
        assert_eq!(
            sent.get(qid),
            Some(&1),
            "{qid} ({id}) not sent once:\n{maillog}"
        );
        match copies.get(id).copied().unwrap_or(0) {
            0 => panic!("{id} lost; A before the kill:\n{logs_a}"),
            1 => {}
            n => {
                assert!(
                    no_reply.contains(qid),
                    "{id} stored {n} times but Postfix got 250 at once ({qid}):\n{maillog}"
                );
                twice += n - 1;
            }
        }
    }
    assert_eq!(
        files.len(),
        LOAD + twice,
        "files = messages + second copies"
    );
    assert!(
        at_kill < LOAD,
        "all stored before the kill: nothing was proven"
    );
    eprintln!(
        "failover: {LOAD} messages, A killed with {at_kill} stored ({} by A); after: {} \
         files, {twice} second copies, {deferrals} deferrals, 0 bounced; by A {}, by B {}",
        a_at_kill,
        files.len(),
        by_a(&files),
        files.len() - by_a(&files),
    );
    drop(b);
}
