//! Whole-message quarantine: infected mail kept once per message (not per recipient) as
//! the exact bytes received, with its metadata in the state store's index, so an admin can
//! list, inspect, release or delete it (see [`admin`]).
//!
//! Each entry is one file `<dir>/<id>.eml`, written like a Maildir delivery: a temporary
//! file, fsync, rename, fsync of the directory. The file comes first and the index entry
//! second, so an index entry always has its file; a crash in between leaves at most an
//! unindexed file, never a lost message (the MTA retries after the missing reply).
//!
//! A state store shared by several hosts (PostgreSQL) keeps the bytes itself
//! ([`StateStore::holds_quarantine_messages`]): entry and message go in one transaction,
//! no file is written, and every host lists, shows, releases and purges the same entries.
//! There is nothing to sweep then (a file of one host would be missing on the others).

pub mod admin;
pub mod digest;
pub mod link;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::mail::address::Recipient;
use crate::mail::bounce;
use crate::mail::envelope::Envelope;
use crate::scan::Verdict;
use crate::state::{QuarantineEntry, StateError, StateStore};

/// Why a quarantine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Writing, syncing or renaming the message file failed.
    #[error("cannot write quarantine file {path}: {source}")]
    Write {
        /// The file or directory concerned.
        path: PathBuf,
        source: io::Error,
    },
    /// Reading or removing a message file failed.
    #[error("quarantine file {path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        source: io::Error,
    },
    /// The index could not be read or written.
    #[error("{0}")]
    Index(#[from] StateError),
    /// No entry with this id.
    #[error("no quarantine entry {0:?}")]
    NotFound(String),
    /// Not a possible id (ids are letters, digits, `.` and `-`): never a path.
    #[error("{0:?} is not a quarantine id")]
    BadId(String),
}

/// The quarantine: its directory and the index.
#[derive(Clone)]
pub struct Quarantine {
    dir: PathBuf,
    state: Arc<dyn StateStore>,
}

/// True for a string that can be a quarantine id (and so a file name).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A new id for a message of transaction `txn_id`: the transaction id (time and counter)
/// and the process id, unique across restarts.
pub fn new_id(txn_id: &str) -> String {
    format!("{txn_id}-{:X}", std::process::id())
}

