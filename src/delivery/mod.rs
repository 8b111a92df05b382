//! The delivery pipeline: one received message → one [`RcptOutcome`] per recipient. Its
//! callers are thin: the LMTP session turns outcomes into replies.
//!
//! - [`pipeline`]: scan once, the scan-failure policy, then per recipient: Sieve → Plan →
//!   trace headers → [`execute`] → one log line.
//! - [`view`]: the bounded part of a message that Sieve parses.
//! - [`headers`]: scan headers stripped from incoming mail, trace headers prepended.
//! - [`execute`] (here): one recipient's [`Plan`] against its [`Maildir`].
//!
//! All or nothing per recipient: if any copy cannot be stored, the copies already stored
//! are removed again, so the MTA's retry after a 4xx does not create duplicates.

pub mod headers;
pub mod pipeline;
pub mod view;

pub use headers::{strip_virus_headers, trace_headers, ClientInfo, TraceInfo};
pub use pipeline::{deliver, Client, Envelope};

use crate::config::Config;
use crate::filter::{Action, Filter, FilterConfig, Plan};
use crate::scan::Scanner;
use crate::store::{Folder, Maildir, StoreError, StoredMessage, SystemFlags};

/// What every delivery shares: the configuration and the long-lived clients. Built once at
/// startup and shared (`Arc`) by every session.
pub struct Services {
    pub config: Config,
    pub scanner: Scanner,
    pub filter: Filter,
}

impl Services {
    /// Builds the scanner and the Sieve filter from a validated configuration.
    pub fn new(config: Config) -> Self {
        let scanner = Scanner::new(
            config.scanner.clamd.clone(),
            config.scanner.timeout,
            config.scanner.heuristic_prefixes.clone(),
        )
        .with_max_scan_size(config.scanner.max_scan_size);
        let filter = Filter::new(FilterConfig {
            before: config.sieve.before.clone(),
            personal: config.sieve.personal.clone(),
            after: config.sieve.after.clone(),
            default: config.sieve.default.clone(),
            hostname: config.server.hostname.clone(),
            cpu_limit: config.sieve.cpu_limit,
        });
        Services {
            config,
            scanner,
            filter,
        }
    }
}

/// Why a recipient is deferred without a store having been tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferral {
    /// The virus scan failed and `on_failure = "tempfail"`.
    ScanFailed,
    /// A bug (a panic) while handling this recipient; logged.
    Internal,
}

/// What happened to the message for one recipient.
#[derive(Debug)]
pub enum RcptOutcome {
    /// Every requested copy is durably stored (in plan order, duplicates folded).
    Delivered {
        /// The copies, one per distinct folder.
        stored: Vec<StoredMessage>,
    },
    /// The plan had no action: Sieve `discard` (or a policy that drops the message).
    Discarded,
    /// Sieve `reject`/`ereject`; nothing was stored.
    Rejected {
        /// The script's reason text (for the reply, sanitized by the session).
        reason: String,
        /// True for `ereject`: refuse in protocol rather than by a rejection message.
        extended: bool,
    },
    /// A store failed; nothing is stored for this recipient (earlier copies rolled back).
    Failed {
        /// The store failure that caused the rollback.
        error: StoreError,
    },
    /// Nothing was tried for this recipient; the MTA should retry.
    Deferred(Deferral),
}

impl RcptOutcome {
    /// True when the MTA should retry later (a 4xx reply): every store failure is, because
    /// a full disk or a broken directory can be fixed without the sender's help.
    pub fn is_temporary_failure(&self) -> bool {
        matches!(self, RcptOutcome::Failed { .. } | RcptOutcome::Deferred(_))
    }

    /// One word for the log line: `delivered`, `discarded`, `rejected` (Sieve `reject`),
    /// `erejected` (Sieve `ereject`), `deferred`.
    pub fn kind(&self) -> &'static str {
        match self {
            RcptOutcome::Delivered { .. } => "delivered",
            RcptOutcome::Discarded => "discarded",
            RcptOutcome::Rejected {
                extended: false, ..
            } => "rejected",
            RcptOutcome::Rejected { extended: true, .. } => "erejected",
            RcptOutcome::Failed { .. } | RcptOutcome::Deferred(_) => "deferred",
        }
    }

    /// True when the failure is a full file system or quota, for its own status code.
    pub fn is_no_space(&self) -> bool {
        matches!(self, RcptOutcome::Failed { error } if error.is_no_space())
    }

    /// One short phrase for the per-recipient log line: `stored INBOX,Work`, `discarded`,
    /// `rejected: <reason>`, `failed: <error>`.
    pub fn summary(&self) -> String {
        match self {
            RcptOutcome::Delivered { stored } => {
                let folders: Vec<String> = stored.iter().map(|s| s.folder.imap_name()).collect();
                format!("stored {}", folders.join(","))
            }
            RcptOutcome::Discarded => "discarded".to_string(),
            RcptOutcome::Rejected { reason, .. } => format!("{}: {reason}", self.kind()),
            RcptOutcome::Failed { error } => format!("failed: {error}"),
            RcptOutcome::Deferred(Deferral::ScanFailed) => "not delivered: scan failed".into(),
            RcptOutcome::Deferred(Deferral::Internal) => "not delivered: internal error".into(),
        }
    }
}

