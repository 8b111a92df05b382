//! Postfix → sievegate → Maildir → Dovecot: a private Dovecot reads, with `doveadm fetch`,
//! what sievegate stored for mail that came in through a private Postfix: INBOX, a folder
//! made by `fileinto :create`, flags and keywords, and the body byte for byte.

use std::process::Command;
use std::time::Duration;

use crate::postfix::assert_no_bounce;
use crate::support::clamd::Clamd;
use crate::support::dovecot::Dovecot;
use crate::support::env::Options;
use crate::support::postfix::{Gate, Lmtp};

const SCRIPT: &str = r#"require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "report" {
    addflag "\\Seen";
    addflag "Quarterly";
    fileinto :create "Work.Reports";
    stop;
}
addflag ["\\Flagged", "$Important"];
"#;

/// A body with what Postfix and a Maildir writer could trip on: a line starting with a
/// dot (dot-stuffed on the wire), "From " at a line start, 8-bit UTF-8, trailing spaces, a
/// tab, an empty last-but-one line.
fn body(tag: &str) -> Vec<u8> {
    format!(
        "Hello {tag},\r\n.a line that starts with a dot\r\n..two dots\r\nFrom here on, mbox would quote this\r\n\
         Grüße, 8-bit text \t with a tab and trailing spaces   \r\n\r\n-- \r\nend of {tag}\r\n"
    )
    .into_bytes()
}

fn message(subject: &str, tag: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{tag}@remote.example>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&body(tag));
    m
}

#[test]
fn dovecot_reads_what_sievegate_stored_from_postfix() {
    let mut dovecot = Dovecot::start();
    let mut options = Options::new(Clamd::shared().addr());
    options.maildir = Some(format!("{}/mail/%d/%n/Maildir", dovecot.root().display()));
    // What Dovecot's mail user must be able to read and write: stored as that user, the way
    // a root-run sievegate is told to (`[mailbox] owner`), no chown afterwards.
    let gate = Gate::start_with_mailbox(Lmtp::Unix, options, &["owner = \"mail\""]);
    gate.env.set_personal("alice", SCRIPT);
    let postfix = gate.postfix(|_| {});

    let inbox = postfix.submit(
        "sender@remote.example",
        &["alice@example.test"],
        &message("hello", "dc-inbox"),
    );
    let report = postfix.submit(
        "sender@remote.example",
        &["alice@example.test"],
        &message("monthly report", "dc-report"),
    );
    postfix.wait_status(&inbox, "alice@example.test", "sent");
    postfix.wait_status(&report, "alice@example.test", "sent");
    postfix.wait_queue_empty(Duration::from_secs(30));
    assert_no_bounce(&postfix, &gate);

    let list = doveadm(&dovecot, &["mailbox", "list", "-u", "alice@example.test"]);
    let mut boxes: Vec<&str> = list.lines().map(str::trim).collect();
    boxes.sort();
    assert_eq!(boxes, ["INBOX", "Work", "Work.Reports"], "{list}");

    for (mailbox, tag, flags) in [
        ("INBOX", "dc-inbox", ["$Important", "\\Flagged"]),
        ("Work.Reports", "dc-report", ["Quarterly", "\\Seen"]),
    ] {
        let fetched = doveadm(
            &dovecot,
            &[
                "fetch",
                "-u",
                "alice@example.test",
                "flags",
                "mailbox",
                mailbox,
                "ALL",
            ],
        );
        let lines: Vec<&str> = fetched
            .lines()
            .filter(|l| l.starts_with("flags:"))
            .collect();
        assert_eq!(lines.len(), 1, "{mailbox}: {fetched}");
        let mut got: Vec<&str> = lines[0]["flags:".len()..].split_whitespace().collect();
        got.sort();
        // Dovecot adds \Recent for a message it sees first.
        got.retain(|f| *f != "\\Recent");
        assert_eq!(got, flags, "{mailbox}: {fetched}");

        let raw = doveadm_raw(
            &dovecot,
            &[
                "fetch",
                "-u",
                "alice@example.test",
                "body",
                "mailbox",
                mailbox,
                "ALL",
            ],
        );
        let got = raw
            .strip_prefix(b"body:\n".as_slice())
            .unwrap_or_else(|| panic!("{mailbox}: {:?}", String::from_utf8_lossy(&raw)));
        let want = body(tag);
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&want),
            "{mailbox}: the body Dovecot reads"
        );
        assert_eq!(got, want.as_slice(), "{mailbox}: byte for byte");

        let header = doveadm(
            &dovecot,
            &[
                "fetch",
                "-u",
                "alice@example.test",
                "hdr",
                "mailbox",
                mailbox,
                "ALL",
            ],
        );
        assert!(
            header.contains(&format!("Message-ID: <{tag}@remote.example>")),
            "{header}"
        );
        assert!(header.contains("X-Virus-Status: Clean"), "{header}");
    }
    dovecot.stop();
}

