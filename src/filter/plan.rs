//! The delivery plan: what Sieve decided for one recipient, before anything is executed.

use std::fmt;
use std::sync::Arc;

use crate::store::{Folder, SystemFlags};

/// The lowest RFC 5235 `virustest` value that counts as infected: 4 (heuristic match) and
/// 5 (virus) are both treated as infected by [`Plan::enforce_virus_policy`].
pub const INFECTED_VIRUSTEST: u8 = 4;

/// One action the store or the session will carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store a copy into `folder` (INBOX for keep) with these flags.
    Store {
        /// Where the copy goes; already validated as a Maildir++ folder.
        folder: Folder,
        /// System flags from `:flags` or the imap4flags internal variable.
        flags: SystemFlags,
        /// IMAP keywords from the same flag list (valid atoms only, each once), written to
        /// the folder's `dovecot-keywords` and the file name as Dovecot does.
        keywords: Vec<String>,
        /// `fileinto :create` (RFC 5490): create the folder when it is missing.
        create: bool,
        /// The message as editheader left it when the action was taken (RFC 5293 §3: later
        /// actions see the edits), stored instead of the original; `None`: the original.
        /// Copies with the same edits share one buffer.
        edited: Option<Arc<[u8]>>,
    },
    /// Refuse the message for this recipient: 550 5.7.1 with `reason` (clean mail only).
    Reject {
        /// The text the script gave to `reject` / `ereject`.
        reason: String,
        /// True for `ereject` (RFC 5429 §2.1): refuse at protocol level, never by a bounce.
        extended: bool,
    },
    /// Keep the whole message in the quarantine (once per message, whatever the number of
    /// recipients asking): the `quarantine` command of `vnd.sievegate.quarantine`, valid
    /// only in global scripts. It stores nothing in the recipient's mailbox.
    Quarantine,
    /// Send the message on to `to` (RFC 5228 §4.2 `redirect`) through `[notify] relay`,
    /// with the original envelope sender, during the delivery (see `delivery::send`).
    Redirect {
        /// The target address, without angle brackets.
        to: String,
        /// The message as editheader left it when `redirect` ran (RFC 5293 §3: later
        /// actions see the edits; Pigeonhole sends the edited message), sent instead of
        /// the original; `None`: the original.
        edited: Option<Arc<[u8]>>,
    },
    /// Queue a message Sieve generated (a vacation reply or a notification) from the null
    /// sender to `to` (never sent for infected mail).
    Send {
        /// Vacation reply or `notify` message.
        kind: SendKind,
        /// Envelope recipients.
        to: Vec<String>,
        /// The complete message as sieve-rs built it (CRLF).
        message: Vec<u8>,
    },
}

/// What produced an [`Action::Send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// RFC 5230 vacation reply.
    Vacation,
    /// RFC 5435/5436 `notify :method "mailto:..."`.
    Notify,
}

impl SendKind {
    /// The outbox kind and log word: `vacation`, `notify`.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Vacation => "vacation",
            SendKind::Notify => "notify",
        }
    }
}

/// An id the state store remembers once the delivery succeeded (RFC 7352 `duplicate`, the
/// vacation response record): recording it only then means a deferred delivery that is
/// retried is not taken for its own duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    /// The state-store key, already namespaced by user.
    pub key: String,
    /// How long it is remembered.
    pub ttl: std::time::Duration,
}

/// What Sieve decided for one recipient. An empty `actions` list means discard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do with the message, in script order; empty means discard.
    pub actions: Vec<Action>,
    /// Decisions worth a log line: refused folder names, actions replaced because the message
    /// is infected, actions not supported yet, script errors.
    pub notes: Vec<String>,
    /// Ids to remember after a successful delivery (duplicate tracking, vacation).
    pub remember: Vec<Remember>,
    /// `duplicate` claims this delivery holds ([`super::memory::claim_key`]): released
    /// after the delivery, whatever its outcome (after the records are written when it
    /// succeeded), so concurrent deliveries of the same message decide once.
    pub claims: Vec<String>,
    /// What the scripts asked for and [`Plan::enforce_virus_policy`] removed (the never-bounce
    /// rule): shown by `sieve test`, never executed.
    pub suppressed: Vec<Action>,
}

