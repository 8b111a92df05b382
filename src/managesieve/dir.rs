//! One user's Sieve directory, laid out as Pigeonhole's ManageSieve keeps it, so an admin
//! can switch between the two without moving anything: scripts are `<name>.sieve` in
//! `[sieve] personal_dir`; the active one is the `[sieve] personal` symlink
//! (`.dovecot.sieve`) pointing at one of them; temporary files go to `tmp/` inside the
//! directory.
//!
//! Every change is atomic on disk: a script is written to a temporary file, fsynced and
//! renamed over its name; the symlink is created under a temporary name and renamed over
//! the active one; the directories are fsynced after. Every operation holds an exclusive
//! `flock` on the directory, so two sessions of one user (or a session and an admin's
//! script using the same lock) never interleave a read-check-write.
//!
//! Blocking: the session calls these from `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest script name accepted, in bytes (with the `.sieve` suffix it stays far below
/// any file system's name limit).
pub const MAX_NAME_BYTES: usize = 128;

/// The suffix of script files (Pigeonhole's).
const SUFFIX: &str = ".sieve";

/// Why a script name is refused (RFC 5804 §1.6 allows the server to refuse names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("script name is empty")]
    Empty,
    #[error("script name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("script name is not UTF-8")]
    NotUtf8,
    #[error("script name contains '/', a control character or NUL")]
    BadChar,
    #[error("script name cannot start with a dot")]
    LeadingDot,
}

/// Checks a script name: it becomes a file name in the user's directory, so nothing that
/// could name another file (`/`, `..`, a leading dot, control characters, NUL).
pub fn check_name(name: &[u8]) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    let name = std::str::from_utf8(name).map_err(|_| NameError::NotUtf8)?;
    // RFC 5804 §1.6: no control characters (Unicode Cc), and we add '/' for the file system.
    if name.chars().any(|c| c == '/' || c.is_control()) {
        return Err(NameError::BadChar);
    }
    // `.`, `..`, and hidden names (`.dovecot`...) that Pigeonhole's listing skips too.
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    Ok(name)
}

/// What a directory operation can run into besides I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("no such script")]
    Nonexistent,
    #[error("a script by that name exists")]
    AlreadyExists,
    #[error("the script is active")]
    Active,
    #[error("the active-script path is not a symlink; refusing to replace it")]
    ActiveNotLink,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A script in the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub active: bool,
}

/// One user's script directory and active-script link.
#[derive(Debug, Clone)]
pub struct ScriptDir {
    /// `[sieve] personal_dir`, expanded.
    pub dir: PathBuf,
    /// `[sieve] personal`, expanded: the symlink.
    pub active: PathBuf,
    /// Owner and group of what is created (the user's, as delivery and Dovecot expect);
    /// `None`: ours.
    pub owner: Option<(Option<u32>, Option<u32>)>,
}

