//! Issue 7, the store side of Sieve, through the real binary with a real clamd: imap4flags
//! keywords as Dovecot reads them, `mailboxexists`, editheader edits in the stored copy,
//! protected header fields, and `spamtest` from the topmost trusted header.

use std::path::Path;
use std::process::Command;

use crate::support::binary::{converse, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::dovecot::{Dovecot, MailUser};
use crate::support::env::{split_trace, Env, Options};
use crate::support::messages::{clean_message, transaction};

/// Delivers `message` to each of `rcpts` (local parts at example.test); asserts one 250
/// per recipient.
fn deliver(server: &Running, rcpts: &[&str], message: &[u8]) {
    let rcpts: Vec<String> = rcpts.iter().map(|r| format!("{r}@example.test")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let got = converse(tcp(server.addr), &transaction(&rcpts, message));
    assert_eq!(
        got.matches("250 2.0.0").count(),
        rcpts.len(),
        "one 250 per recipient:\n{got}"
    );
}

/// The one message file of `user`'s `folder` (`""`: INBOX): its name and content.
fn only_message(env: &Env, user: &str, folder: &str) -> (String, Vec<u8>) {
    let messages = env.messages(user, folder);
    assert_eq!(messages.len(), 1, "{user} {folder:?}: {messages:?}");
    let (path, content) = messages.into_iter().next().expect("one");
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    (name, content)
}

/// The header section of a stored message, our trace headers included.
fn header_text(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    text[..end].to_string()
}

#[test]
fn keywords_are_written_the_way_dovecot_reads_them() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    env.set_personal(
        "kw",
        r#"require ["fileinto", "mailbox", "imap4flags"];
addflag ["$Label1", "\\Seen"];
fileinto :create :flags ["Later", "$label1", "\\Flagged"] "Tagged";
keep;
"#,
    );
    let server = Running::start(&env.config_path);
    deliver(&server, &["kw"], &clean_message("keywords"));
    deliver(&server, &["kw"], &clean_message("keywords again"));

    // The exact files: names in dovecot-keywords, letters after the system flags.
    let root = env.maildir("kw");
    assert_eq!(
        std::fs::read_to_string(root.join("dovecot-keywords")).expect("INBOX keywords"),
        "0 $Label1\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".Tagged/dovecot-keywords")).expect("keywords"),
        "0 Later\n1 $label1\n"
    );
    for (folder, suffix) in [("", ":2,Sa"), (".Tagged", ":2,Fab")] {
        let messages = env.messages("kw", folder);
        assert_eq!(messages.len(), 2, "{folder:?}");
        for (path, _) in messages {
            let name = path.to_string_lossy().into_owned();
            assert!(name.ends_with(suffix), "{name} should end in {suffix}");
            assert!(name.contains("/cur/"), "{name}");
        }
    }
    assert!(!root.join("dovecot-uidlist.lock").exists());

    // And Dovecot itself: doveadm reads the same Maildir and lists the keywords.
    let mut dovecot = Dovecot::start();
    let target = dovecot.maildir("kw");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&target)
        .status()
        .expect("cp");
    assert!(status.success());
    let user = MailUser::lookup();
    chown_tree(&user, &target);
    for (mailbox, want) in [
        ("INBOX", vec!["$Label1", "\\Seen"]),
        ("Tagged", vec!["$label1", "Later", "\\Flagged"]),
    ] {
        let out = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(dovecot.config_path())
            .args([
                "fetch",
                "-u",
                "kw@example.test",
                "flags",
                "mailbox",
                mailbox,
                "ALL",
            ])
            .output()
            .expect("doveadm");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "doveadm: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("flags:")).collect();
        assert_eq!(lines.len(), 2, "{mailbox}: {stdout}");
        for line in lines {
            for flag in &want {
                assert!(
                    line.split_whitespace().any(|f| f == *flag),
                    "{mailbox}: {flag} missing in {line:?}"
                );
            }
        }
    }
    dovecot.stop();
}

fn chown_tree(user: &MailUser, path: &Path) {
    user.chown(path);
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir").flatten() {
            chown_tree(user, &entry.path());
        }
    }
}