/// Two recipients in one LMTP transaction (Postfix groups them): sievegate stores one file
/// hard-linked into both Maildirs; Dovecot reads it as each user's message, and expunging
/// it for one user leaves the other's intact.
#[test]
fn dovecot_reads_one_linked_file_as_each_users_message() {
    use std::os::unix::fs::MetadataExt;
    let mut dovecot = Dovecot::start();
    let mut options = Options::new(Clamd::shared().addr());
    options.maildir = Some(format!("{}/mail/%d/%n/Maildir", dovecot.root().display()));
    let gate = Gate::start_with_mailbox(Lmtp::Unix, options, &["owner = \"mail\""]);
    let postfix = gate.postfix(|_| {});
    let rcpts = ["bob@example.test", "carol@example.test"];
    let id = postfix.submit(
        "sender@remote.example",
        &rcpts,
        &message("shared", "dc-link"),
    );
    for rcpt in rcpts {
        postfix.wait_status(&id, rcpt, "sent");
    }
    postfix.wait_queue_empty(Duration::from_secs(30));
    assert_no_bounce(&postfix, &gate);

    let new_file = |user: &str| {
        let dir = dovecot
            .root()
            .join(format!("mail/example.test/{user}/Maildir/new"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    };
    let (bob, carol) = (new_file("bob"), new_file("carol"));
    let meta = std::fs::metadata(&bob).expect("bob's file");
    assert_eq!(
        meta.ino(),
        std::fs::metadata(&carol).expect("carol's").ino()
    );
    assert_eq!(meta.nlink(), 2, "one file, two links");

    let fetch_body = |user: &str| {
        doveadm_raw(
            &dovecot,
            &["fetch", "-u", user, "body", "mailbox", "INBOX", "ALL"],
        )
    };
    let want = [b"body:\n".as_slice(), &body("dc-link")].concat();
    for rcpt in rcpts {
        assert_eq!(fetch_body(rcpt), want, "{rcpt}: the body Dovecot reads");
        let header = doveadm(
            &dovecot,
            &["fetch", "-u", rcpt, "hdr", "mailbox", "INBOX", "ALL"],
        );
        assert!(!header.contains("Delivered-To:"), "{header}");
    }
    doveadm(
        &dovecot,
        &[
            "expunge",
            "-u",
            "bob@example.test",
            "mailbox",
            "INBOX",
            "ALL",
        ],
    );
    let gone = doveadm(
        &dovecot,
        &[
            "fetch",
            "-u",
            "bob@example.test",
            "body",
            "mailbox",
            "INBOX",
            "ALL",
        ],
    );
    assert!(gone.trim().is_empty(), "bob's copy expunged: {gone}");
    assert_eq!(
        fetch_body("carol@example.test"),
        want,
        "carol's copy intact"
    );
    assert_eq!(std::fs::metadata(&carol).expect("carol's").nlink(), 1);
    dovecot.stop();
}

fn doveadm_raw(dovecot: &Dovecot, args: &[&str]) -> Vec<u8> {
    let out = Command::new("/usr/bin/doveadm")
        .arg("-c")
        .arg(dovecot.config_path())
        .args(args)
        .output()
        .expect("run doveadm");
    assert!(
        out.status.success(),
        "doveadm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn doveadm(dovecot: &Dovecot, args: &[&str]) -> String {
    String::from_utf8_lossy(&doveadm_raw(dovecot, args)).into_owned()
}
