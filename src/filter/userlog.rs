//! The per-user Sieve error log, as Pigeonhole's `.dovecot.sieve.log`: compile and runtime
//! errors of a user's script are appended to `<active script path>.log`, so the user (who
//! cannot read the server log) sees why the script was skipped. The file is bounded: past
//! the size limit it is renamed to `.log.0` (replacing the previous one) and started anew.
//!
//! The server log meets the same error on every delivery to that user until it is fixed;
//! [`UserLog::server_may_log`] lets one copy a minute through.
//!
//! Ownership: the log belongs to whoever owns the directory it lives in (the user's home or
//! script directory), mode 0600. sievegate often runs as root, and a root-owned 0600 file
//! would be the one log its user cannot read. The owner is taken from the directory rather
//! than from `[mailbox] users_file`: that file may be absent, and the directory's owner is
//! by construction the account that reads it (Dovecot/ManageSieve run as that account).
//! Only a regular file with a single link is written (or handed over): a hard link the
//! user planted at the log's name must not make us append to, or give away, a file
//! elsewhere.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the server log repeats one error.
const SERVER_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Errors remembered for the rate limit before the map is dropped (bounded memory).
const MAX_REMEMBERED: usize = 10_000;

/// Per-user error logs and the server log's rate limit.
#[derive(Debug)]
pub struct UserLog {
    /// Size at which the log is rotated; 0: no per-user log.
    max_bytes: u64,
    /// When each error text was last logged by the server.
    last: Mutex<HashMap<String, Instant>>,
}

impl UserLog {
    /// A log that rotates at `max_bytes` (0: off).
    pub fn new(max_bytes: u64) -> Self {
        UserLog {
            max_bytes,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The log file of an active script: its path with `.log` appended.
    pub fn path_for(active: &Path) -> PathBuf {
        let mut name = active.as_os_str().to_owned();
        name.push(".log");
        PathBuf::from(name)
    }

    /// Appends one line. Failures (no directory, permissions) are logged at debug and
    /// otherwise ignored: the log is a courtesy, never a reason to fail a delivery.
    pub fn record(&self, active: &Path, message: &str) {
        if self.max_bytes == 0 {
            return;
        }
        if let Err(err) = self.append(active, message) {
            tracing::debug!(path = %active.display(), %err, "per-user Sieve log not written");
        }
    }

    fn append(&self, active: &Path, message: &str) -> std::io::Result<()> {
        let path = Self::path_for(active);
        // Only the directory's owner should write there: refuse to follow a symlink the user
        // planted at the log's name to make us write elsewhere.
        let size = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            Err(_) => 0,
        };
        let line = format!(
            "{} sievegate: {}\n",
            humantime_now(),
            message.replace(['\n', '\r'], " ")
        );
        if size + line.len() as u64 > self.max_bytes {
            let mut old = path.as_os_str().to_owned();
            old.push(".0");
            // A failed rename (no old log) just means we start anew below.
            let _ = fs::rename(&path, PathBuf::from(old));
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(std::io::Error::other(
                "not a regular file with one link: not written",
            ));
        }
        hand_over(&file, &meta, &path)?;
        file.write_all(line.as_bytes())
    }

    /// True when `error` was not logged by the server in the last minute (and notes it).
    pub fn server_may_log(&self, error: &str) -> bool {
        let now = Instant::now();
        // A panic while holding the lock leaves at worst a stale time: still usable.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(error)
            .is_some_and(|t| now.duration_since(*t) < SERVER_LOG_INTERVAL)
        {
            return false;
        }
        if last.len() >= MAX_REMEMBERED {
            last.clear();
        }
        last.insert(error.to_string(), now);
        true
    }
}

/// Gives the open log `file` to the owner of its directory when it belongs to someone else
/// (we created it as root, or an older version did). Without the privilege to do so (not
/// running as root), the file stays ours: then we run as the mail user anyway.
fn hand_over(file: &fs::File, meta: &fs::Metadata, path: &Path) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = fs::metadata(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    if meta.uid() == dir.uid() && meta.gid() == dir.gid() {
        return Ok(());
    }
    match std::os::unix::fs::fchown(file, Some(dir.uid()), Some(dir.gid())) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

/// True when the active script's real file lies inside the user's area: the directory of
/// the active script path (the home, for `~/.dovecot.sieve`) or the user's script directory.
/// A user's symlink may point anywhere sievegate can read; a compile error of such a file
/// would show its first token, so its details stay out of the user's log.
pub fn inside_user_area(active: &Path, personal_dir: Option<&Path>) -> bool {
    let Ok(real) = fs::canonicalize(active) else {
        return false;
    };
    active
        .parent()
        .into_iter()
        .chain(personal_dir)
        .filter_map(|dir| fs::canonicalize(dir).ok())
        .any(|dir| real.starts_with(dir))
}

/// Now, UTC, as RFC 3339 seconds.
fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_written_and_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let active = dir.path().join(".dovecot.sieve");
        let log = UserLog::new(200);
        log.record(&active, "first");
        let text = fs::read_to_string(dir.path().join(".dovecot.sieve.log")).expect("log");
        assert!(text.contains("sievegate: first"), "{text}");
        for i in 0..20 {
            log.record(&active, &format!("line {i}"));
        }
        let len = fs::metadata(dir.path().join(".dovecot.sieve.log"))
            .expect("log")
            .len();
        assert!(len <= 200, "{len}");
        assert!(dir.path().join(".dovecot.sieve.log.0").exists());
        UserLog::new(0).record(&dir.path().join("off"), "x");
        assert!(!dir.path().join("off.log").exists());
    }

    /// As root (the test suite's and CI's user): the log belongs to the directory's owner,
    /// mode 0600, also when an older root-owned log is there; a hard link planted at the
    /// log's name is neither written nor given away.
    #[test]
    fn log_belongs_to_the_directory_owner() {
        use std::os::unix::fs::PermissionsExt;
        // nobody:nogroup on Debian; any uid other than ours does.
        const USER: u32 = 65534;
        assert_eq!(
            fs::metadata("/proc/self").expect("proc").uid(),
            0,
            "this test needs root (as the suite does in CI)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        fs::create_dir(&home).expect("mkdir");
        std::os::unix::fs::chown(&home, Some(USER), Some(USER)).expect("chown home");
        let active = home.join(".dovecot.sieve");
        let log = UserLog::new(4096);
        log.record(&active, "compile error");
        let meta = fs::metadata(home.join(".dovecot.sieve.log")).expect("log");
        assert_eq!((meta.uid(), meta.gid()), (USER, USER));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // A root-owned log from before is handed over at the next line.
        let old = home.join("old.sieve.log");
        fs::write(&old, "before\n").expect("write");
        log.record(&home.join("old.sieve"), "again");
        let meta = fs::metadata(&old).expect("log");
        assert_eq!(meta.uid(), USER);
        assert!(fs::read_to_string(&old).expect("read").contains("again"));

        // A hard link to a file outside: untouched, still root's.
        let outside = dir.path().join("secret");
        fs::write(&outside, "root only\n").expect("write");
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::hard_link(&outside, home.join("trap.sieve.log")).expect("link");
        log.record(&home.join("trap.sieve"), "x");
        let meta = fs::metadata(&outside).expect("secret");
        assert_eq!(meta.uid(), 0);
        assert_eq!(fs::read_to_string(&outside).expect("read"), "root only\n");
    }

    #[test]
    fn server_log_is_rate_limited() {
        let log = UserLog::new(0);
        assert!(log.server_may_log("a"));
        assert!(!log.server_may_log("a"));
        assert!(log.server_may_log("b"));
    }
}