#[test]
fn mailboxexists_edits_and_protected_headers() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    env.set_personal(
        "exists",
        r#"require ["fileinto", "mailbox"];
if mailboxexists "Lists" { fileinto "Lists"; } else { fileinto :create "Created"; }
"#,
    );
    env.set_personal(
        "edit",
        r#"require ["fileinto", "mailbox", "editheader"];
addheader "X-Sieve-Tag" "work";
deleteheader "Subject";
deleteheader "Received";
deleteheader "delivered-to";
addheader "X-Virus-Status" "Clean";
addheader "Return-Path" "<forged@example.net>";
fileinto :create "Edited";
"#,
    );
    let server = Running::start(&env.config_path);
    // "exists": first without the folder, then with it.
    deliver(&server, &["exists"], &clean_message("first"));
    assert_eq!(env.messages("exists", ".Created").len(), 1);
    std::fs::create_dir_all(env.maildir("exists").join(".Lists/cur")).expect("mkdir");
    std::fs::create_dir_all(env.maildir("exists").join(".Lists/new")).expect("mkdir");
    std::fs::create_dir_all(env.maildir("exists").join(".Lists/tmp")).expect("mkdir");
    deliver(&server, &["exists"], &clean_message("second"));
    assert_eq!(env.messages("exists", ".Lists").len(), 1);
    assert_eq!(env.messages("exists", ".Created").len(), 1);

    let mut message =
        b"Received: from upstream.example by relay.example; Fri, 27 Nov 2026 08:00:00 +0000\r\n"
            .to_vec();
    message.extend_from_slice(&clean_message("to be deleted"));
    deliver(&server, &["edit"], &message);
    let (_, content) = only_message(&env, "edit", ".Edited");
    let (trace, stored) = split_trace(&content);
    let trace = String::from_utf8_lossy(trace);
    let headers = header_text(stored);
    assert!(headers.starts_with("X-Sieve-Tag: work\r\n"), "{headers}");
    assert!(!headers.contains("Subject:"), "{headers}");
    // Protected: the upstream Received stays, nothing forged was added.
    assert!(
        headers.contains("Received: from upstream.example"),
        "{headers}"
    );
    assert!(!headers.contains("forged@example.net"), "{headers}");
    assert!(
        !headers
            .to_ascii_lowercase()
            .contains("x-virus-status: clean"),
        "{headers}"
    );
    // Our own trace headers are above the edited message, untouched.
    assert!(trace.contains("Delivered-To: edit@example.test"), "{trace}");
    assert!(trace.contains("X-Virus-Status:"), "{trace}");
}

#[test]
fn spamtest_trusts_only_the_topmost_header() {
    let mut options = Options::new(Clamd::shared().addr());
    options
        .sieve_extra
        .push("spam_score_header = \"X-Spam-Score\"".into());
    options.sieve_extra.push("spam_score_max = 10.0".into());
    let env = Env::new(options);
    let script = r#"require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto",
                   "mailbox"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "10" { fileinto :create "Junk"; }
"#;
    env.set_personal("spam", script);
    env.set_personal("forged", script);
    let server = Running::start(&env.config_path);
    let with = |headers: &str| {
        let mut m = headers.as_bytes().to_vec();
        m.extend_from_slice(&clean_message("score"));
        m
    };
    // The upstream filter's header on top says spam.
    deliver(&server, &["spam"], &with("X-Spam-Score: 12.5\r\n"));
    assert_eq!(env.messages("spam", ".Junk").len(), 1);
    // Upstream says ham; the sender's own copy further down says spam: not trusted.
    let mut forged = b"X-Spam-Score: 0.5\r\n".to_vec();
    let clean = clean_message("forged score");
    let split = clean
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a header line")
        + 2;
    forged.extend_from_slice(&clean[..split]);
    forged.extend_from_slice(b"X-Spam-Score: 99\r\n");
    forged.extend_from_slice(&clean[split..]);
    deliver(&server, &["forged"], &forged);
    assert_eq!(env.messages("forged", ".Junk").len(), 0);
    assert_eq!(env.messages("forged", "").len(), 1);
}