impl Plan {
    /// The implicit keep (RFC 5228 §2.10.2): one copy in INBOX, no flags.
    pub fn implicit_keep() -> Self {
        Plan {
            actions: vec![Action::Store {
                folder: Folder::inbox(),
                flags: SystemFlags::default(),
                keywords: Vec::new(),
                create: false,
                edited: None,
            }],
            notes: Vec::new(),
            remember: Vec::new(),
            claims: Vec::new(),
            suppressed: Vec::new(),
        }
    }

    /// Adds a Store, merging it into an earlier Store of the same folder: a message lands in
    /// a folder once, with the union of the flags (and `:create` if any copy asked for it),
    /// and the content of the first copy.
    pub fn add_store(
        &mut self,
        folder: Folder,
        flags: SystemFlags,
        keywords: Vec<String>,
        create: bool,
        edited: Option<Arc<[u8]>>,
    ) {
        for action in &mut self.actions {
            if let Action::Store {
                folder: existing,
                flags: existing_flags,
                keywords: existing_keywords,
                create: existing_create,
                ..
            } = action
            {
                if *existing == folder {
                    *existing_flags = existing_flags.union(flags);
                    merge_keywords(existing_keywords, keywords);
                    *existing_create |= create;
                    return;
                }
            }
        }
        self.actions.push(Action::Store {
            folder,
            flags,
            keywords,
            create,
            edited,
        });
    }

    /// Makes every Store and Redirect use the original message; true when one had edits.
    pub fn drop_edits(&mut self) -> bool {
        let mut dropped = false;
        for action in &mut self.actions {
            if let Action::Store { edited, .. } | Action::Redirect { edited, .. } = action {
                dropped |= edited.take().is_some();
            }
        }
        dropped
    }

    /// True when some action stores the message.
    pub fn stores(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
    }

    /// True when some action asks for the quarantine.
    pub fn quarantines(&self) -> bool {
        self.actions.contains(&Action::Quarantine)
    }

    /// The redirect targets, in order.
    pub fn redirects(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().filter_map(|a| match a {
            Action::Redirect { to, .. } => Some(to.as_str()),
            _ => None,
        })
    }

    /// True when some action refuses the message.
    pub fn rejects(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
    }

    /// The core invariant: infected mail (`virustest` 4 or 5) produces nothing towards its
    /// sender and lands in no mailbox. Every Reject (a bounce or a 5xx the sender's MTA turns
    /// into a bounce, RFC 5429 §2.1) and every Store is dropped, which leaves a discard.
    ///
    /// Redirects, vacation replies and notifications go too: a redirect hands the virus to
    /// a third party, a vacation reply goes to the forged sender, and a notification may
    /// quote it. The ids to remember go as well, so a clean copy of the same message later is
    /// not taken for a duplicate. This runs last, over the finished Plan, on every code path
    /// (including the runtime-error fallback), so no script can get around it.
    pub fn enforce_virus_policy(&mut self, virustest: u8) {
        if virustest < INFECTED_VIRUSTEST {
            return;
        }
        // Reject reaches the sender and Store a mailbox: both go. Quarantine is the one
        // store infected mail may have: it reaches neither.
        for action in std::mem::take(&mut self.actions) {
            let note = match &action {
                Action::Quarantine => {
                    self.actions.push(action);
                    continue;
                }
                Action::Reject { extended, .. } => format!(
                    "{} replaced by discard: message is infected (virustest {virustest})",
                    if *extended { "ereject" } else { "reject" }
                ),
                Action::Store { folder, .. } => format!(
                    "store into {folder} dropped: infected mail is not delivered \
                     (virustest {virustest})"
                ),
                Action::Redirect { to, .. } => format!(
                    "redirect to <{to}> suppressed: message is infected (virustest {virustest})"
                ),
                Action::Send { kind, .. } => format!(
                    "{} suppressed: message is infected (virustest {virustest})",
                    kind.as_str()
                ),
            };
            tracing::warn!(virustest, action = %action, "virus policy overrides Sieve action");
            self.notes.push(note);
            self.suppressed.push(action);
        }
        self.remember.clear();
        self.notes.push(format!(
            "infected: message discarded (virustest {virustest})"
        ));
    }
}