/// The index entry for a message as received (`message`, unmodified) and its scan, held for
/// `rcpts`: every recipient when the virus policy quarantines, or those whose Sieve chain
/// asked for it (later ones join with [`Quarantine::add_recipient`]).
pub fn entry_for(
    id: String,
    envelope: &Envelope,
    rcpts: &[Recipient],
    message: &[u8],
    m: &mail_parser::Message<'_>,
    verdict: &Verdict,
    received_at: SystemTime,
) -> QuarantineEntry {
    let from = m
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (None, Some(address)) => address.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let client = &envelope.client;
    let known = |v: &Option<String>| {
        v.clone()
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("[UNAVAILABLE]"))
    };
    QuarantineEntry {
        id,
        received_at,
        sender: envelope.mail_from.clone(),
        recipients: rcpts.iter().map(|r| r.original.clone()).collect(),
        resolved: rcpts.iter().map(|r| r.user()).collect(),
        client_ip: client.addr.map(|ip| ip.to_string()),
        client_helo: known(&client.helo),
        queue_id: known(&client.queue_id),
        verdict: verdict.word().to_string(),
        virustest: verdict.virustest(),
        viruses: verdict
            .virus_name()
            .map(str::to_string)
            .into_iter()
            .collect(),
        message_id: crate::mail::text::message_id(m),
        subject: clean_text(m.subject().unwrap_or("")),
        from: clean_text(&from),
        size: message.len() as u64,
        backscatter: bounce::is_bounce(&envelope.mail_from, m),
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

/// Header text as shown by `list`/`show`: no control characters (a terminal escape in a
/// Subject must not reach the admin's terminal), bounded.
fn clean_text(text: &str) -> String {
    crate::mail::text::sanitize(text, 998, crate::mail::text::Charset::Utf8).into_owned()
}

impl Quarantine {
    /// The quarantine in `dir`, indexed in `state`.
    pub fn new(dir: PathBuf, state: Arc<dyn StateStore>) -> Self {
        Quarantine { dir, state }
    }

    /// The directory holding the message files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index.
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// The file of entry `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    /// Stores `message` (exactly these bytes) and indexes `entry`; both are durable when
    /// this returns `Ok`. On any error nothing is left behind.
    pub fn store(&self, entry: &QuarantineEntry, message: &[u8]) -> Result<(), QuarantineError> {
        if !valid_id(&entry.id) {
            return Err(QuarantineError::BadId(entry.id.clone()));
        }
        if self.state.holds_quarantine_messages() {
            return Ok(self.state.quarantine_insert_message(entry, message)?);
        }
        let path = self.path(&entry.id);
        self.write_file(&entry.id, &path, message)?;
        if let Err(e) = self.state.quarantine_insert(entry) {
            // Without its index entry the file is unreachable: take it back, so the MTA's
            // retry after our 451 does not leave a second copy.
            if let Err(rm) = fs::remove_file(&path) {
                tracing::error!(path = %path.display(), error = %rm, "cannot remove unindexed quarantine file");
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn write_file(&self, id: &str, path: &Path, message: &[u8]) -> Result<(), QuarantineError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| QuarantineError::Write { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(write_error(&self.dir))?;
        let tmp = self.dir.join(format!(".{id}{TMP_SUFFIX}"));
        let written = (|| -> io::Result<()> {
            // 0600: the content is infected mail and may hold anyone's private data.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(message)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(write_error(&tmp)(e));
        }
        // A hard link, not rename(2): it fails when the name exists, so a file of another
        // entry (an id reused by a clock step, or a copy left by a crash) is never replaced.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        linked.map_err(write_error(path))?;
        // The new name is durable only once the directory is.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            let _ = fs::remove_file(path);
            return Err(write_error(&self.dir)(e));
        }
        Ok(())
    }

    /// Adds a recipient to entry `id`: a later recipient of the same message whose Sieve
    /// chain also asked for quarantine (each entry lists only the recipients whose copy it
    /// holds, so a release delivers to no one who already had the message).
    pub fn add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<(), QuarantineError> {
        if self.state.quarantine_add_recipient(id, given, resolved)? {
            Ok(())
        } else {
            Err(QuarantineError::NotFound(id.to_string()))
        }
    }

    /// The entry `id`, or [`QuarantineError::NotFound`].
    pub fn get(&self, id: &str) -> Result<QuarantineEntry, QuarantineError> {
        if !valid_id(id) {
            return Err(QuarantineError::BadId(id.to_string()));
        }
        self.state
            .quarantine_get(id)?
            .ok_or_else(|| QuarantineError::NotFound(id.to_string()))
    }

    /// The original bytes of entry `id`.
    pub fn raw(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        self.get(id)?;
        if self.state.holds_quarantine_messages() {
            return self
                .state
                .quarantine_message(id)?
                .ok_or_else(|| QuarantineError::NotFound(id.to_string()));
        }
        let path = self.path(id);
        fs::read(&path).map_err(|source| QuarantineError::File { path, source })
    }

    /// Removes entry `id`: the file first, then the index entry (a file already gone is
    /// fine), so an interrupted delete can be repeated.
    pub fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        self.get(id)?;
        self.remove(id)
    }

    fn remove(&self, id: &str) -> Result<(), QuarantineError> {
        if self.state.holds_quarantine_messages() {
            // The message goes with its entry.
            self.state.quarantine_delete(id)?;
            return Ok(());
        }
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(QuarantineError::File { path, source }),
        }
        self.state.quarantine_delete(id)?;
        Ok(())
    }

    /// Removes every entry received before `before`; `progress(done, total)` is called
    /// after each. An entry that cannot be removed (its file is a directory, the disk is
    /// read-only, ...) is logged and counted in [`Purged::failed`], and the purge goes on
    /// with the next: one bad file must not keep every later entry forever. `Err` only
    /// when the index cannot be read.
    pub fn purge(
        &self,
        before: SystemTime,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Purged, QuarantineError> {
        let ids = self.state.quarantine_older_than(before)?;
        let total = ids.len();
        let mut purged = Purged::default();
        for (n, id) in ids.iter().enumerate() {
            let removed = if valid_id(id) {
                self.remove(id)
            } else {
                // Never a path from a row we did not write: drop the row only.
                self.state
                    .quarantine_delete(id)
                    .map(|_| ())
                    .map_err(QuarantineError::from)
            };
            match removed {
                Ok(()) => purged.removed += 1,
                Err(e) => {
                    tracing::error!(quarantine_id = %id, error = %e, "quarantine purge: cannot remove this entry; going on with the others");
                    purged.failed.push((id.clone(), e.to_string()));
                }
            }
            progress(n + 1, total);
        }
        Ok(purged)
    }

    /// Whether this process takes the retention pass due at `now`: one process at a time
    /// across every host sharing the state store (the turn is a [`StateStore::remember_once`]
    /// key good for [`PURGE_TURN`]), so hosts do not all select and delete the same old
    /// entries each hour. `serve` asks before its hourly purge and sweep; an admin's
    /// `quarantine purge` never asks (it always runs).
    pub fn take_purge_turn(&self, now: SystemTime) -> Result<bool, QuarantineError> {
        let until = now.checked_add(PURGE_TURN).unwrap_or(now);
        Ok(self.state.remember_once(PURGE_TURN_KEY, until, now)?)
    }

    /// Makes the directory and the index agree: removes files older than `grace` at `now`
    /// that no index entry owns (`<id>.eml` left by a crash between the file and the index,
    /// `.<id>.tmp` left by a crash during the write) and index entries older than `grace`
    /// whose file is gone. `grace` covers a store in progress (file written, index not
    /// yet). Like [`Quarantine::purge`], a failure is logged and counted, never a stop.
    pub fn sweep(&self, now: SystemTime, grace: Duration) -> Result<Swept, QuarantineError> {
        let mut swept = Swept::default();
        if self.state.holds_quarantine_messages() {
            // Entry and message are written and removed together: nothing can disagree.
            return Ok(swept);
        }
        let cutoff = now.checked_sub(grace).unwrap_or(std::time::UNIX_EPOCH);
        let dir = match fs::read_dir(&self.dir) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
            Err(source) => {
                return Err(QuarantineError::File {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        for item in dir {
            let Ok(item) = item else { continue };
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            let orphan = if let Some(id) = tmp_id(name) {
                valid_id(id)
            } else if let Some(id) = name.strip_suffix(".eml") {
                valid_id(id) && self.state.quarantine_get(id)?.is_none()
            } else {
                false
            };
            if !orphan {
                continue;
            }
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|mtime| mtime < cutoff);
            if !old {
                continue;
            }
            let path = item.path();
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "quarantine: removed a file no index entry owns (left by a crash)");
                    swept.orphan_files += 1;
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "quarantine: cannot remove an orphaned file");
                    swept.failed += 1;
                }
            }
        }
        let before = crate::state::QuarantineFilter::default();
        for entry in self.state.quarantine_list(&before)? {
            if entry.received_at >= cutoff || !valid_id(&entry.id) {
                continue;
            }
            if fs::symlink_metadata(self.path(&entry.id)).is_err() {
                tracing::warn!(quarantine_id = %entry.id, "quarantine: index entry without its file removed");
                match self.state.quarantine_delete(&entry.id) {
                    Ok(_) => swept.dangling_entries += 1,
                    Err(e) => {
                        tracing::error!(quarantine_id = %entry.id, error = %e, "quarantine: cannot remove an index entry");
                        swept.failed += 1;
                    }
                }
            }
        }
        Ok(swept)
    }
}

/// How long one process's turn at the hourly retention pass lasts
/// ([`Quarantine::take_purge_turn`]): a little less than the hour between passes, so the
/// next pass (on any host) finds it free; a host that died with the turn holds it no longer.
pub const PURGE_TURN: Duration = Duration::from_secs(50 * 60);

/// The state store key of the retention pass's turn.
const PURGE_TURN_KEY: &str = "maintenance:quarantine-purge";

/// How old an unindexed file or a fileless index entry must be before
/// [`Quarantine::sweep`] removes it: far longer than any store takes between its file and
/// its index entry.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// The suffix of a file being written (`.<id>.tmp`).
const TMP_SUFFIX: &str = ".tmp";

/// The id of a temporary file name `.<id>.tmp`.
fn tmp_id(name: &str) -> Option<&str> {
    name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)
}

/// What [`Quarantine::purge`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Entries removed (file and index entry).
    pub removed: usize,
    /// Entries that could not be removed, with the reason (they stay, and are tried again
    /// by the next purge).
    pub failed: Vec<(String, String)>,
}

/// What [`Quarantine::sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// `.eml` and `.tmp` files without an index entry, removed.
    pub orphan_files: usize,
    /// Index entries without a file, removed.
    pub dangling_entries: usize,
    /// Files or entries that could not be removed.
    pub failed: usize,
}

#[cfg(test)]
mod tests;
