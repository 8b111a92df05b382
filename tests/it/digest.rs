//! Quarantine digests through the real binary: `serve` and `deliver` quarantine with a
//! real clamd, `sievegate quarantine digest` (clock given with `--now`) sends, and the
//! digests land in the users' INBOX (they are local users: the outbox stores them there).
//! The assertions read the exact bytes stored.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sievegate::quarantine::link::{self, Action, LinkKey};

use crate::quarantine::{cli, list, ok, quarantine_options, send};
use crate::support::binary::{bin, Running};
use crate::support::clamd::Clamd;
use crate::support::env::Env;
use crate::support::messages::eicar;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-digest-test-key";

const USERS: &str = "alice@example.test\nbob@example.test\ncarol@example.test\n\
dave@example.test:x::::::sievegate_digest=no\nerin@other.example\nivan@skip.example\n\
frank@example.test\n";

/// An infected message with these header values.
fn infected(from: &str, subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: someone@example.test\r\nSubject: {subject}\r\nMessage-ID: <{}@forged.example>\r\n\r\n",
        subject.len()
    )
    .into_bytes();
    m.extend_from_slice(&eicar());
    m.extend_from_slice(b"\r\n");
    m
}

fn b64(text: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `sievegate deliver -c CONFIG -a RCPT < message` (LDA mode), which must succeed.
fn lda(env: &Env, rcpt: &str, message: &[u8]) {
    let mut child = Command::new(bin())
        .args(["deliver", "-c"])
        .arg(&env.config_path)
        .args(["-a", rcpt])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deliver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `quarantine digest --now TIME [more]`: its stdout.
fn digest(env: &Env, now: SystemTime, more: &[&str]) -> String {
    let now = humantime::format_rfc3339_seconds(now).to_string();
    let mut args = vec!["digest", "--now", now.as_str()];
    args.extend_from_slice(more);
    ok(&cli(&env.config_path, &args))
}

/// The digests in `user`'s INBOX (the messages we generated), oldest first.
fn digests(env: &Env, domain: &str, user: &str) -> Vec<Vec<u8>> {
    let dir = env
        .dir
        .path()
        .join("mail")
        .join(domain)
        .join(user)
        .join("Maildir/new");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).expect("read"))
        .filter(|m| String::from_utf8_lossy(m).contains("\r\nAuto-Submitted: auto-generated\r\n"))
        .collect()
}

/// The text part, the HTML part and the header section of a digest.
fn parts(digest: &[u8]) -> (String, String, String) {
    let parsed = mail_parser::MessageParser::new()
        .parse(digest)
        .expect("parses");
    let header = String::from_utf8_lossy(
        &digest[..digest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end")],
    )
    .into_owned();
    (
        parsed.body_text(0).expect("text").into_owned(),
        parsed.body_html(0).expect("html").into_owned(),
        header,
    )
}

/// Every link's claims in a digest's text part (verified with the key at `now`).
fn claims(text: &str, now: SystemTime) -> Vec<link::Claims> {
    let key = LinkKey::from_bytes(KEY).expect("key");
    text.lines()
        .filter_map(|l| l.strip_prefix("View:    "))
        .map(|url| {
            let token = url
                .strip_prefix("https://quarantine.example.test/q/")
                .expect("our base URL");
            link::verify(&key, token, now).expect("the link verifies")
        })
        .collect()
}

/// Tomorrow (UTC) at 07:01.
fn tomorrow_0701() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now - now % 86_400 + 86_400 + 7 * 3600 + 60)
}

