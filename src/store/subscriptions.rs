//! Dovecot's `subscriptions` file: folders we create are subscribed, so an admin (and the
//! user) see them in their mail client.
//!
//! Updates follow Dovecot's own protocol so that both can write the file: take the dotlock
//! `subscriptions.lock` with `O_EXCL`, write the whole new content into the lock file, fsync
//! it and rename it over `subscriptions`. A file that starts with the version-2 header
//! `V\t2\n\n` separates hierarchy levels with a tab; an older or new file holds plain names.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::maildir::{io_err, open_new, sync_dir};
use super::StoreError;

const FILE_NAME: &str = "subscriptions";
const LOCK_NAME: &str = "subscriptions.lock";
const VERSION2_HEADER: &[u8] = b"V\t2\n\n";

/// How long to wait for another writer's lock before giving up (a temporary failure).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// A lock older than this belongs to a writer that died; Dovecot uses the same limit.
const STALE_AFTER: Duration = Duration::from_secs(30);
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Adds `name` (the IMAP name, `.`-separated) to `root/subscriptions` unless it is there.
pub(crate) fn subscribe(root: &Path, name: &str) -> Result<(), StoreError> {
    let path = root.join(FILE_NAME);
    let lock_path = root.join(LOCK_NAME);
    let mut lock = Lock::acquire(&lock_path)?;

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

/// The held dotlock; dropping it without a rename releases it.
struct Lock<'a> {
    path: &'a Path,
    file: fs::File,
    held: bool,
}

impl<'a> Lock<'a> {
    fn acquire(path: &'a Path) -> Result<Self, StoreError> {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match open_new(path) {
                Ok(file) => {
                    return Ok(Lock {
                        path,
                        file,
                        held: true,
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
                // Another process may remove the same stale lock first: NotFound is fine.
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
            subscribe(tmp.path(), name).expect("subscribe");
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
        subscribe(tmp.path(), "Work").expect("subscribe");
        let got = fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read");
        assert_eq!(got, "Work\n");
    }
}
