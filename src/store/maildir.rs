//! The durable Maildir++ writer: `tmp/` → write → fsync → rename into `new/` or `cur/` →
//! fsync the directory. Blocking `std::fs`; the async caller runs it in `spawn_blocking`.
//!
//! The layout and file names follow Dovecot's Maildir++ so that Dovecot serves what we write
//! without a resync surprise: INBOX is the root, a folder `A.B` lives in `.A.B` with an empty
//! `maildirfolder` file, created folders are listed in `subscriptions`.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(test)]
use super::error::is_no_space_error;
use super::error::NAME_MAX;
use super::error::{io_err, StoreError};
use super::fsio::{open_new, sync_dir};
use super::owner::Apply;

use super::dirsync::DirSync;
use super::{cleanup, keywords, subscriptions};
use super::{Folder, Ownership, SystemFlags};

/// The Maildir++ marker that tells Dovecot (and Courier) a directory is a sub-folder.
const MAILDIRFOLDER: &str = "maildirfolder";

/// Process-wide sequence number for unique names: two deliveries in the same microsecond by
/// the same process still get different names.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// One user's Maildir++ tree.
#[derive(Debug, Clone)]
pub struct Maildir {
    /// The Maildir root, which is also INBOX, e.g. `/var/vmail/example.test/bob/Maildir`.
    root: PathBuf,
    /// Owner and modes of what this writer creates (`[mailbox] owner`, ...).
    owner: Ownership,
}

/// A message that is durably on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The folder it was stored in (after any fallback decided by the caller).
    pub folder: Folder,
    /// Its final path in `new/` or `cur/`, for the log and for [`Maildir::remove`].
    pub path: PathBuf,
    /// Keywords asked for that did not fit in the folder's 26 keyword letters (Dovecot
    /// keeps such keywords in its index only): stored without them.
    pub dropped_keywords: Vec<String>,
}

impl Maildir {
    /// A Maildir rooted at `root`. Nothing is touched until the first [`Maildir::store`].
    pub fn new(root: PathBuf) -> Self {
        Maildir {
            root,
            owner: Ownership::default(),
        }
    }

    /// The same Maildir, with everything it creates owned as `owner` says.
    pub fn with_ownership(mut self, owner: Ownership) -> Self {
        self.owner = owner;
        self
    }

    /// The Maildir root (INBOX).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when a delivery to `folder` without `create` would succeed. INBOX always
    /// exists: the root is created on the first delivery, like Dovecot does.
    pub fn folder_exists(&self, folder: &Folder) -> bool {
        folder.is_inbox() || self.folder_dir(folder).is_dir()
    }

    /// Writes `chunks` (concatenated: trace headers then the message) as one new message in
    /// `folder`, in `new/` without flags or in `cur/` with them. Returns only once the file
    /// and the directory entry are on stable storage. A missing sub-folder is created (with
    /// `maildirfolder` and a subscription) only when `create` is true, else
    /// [`StoreError::FolderMissing`]. On any error no file of this call is left behind.
    pub fn store(
        &self,
        folder: &Folder,
        flags: SystemFlags,
        create: bool,
        chunks: &[&[u8]],
    ) -> Result<StoredMessage, StoreError> {
        self.store_with_keywords(folder, flags, &[], create, chunks)
    }

