//! The store and the recipient directory end to end (hardening #5): folders that can never
//! take a message fall back to INBOX instead of 451 forever; unknown users get 550 5.1.1
//! and no directory; the users file is re-read without a restart.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::binary::{bin, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, transaction};
use sievegate::scan::ClamdAddr;

fn swaks() -> &'static str {
    assert!(
        Path::new("/usr/bin/swaks").exists(),
        "swaks not found: apt-get install swaks (scripts/test installs it)"
    );
    "/usr/bin/swaks"
}

/// Sends `message` to `to` with swaks over LMTP; returns swaks' transcript.
fn swaks_send(server: &Running, env: &Env, to: &str, message: &[u8]) -> String {
    let file = env.dir.path().join("message.eml");
    // swaks adds the final CRLF.CRLF itself.
    std::fs::write(&file, &message[..message.len() - 2]).expect("write");
    let out = Command::new(swaks())
        .args(["--server", &server.addr.ip().to_string()])
        .args(["--port", &server.addr.port().to_string()])
        .args(["--protocol", "LMTP", "--helo", "client.example"])
        .args(["--from", "sender@remote.example", "--to", to])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .expect("run swaks");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Item 4: `fileinto :create` with a 300-character name answered 451 on every retry (and
/// Postfix bounced after 5 days). Now it is stored in INBOX with a logged note, like
/// Pigeonhole; a good folder next to it still works.
#[test]
fn fileinto_300_char_folder_lands_in_inbox_through_the_binary() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    let long = "L".repeat(300);
    env.set_personal(
        "alice",
        &format!("require [\"fileinto\", \"mailbox\"];\nfileinto :create \"{long}\";\n"),
    );
    env.set_personal(
        "bob",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Short\";\n",
    );
    let server = Running::start(&env.config_path);
    let message = clean_message("long folder name");

    let got = swaks_send(
        &server,
        &env,
        "alice@example.test,bob@example.test",
        &message,
    );
    assert_eq!(
        got.matches("<-  250 2.0.0 <").count(),
        2,
        "one 250 per recipient, no 451:\n{got}"
    );
    assert_eq!(
        env.messages("alice", "").len(),
        1,
        "alice's copy is in INBOX"
    );
    assert_eq!(env.messages("bob", ".Short").len(), 1, "bob's folder works");
    assert_eq!(env.total_messages(), 2);
    let leftovers: Vec<String> = std::fs::read_dir(env.maildir("alice"))
        .expect("alice's Maildir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no folder was made: {leftovers:?}");
    let note = "directory name longer than 255 bytes: stored in INBOX instead";
    let logs = server.wait_for_log(note);
    assert!(logs.contains(note), "the fallback is logged: {logs}");
}

/// Item 14: with a users file, an address that is not in it gets 550 5.1.1 at RCPT and
/// no directory is created; the others (with `+detail`, any case, a bare name at any served
/// domain) are delivered in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_gets_550_and_no_directory() {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("# users\nalice@example.test:{PLAIN}x:::::\nbob\n".into());
    let env = Env::new(options);
    let input = transaction(
        &[
            "Alice+news@Example.TEST",
            "alcie@example.test",
            "bob@other.example",
            "carol@example.test",
        ],
        &clean_message("users file"),
    );
    let got = env.transcript(&[&input]).await;
    for refused in ["alcie@example.test", "carol@example.test"] {
        assert!(
            got.contains(&format!(
                "550 5.1.1 <{refused}> User unknown in local recipient table\r\n"
            )),
            "{got}"
        );
    }
    assert_eq!(got.matches("Saved\r\n").count(), 2, "{got}");
    assert_eq!(env.messages("alice", "").len(), 1);
    let mail = env.dir.path().join("mail");
    assert!(mail.join("other.example/bob/Maildir/new").is_dir());
    for never in ["example.test/alcie", "example.test/carol"] {
        assert!(!mail.join(never).exists(), "{never} must not be created");
    }
}

/// Item 14: the users file is re-read when it changes, without a restart; a broken edit
/// keeps the last good table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_file_is_reread_on_change() {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("alice@example.test\n".into());
    // The table as RCPT sees it (the default refuses unknown users after the scan).
    options.mailbox_extra = vec!["unknown_users = \"at-rcpt\"".into()];
    let env = Env::new(options);
    let rcpt =
        |to: &str| format!("LHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<{to}>\r\nQUIT\r\n");
    let users = env.dir.path().join("users");
    let replace = |text: &str| {
        let tmp = env.dir.path().join("users.new");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &users).expect("rename");
    };

    let got = env
        .transcript(&[rcpt("dave@example.test").as_bytes()])
        .await;
    assert!(got.contains("550 5.1.1"), "{got}");

    replace("alice@example.test\ndave@example.test\n");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = env
        .transcript(&[rcpt("dave@example.test").as_bytes()])
        .await;
    assert!(got.contains("250 2.1.5"), "dave added: {got}");

    replace("alice@example.test\nthis is broken\n");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = env
        .transcript(&[rcpt("dave@example.test").as_bytes()])
        .await;
    assert!(got.contains("250 2.1.5"), "broken edit keeps dave: {got}");
}

/// Without a users file, `check-config` says that every local part is accepted; with one,
/// how many users it has.
#[test]
fn check_config_says_who_is_a_recipient() {
    let clamd = ClamdAddr::Unix("/nonexistent/clamd.sock".into());
    for (users, want) in [
        (
            None,
            "recipients: every local part at example.test, other.example is accepted",
        ),
        (
            Some("alice@example.test\nbob\n"),
            "recipients: the 2 users in",
        ),
    ] {
        let mut options = Options::new(clamd.clone());
        options.users = users.map(str::to_string);
        let env = Env::new(options);
        let out = Command::new(bin())
            .args(["check-config", "-c"])
            .arg(&env.config_path)
            .output()
            .expect("run check-config");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(want), "{stdout}");
    }
}

/// Item 13: at startup the binary removes crash leftovers (older than 36 hours) from the
/// `tmp/` of every Maildir under the `maildir` template, in the background; recent files
/// and directories that are not Maildirs are left alone.
#[test]
fn startup_sweep_removes_old_tmp_files() {
    let env = Env::new(Options::new(ClamdAddr::Unix(
        "/nonexistent/clamd.sock".into(),
    )));
    let day = Duration::from_secs(24 * 3600);
    let aged = |path: &Path, age: Duration| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = std::fs::File::create(path).expect("create");
        file.set_modified(std::time::SystemTime::now() - age)
            .expect("set mtime");
    };
    let alice = env.maildir("alice");
    for dir in ["", ".Lists"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(alice.join(dir).join(sub)).expect("mkdir");
        }
    }
    aged(&alice.join("tmp/crashed"), 2 * day);
    aged(&alice.join(".Lists/tmp/crashed"), 3 * day);
    aged(&alice.join("tmp/recent"), Duration::from_secs(60));
    let not_maildir = env.dir.path().join("mail/example.test/bob/Maildir/tmp/old");
    aged(&not_maildir, 2 * day);

    let server = Running::start(&env.config_path);
    let logs = server.wait_for_log("tmp/ sweep done");
    assert!(logs.contains("tmp/ sweep done"), "no sweep: {logs}");
    assert!(!alice.join("tmp/crashed").exists());
    assert!(!alice.join(".Lists/tmp/crashed").exists());
    assert!(alice.join("tmp/recent").exists());
    assert!(not_maildir.exists(), "bob's directory is not a Maildir");
    assert!(
        server
            .logs()
            .contains("2 leftover files removed from 1 Maildirs"),
        "{}",
        server.logs()
    );
}
