//! Leftovers in `tmp/`: a crash (or a kill) between creating a file in `tmp/` and renaming it
//! into `new/` leaves it there for ever, because nobody else removes it (Dovecot only cleans
//! the Maildirs it opens). Files older than [`TMP_MAX_AGE`] (Dovecot's value, 36 hours) are
//! removed:
//!
//! - on delivery, from the `tmp/` of the folder being written, at most once per
//!   [`CLEAN_EVERY`] per folder and process ([`TmpCleaner`]; Dovecot does the same when its
//!   last scan is older than 8 hours);
//! - once at startup, in a background thread, from every Maildir we can find
//!   ([`startup_sweep`]): from the users file when there is one (each user's template
//!   expanded), else by walking the `maildir` template, whose `%` components match any
//!   directory. Only directories that hold `cur`, `new` and `tmp` are treated as Maildirs.
//!
//! 36 hours is far beyond any delivery (a `tmp/` file lives for milliseconds), so a file that
//! old belongs to nobody.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::mail::address::Recipient;

/// A `tmp/` file older than this is a leftover (Dovecot: `MAILDIR_TMP_DELETE_SECS`).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 60 * 60);
/// How often one folder's `tmp/` is scanned on delivery.
pub const CLEAN_EVERY: Duration = Duration::from_secs(60 * 60);
/// Entries looked at in one `tmp/` per scan: a huge `tmp/` must not stall a delivery; the
/// rest is looked at by the next scan.
const MAX_ENTRIES: usize = 10_000;
/// Maildirs the startup sweep visits at most.
const MAX_MAILDIRS: usize = 1_000_000;
/// Folders remembered by [`TmpCleaner`] before old entries are forgotten.
const MAX_REMEMBERED: usize = 100_000;

/// Removes the regular files in `tmp` last modified before `now - max_age`; returns how many.
/// Sub-directories and symlink targets are left alone; a file that vanished meanwhile is fine.
pub fn clean_tmp(tmp: &Path, max_age: Duration, now: SystemTime) -> io::Result<usize> {
    let cutoff = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in fs::read_dir(tmp)?.take(MAX_ENTRIES) {
        let entry = entry?;
        // `file_type` does not follow symlinks: only plain files are ours to remove.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        if meta.modified().is_ok_and(|m| m < cutoff) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Remembers when each folder's `tmp/` was last cleaned, so a delivery scans it at most once
/// per `every`.
#[derive(Debug)]
pub struct TmpCleaner {
    every: Duration,
    max_age: Duration,
    last: Mutex<HashMap<PathBuf, Instant>>,
}

impl TmpCleaner {
    /// A cleaner that scans a `tmp/` at most every `every` and removes files older than
    /// `max_age`.
    pub fn new(every: Duration, max_age: Duration) -> Self {
        TmpCleaner {
            every,
            max_age,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide cleaner that [`super::Maildir::store`] uses.
    pub fn global() -> &'static TmpCleaner {
        static GLOBAL: OnceLock<TmpCleaner> = OnceLock::new();
        GLOBAL.get_or_init(|| TmpCleaner::new(CLEAN_EVERY, TMP_MAX_AGE))
    }

    /// Cleans `tmp` unless that was done less than `every` ago. Best effort: a failure is
    /// logged and never fails the delivery. Returns the files removed.
    pub fn maybe_clean(&self, tmp: &Path) -> usize {
        {
            // A panic elsewhere cannot leave the map inconsistent: keep using it.
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.get(tmp).is_some_and(|at| at.elapsed() < self.every) {
                return 0;
            }
            if last.len() >= MAX_REMEMBERED {
                last.retain(|_, at| at.elapsed() < self.every);
            }
            last.insert(tmp.to_path_buf(), Instant::now());
        }
        match clean_tmp(tmp, self.max_age, SystemTime::now()) {
            Ok(0) => 0,
            Ok(n) => {
                tracing::info!(dir = %tmp.display(), removed = n, "removed leftover files from tmp/");
                n
            }
            // A folder not created yet: nothing to clean.
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(dir = %tmp.display(), error = %e, "cannot clean tmp/");
                0
            }
        }
    }
}

/// What the startup sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Maildirs (roots) visited.
    pub maildirs: usize,
    /// Files removed from their `tmp/` directories (INBOX and folders).
    pub removed: usize,
    /// True when `MAX_MAILDIRS` stopped the walk early.
    pub truncated: bool,
}

/// Cleans the `tmp/` of INBOX and every folder of every Maildir found from `[mailbox]`'s
/// `maildir` template and `domains`: the users in `users` when given, else a walk of the
/// template. Blocking and possibly long: run it in its own thread.
///
/// `users`: the users file's entries as (`user@domain` or bare `user`, home), plain values
/// so the store needs no users or config type.
pub fn startup_sweep(
    maildir: &str,
    domains: &[String],
    users: Option<&[(&str, Option<&Path>)]>,
) -> Sweep {
    let roots = match users {
        Some(table) => table_roots(maildir, domains, table),
        None => template_roots(Path::new(maildir), MAX_MAILDIRS),
    };
    let mut sweep = Sweep {
        truncated: roots.len() >= MAX_MAILDIRS,
        ..Sweep::default()
    };
    let now = SystemTime::now();
    for root in roots {
        if !is_maildir(&root) {
            continue;
        }
        sweep.maildirs += 1;
        let mut tmps = vec![root.join("tmp")];
        if let Ok(entries) = fs::read_dir(&root) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let is_folder = name.to_string_lossy().starts_with('.')
                    && entry.file_type().is_ok_and(|t| t.is_dir());
                if is_folder && is_maildir(&entry.path()) {
                    tmps.push(entry.path().join("tmp"));
                }
            }
        }
        for tmp in tmps {
            match clean_tmp(&tmp, TMP_MAX_AGE, now) {
                Ok(n) => sweep.removed += n,
                Err(e) => tracing::warn!(dir = %tmp.display(), error = %e, "cannot clean tmp/"),
            }
        }
    }
    sweep
}