    /// [`Self::store`] with IMAP keywords as well: they are looked up or added in the
    /// folder's `dovecot-keywords` (see [`super::keywords`]) and their letters follow the
    /// system flag letters in the file name, as Dovecot writes them. Keywords must be valid
    /// IMAP atoms ([`super::keywords::is_valid`]).
    pub fn store_with_keywords(
        &self,
        folder: &Folder,
        flags: SystemFlags,
        keywords: &[String],
        create: bool,
        chunks: &[&[u8]],
    ) -> Result<StoredMessage, StoreError> {
        let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let place = self.place(folder, flags, keywords, create, size)?;
        let (dir, base) = (&place.dir, &place.base);
        let tmp_path = dir.join("tmp").join(base);
        // `prepare` locates its own errors (root or folder); everything else here happens
        // inside the folder's directory.
        let here = |e: StoreError| StoreError::in_folder(folder, e);
        // Leftovers of a crash, at most once an hour per folder; never fails the store.
        cleanup::TmpCleaner::global().maybe_clean(&dir.join("tmp"));

        // Fast path: the folder exists, so the first open succeeds and no directory is
        // checked or created. Only a missing tmp/ sends us through `prepare`.
        let file = match open_new(&tmp_path, &self.owner) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.prepare(folder, dir, create)?;
                open_new(&tmp_path, &self.owner)
                    .map_err(io_err("create", &tmp_path))
                    .map_err(here)?
            }
            Err(e) => return Err(here(io_err("create", &tmp_path)(e))),
        };
        let mut cleanup = Cleanup::new(tmp_path.clone());
        write_all_synced(file, chunks, &tmp_path).map_err(here)?;
        let stored = self.publish(&place, |final_path| fs::rename(&tmp_path, final_path))?;
        cleanup.disarm();
        crate::metrics::copy_stored(false);
        Ok(stored)
    }

    /// Stores another copy of `source`, a message this process stored and synced earlier
    /// (another recipient's copy of the same bytes), as a hard link in `folder`: no write and
    /// no file fsync, only the directory's. `Ok(None)` when the link cannot be made here
    /// (another file system, a foreign owner under `protected_hardlinks`, the link count at
    /// its maximum, the source gone): the caller writes the copy instead. Folder creation,
    /// keywords and the durable directory entry work as in [`Self::store_with_keywords`].
    ///
    /// Why the directory's fsync is enough: the source's data and inode were fsynced when it
    /// was written, and `link` changes only the new entry and the source's link count, in one
    /// file-system transaction. On a journaling file system (ext4, XFS) the fsync of the
    /// directory commits that transaction whole; on ext4 without a journal nothing is
    /// crash-consistent until fsck, which counts the entries and repairs the link count. Both
    /// copies survive either way; `link_copies = false` writes every copy on its own.
    pub fn link_with_keywords(
        &self,
        source: &Path,
        folder: &Folder,
        flags: SystemFlags,
        keywords: &[String],
        create: bool,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let Ok(meta) = fs::symlink_metadata(source) else {
            return Ok(None);
        };
        if !meta.is_file() {
            return Ok(None);
        }
        let place = self.place(folder, flags, keywords, create, meta.len())?;
        if !keywords.is_empty() && !place.dir.join("cur").is_dir() {
            // Keywords are written into the folder before the link is made.
            self.prepare(folder, &place.dir, create)?;
        }
        let mut refused = false;
        let stored = self.publish(&place, |final_path| {
            fs::hard_link(source, final_path).map_err(|e| {
                // NotFound with the source still there: a directory is missing, which
                // `publish` repairs. Any other failure, or a source that is gone, is about
                // the link itself: no retry here (hidden from `publish` as another kind),
                // the caller writes the copy instead.
                if e.kind() == io::ErrorKind::NotFound && source.exists() {
                    e
                } else {
                    refused = true;
                    io::Error::other(e)
                }
            })
        });
        match stored {
            Ok(stored) => {
                crate::metrics::copy_stored(true);
                Ok(Some(stored))
            }
            Err(_) if refused => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where a message of `size` bytes goes: the folder's directory and a fresh unique base
    /// name.
    fn place<'a>(
        &self,
        folder: &'a Folder,
        flags: SystemFlags,
        keywords: &'a [String],
        create: bool,
        size: u64,
    ) -> Result<Placement<'a>, StoreError> {
        if folder.dir_name().is_some_and(|name| name.len() > NAME_MAX) {
            return Err(StoreError::FolderNameTooLong(folder.clone()));
        }
        Ok(Placement {
            folder,
            flags,
            keywords,
            create,
            dir: self.folder_dir(folder),
            base: unique_name(size),
        })
    }

    /// Makes a durable message visible: its keywords assigned, `make` (rename or link)
    /// called with its final path in `new/` or `cur/`, and that directory synced (shared
    /// with concurrent deliveries, [`DirSync`]). On an error after `make` succeeded the
    /// final file is removed again.
    fn publish<F>(&self, place: &Placement<'_>, mut make: F) -> Result<StoredMessage, StoreError>
    where
        F: FnMut(&Path) -> io::Result<()>,
    {
        let here = |e: StoreError| StoreError::in_folder(place.folder, e);
        let dir = place.dir.as_path();
        // The folder exists now; a new keyword is durable in `dovecot-keywords` before a
        // file name refers to its letter.
        let assigned = keywords::assign(dir, place.keywords, &self.owner).map_err(here)?;
        let final_path = if place.flags.is_empty() && assigned.letters.is_empty() {
            dir.join("new").join(&place.base)
        } else {
            // Dovecot's order: system flag letters (ASCII), then keyword letters by index.
            let info = format!("{}{}", place.flags.info(), assigned.letters);
            dir.join("cur").join(format!("{}:2,{info}", place.base))
        };
        match make(&final_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // new/ or cur/ went missing: repair and retry once.
                self.prepare(place.folder, dir, place.create)?;
                make(&final_path)
                    .map_err(io_err("rename", &final_path))
                    .map_err(here)?;
            }
            Err(e) => return Err(here(io_err("rename", &final_path)(e))),
        }
        // From here a failure must remove the final file.
        let mut cleanup = Cleanup::new(final_path.clone());
        let final_dir = final_path.parent().unwrap_or(dir);
        DirSync::global()
            .sync(final_dir)
            .map_err(io_err("fsync dir", final_dir))
            .map_err(here)?;
        cleanup.disarm();
        Ok(StoredMessage {
            folder: place.folder.clone(),
            path: final_path,
            dropped_keywords: assigned.dropped,
        })
    }

    /// Removes a message stored earlier in the same delivery (rollback after a later store
    /// failed), and fsyncs its directory so a crash cannot bring it back as a duplicate.
    /// A file that is already gone counts as removed. Paths outside this Maildir's
    /// `new/` and `cur/` directories are refused.
    pub fn remove(&self, stored: &StoredMessage) -> Result<(), StoreError> {
        let path = &stored.path;
        let parent = path.parent().filter(|_| self.owns_message_path(path));
        let Some(parent) = parent else {
            return Err(StoreError::OutsideRoot {
                path: path.clone(),
                root: self.root.clone(),
            });
        };
        match fs::remove_file(path) {
            Ok(()) => sync_dir(parent),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("unlink", path)(e)),
        }
    }

    /// The folder's directory: the root for INBOX, `root/.A.B` otherwise.
    fn folder_dir(&self, folder: &Folder) -> PathBuf {
        match folder.dir_name() {
            Some(name) => self.root.join(name),
            None => self.root.clone(),
        }
    }

    /// True for `root/{new,cur}/<file>` or `root/.<folder>/{new,cur}/<file>`, with no `..`
    /// anywhere: the only shapes `store` produces.
    fn owns_message_path(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.root) else {
            return false;
        };
        let parts: Vec<Component<'_>> = rest.components().collect();
        let normal = |c: &Component<'_>| matches!(c, Component::Normal(_));
        let is_sub = |c: &Component<'_>| c.as_os_str() == "new" || c.as_os_str() == "cur";
        match parts.as_slice() {
            [sub, file] => is_sub(sub) && normal(file),
            [folder, sub, file] => {
                normal(folder)
                    && folder.as_os_str().to_string_lossy().starts_with('.')
                    && is_sub(sub)
                    && normal(file)
            }
            _ => false,
        }
    }

    /// Creates what a delivery into `folder` needs: the root with cur/new/tmp, and for a
    /// sub-folder its directory, cur/new/tmp and `maildirfolder`. Every directory that got
    /// a new entry is fsynced, so a new folder survives a crash as well as the message.
    /// Concurrent deliveries may race here: "already exists" is success.
    ///
    /// Errors creating the root are returned as they are (INBOX is unusable); errors from
    /// the sub-folder part are [`StoreError::InFolder`].
    fn prepare(&self, folder: &Folder, dir: &Path, create: bool) -> Result<(), StoreError> {
        let mut changed: Vec<PathBuf> = Vec::new();
        mkdir_all(&self.root, &mut changed, &self.owner)?;
        for sub in ["cur", "new", "tmp"] {
            mkdir(&self.root.join(sub), &mut changed, &self.owner)?;
        }
        if !folder.is_inbox() {
            self.prepare_folder(folder, dir, create, &mut changed)
                .map_err(|e| StoreError::in_folder(folder, e))?;
        }
        // Deepest first, so a parent's entry is synced after its child's content exists.
        changed.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        changed.dedup();
        for d in &changed {
            let located = if d.starts_with(dir) && !folder.is_inbox() {
                sync_dir(d).map_err(|e| StoreError::in_folder(folder, e))
            } else {
                sync_dir(d)
            };
            located?;
        }
        Ok(())
    }

    /// The sub-folder part of [`Self::prepare`]: its directory, cur/new/tmp, the marker and
    /// the subscription.
    fn prepare_folder(
        &self,
        folder: &Folder,
        dir: &Path,
        create: bool,
        changed: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        if !dir.is_dir() {
            if !create {
                return Err(StoreError::FolderMissing(folder.clone()));
            }
            // Subscribe first: if that fails the folder is not created either, so the
            // MTA's retry starts over; a subscription without a folder is harmless
            // (Dovecot lists it as \NonExistent) and the retry creates the folder.
            subscriptions::subscribe(&self.root, &folder.imap_name(), &self.owner)?;
            mkdir(dir, changed, &self.owner)?;
        }
        for sub in ["cur", "new", "tmp"] {
            mkdir(&dir.join(sub), changed, &self.owner)?;
        }
        let marker = dir.join(MAILDIRFOLDER);
        match open_new(&marker, &self.owner) {
            Ok(_) => changed.push(dir.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &marker)(e)),
        }
        Ok(())
    }
}

