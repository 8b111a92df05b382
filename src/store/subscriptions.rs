//! Dovecot's `subscriptions` file: folders we create are subscribed, so an admin (and the
//! user) see them in their mail client.
//!
//! Updates follow Dovecot's own protocol so that both can write the file: take the dotlock
//! `subscriptions.lock` with `O_EXCL`, write the whole new content into the lock file, fsync
//! it and rename it over `subscriptions`. A file that starts with the version-2 header
//! `V\t2\n\n` separates hierarchy levels with a tab; an older or new file holds plain names.
//!
//! A dotlock older than 30 seconds is stale and broken, as Dovecot does. Breaking is racy by
//! nature: two writers that both judge the lock stale could each remove it, the second one
//! removing the first one's *fresh* lock, and then both "hold" it. So our writers (threads and
//! processes alike) first take an exclusive `flock` on the Maildir root directory: only one of
//! them at a time can look at, break or take the dotlock. The dotlock remains what keeps
//! Dovecot out.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::error::io_err;
use super::fsio::{open_new, sync_dir};
use super::Ownership;
use super::StoreError;

const FILE_NAME: &str = "subscriptions";
const LOCK_NAME: &str = "subscriptions.lock";
const VERSION2_HEADER: &[u8] = b"V\t2\n\n";

/// How long to wait for another writer's lock before giving up (a temporary failure).
pub(super) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// A lock older than this belongs to a writer that died; Dovecot uses the same limit.
const STALE_AFTER: Duration = Duration::from_secs(30);
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Adds `name` (the IMAP name, `.`-separated) to `root/subscriptions` unless it is there.
pub(crate) fn subscribe(root: &Path, name: &str, owner: &Ownership) -> Result<(), StoreError> {
    let path = root.join(FILE_NAME);
    let lock_path = root.join(LOCK_NAME);
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let writers = WriterLock::acquire(root, deadline)?;
    let mut lock = Lock::acquire(&lock_path, deadline, writers, owner)?;

    let current = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let entry = if current.starts_with(VERSION2_HEADER) {
        name.replace('.', "\t")
    } else {
        name.to_string()
    };
    if current
        .split(|&b| b == b'\n')
        .any(|line| line == entry.as_bytes())
    {
        return Ok(());
    }

    let mut content = current;
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    content.extend_from_slice(entry.as_bytes());
    content.push(b'\n');
    lock.file
        .write_all(&content)
        .and_then(|()| lock.file.sync_all())
        .map_err(io_err("write", &lock_path))?;
    fs::rename(&lock_path, &path).map_err(io_err("rename", &lock_path))?;
    lock.held = false;
    sync_dir(root)
}

/// An exclusive `flock` on the Maildir root among our own writers; released when dropped
/// (the descriptor closes). `None` on a file system without `flock`: the dotlock alone then.
pub(super) struct WriterLock {
    /// Held only to keep the descriptor (and so the lock) open.
    _dir: Option<fs::File>,
}

impl WriterLock {
    /// No writer lock: for a second dotlock taken while the first one's writer lock is held.
    pub(super) fn none() -> WriterLock {
        WriterLock { _dir: None }
    }

    /// Takes the lock on directory `root`, waiting until `deadline`.
    pub(super) fn acquire(root: &Path, deadline: Instant) -> Result<WriterLock, StoreError> {
        let dir = fs::File::open(root).map_err(io_err("open", root))?;
        loop {
            // std's file lock is flock(2) on Linux.
            match dir.try_lock() {
                Ok(()) => return Ok(WriterLock { _dir: Some(dir) }),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(err)) => match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::EINVAL) => {
                        return Ok(WriterLock { _dir: None })
                    }
                    _ => return Err(io_err("flock", root)(err)),
                },
            }
            if Instant::now() > deadline {
                return Err(io_err("flock", root)(io::Error::from(
                    io::ErrorKind::TimedOut,
                )));
            }
            thread::sleep(RETRY_EVERY);
        }
    }
}

/// The held dotlock; dropping it without a rename releases it, then the writer lock.
pub(super) struct Lock<'a> {
    path: &'a Path,
    /// The lock file, open for writing: the new content goes here before the rename.
    pub(super) file: fs::File,
    /// False once the lock file was renamed into place (nothing left to remove).
    pub(super) held: bool,
    /// Dropped after the dotlock is gone (fields drop after `Drop::drop`).
    _writers: WriterLock,
}