#[test]
fn digests_list_each_held_entry_once_for_local_users_on_schedule() {
    let clamd = Clamd::shared();
    let mut options = quarantine_options(clamd);
    options.users = Some(USERS.to_string());
    let env = Env::new(options);
    let config = std::fs::read_to_string(&env.config_path).expect("config");
    let domains = "domains = [\"example.test\", \"other.example\"]";
    assert!(config.contains(domains));
    // Phase 1: quarantine, no digests yet.
    std::fs::write(
        &env.config_path,
        config.replace(
            domains,
            "domains = [\"example.test\", \"other.example\", \"skip.example\"]",
        ),
    )
    .expect("write config");
    let server = Running::start(&env.config_path);
    // bob: one hostile entry, and one that is released before any digest.
    let hostile_from = format!(
        "=?utf-8?b?{}?= <evil@forged.example>",
        b64(b"Evil\r\nBcc: victim@example.test <b>bold</b>")
    );
    let hostile_subject = format!(
        "=?utf-8?b?{}?=",
        b64(b"hi\r\nX-Injected: yes\0<script>alert(1)</script>")
    );
    let out = send(
        &server,
        "evil@forged.example",
        &["bob@example.test"],
        &infected(&hostile_from, &hostile_subject),
    );
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
    send(
        &server,
        "mallory@forged.example",
        &["bob@example.test"],
        &infected("Mallory <mallory@forged.example>", "release me"),
    );
    // carol: 50 entries; dave (opted out), erin (other.example: external by then), ivan
    // (skip.example) and frank (removed from the users file by then): one shared entry.
    for n in 0..50 {
        send(
            &server,
            "mallory@forged.example",
            &["carol@example.test"],
            &infected("Mallory <mallory@forged.example>", &format!("carol {n}")),
        );
    }
    let out = send(
        &server,
        "mallory@forged.example",
        &[
            "dave@example.test",
            "erin@other.example",
            "ivan@skip.example",
            "frank@example.test",
        ],
        &infected("Mallory <mallory@forged.example>", "others"),
    );
    assert_eq!(out.matches("250 2.0.0 <").count(), 4, "{out}");
    drop(server);
    let entries = list(&env.config_path, &[]);
    assert_eq!(entries.len(), 53);
    let release = entries
        .iter()
        .find(|e| e["subject"] == "release me")
        .and_then(|e| e["id"].as_str())
        .expect("the entry to release")
        .to_string();
    ok(&cli(
        &env.config_path,
        &["release", &release, "--rcpt", "bob@example.test", "--force"],
    ));
    let delivered = env.total_messages();
    assert_eq!(delivered, 1, "only the released message is in a Maildir");

    // Phase 2: digests on; other.example is no longer ours, frank is gone.
    let key = env.dir.path().join("link.key");
    std::fs::write(&key, KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = config.replace(domains, "domains = [\"example.test\", \"skip.example\"]")
        + "\n[quarantine.digest]\nenabled = true\nschedule = \"daily at 07:00\"\n\
           from = \"quarantine@example.test\"\nmax_entries = 20\nskip_domains = [\"skip.example\"]\n\
           [web]\nbase_url = \"https://quarantine.example.test/\"\nsecret_file = \"link.key\"\n";
    std::fs::write(&env.config_path, config).expect("write config");
    std::fs::write(
        env.dir.path().join("users"),
        USERS.replace("frank@example.test\n", ""),
    )
    .expect("users");

    let t1 = tomorrow_0701();
    let day = Duration::from_secs(86_400);
    let out = digest(&env, t1, &[]);
    assert!(out.contains("bob@example.test: 1 entries\n"), "{out}");
    assert!(out.contains("carol@example.test: 50 entries\n"), "{out}");
    assert!(
        out.contains("2 digests queued (1 external, 1 unknown, 2 opted out, 0 already had one this period, 0 failed)"),
        "{out}"
    );
    assert_eq!(env.total_messages(), delivered + 2);
    assert!(digests(&env, "example.test", "alice").is_empty());
    assert!(digests(&env, "example.test", "dave").is_empty());

    // bob's: hostile text stays text, in one field; the link verifies for bob and entry.
    let bob = digests(&env, "example.test", "bob");
    assert_eq!(bob.len(), 1);
    let (text, html, header) = parts(&bob[0]);
    assert!(
        !header.contains("X-Injected") && !header.contains("Bcc:"),
        "{header}"
    );
    assert!(
        header.contains("\r\nFrom: <quarantine@example.test>\r\n"),
        "{header}"
    );
    assert!(
        header.contains("\r\nTo: <bob@example.test>\r\n"),
        "{header}"
    );
    assert!(
        header.contains("\r\nSubject: Quarantine: messages held for you\r\n"),
        "{header}"
    );
    let parsed = mail_parser::MessageParser::new()
        .parse(&bob[0])
        .expect("parses");
    assert_eq!(parsed.header_values("X-Injected").count(), 0);
    assert_eq!(parsed.header_values("Bcc").count(), 0);
    assert!(
        text.contains("Subject: hiX-Injected: yes<script>alert(1)</script>\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "From:    EvilBcc: victim@example.test <b>bold</b> <evil@forged.example>\r\n"
        ),
        "{text}"
    );
    assert!(!text.contains('\0') && !html.contains('\0'));
    assert!(
        !text.contains("release me"),
        "a released entry is never listed"
    );
    assert!(
        html.contains("hiX-Injected: yes&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    let hostile_id = entries
        .iter()
        .find(|e| e["sender"] == "evil@forged.example")
        .and_then(|e| e["id"].as_str())
        .expect("hostile entry");
    let bob_claims = claims(&text, t1);
    assert_eq!(bob_claims.len(), 1);
    assert_eq!(bob_claims[0].entry_id, hostile_id);
    assert_eq!(bob_claims[0].rcpt, "bob@example.test");
    assert_eq!(bob_claims[0].action, Action::View);

    // carol's: 20 of 50 listed, "and 30 more"; each link for carol and a distinct entry.
    let carol = digests(&env, "example.test", "carol");
    assert_eq!(carol.len(), 1);
    let (text, html, _) = parts(&carol[0]);
    assert!(
        text.contains("The quarantine holds 50 new messages"),
        "{text}"
    );
    // "... and 30 more" links to carol's list page: a list token for carol, in both parts.
    let more = text
        .lines()
        .find_map(|l| l.strip_prefix("... and 30 more: https://quarantine.example.test/q/"))
        .expect("the more line links to the list page");
    let list = link::verify(&LinkKey::from_bytes(KEY).expect("key"), more, t1).expect("verifies");
    assert_eq!(
        (list.entry_id.as_str(), list.rcpt.as_str(), list.action),
        (link::LIST_ENTRY, "carol@example.test", Action::List)
    );
    assert!(
        html.contains(&format!(
            "<a href=\"https://quarantine.example.test/q/{more}\">30 more</a>"
        )),
        "{html}"
    );
    let carol_claims = claims(&text, t1 + 13 * day);
    assert_eq!(carol_claims.len(), 20);
    assert!(carol_claims.iter().all(|c| c.rcpt == "carol@example.test"));
    let mut ids: Vec<&str> = carol_claims.iter().map(|c| c.entry_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    assert!(
        link::verify(
            &LinkKey::from_bytes(KEY).expect("key"),
            text.lines()
                .find_map(|l| l.strip_prefix("View:    https://quarantine.example.test/q/"))
                .expect("link"),
            t1 + 14 * day
        )
        .is_err(),
        "expired after link_ttl_days"
    );

    // The same slot again: nothing. The next slot: nothing new. Forced: nothing new.
    let out = digest(&env, t1 + Duration::from_secs(1800), &[]);
    assert!(out.contains("were sent already"), "{out}");
    let out = digest(&env, t1 + day, &[]);
    assert!(out.contains("0 digests queued"), "{out}");
    let out = digest(&env, t1 + day, &["--force"]);
    assert!(out.contains("0 digests queued"), "{out}");
    assert_eq!(env.total_messages(), delivered + 2);

    // A new entry waits for the next slot: not in the slot already served, then listed
    // alone.
    lda(
        &env,
        "bob@example.test",
        &infected("m@forged.example", "later"),
    );
    let out = digest(&env, t1 + day + Duration::from_secs(3600), &[]);
    assert!(out.contains("were sent already"), "{out}");
    let out = digest(&env, t1 + 2 * day, &[]);
    assert!(
        out.contains("bob@example.test: 1 entries\n1 digests queued"),
        "{out}"
    );
    let bob = digests(&env, "example.test", "bob");
    assert_eq!(bob.len(), 2);
    let text = bob
        .iter()
        .map(|d| parts(d).0)
        .find(|t| t.contains("Subject: later\r\n"))
        .expect("the second digest");
    assert!(
        text.contains("Subject: later\r\n") && !text.contains("hiX-Injected"),
        "{text}"
    );

    // --force sends now, whatever the schedule; the slot an hour later then holds the
    // next one back (one per period), and the slot after sends it.
    lda(
        &env,
        "carol@example.test",
        &infected("m@forged.example", "forced"),
    );
    let out = digest(&env, t1 + 3 * day - Duration::from_secs(3600), &["--force"]);
    assert!(out.contains("carol@example.test: 1 entries\n"), "{out}");
    lda(
        &env,
        "carol@example.test",
        &infected("m@forged.example", "held back"),
    );
    let out = digest(&env, t1 + 3 * day, &[]);
    assert!(
        out.contains("0 digests queued") && out.contains("1 already had one this period"),
        "{out}"
    );
    let out = digest(&env, t1 + 4 * day, &[]);
    assert!(out.contains("carol@example.test: 1 entries\n"), "{out}");
    let carol = digests(&env, "example.test", "carol");
    assert_eq!(carol.len(), 3);
    // (Maildir names sort by second, not by order within one: look at them all.)
    let held_back = carol
        .iter()
        .filter(|d| parts(d).0.contains("Subject: held back\r\n"))
        .count();
    assert_eq!(held_back, 1);

    // The server sends on its own schedule: the current slot was never served, and only
    // alice has an entry no digest listed.
    lda(
        &env,
        "alice@example.test",
        &infected("m@forged.example", "for alice"),
    );
    let server = Running::start(&env.config_path);
    let logs = server.wait_for_log("quarantine digests: 1 queued");
    assert!(logs.contains("quarantine digests: 1 queued"), "{logs}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while digests(&env, "example.test", "alice").is_empty() && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alice = digests(&env, "example.test", "alice");
    assert_eq!(alice.len(), 1, "{}", server.logs());
    assert!(parts(&alice[0]).0.contains("Subject: for alice\r\n"));
    // Nobody else got anything from the server.
    assert_eq!(digests(&env, "example.test", "bob").len(), 2);
    assert_eq!(digests(&env, "example.test", "carol").len(), 3);
}