/// Where [`Maildir::publish`] puts a message.
struct Placement<'a> {
    folder: &'a Folder,
    flags: SystemFlags,
    keywords: &'a [String],
    create: bool,
    /// The folder's directory.
    dir: PathBuf,
    /// The unique base name (without the `:2,` info).
    base: String,
}

/// Unlinks `path` when dropped, unless disarmed: whatever goes wrong after the file was
/// created, the Maildir is left as it was.
struct Cleanup {
    path: PathBuf,
    armed: bool,
}

impl Cleanup {
    fn new(path: PathBuf) -> Self {
        Cleanup { path, armed: true }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            // Nothing more can be done about a failing unlink while already failing; the
            // original error is what the caller reports.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes every chunk and fsyncs the file before it is closed.
fn write_all_synced(mut file: File, chunks: &[&[u8]], path: &Path) -> Result<(), StoreError> {
    for chunk in chunks {
        file.write_all(chunk).map_err(io_err("write", path))?;
    }
    file.sync_all().map_err(io_err("fsync", path))
}

/// `mkdir` that treats an existing directory as success and records `path`'s parent as
/// changed when it did create it. A directory it creates gets `owner`'s owner and mode.
fn mkdir(path: &Path, changed: &mut Vec<PathBuf>, owner: &Ownership) -> Result<(), StoreError> {
    match DirBuilder::new().mode(owner.dir_mode).create(path) {
        Ok(()) => {
            owner.apply_dir(path).map_err(io_err("chown", path))?;
            if let Some(parent) = path.parent() {
                changed.push(parent.to_path_buf());
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io_err("mkdir", path)(e)),
    }
}

/// `mkdir -p` that records which parents gained an entry (`create_dir_all` does not tell).
fn mkdir_all(path: &Path, changed: &mut Vec<PathBuf>, owner: &Ownership) -> Result<(), StoreError> {
    if path.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = path.ancestors().take_while(|p| !p.is_dir()).collect();
    for dir in missing.into_iter().rev() {
        if dir.as_os_str().is_empty() {
            continue;
        }
        mkdir(dir, changed, owner)?;
    }
    Ok(())
}

/// A Dovecot-compatible unique base name, `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>`.
/// The size lets Dovecot skip a stat; the counter keeps names unique within the process.
fn unique_name(size: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{},S={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        hostname(),
        size
    )
}

/// The host name as it goes into file names: `/` would be a path separator and `:` starts
/// the info part, so they are escaped as octal like Dovecot and Courier do.
fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| escape_hostname(&gethostname::gethostname().to_string_lossy()))
}

fn escape_hostname(host: &str) -> String {
    if host.is_empty() {
        return "localhost".to_string();
    }
    host.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;
