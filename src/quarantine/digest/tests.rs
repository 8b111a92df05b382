//! The digest's content (hostile text stays text, the "more" line) and one run against the
//! in-memory store: who gets one, once.

use std::sync::Arc;

use super::*;
use crate::state::MemoryState;

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:2424"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:/run/clamd.sock"
[mailbox]
domains = ["example.test", "skip.example"]
maildir = "/var/vmail/%d/%n/Maildir"
[state]
dir = "/var/lib/sievegate"
[quarantine]
enabled = true
dir = "/var/lib/sievegate/q"
[quarantine.digest]
enabled = true
schedule = "daily at 07:00"
max_entries = 2
skip_domains = ["skip.example"]
{extra}
[web]
base_url = "https://q.example.test/"
secret_file = "/etc/sievegate/link.key"
"#
    );
    Config::from_toml(&text, std::path::Path::new("/etc/sievegate/s.toml")).expect("valid")
}

fn entry(id: &str, at: SystemTime, rcpts: &[&str], subject: &str) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: at,
        sender: "mallory@forged.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        resolved: rcpts
            .iter()
            .map(|r| r.replace("+x", "").to_ascii_lowercase())
            .collect(),
        client_ip: None,
        client_helo: None,
        queue_id: None,
        verdict: "infected".into(),
        virustest: 5,
        viruses: vec!["Eicar-Test-Signature".into()],
        message_id: String::new(),
        subject: subject.into(),
        from: "Mallory <mallory@forged.example>".into(),
        size: 1234,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn links() -> Links {
    Links {
        base_url: "https://q.example.test".into(),
        key: LinkKey::from_bytes(&[7; 32]).expect("key"),
        ttl: Duration::from_secs(14 * 86_400),
    }
}

/// 2026-12-06 07:01 UTC.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_540_460)
}

#[test]
fn hostile_text_is_text_in_both_parts() {
    let config = config("");
    let hostile = entry(
        "h",
        t0(),
        &["bob@example.test"],
        "hi\r\nX-Injected: yes\0 <script>alert(1)</script> & \"q\"",
    );
    let content = Content::new(
        "bob@example.test",
        &[&hostile],
        10,
        &config,
        Some(&links()),
        t0(),
    );
    let text = content.text();
    assert!(
        text.contains("Subject: hiX-Injected: yes <script>alert(1)</script> & \"q\"\n"),
        "{text}"
    );
    assert!(!text.contains('\0') && !text.contains('\r'), "{text:?}");
    let html = content.html();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains(
            "hiX-Injected: yes &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"
        ),
        "{html}"
    );
    assert!(
        html.contains("Mallory &lt;mallory@forged.example&gt;"),
        "{html}"
    );
    // The link verifies with the key, for this entry, recipient and action.
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("View:    "))
        .expect("a link");
    let token = url.strip_prefix("https://q.example.test/q/").expect("base");
    let claims = link::verify(&links().key, token, t0()).expect("valid");
    assert_eq!(
        (
            claims.entry_id.as_str(),
            claims.rcpt.as_str(),
            claims.action
        ),
        ("h", "bob@example.test", Action::View)
    );
}

#[test]
fn a_run_lists_each_held_entry_once() {
    let config = config("");
    let state = Arc::new(MemoryState::default());
    let outbox = Outbox::new(&config, state.clone());
    let users = Users::new(None);
    let day = Duration::from_secs(86_400);
    let old = t0() - config.quarantine.retention - day;
    let mut released = entry("r", t0(), &["alice@example.test", "bob@example.test"], "r");
    released.releases.push(crate::state::RcptRelease {
        rcpt: "alice@example.test".into(),
        at: t0(),
        by: "root".into(),
    });
    for e in [
        entry("a1", t0() - day, &["Alice+x@example.test"], "one"),
        entry("a2", t0() - day, &["alice@example.test"], "two"),
        entry("a3", t0() - day, &["alice@example.test"], "three"),
        entry("old", old, &["alice@example.test"], "expired"),
        entry("s", t0(), &["ivan@skip.example"], "skipped"),
        entry("x", t0(), &["ext@elsewhere.example"], "external"),
        released,
    ] {
        state.quarantine_insert(&e).expect("insert");
        let ids: Vec<String> = e.releases.iter().map(|r| r.rcpt.clone()).collect();
        if !ids.is_empty() {
            state
                .quarantine_release_rcpts(&e.id, &ids, t0(), "root")
                .expect("release");
        }
    }
    let digester = Digester {
        config: &config,
        state: state.as_ref(),
        users: &users,
        outbox: &outbox,
        links: Some(&links()),
    };
    let run = |now, force| digester.run(Run { now, force }).expect("run");
    let report = run(t0(), false);
    assert_eq!(
        report.sent,
        [
            ("alice@example.test".to_string(), 3),
            ("bob@example.test".to_string(), 1)
        ]
    );
    assert_eq!((report.external, report.opted_out), (1, 1));
    let queued = state.queue_due(SystemTime::now(), 10).expect("queue");
    assert_eq!(queued.len(), 2);
    let alice = String::from_utf8_lossy(&queued[0].message).into_owned();
    assert_eq!(queued[0].to, ["alice@example.test"]);
    assert!(alice.contains("and 1 more"), "{alice}");
    assert!(!alice.contains("expired"), "{alice}");
    let bob = String::from_utf8_lossy(&queued[1].message).into_owned();
    assert!(bob.contains("Subject: r"), "{bob}");
    // The same slot again: nothing; the next slot: nothing new; forced: nothing new.
    assert!(run(t0() + Duration::from_secs(600), false).already_done);
    assert!(run(t0() + day, false).sent.is_empty());
    assert!(run(t0() + day, true).sent.is_empty());
    // A new entry waits for the next slot (the rate limit holds a forced one back only
    // when not forced).
    state
        .quarantine_insert(&entry("a4", t0() + day, &["alice@example.test"], "four"))
        .expect("insert");
    assert!(run(t0() + day + Duration::from_secs(60), false).already_done);
    assert_eq!(
        run(t0() + day * 2, false).sent,
        [("alice@example.test".to_string(), 1)]
    );
}

#[test]
fn the_more_line_links_to_the_recipients_list() {
    let config = config("");
    let entries: Vec<QuarantineEntry> = (0..3)
        .map(|n| {
            entry(
                &format!("m{n}"),
                t0(),
                &["Carol+x@example.test"],
                &format!("s{n}"),
            )
        })
        .collect();
    let refs: Vec<&QuarantineEntry> = entries.iter().collect();
    let content = Content::new(
        "carol@example.test",
        &refs,
        1,
        &config,
        Some(&links()),
        t0(),
    );
    let text = content.text();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("... and 2 more: "))
        .expect("the more line");
    let token = url.strip_prefix("https://q.example.test/q/").expect("base");
    let claims = link::verify(&links().key, token, t0()).expect("valid");
    assert_eq!(
        (
            claims.entry_id.as_str(),
            claims.rcpt.as_str(),
            claims.action,
            claims.expires
        ),
        (
            link::LIST_ENTRY,
            "carol@example.test",
            Action::List,
            t0() + links().ttl
        )
    );
    let html = content.html();
    assert!(
        html.contains(&format!("<p>... and <a href=\"{url}\">2 more</a>.</p>")),
        "{html}"
    );
    // Without links: the line, no link.
    let content = Content::new("carol@example.test", &refs, 1, &config, None, t0());
    assert!(content.text().contains("... and 2 more.\n"));
    assert!(!content.html().contains("<a "));
}
