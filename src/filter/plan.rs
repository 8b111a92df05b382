//! The delivery plan: what Sieve decided for one recipient, before anything is executed.

use std::fmt;

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
        /// `fileinto :create` (RFC 5490): create the folder when it is missing.
        create: bool,
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
}

/// What Sieve decided for one recipient. An empty `actions` list means discard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do with the message, in script order; empty means discard.
    pub actions: Vec<Action>,
    /// Decisions worth a log line: refused folder names, actions replaced because the message
    /// is infected, actions not supported yet, script errors.
    pub notes: Vec<String>,
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
                create: false,
            }],
            notes: Vec::new(),
            suppressed: Vec::new(),
        }
    }

    /// Adds a Store, merging it into an earlier Store of the same folder: a message lands in
    /// a folder once, with the union of the flags (and `:create` if any copy asked for it).
    pub fn add_store(&mut self, folder: Folder, flags: SystemFlags, create: bool) {
        for action in &mut self.actions {
            if let Action::Store {
                folder: existing,
                flags: existing_flags,
                create: existing_create,
            } = action
            {
                if *existing == folder {
                    *existing_flags = existing_flags.union(flags);
                    *existing_create |= create;
                    return;
                }
            }
        }
        self.actions.push(Action::Store {
            folder,
            flags,
            create,
        });
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
    /// Redirect, vacation and notify never become actions (they are not supported yet), so
    /// nothing else can reach the sender. This runs last, over the finished Plan, on every
    /// code path (including the runtime-error fallback), so no script can get around it.
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
            };
            tracing::warn!(virustest, action = %action, "virus policy overrides Sieve action");
            self.notes.push(note);
            self.suppressed.push(action);
        }
        self.notes.push(format!(
            "infected: message discarded (virustest {virustest})"
        ));
    }
}

/// Flags as Sieve writes them (`\Seen \Flagged`), for the printed plan.
fn sieve_flags(flags: &SystemFlags) -> String {
    flags.imap_names().join(" ")
}

impl fmt::Display for Action {
    /// One line: `store INBOX`, `store Work.Projects :create :flags "\Seen"`,
    /// `reject "reason"`, `ereject "reason"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Store {
                folder,
                flags,
                create,
            } => {
                write!(f, "store {folder}")?;
                if *create {
                    f.write_str(" :create")?;
                }
                if !flags.is_empty() {
                    write!(f, " :flags {:?}", sieve_flags(flags))?;
                }
                Ok(())
            }
            Action::Reject { reason, extended } => {
                let verb = if *extended { "ereject" } else { "reject" };
                write!(f, "{verb} {reason:?}")
            }
            Action::Quarantine => f.write_str("quarantine"),
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
        Action::Store {
            folder: Folder::from_sieve(name).expect("valid folder"),
            flags: SystemFlags::from_sieve(flags).0,
            create,
        }
    }

    fn reject(reason: &str, extended: bool) -> Action {
        Action::Reject {
            reason: reason.to_string(),
            extended,
        }
    }

    #[test]
    fn add_store_merges_same_folder() {
        let mut plan = Plan::default();
        plan.add_store(
            Folder::inbox(),
            SystemFlags::from_sieve(&["\\Seen"]).0,
            false,
        );
        plan.add_store(
            Folder::from_sieve("Work").expect("valid"),
            SystemFlags::default(),
            false,
        );
        plan.add_store(
            Folder::from_sieve("INBOX").expect("valid"),
            SystemFlags::from_sieve(&["\\Flagged"]).0,
            true,
        );
        assert_eq!(
            plan.actions,
            vec![
                store("INBOX", &["\\Seen", "\\Flagged"], true),
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
        ];
        for (actions, virustest, want) in cases {
            let mut plan = Plan {
                actions: actions.clone(),
                ..Plan::default()
            };
            plan.enforce_virus_policy(virustest);
            assert_eq!(plan.actions, want, "{actions:?} at {virustest}");
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
                    actions: vec![store("Work.Projects", &["\\Seen", "\\Flagged"], true)],
                    notes: vec!["a note".to_string()],
                    ..Plan::default()
                },
                "store Work.Projects :create :flags \"\\\\Flagged \\\\Seen\"\nnote: a note\n",
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
        ];
        for (plan, want) in cases {
            assert_eq!(plan.to_string(), want);
        }
    }
}
