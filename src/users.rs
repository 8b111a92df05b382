//! Which recipients exist: `[mailbox] users_file`, in Dovecot's passwd-file format, or (without
//! it) every local part at the served domains.
//!
//! The file is the one Dovecot's `passdb`/`userdb passwd-file` reads, so one list serves both:
//!
//! ```text
//! # user[@domain]:password:uid:gid:gecos:home:shell:extra_fields
//! alice@example.test:{CRYPT}$2y$05$...::::/var/vmail/example.test/alice
//! bob                       # a bare name: bob at every domain in [mailbox] domains
//! ```
//!
//! The user name, the password (the 2nd field, for logins: [`crate::auth`]) and the home (the
//! 6th field, for `%h`) are used; the other fields may be empty or missing at the end of the
//! line. Names are compared lowercased, as Dovecot does with
//! its default `auth_username_format = %Lu`; the recipient's `+detail` is removed before the
//! lookup (see [`crate::mail::address::Recipient`]).
//!
//! The file is checked for changes (inode, size, modification time) at most once per
//! [`RECHECK_EVERY`] and re-read when it changed, so editing it needs no restart. A re-read
//! that fails keeps the last good table (and logs why); if no table was ever read, lookups
//! answer [`Lookup::Unavailable`], a temporary failure: a broken file never turns into 550s.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::config::users_file::{StoredPassword, User, UserTable, UsersError};
use crate::mail::address::Recipient;

/// How often a lookup may `stat` the file to see whether it changed.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The answer to "does this recipient exist?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Yes; here is the entry.
    Found(User),
    /// No: `550 5.1.1` at RCPT.
    Unknown,
    /// The users file has never been read successfully: a temporary failure.
    Unavailable,
}

/// Why a recipient is not accepted at RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not in the users file: `550 5.1.1`.
    #[error("no such user")]
    Unknown,
    /// The users file has never been read: a temporary failure.
    #[error("the users file could not be read")]
    Unavailable,
    /// The entry has no home but a template needs `%h`: a temporary failure until the
    /// admin fixes the entry.
    #[error("the user has no home in the users file, but a template uses %h")]
    NoHome,
}

/// The recipient directory: either every local part exists, or a users file says who does.
#[derive(Debug)]
pub enum Users {
    /// No `users_file`: every local part at the served domains is accepted.
    Everyone,
    /// Users from a passwd-file, re-read when it changes.
    File(UsersFile),
}

impl Users {
    /// From `[mailbox] users_file`; the file is read now (a failure is logged and retried on
    /// the next lookup, see [`UsersFile::open`]).
    pub fn new(users_file: Option<&Path>) -> Users {
        match users_file {
            None => Users::Everyone,
            Some(path) => Users::File(UsersFile::open(path.to_path_buf(), RECHECK_EVERY)),
        }
    }

    /// Looks `rcpt` up. [`Users::Everyone`] knows everybody, without a home.
    pub fn lookup(&self, rcpt: &Recipient) -> Lookup {
        match self {
            Users::Everyone => Lookup::Found(User {
                home: None,
                password: None,
                digest_opt_out: false,
            }),
            Users::File(file) => file.lookup(&rcpt.local, &rcpt.domain),
        }
    }

    /// Decides whether `rcpt` may be accepted at RCPT and sets its home. `needs_home`:
    /// a template uses `%h`, so an entry without a home cannot be delivered to.
    pub fn admit(&self, rcpt: &mut Recipient, needs_home: bool) -> Result<(), Refusal> {
        match self.lookup(rcpt) {
            Lookup::Found(user) => {
                if needs_home && user.home.is_none() {
                    return Err(Refusal::NoHome);
                }
                rcpt.home = user.home;
                Ok(())
            }
            Lookup::Unknown => Err(Refusal::Unknown),
            Lookup::Unavailable => Err(Refusal::Unavailable),
        }
    }

    /// The current table (`None` for [`Users::Everyone`] or a file never read).
    pub fn table(&self) -> Option<Arc<UserTable>> {
        match self {
            Users::Everyone => None,
            Users::File(file) => file.table(),
        }
    }
}