/// Carries out `plan` for one recipient: each stored copy is `header` (this recipient's
/// trace headers) followed by `body` (the message, scan headers already stripped).
///
/// Returns the outcome and the notes worth a log line that arose while executing (the
/// plan's own notes stay with the plan). A `Store` into a missing folder without `:create`
/// falls back to INBOX, like Dovecot with `lda_mailbox_autocreate = no`; a folder named
/// twice gets one copy, with the flags of its first action.
pub fn execute(
    plan: &Plan,
    maildir: &Maildir,
    header: &[u8],
    body: &[u8],
) -> (RcptOutcome, Vec<String>) {
    let mut notes = Vec::new();

    // The filter emits a reject only for clean mail and never together with a store; if a
    // plan breaks that, refusing wins because the sender is told the message was refused.
    let reject = plan.actions.iter().find_map(|a| match a {
        Action::Reject { reason, extended } => Some((reason, *extended)),
        Action::Store { .. } => None,
    });
    if let Some((reason, extended)) = reject {
        if plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
        {
            notes.push("reject together with a store action: nothing stored".to_string());
        }
        let outcome = RcptOutcome::Rejected {
            reason: reason.clone(),
            extended,
        };
        return (outcome, notes);
    }

    let mut stored: Vec<StoredMessage> = Vec::new();
    for action in &plan.actions {
        let Action::Store {
            folder,
            flags,
            create,
        } = action
        else {
            continue;
        };
        match store_once(maildir, &stored, folder, *flags, *create, header, body) {
            Ok(None) => {}
            Ok(Some(message)) => stored.push(message),
            Err(StoreError::FolderMissing(missing)) => {
                notes.push(format!(
                    "folder \"{missing}\" does not exist and :create not given: kept in INBOX"
                ));
                let inbox = Folder::inbox();
                match store_once(maildir, &stored, &inbox, *flags, false, header, body) {
                    Ok(None) => {}
                    Ok(Some(message)) => stored.push(message),
                    Err(error) => return (rollback(maildir, stored, error, &mut notes), notes),
                }
            }
            Err(error) => return (rollback(maildir, stored, error, &mut notes), notes),
        }
    }

    if stored.is_empty() {
        (RcptOutcome::Discarded, notes)
    } else {
        (RcptOutcome::Delivered { stored }, notes)
    }
}

/// Stores into `folder` unless this delivery already has a copy there (`Ok(None)`).
fn store_once(
    maildir: &Maildir,
    stored: &[StoredMessage],
    folder: &Folder,
    flags: SystemFlags,
    create: bool,
    header: &[u8],
    body: &[u8],
) -> Result<Option<StoredMessage>, StoreError> {
    if stored.iter().any(|s| s.folder == *folder) {
        return Ok(None);
    }
    maildir
        .store(folder, flags, create, &[header, body])
        .map(Some)
}

