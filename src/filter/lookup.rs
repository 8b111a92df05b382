//! What scripts may ask about the recipient's world: whether a folder exists (RFC 5490
//! `mailboxexists`), which folder has a special use (RFC 8579 `:specialuse`), and the spam
//! score an upstream filter wrote into the message (RFC 5235 `spamtest`).

use std::path::PathBuf;

use mail_parser::Message;
use sieve::SpamStatus;

pub use crate::mail::sieve::{SpamScore, DEFAULT_SPECIAL_USE};
use crate::store::{Folder, Maildir};

/// The spam status of `message` by `score`'s header: only the **topmost** instance of the
/// header counts. The upstream filter adds its field on top of what it received; instances
/// further down came with the message and are the sender's to forge. No field, or one that
/// does not start with a number: not tested (`spamtest` 0).
pub fn spam_status(score: &SpamScore, message: &Message<'_>) -> SpamStatus {
    let Some(part) = message.parts.first() else {
        return SpamStatus::Unknown;
    };
    let Some(header) = part
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(&score.header))
    else {
        return SpamStatus::Unknown;
    };
    let raw = message
        .raw_message
        .get(header.offset_start as usize..header.offset_end as usize)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    match raw.split_whitespace().next().map(str::parse::<f64>) {
        Some(Ok(value)) if value.is_finite() => scale(value, score.max),
        _ => SpamStatus::Unknown,
    }
}

/// RFC 5235 §3.2: 1 is "definitely not spam", 10 "definitely spam"; in between the
/// score's share of `max`.
fn scale(score: f64, max: f64) -> SpamStatus {
    if score <= 0.0 {
        SpamStatus::Ham
    } else if score >= max {
        SpamStatus::Spam
    } else {
        SpamStatus::MaybeSpam(score / max)
    }
}

/// The recipient's folders as scripts see them.
#[derive(Debug, Clone, Default)]
pub struct Mailboxes {
    /// The recipient's Maildir root; `None` when the caller has none (then no folder but
    /// INBOX exists).
    pub root: Option<PathBuf>,
    /// Special-use flag (`\Junk`) → folder name (`Junk`), case-insensitive on the flag.
    pub special_use: Vec<(String, String)>,
    /// `[mailbox] namespace_prefix`: how folder names map to Maildir++ directories.
    pub namespace_prefix: String,
}

impl Mailboxes {
    /// RFC 5490 §3.1: true when `name` is a folder a delivery could store into without
    /// `:create`. INBOX always exists.
    pub fn exists(&self, name: &str) -> bool {
        let Ok(folder) = self.folder(name) else {
            return false;
        };
        if folder.is_inbox() {
            return true;
        }
        self.root
            .as_deref()
            .is_some_and(|root| Maildir::new(root.to_path_buf()).folder_exists(&folder))
    }

    fn same_folder(&self, a: &str, b: &str) -> bool {
        matches!((self.folder(a), self.folder(b)), (Ok(a), Ok(b)) if a == b)
    }

    /// The Maildir++ folder of a Sieve folder name under the namespace prefix.
    pub fn folder(&self, name: &str) -> Result<Folder, crate::store::FolderError> {
        Folder::from_sieve(name, &self.namespace_prefix)
    }

    /// The folder configured for special-use flag `flag` (RFC 6154), if any.
    pub fn special_use(&self, flag: &str) -> Option<&str> {
        self.special_use
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(flag))
            .map(|(_, folder)| folder.as_str())
    }

    /// RFC 8579 §4: the folder with special use `flag` if it exists; `None` lets the caller
    /// fall back to the named folder.
    pub fn resolve_special_use(&self, flag: &str) -> Option<&str> {
        self.special_use(flag).filter(|folder| self.exists(folder))
    }

    /// RFC 8579 §5 `specialuse_exists`: with a mailbox, true when it exists and carries
    /// every flag; without, when some existing folder carries each flag.
    pub fn special_use_exists(&self, mailbox: Option<&str>, flags: &[String]) -> bool {
        flags.iter().all(|flag| match self.special_use(flag) {
            None => false,
            Some(folder) => match mailbox {
                Some(mailbox) => self.same_folder(folder, mailbox) && self.exists(folder),
                None => self.exists(folder),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn spam_score_topmost_only() {
        let spam = SpamScore {
            header: "X-Spam-Score".into(),
            max: 15.0,
        };
        let number = |s: SpamStatus| match s {
            SpamStatus::Unknown => 0,
            SpamStatus::Ham => 1,
            SpamStatus::MaybeSpam(p) => ((p * 10.0) as i64).clamp(2, 9),
            SpamStatus::Spam => 10,
        };
        let cases: &[(&str, i64)] = &[
            ("X-Spam-Score: 20\r\nX-Spam-Score: -5\r\n", 10),
            // The topmost is the trusted one; the sender's lower copy is ignored.
            ("X-Spam-Score: -1\r\nFrom: a@b\r\nX-Spam-Score: 99\r\n", 1),
            ("x-spam-score: 7.5 (threshold 5)\r\n", 5),
            ("X-Spam-Score: 15\r\n", 10),
            ("X-Spam-Score: 0.1\r\n", 2),
            ("X-Spam-Score: junk\r\nX-Spam-Score: 20\r\n", 0),
            ("X-Spam-Score: NaN\r\n", 0),
            ("From: a@b\r\n", 0),
        ];
        for (headers, want) in cases {
            let raw = format!("{headers}Subject: s\r\n\r\nbody\r\n");
            let message = MessageParser::new().parse(raw.as_bytes()).expect("parse");
            assert_eq!(number(spam_status(&spam, &message)), *want, "{headers:?}");
        }
    }

    #[test]
    fn mailboxes_table() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("Maildir");
        for dir in [".Junk/cur", ".Work.Sub/new", ".Spam/cur", ".INBOX.Old/cur"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let mut boxes = Mailboxes {
            root: Some(root),
            special_use: vec![
                ("\\Junk".into(), "Junk".into()),
                ("\\Trash".into(), "Trash".into()),
            ],
            namespace_prefix: String::new(),
        };
        for (name, want) in [
            ("INBOX", true),
            ("inbox", true),
            ("Junk", true),
            ("Work.Sub", true),
            ("INBOX.Work.Sub", false),
            ("INBOX.Old", true),
            ("Old", false),
            ("Work", false),
            ("Trash", false),
            ("../etc", false),
            ("", false),
        ] {
            assert_eq!(boxes.exists(name), want, "{name:?}");
        }
        boxes.namespace_prefix = "INBOX.".into();
        for (name, want) in [
            ("INBOX.Work.Sub", true),
            ("Work.Sub", false),
            ("INBOX.Old", false),
        ] {
            assert_eq!(boxes.exists(name), want, "INBOX. prefix: {name:?}");
        }
        boxes.namespace_prefix = String::new();
        assert_eq!(boxes.resolve_special_use("\\junk"), Some("Junk"));
        // Configured but missing: the caller falls back to the named folder.
        assert_eq!(boxes.resolve_special_use("\\Trash"), None);
        assert_eq!(boxes.resolve_special_use("\\Sent"), None);
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(boxes.special_use_exists(None, &flags(&["\\Junk"])));
        assert!(boxes.special_use_exists(Some("Junk"), &flags(&["\\Junk"])));
        assert!(!boxes.special_use_exists(Some("Spam"), &flags(&["\\Junk"])));
        assert!(!boxes.special_use_exists(None, &flags(&["\\Junk", "\\Trash"])));
        let nowhere = Mailboxes::default();
        assert!(nowhere.exists("INBOX"));
        assert!(!nowhere.exists("Junk"));
    }
}