impl fmt::Display for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Users::Everyone => f.write_str("every local part at the served domains"),
            Users::File(file) => write!(f, "the users in {}", file.path.display()),
        }
    }
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// A passwd-file and its last good table.
#[derive(Debug)]
pub struct UsersFile {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The last table that parsed; `None` until one did.
    table: Option<Arc<UserTable>>,
    /// The version last read (good or bad): an unchanged bad file is not re-parsed and
    /// re-logged every second.
    stamp: Option<Stamp>,
    /// When the file was last `stat`ed.
    checked: Option<Instant>,
}

impl UsersFile {
    /// Reads `path` now and re-checks it at most every `recheck` on lookups. A file that
    /// cannot be read now is logged; lookups answer [`Lookup::Unavailable`] until it can.
    pub fn open(path: PathBuf, recheck: Duration) -> UsersFile {
        let file = UsersFile {
            path,
            recheck,
            state: Mutex::new(State {
                table: None,
                stamp: None,
                checked: None,
            }),
        };
        file.refresh();
        file
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last good table.
    pub fn table(&self) -> Option<Arc<UserTable>> {
        self.refresh();
        self.lock().table.clone()
    }

    /// Looks up `local@domain` (lowercased) in the current table.
    pub fn lookup(&self, local: &str, domain: &str) -> Lookup {
        match self.table() {
            None => Lookup::Unavailable,
            Some(table) => match table.get(local, domain) {
                Some(user) => Lookup::Found(user.clone()),
                None => Lookup::Unknown,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent State (every field is
        // replaced whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the file if `recheck` has passed and its stamp changed. Blocking, but only
    /// a `stat` in the common case; the file is small and re-read only after an edit.
    fn refresh(&self) {
        let mut state = self.lock();
        let first = state.checked.is_none();
        if state.checked.is_some_and(|at| at.elapsed() < self.recheck) {
            return;
        }
        state.checked = Some(Instant::now());
        let stamp = match Stamp::of(&self.path) {
            Ok(stamp) => stamp,
            Err(e) => {
                // Logged once when it goes away, not on every check.
                if state.stamp.take().is_some() || first {
                    tracing::error!(path = %self.path.display(), error = %e,
                        "users file unreadable: keeping the last good table");
                }
                return;
            }
        };
        if state.stamp == Some(stamp) {
            return;
        }
        state.stamp = Some(stamp);
        if let Some(table) = shared(&self.path, stamp) {
            state.table = Some(table);
            return;
        }
        match UserTable::load(&self.path) {
            Ok(table) => {
                tracing::info!(path = %self.path.display(), users = table.len(), "users file read");
                let table = Arc::new(table);
                share(&self.path, stamp, &table);
                state.table = Some(table);
            }
            Err(e) => {
                let kept = state.table.as_ref().map_or(0, |t| t.len());
                tracing::error!(error = %e, kept_users = kept,
                    "users file not usable: keeping the last good table");
            }
        }
    }
}

/// The tables read in this process, by path and version: the server, the outbox and a
/// reload each hold a [`UsersFile`] of the same file, and an unchanged file is read,
/// parsed, held and logged ("users file read") once, not once per reader.
type Shared = std::collections::HashMap<PathBuf, (Stamp, std::sync::Weak<UserTable>)>;

fn shared_tables() -> std::sync::MutexGuard<'static, Shared> {
    static TABLES: std::sync::OnceLock<Mutex<Shared>> = std::sync::OnceLock::new();
    // A panic while holding the lock leaves whole entries: still usable.
    TABLES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The table another reader already holds for this version of `path`.
fn shared(path: &Path, stamp: Stamp) -> Option<Arc<UserTable>> {
    let tables = shared_tables();
    let (known, table) = tables.get(path)?;
    (*known == stamp).then(|| table.upgrade()).flatten()
}

/// Offers `table`, read from this version of `path`, to the other readers.
fn share(path: &Path, stamp: Stamp, table: &Arc<UserTable>) {
    shared_tables().insert(path.to_path_buf(), (stamp, Arc::downgrade(table)));
}

#[cfg(test)]
mod tests;