/// True when `dir` has `cur`, `new` and `tmp` directories: only then is its `tmp/` ours.
fn is_maildir(dir: &Path) -> bool {
    ["cur", "new", "tmp"]
        .iter()
        .all(|sub| fs::symlink_metadata(dir.join(sub)).is_ok_and(|m| m.file_type().is_dir()))
}

/// Every user's Maildir root from the users file: `user@domain` entries as they are, bare
/// names at every served domain.
fn table_roots(maildir: &str, domains: &[String], table: &[(&str, Option<&Path>)]) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for &(name, home) in table {
        let addresses: Vec<String> = if name.contains('@') {
            vec![name.to_string()]
        } else {
            domains.iter().map(|d| format!("{name}@{d}")).collect()
        };
        for address in addresses {
            // No delimiter: the name is the user as written in the file.
            let Ok(mut rcpt) = Recipient::resolve(&address, domains, "") else {
                continue;
            };
            rcpt.home = home.map(Path::to_path_buf);
            if rcpt.home.is_none() && crate::mail::address::template_uses(maildir, 'h') {
                continue;
            }
            roots.push(rcpt.expand(maildir));
            if roots.len() >= MAX_MAILDIRS {
                return roots;
            }
        }
    }
    roots
}

/// Walks `template` (absolute): a component with a `%` variable matches every directory
/// there (not hidden ones: expanded names never start with `.`), a literal component
/// must exist. Symlinks are not followed. At most `limit` paths.
fn template_roots(template: &Path, limit: usize) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for component in template.components() {
        let mut next = Vec::new();
        let Component::Normal(name) = component else {
            for path in &mut current {
                path.push(component.as_os_str());
            }
            continue;
        };
        let pattern = name.to_string_lossy().contains('%');
        for path in &current {
            if !pattern {
                next.push(path.join(name));
                continue;
            }
            let Ok(entries) = fs::read_dir(path) else {
                continue;
            };
            for entry in entries.flatten() {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(entry.path());
                    if next.len() >= limit {
                        break;
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Creates `path` (and its parents) with a modification time `age` ago.
    fn file_aged(path: &Path, age: Duration) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = fs::File::create(path).expect("create");
        file.set_modified(SystemTime::now() - age)
            .expect("set mtime");
    }

    fn maildir(root: &Path, folders: &[&str]) {
        for f in std::iter::once(&"").chain(folders) {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(root.join(f).join(sub)).expect("mkdir");
            }
        }
    }

    #[test]
    fn clean_tmp_table() {
        // (name, age, kept)
        let cases: &[(&str, Duration, bool)] = &[
            ("fresh", Duration::ZERO, true),
            ("one-hour", HOUR, true),
            ("35h", 35 * HOUR, true),
            ("37h", 37 * HOUR, false),
            ("one-year", 365 * 24 * HOUR, false),
        ];
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("tmp");
        for (name, age, _) in cases {
            file_aged(&dir.join(name), *age);
        }
        // An old sub-directory is not ours to remove.
        fs::create_dir(dir.join("subdir")).expect("mkdir");
        let removed = clean_tmp(&dir, TMP_MAX_AGE, SystemTime::now()).expect("clean");
        assert_eq!(removed, 2);
        for (name, _, kept) in cases {
            assert_eq!(dir.join(name).exists(), *kept, "{name}");
        }
        assert!(dir.join("subdir").is_dir());
    }

    #[test]
    fn cleaner_is_rate_limited_per_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a/tmp");
        let b = tmp.path().join("b/tmp");
        file_aged(&a.join("old1"), 40 * HOUR);
        file_aged(&b.join("old1"), 40 * HOUR);
        let cleaner = TmpCleaner::new(HOUR, TMP_MAX_AGE);
        assert_eq!(cleaner.maybe_clean(&a), 1);
        file_aged(&a.join("old2"), 40 * HOUR);
        assert_eq!(cleaner.maybe_clean(&a), 0, "within the hour: not again");
        assert!(a.join("old2").exists());
        assert_eq!(
            cleaner.maybe_clean(&b),
            1,
            "another folder has its own clock"
        );
        // A missing tmp/ (folder not created yet) is not an error.
        assert_eq!(cleaner.maybe_clean(&tmp.path().join("none/tmp")), 0);
        let eager = TmpCleaner::new(Duration::ZERO, TMP_MAX_AGE);
        assert_eq!(eager.maybe_clean(&a), 1);
    }

    fn domains() -> Vec<String> {
        vec!["example.test".into(), "other.test".into()]
    }

    #[test]
    fn startup_sweep_walks_the_template() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        let alice = base.join("example.test/alice/Maildir");
        let bob = base.join("other.test/bob/Maildir");
        maildir(&alice, &[".Work"]);
        maildir(&bob, &[]);
        file_aged(&alice.join("tmp/old"), 40 * HOUR);
        file_aged(&alice.join("tmp/new"), HOUR);
        file_aged(&alice.join(".Work/tmp/old"), 40 * HOUR);
        file_aged(&bob.join("tmp/old"), 40 * HOUR);
        // Not a Maildir (no cur/new): its tmp/ is left alone, as is anything off-template.
        file_aged(&base.join("example.test/carol/Maildir/tmp/old"), 40 * HOUR);
        file_aged(&base.join("example.test/alice/tmp/old"), 40 * HOUR);
        let template = format!("{}/%d/%n/Maildir", base.display());
        let sweep = startup_sweep(&template, &domains(), None);
        assert_eq!(
            sweep,
            Sweep {
                maildirs: 2,
                removed: 3,
                truncated: false
            }
        );
        assert!(alice.join("tmp/new").exists());
        assert!(!alice.join("tmp/old").exists());
        assert!(!alice.join(".Work/tmp/old").exists());
        assert!(base.join("example.test/carol/Maildir/tmp/old").exists());
        assert!(base.join("example.test/alice/tmp/old").exists());
    }

    #[test]
    fn startup_sweep_uses_the_users_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        let alice = base.join("homes/alice/Maildir");
        let eve = base.join("homes/eve/Maildir");
        maildir(&alice, &[]);
        maildir(&eve, &[]);
        file_aged(&alice.join("tmp/old"), 40 * HOUR);
        file_aged(&eve.join("tmp/old"), 40 * HOUR);
        let users = format!("alice@example.test:x::::{}/homes/alice\n", base.display());
        let table = crate::users::UserTable::parse(&users, Path::new("users")).expect("parse");
        let entries: Vec<(&str, Option<&Path>)> =
            table.iter().map(|(n, u)| (n, u.home.as_deref())).collect();
        let sweep = startup_sweep("%h/Maildir", &domains(), Some(&entries));
        assert_eq!(sweep.maildirs, 1);
        assert_eq!(sweep.removed, 1);
        assert!(eve.join("tmp/old").exists(), "not in the users file");
    }
}
