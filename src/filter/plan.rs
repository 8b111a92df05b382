//! The delivery plan: what Sieve decided for one recipient, before anything is executed.

use crate::store::{Folder, SystemFlags};

/// One action the store or the session will carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store a copy into `folder` (INBOX for keep) with these flags.
    Store {
        folder: Folder,
        flags: SystemFlags,
        create: bool,
    },
    /// Refuse the message for this recipient: 550 5.7.1 with `reason` (clean mail only).
    Reject { reason: String, extended: bool },
}

/// What Sieve decided for one recipient. An empty `actions` list means discard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Decisions worth a log line: refused folder names, actions replaced because the message
    /// is infected, actions not supported yet, script errors.
    pub notes: Vec<String>,
}