impl<'a> Lock<'a> {
    /// Creates the dotlock `path` (`O_EXCL`), breaking a stale one, waiting until `deadline`.
    pub(super) fn acquire(
        path: &'a Path,
        deadline: Instant,
        writers: WriterLock,
        owner: &Ownership,
    ) -> Result<Self, StoreError> {
        loop {
            match open_new(path, owner) {
                Ok(file) => {
                    return Ok(Lock {
                        path,
                        file,
                        held: true,
                        _writers: writers,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("lock", path)(e)),
            }
            let age = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok());
            if age.is_some_and(|age| age > STALE_AFTER) {
                // Only one of our writers gets here at a time (the writer lock); Dovecot may
                // still break the same lock first: NotFound is fine.
                let _ = fs::remove_file(path);
                continue;
            }
            if Instant::now() > deadline {
                return Err(io_err("lock", path)(io::Error::from(
                    io::ErrorKind::TimedOut,
                )));
            }
            thread::sleep(RETRY_EVERY);
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if self.held {
            // Releasing is best effort; a leftover lock goes stale after STALE_AFTER.
            let _ = fs::remove_file(self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::SystemTime;

    #[test]
    fn subscribe_table() {
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "Work", "Work\n"),
            (Some(""), "Work", "Work\n"),
            (Some("Trash"), "Work", "Trash\nWork\n"),
            (Some("Trash\nWork\n"), "Work", "Trash\nWork\n"),
            (Some("Work.Sub\n"), "Work", "Work.Sub\nWork\n"),
            (Some("V\t2\n\nA\tB\n"), "A.B", "V\t2\n\nA\tB\n"),
            (Some("V\t2\n\nA\n"), "A.B", "V\t2\n\nA\nA\tB\n"),
        ];
        for (before, name, after) in cases {
            let tmp = tempfile::tempdir().expect("tempdir");
            if let Some(before) = before {
                fs::write(tmp.path().join(FILE_NAME), before).expect("write");
            }
            subscribe(tmp.path(), name, &Ownership::default()).expect("subscribe");
            let got = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
            assert_eq!(got, *after, "{before:?} + {name}");
            assert!(!tmp.path().join(LOCK_NAME).exists());
        }
    }

    #[test]
    fn stale_lock_is_broken() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lock = tmp.path().join(LOCK_NAME);
        let file = fs::File::create(&lock).expect("create");
        let old = SystemTime::now() - Duration::from_secs(120);
        file.set_modified(old).expect("set mtime");
        subscribe(tmp.path(), "Work", &Ownership::default()).expect("subscribe");
        let got = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        assert_eq!(got, "Work\n");
    }

    /// Two (here: eight) writers find the same stale lock at once: only one may break it,
    /// so every subscription survives and no writer renames another's half-written lock.
    #[test]
    fn concurrent_writers_and_a_stale_lock_lose_nothing() {
        const WRITERS: usize = 8;
        for round in 0..40 {
            let tmp = tempfile::tempdir().expect("tempdir");
            let root = tmp.path().to_path_buf();
            let lock = fs::File::create(root.join(LOCK_NAME)).expect("create");
            lock.set_modified(SystemTime::now() - Duration::from_secs(120))
                .expect("set mtime");
            let barrier = Arc::new(Barrier::new(WRITERS));
            let threads: Vec<_> = (0..WRITERS)
                .map(|i| {
                    let root = root.clone();
                    let barrier = Arc::clone(&barrier);
                    thread::spawn(move || {
                        barrier.wait();
                        subscribe(&root, &format!("Folder{i}"), &Ownership::default())
                    })
                })
                .collect();
            let mut failures = Vec::new();
            for t in threads {
                if let Err(e) = t.join().expect("thread") {
                    failures.push(e.to_string());
                }
            }
            assert!(failures.is_empty(), "round {round}: {failures:?}");
            let got = fs::read_to_string(root.join(FILE_NAME)).expect("read");
            let mut lines: Vec<&str> = got.lines().collect();
            lines.sort();
            let want: Vec<String> = (0..WRITERS).map(|i| format!("Folder{i}")).collect();
            assert_eq!(lines, want, "round {round}: {got:?}");
            assert!(!root.join(LOCK_NAME).exists(), "round {round}");
        }
    }
}
