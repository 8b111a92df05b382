//! `[mailbox] owner`, `group`, `file_mode`, `dir_mode` through the real binary running as
//! root: everything the store creates belongs to the mail user with the configured modes,
//! and a real Dovecot, running as that user, reads it without any chown by the test.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::dovecot::{Dovecot, MailUser};
use crate::support::env::{split_trace, Env, Options};

use crate::support::messages::{clean_message, transaction};

/// Every entry below `dir` (not `dir` itself), depth first.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().expect("type").is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn stored_files_belong_to_the_mail_user_and_dovecot_reads_them() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "this test needs root: only root can give files to another user"
    );
    let user = MailUser::lookup();
    let mut dovecot = Dovecot::start();
    let mut options = Options::new(Clamd::shared().addr());
    // Dovecot's Maildir root (owned by the mail user); the domain and user directories
    // below it are created by sievegate.
    options.maildir = Some(format!("{}/mail/%d/%n/Maildir", dovecot.root().display()));
    let env = Env::new(options);
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    let text = text.replace(
        "[mailbox]\n",
        &format!(
            "[mailbox]\nowner = \"{}\"\ngroup = \"{}\"\nfile_mode = \"0640\"\ndir_mode = \"0750\"\n",
            user.name, user.gid
        ),
    );
    std::fs::write(&env.config_path, text).expect("write config");
    env.set_personal(
        "ana",
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\n\
         fileinto :create :flags [\"$Label1\"] \"Work\";\nkeep;\n",
    );
    let server = Running::start(&env.config_path);
    let message = clean_message("owned");
    let out = server.converse(&transaction(&["ana@example.test"], &message));
    assert!(out.contains("250 2.0.0 <ana@example.test>"), "{out}");

    // What sievegate created: the domain directory and everything below it.
    let domain_dir = dovecot.root().join("mail/example.test");
    let mut created = vec![domain_dir.clone()];
    walk(&domain_dir, &mut created);
    let names: Vec<String> = created
        .iter()
        .map(|p| {
            p.strip_prefix(&domain_dir)
                .expect("below")
                .display()
                .to_string()
        })
        .collect();
    for want in [
        "ana/Maildir/new",
        "ana/Maildir/tmp",
        "ana/Maildir/subscriptions",
        "ana/Maildir/.Work/maildirfolder",
        "ana/Maildir/.Work/dovecot-keywords",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for path in &created {
        let meta = std::fs::symlink_metadata(path).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (user.uid, user.gid),
            "{}",
            path.display()
        );
        let want = if meta.is_dir() { 0o750 } else { 0o640 };
        assert_eq!(meta.mode() & 0o7777, want, "{}", path.display());
    }

    // Dovecot, as the mail user, reads both copies, the keyword and the subscription.
    let doveadm = |args: &[&str]| {
        let out = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(dovecot.config_path())
            .args(args)
            .output()
            .expect("doveadm");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "doveadm {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    for mailbox in ["INBOX", "Work"] {
        let out = doveadm(&[
            "fetch",
            "-u",
            "ana@example.test",
            "flags text",
            "mailbox",
            mailbox,
            "ALL",
        ]);
        // The one file of that folder holds the message as sent.
        let folder = dovecot
            .maildir("ana")
            .join(if mailbox == "INBOX" { "" } else { ".Work" });
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            walk(&folder.join(sub), &mut files);
        }
        assert_eq!(files.len(), 1, "{mailbox}: {files:?}");
        let stored = std::fs::read(&files[0]).expect("read");
        assert_eq!(split_trace(&stored).1, &message[..]);
        assert!(out.contains("Subject: owned"), "{mailbox}: {out}");
        if mailbox == "Work" {
            assert!(out.contains("$Label1"), "{out}");
        }
    }
    let list = doveadm(&["mailbox", "list", "-s", "-u", "ana@example.test"]);
    assert!(list.lines().any(|l| l.trim() == "Work"), "{list}");
    drop(server);
    dovecot.stop();
}