/// Adds `more` to `keywords`, skipping names already there (IMAP keywords are
/// case-insensitive: the first spelling wins).
pub(crate) fn merge_keywords(keywords: &mut Vec<String>, more: Vec<String>) {
    for keyword in more {
        if !keywords.iter().any(|k| k.eq_ignore_ascii_case(&keyword)) {
            keywords.push(keyword);
        }
    }
}

/// Flags as Sieve writes them (`\Seen \Flagged $Label1`), for the printed plan.
fn sieve_flags(flags: &SystemFlags, keywords: &[String]) -> String {
    let mut names: Vec<&str> = flags.imap_names();
    names.extend(keywords.iter().map(String::as_str));
    names.join(" ")
}

impl fmt::Display for Action {
    /// One line: `store INBOX`, `store Work.Projects :create :flags "\Seen"`,
    /// `reject "reason"`, `ereject "reason"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Store {
                folder,
                flags,
                keywords,
                create,
                edited,
            } => {
                write!(f, "store {folder}")?;
                if *create {
                    f.write_str(" :create")?;
                }
                if !flags.is_empty() || !keywords.is_empty() {
                    write!(f, " :flags {:?}", sieve_flags(flags, keywords))?;
                }
                if edited.is_some() {
                    f.write_str(" (edited)")?;
                }
                Ok(())
            }
            Action::Reject { reason, extended } => {
                let verb = if *extended { "ereject" } else { "reject" };
                write!(f, "{verb} {reason:?}")
            }
            Action::Quarantine => f.write_str("quarantine"),
            Action::Redirect { to, edited } => {
                write!(f, "redirect <{to}>")?;
                if edited.is_some() {
                    f.write_str(" (edited)")?;
                }
                Ok(())
            }
            Action::Send { kind, to, message } => {
                write!(f, "{} to {}", kind.as_str(), to.join(", "))?;
                // The generated text, indented, so `sieve test` shows the reply itself.
                for line in String::from_utf8_lossy(message).lines() {
                    write!(f, "\n    {line}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Plan {
    /// One line per action (`discard` when there is none), one `suppressed:` line per action
    /// the virus policy removed, then one `note:` line per note; what `sieve test` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            writeln!(f, "discard")?;
        }
        for action in &self.actions {
            writeln!(f, "{action}")?;
        }
        for action in &self.suppressed {
            writeln!(f, "suppressed: {action}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str, flags: &[&str], create: bool) -> Action {
        let (flags, keywords) = SystemFlags::from_sieve(flags);
        Action::Store {
            folder: Folder::from_sieve(name, "").expect("valid folder"),
            flags,
            keywords,
            create,
            edited: None,
        }
    }

    fn reject(reason: &str, extended: bool) -> Action {
        Action::Reject {
            reason: reason.to_string(),
            extended,
        }
    }

    fn redirect(to: &str) -> Action {
        Action::Redirect {
            to: to.to_string(),
            edited: None,
        }
    }

    fn send(kind: SendKind) -> Action {
        Action::Send {
            kind,
            to: vec!["sender@x.test".to_string()],
            message: b"Subject: away\r\n\r\nback soon\r\n".to_vec(),
        }
    }

    #[test]
    fn add_store_merges_same_folder() {
        let mut plan = Plan::default();
        plan.add_store(
            Folder::inbox(),
            SystemFlags::from_sieve(&["\\Seen"]).0,
            vec!["$Label1".into()],
            false,
            None,
        );
        plan.add_store(
            Folder::from_sieve("Work", "").expect("valid"),
            SystemFlags::default(),
            vec![],
            false,
            None,
        );
        plan.add_store(
            Folder::from_sieve("INBOX", "").expect("valid"),
            SystemFlags::from_sieve(&["\\Flagged"]).0,
            vec!["$label1".into(), "Later".into()],
            true,
            None,
        );
        assert_eq!(
            plan.actions,
            vec![
                store("INBOX", &["\\Seen", "\\Flagged", "$Label1", "Later"], true),
                store("Work", &[], false)
            ]
        );
    }

    #[test]
    fn virus_policy_table() {
        let cases: Vec<(Vec<Action>, u8, Vec<Action>)> = vec![
            (
                vec![store("INBOX", &[], false)],
                0,
                vec![store("INBOX", &[], false)],
            ),
            (
                vec![store("INBOX", &[], false)],
                1,
                vec![store("INBOX", &[], false)],
            ),
            (vec![reject("no", false)], 1, vec![reject("no", false)]),
            (vec![store("INBOX", &[], false)], 4, vec![]),
            (vec![store("Work", &[], true)], 5, vec![]),
            (vec![reject("no", false)], 4, vec![]),
            (vec![reject("no", true)], 5, vec![]),
            (
                vec![Action::Quarantine, store("INBOX", &[], false)],
                5,
                vec![Action::Quarantine],
            ),
            (vec![Action::Quarantine], 1, vec![Action::Quarantine]),
            (vec![], 5, vec![]),
            (
                vec![store("INBOX", &["\\Seen"], false), reject("x", false)],
                5,
                vec![],
            ),
            (vec![redirect("a@x.test")], 1, vec![redirect("a@x.test")]),
            (vec![redirect("a@x.test")], 4, vec![]),
            (
                vec![store("INBOX", &[], false), redirect("a@x.test")],
                5,
                vec![],
            ),
            (
                vec![send(SendKind::Vacation), send(SendKind::Notify)],
                1,
                vec![send(SendKind::Vacation), send(SendKind::Notify)],
            ),
            (vec![send(SendKind::Vacation)], 4, vec![]),
            (vec![send(SendKind::Notify)], 5, vec![]),
            (
                vec![
                    Action::Quarantine,
                    redirect("a@x.test"),
                    send(SendKind::Vacation),
                    send(SendKind::Notify),
                    reject("no", false),
                ],
                4,
                vec![Action::Quarantine],
            ),
        ];
        for (actions, virustest, want) in cases {
            let mut plan = Plan {
                actions: actions.clone(),
                remember: vec![Remember {
                    key: "k".into(),
                    ttl: std::time::Duration::from_secs(1),
                }],
                ..Plan::default()
            };
            plan.enforce_virus_policy(virustest);
            assert_eq!(plan.actions, want, "{actions:?} at {virustest}");
            assert_eq!(
                plan.remember.is_empty(),
                virustest >= INFECTED_VIRUSTEST,
                "{actions:?} at {virustest}"
            );
            if virustest >= INFECTED_VIRUSTEST {
                assert!(
                    plan.notes.iter().any(|n| n.starts_with("infected:")),
                    "{:?}",
                    plan.notes
                );
                let dropped = actions.iter().filter(|a| **a != Action::Quarantine).count();
                assert_eq!(plan.notes.len(), dropped + 1, "{:?}", plan.notes);
                assert_eq!(plan.suppressed.len(), dropped, "{:?}", plan.suppressed);
            } else {
                assert!(plan.notes.is_empty());
            }
        }
    }

    #[test]
    fn display_table() {
        let cases: Vec<(Plan, &str)> = vec![
            (Plan::default(), "discard\n"),
            (Plan::implicit_keep(), "store INBOX\n"),
            (
                Plan {
                    actions: vec![store(
                        "Work.Projects",
                        &["\\Seen", "$Label1", "\\Flagged"],
                        true,
                    )],
                    notes: vec!["a note".to_string()],
                    ..Plan::default()
                },
                "store Work.Projects :create :flags \"\\\\Flagged \\\\Seen $Label1\"\nnote: a note\n",
            ),
            (
                Plan {
                    actions: vec![reject("go \"away\"", true)],
                    ..Plan::default()
                },
                "ereject \"go \\\"away\\\"\"\n",
            ),
            (
                Plan {
                    actions: vec![reject("no", false)],
                    ..Plan::default()
                },
                "reject \"no\"\n",
            ),
            (
                Plan {
                    actions: vec![redirect("a@x.test")],
                    ..Plan::default()
                },
                "redirect <a@x.test>\n",
            ),
            (
                Plan {
                    actions: vec![send(SendKind::Vacation)],
                    ..Plan::default()
                },
                "vacation to sender@x.test\n    Subject: away\n    \n    back soon\n",
            ),
        ];
        for (plan, want) in cases {
            assert_eq!(plan.to_string(), want);
        }
    }
}
