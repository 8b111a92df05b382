//! The chain end to end: scripts written into a tempdir, one Plan per case.
//!
//! - `chain`: the table of script chains and verdicts.
//! - `multiscript`: Pigeonhole's multiscript rules (what runs after what, keep, flags, errors).
//! - `run`: limits, envelope, parsing, and the explicit keep (RFC 5228).
//! - `patches`: what our sieve-rs patches give (origin, `:count`, time limit, `:matches`).
//! - `cache`: file changes, symlinks, `check`, the printed plan.
//! - `send`: vacation (RFC 3834 rules), redirect limits and loops, duplicate memory.
//! - `layout`: include directories, the ManageSieve symlink, the per-user log, limits.

mod cache;
mod chain;
mod layout;
mod multiscript;
mod patches;
mod run;
mod send;
mod world;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::store::{Folder, SystemFlags};

pub(super) const MESSAGE: &[u8] = b"From: Bob <bob@example.org>\r\n\
To: Alice <alice@example.test>\r\n\
Subject: hello\r\n\
Message-ID: <1@example.org>\r\n\
\r\n\
Hi Alice.\r\n";

pub(super) const VIRUS_BEFORE: &str = r#"require ["virustest", "relational", "comparator-i;ascii-numeric"];
if virustest :value "ge" :comparator "i;ascii-numeric" "4" { discard; stop; }
"#;

pub(super) fn rcpt() -> Recipient {
    Recipient::resolve("Alice+tag@example.test", &["example.test".to_string()], "+")
        .expect("valid recipient")
}

pub(super) fn virus(heuristic: bool) -> Verdict {
    Verdict::Infected {
        name: "Eicar-Signature".to_string(),
        heuristic,
    }
}

pub(super) fn inbox(flags: &[&str]) -> Action {
    store("INBOX", flags, false)
}

pub(super) fn store(folder: &str, flags: &[&str], create: bool) -> Action {
    let (flags, keywords) = SystemFlags::from_sieve(flags);
    Action::Store {
        folder: Folder::from_sieve(folder, "").expect("valid folder"),
        flags,
        keywords,
        create,
        edited: None,
    }
}

pub(super) fn reject(reason: &str, extended: bool) -> Action {
    Action::Reject {
        reason: reason.to_string(),
        extended,
    }
}

/// A tempdir with scripts and a config pointing at them; the personal script of the test
/// recipient is `<dir>/alice.sieve`.
pub(super) struct Setup {
    pub(super) dir: tempfile::TempDir,
    pub(super) config: FilterConfig,
}

impl Setup {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let personal = format!("{}/%n.sieve", dir.path().display());
        Setup {
            dir,
            config: FilterConfig {
                before: vec![],
                personal: Some(personal),
                after: vec![],
                default: None,
                hostname: "mx.example.test".to_string(),
                cpu_limit: 5000,
                max_run_time: Duration::from_secs(10),
                spam_score: None,
                special_use: Vec::new(),
                namespace_prefix: String::new(),
                max_redirects: 4,
                vacation: VacationPeriods::default(),
                scripts: super::ScriptSettings::default(),
            },
        }
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).expect("write script");
        path
    }

    pub(super) fn before(mut self, text: &str) -> Self {
        let path = self.write(&format!("before{}.sieve", self.config.before.len()), text);
        self.config.before.push(path);
        self
    }

    pub(super) fn after(mut self, text: &str) -> Self {
        let path = self.write(&format!("after{}.sieve", self.config.after.len()), text);
        self.config.after.push(path);
        self
    }

    pub(super) fn default(mut self, text: &str) -> Self {
        self.config.default = Some(self.write("default.sieve", text));
        self
    }

    pub(super) fn personal(self, text: &str) -> Self {
        self.write("alice.sieve", text);
        self
    }

    pub(super) fn personal_path(&self) -> PathBuf {
        self.dir.path().join("alice.sieve")
    }
}

pub(super) fn plan_for(filter: &Filter, verdict: &Verdict) -> Plan {
    let rcpt = rcpt();
    filter.plan(&FilterInput {
        message: MESSAGE,
        mail_from: "bob@example.org",
        rcpt: &rcpt,
        verdict,
        remote_ip: Some("192.0.2.1"),
        remote_host: Some("client.example.org"),
        maildir: None,
        queue_id: Some("4ABCD12345"),
    })
}