/// The exclusive lock on the directory, released on drop (closing the descriptor).
struct Lock(#[allow(dead_code)] File);

impl ScriptDir {
    fn lock(&self) -> Result<Lock, DirError> {
        self.ensure_dir(&self.dir)?;
        let dir = File::open(&self.dir)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(Lock(dir))
    }

    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                self.ensure_dir(parent)?;
            }
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        self.chown(dir)
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        match self.owner {
            Some((uid, gid)) => std::os::unix::fs::lchown(path, uid, gid),
            None => Ok(()),
        }
    }

    fn script_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// The name of the active script, if the link points into the directory.
    fn active_name(&self) -> Option<String> {
        let target = fs::read_link(&self.active).ok()?;
        let target = if target.is_absolute() {
            target
        } else {
            self.active.parent()?.join(target)
        };
        let file = target.file_name()?.to_str()?;
        let name = file.strip_suffix(SUFFIX)?;
        let parent = target.parent()?;
        let same = match (fs::metadata(parent), fs::metadata(&self.dir)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        (same && check_name(name.as_bytes()).is_ok()).then(|| name.to_string())
    }

    fn entries(&self) -> Result<Vec<Entry>, DirError> {
        let active = self.active_name();
        let mut out = Vec::new();
        let read = match fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for entry in read {
            let entry = entry?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(name) = file.strip_suffix(SUFFIX) else {
                continue;
            };
            if check_name(name.as_bytes()).is_err() {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            out.push(Entry {
                active: active.as_deref() == Some(name),
                name: name.to_string(),
                size: meta.len(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The scripts, sorted by name.
    pub fn list(&self) -> Result<Vec<Entry>, DirError> {
        let _lock = self.lock()?;
        self.entries()
    }

    /// A script's content, read with a bound.
    pub fn get(&self, name: &str, max: u64) -> Result<Vec<u8>, DirError> {
        let _lock = self.lock()?;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.script_path(name))
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DirError::Nonexistent),
            Err(e) => return Err(e.into()),
        };
        if !file.metadata()?.is_file() {
            return Err(DirError::Nonexistent);
        }
        let mut bytes = Vec::new();
        file.take(max).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Writes a script atomically. `admit` sees the current listing and decides whether
    /// the write may happen (quotas), under the lock.
    pub fn put<E: From<DirError>>(
        &self,
        name: &str,
        content: &[u8],
        admit: impl FnOnce(&[Entry]) -> Result<(), E>,
    ) -> Result<(), E> {
        let _lock = self.lock()?;
        admit(&self.entries()?)?;
        let tmp = self.write_tmp(content)?;
        let done = fs::rename(&tmp, self.script_path(name)).and_then(|()| sync_dir(&self.dir));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done.map_err(|e| E::from(e.into()))
    }

    fn write_tmp(&self, content: &[u8]) -> Result<PathBuf, DirError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp_dir = self.dir.join("tmp");
        self.ensure_dir(&tmp_dir)?;
        let tmp = tmp_dir.join(format!(
            "{}.{}.sievegate",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(content)?;
            file.sync_all()?;
            self.chown(&tmp)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(tmp)
    }

    /// Points the active link at `name`, or removes it (`None`).
    pub fn set_active(&self, name: Option<&str>) -> Result<(), DirError> {
        let _lock = self.lock()?;
        match name {
            Some(name) => {
                if !self.entries()?.iter().any(|e| e.name == name) {
                    return Err(DirError::Nonexistent);
                }
                self.link(name)
            }
            None => {
                self.check_link()?;
                match fs::remove_file(&self.active) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
                sync_parent(&self.active).map_err(Into::into)
            }
        }
    }

    /// Refuses to touch an active path that is a real file (an admin's): replacing it would
    /// lose it.
    fn check_link(&self) -> Result<(), DirError> {
        match fs::symlink_metadata(&self.active) {
            Ok(meta) if !meta.file_type().is_symlink() => Err(DirError::ActiveNotLink),
            _ => Ok(()),
        }
    }

    /// Replaces the link atomically: a new link under a temporary name, renamed over it.
    fn link(&self, name: &str) -> Result<(), DirError> {
        self.check_link()?;
        let target = self.link_target(name);
        let parent = self.active.parent().unwrap_or(Path::new("/"));
        let tmp = parent.join(format!(
            ".{}.sievegate-tmp",
            self.active
                .file_name()
                .map_or("active".into(), |f| f.to_string_lossy())
        ));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        let done = self
            .chown(&tmp)
            .and_then(|()| fs::rename(&tmp, &self.active))
            .and_then(|()| sync_dir(parent));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done.map_err(Into::into)
    }

    /// Relative to the link's directory when the script directory is below it (as
    /// Pigeonhole writes `sieve/name.sieve`), so the home can move; absolute otherwise.
    fn link_target(&self, name: &str) -> PathBuf {
        let file = self.script_path(name);
        if let Some(parent) = self.active.parent() {
            if let Ok(rel) = file.strip_prefix(parent) {
                if rel.components().all(|c| matches!(c, Component::Normal(_))) {
                    return rel.to_path_buf();
                }
            }
        }
        file
    }

    /// Deletes a script; the active one cannot be (RFC 5804 §2.10).
    pub fn delete(&self, name: &str) -> Result<(), DirError> {
        let _lock = self.lock()?;
        if self.active_name().as_deref() == Some(name) {
            return Err(DirError::Active);
        }
        let path = self.script_path(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(DirError::Nonexistent),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DirError::Nonexistent),
            Err(e) => return Err(e.into()),
        }
        fs::remove_file(&path)?;
        sync_dir(&self.dir).map_err(Into::into)
    }

    /// Renames a script, keeping it active if it was (RFC 5804 §2.11.1).
    pub fn rename(&self, old: &str, new: &str) -> Result<(), DirError> {
        let _lock = self.lock()?;
        let entries = self.entries()?;
        let Some(entry) = entries.iter().find(|e| e.name == old) else {
            return Err(DirError::Nonexistent);
        };
        if entries.iter().any(|e| e.name == new) {
            return Err(DirError::AlreadyExists);
        }
        if old == new {
            return Ok(());
        }
        fs::rename(self.script_path(old), self.script_path(new))?;
        sync_dir(&self.dir)?;
        if entry.active {
            self.link(new)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for bad in [
            &b""[..],
            b"a/b",
            b"..",
            b".",
            b"../x",
            b"a\0b",
            b"a\nb",
            b".hidden",
            &[b'a'; 129],
            b"\xff",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "my rules", "a..b", "Übersicht", &"a".repeat(128)] {
            assert!(check_name(good.as_bytes()).is_ok(), "{good}");
        }
    }

    #[test]
    fn round_trip_and_active_link() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = ScriptDir {
            dir: home.path().join("sieve"),
            active: home.path().join(".dovecot.sieve"),
            owner: None,
        };
        let ok = |_: &[Entry]| Ok::<(), DirError>(());
        dir.put("one", b"keep;\n", ok).expect("put");
        dir.put("two", b"discard;\n", ok).expect("put");
        dir.set_active(Some("one")).expect("activate");
        assert_eq!(
            fs::read_link(&dir.active).expect("link"),
            Path::new("sieve/one.sieve")
        );
        assert!(matches!(dir.delete("one"), Err(DirError::Active)));
        dir.rename("one", "uno").expect("rename");
        assert_eq!(
            fs::read_link(&dir.active).expect("link"),
            Path::new("sieve/uno.sieve")
        );
        assert!(matches!(
            dir.rename("uno", "two"),
            Err(DirError::AlreadyExists)
        ));
        let list = dir.list().expect("list");
        assert_eq!(list.len(), 2);
        assert!(list[0].name == "two" && !list[0].active);
        assert!(list[1].name == "uno" && list[1].active);
        assert_eq!(dir.get("uno", 100).expect("get"), b"keep;\n");
        dir.set_active(None).expect("deactivate");
        dir.delete("uno").expect("delete");
        assert!(matches!(dir.get("uno", 100), Err(DirError::Nonexistent)));
        assert_eq!(
            fs::read_dir(dir.dir.join("tmp")).expect("tmp").count(),
            0,
            "no leftovers"
        );
    }
}