/// Removes this recipient's copies after `error`, so the retry starts from nothing. A copy
/// that cannot be removed is a possible duplicate later: it is named in the notes.
fn rollback(
    maildir: &Maildir,
    stored: Vec<StoredMessage>,
    error: StoreError,
    notes: &mut Vec<String>,
) -> RcptOutcome {
    for message in &stored {
        if let Err(e) = maildir.remove(message) {
            notes.push(format!(
                "rollback failed, a retry may duplicate the copy in \"{}\": {e}",
                message.folder
            ));
        }
    }
    RcptOutcome::Failed { error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn folder(name: &str) -> Folder {
        Folder::from_sieve(name).expect("valid folder")
    }

    fn store(name: &str, flags: &[&str], create: bool) -> Action {
        Action::Store {
            folder: folder(name),
            flags: SystemFlags::from_sieve(flags).0,
            create,
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            actions,
            notes: Vec::new(),
        }
    }

    /// Relative paths of every file in new/ and cur/ of INBOX and `.Work`/`.Lists`.
    fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for dir in ["", ".Work", ".Lists"] {
            for sub in ["new", "cur", "tmp"] {
                let d = root.join(dir).join(sub);
                let Ok(rd) = fs::read_dir(&d) else { continue };
                for e in rd {
                    let e = e.expect("entry");
                    let name = e.file_name().to_string_lossy().to_string();
                    let info = name.split_once(":2,").map_or("", |(_, i)| i).to_string();
                    out.push(
                        format!("{dir}/{sub}:{info}")
                            .trim_start_matches('/')
                            .to_string(),
                    );
                }
            }
        }
        out.sort();
        out
    }

    const HEADER: &[u8] = b"Delivered-To: bob@example.test\r\n";
    const BODY: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

    #[test]
    fn execute_table() {
        struct Case {
            what: &'static str,
            existing: &'static [&'static str],
            actions: Vec<Action>,
            summary: &'static str,
            files: &'static [&'static str],
            notes: usize,
        }
        let cases = vec![
            Case {
                what: "keep",
                existing: &[],
                actions: vec![store("INBOX", &[], false)],
                summary: "stored INBOX",
                files: &["new:"],
                notes: 0,
            },
            Case {
                what: "fileinto with flags goes to cur/",
                existing: &[],
                actions: vec![store("Work", &["\\Seen", "\\Flagged"], true)],
                summary: "stored Work",
                files: &[".Work/cur:FS"],
                notes: 0,
            },
            Case {
                what: "fileinto existing folder without :create",
                existing: &[".Work"],
                actions: vec![store("Work", &[], false)],
                summary: "stored Work",
                files: &[".Work/new:"],
                notes: 0,
            },
            Case {
                what: "missing folder falls back to INBOX once",
                existing: &[],
                actions: vec![
                    store("Work", &["\\Seen"], false),
                    store("Lists", &[], false),
                    store("INBOX", &[], false),
                ],
                summary: "stored INBOX",
                files: &["cur:S"],
                notes: 2,
            },
            Case {
                what: "same folder twice: one copy",
                existing: &[],
                actions: vec![
                    store("Work", &[], true),
                    store("INBOX.Work", &["\\Seen"], true),
                    store("INBOX", &[], false),
                ],
                summary: "stored Work,INBOX",
                files: &[".Work/new:", "new:"],
                notes: 0,
            },
            Case {
                what: "discard",
                existing: &[],
                actions: vec![],
                summary: "discarded",
                files: &[],
                notes: 0,
            },
            Case {
                what: "reject",
                existing: &[],
                actions: vec![Action::Reject {
                    reason: "not wanted".to_string(),
                    extended: false,
                }],
                summary: "rejected: not wanted",
                files: &[],
                notes: 0,
            },
            Case {
                what: "reject wins over a store",
                existing: &[],
                actions: vec![
                    store("INBOX", &[], false),
                    Action::Reject {
                        reason: "no".to_string(),
                        extended: true,
                    },
                ],
                summary: "erejected: no",
                files: &[],
                notes: 1,
            },
        ];
        for case in cases {
            let tmp = tempfile::tempdir().expect("tempdir");
            let md = Maildir::new(tmp.path().join("Maildir"));
            for dir in case.existing {
                fs::create_dir_all(md.root().join(dir)).expect("mkdir");
            }
            let (outcome, notes) = execute(&plan(case.actions), &md, HEADER, BODY);
            assert_eq!(outcome.summary(), case.summary, "{}", case.what);
            assert_eq!(files(md.root()), case.files, "{}", case.what);
            assert_eq!(notes.len(), case.notes, "{}: {notes:?}", case.what);
            assert!(!outcome.is_temporary_failure(), "{}", case.what);
            if let RcptOutcome::Delivered { stored } = &outcome {
                for s in stored {
                    let content = fs::read(&s.path).expect("read");
                    assert_eq!(content, [HEADER, BODY].concat(), "{}", case.what);
                }
            }
        }
    }

    #[test]
    fn fallback_note_names_the_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = Maildir::new(tmp.path().join("Maildir"));
        let (_, notes) = execute(&plan(vec![store("Work", &[], false)]), &md, HEADER, BODY);
        assert_eq!(
            notes,
            ["folder \"Work\" does not exist and :create not given: kept in INBOX"]
        );
    }

    #[test]
    fn failure_rolls_back_earlier_copies() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = Maildir::new(tmp.path().join("Maildir"));
        // `.Work/tmp` is a file: creating the message there fails (ENOTDIR) even as root,
        // where permission bits would not stop us.
        fs::create_dir_all(md.root().join(".Work")).expect("mkdir");
        fs::write(md.root().join(".Work/tmp"), "").expect("write");
        let actions = vec![
            store("INBOX", &[], false),
            store("Lists", &["\\Seen"], true),
            store("Work", &[], false),
        ];
        let (outcome, notes) = execute(&plan(actions), &md, HEADER, BODY);
        assert!(outcome.is_temporary_failure(), "{}", outcome.summary());
        assert!(!outcome.is_no_space());
        assert!(
            outcome.summary().starts_with("failed: "),
            "{}",
            outcome.summary()
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(files(md.root()), Vec::<String>::new());
    }

    #[test]
    fn unusable_root_fails() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("Maildir");
        fs::write(&root, "a file").expect("write");
        let md = Maildir::new(root);
        let (outcome, _) = execute(&plan(vec![store("INBOX", &[], false)]), &md, HEADER, BODY);
        assert!(matches!(
            outcome,
            RcptOutcome::Failed {
                error: StoreError::Io { .. }
            }
        ));
    }
}
