//! Group commit of directory fsyncs: deliveries that renamed (or linked) a message into the
//! same directory at about the same time share one `fsync` of it.
//!
//! The rule that keeps it safe: a caller returns `Ok` only after an fsync of the directory
//! that *started after* its own entry was made. Each caller takes a ticket after its rename;
//! one caller at a time (the leader) fsyncs for every ticket issued so far; callers that
//! arrive while it runs wait for the next round, which the first of them leads. So N
//! concurrent deliveries into one folder cost about two fsyncs instead of N, and a caller
//! never sees `Ok` for an fsync that may have missed its entry.
//!
//! A failed round fails every caller it covered (they answer 4xx and remove their file);
//! a caller that cannot tell whether the round that covered it failed is told it failed
//! too: a needless retry is harmless, a 250 for a file that may not survive a crash is not.
//!
//! The table holds only directories with a caller in flight: an entry is removed by the
//! last caller to leave, so a server that has delivered to a million folders keeps none.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The process-wide table of directories being synced.
pub struct DirSync {
    /// Each directory with a caller in flight, and how many callers hold it.
    dirs: Mutex<HashMap<PathBuf, (Arc<Dir>, usize)>>,
}

/// One directory's rounds.
#[derive(Default)]
struct Dir {
    state: Mutex<Rounds>,
    done: Condvar,
}

#[derive(Default)]
struct Rounds {
    /// Tickets issued so far (the last one handed out).
    issued: u64,
    /// Every ticket up to this one is covered by a finished round.
    covered: u64,
    /// A round's fsync is running now.
    running: bool,
    /// How many rounds failed so far, and the last failure's kind.
    failures: u64,
    last_error: Option<io::ErrorKind>,
}

/// Recovers a poisoned lock: the guarded counters stay consistent (each update is one
/// assignment), and a panic elsewhere must not stop every later delivery.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DirSync {
    /// The table every [`super::Maildir`] of this process shares.
    pub fn global() -> &'static DirSync {
        static GLOBAL: OnceLock<DirSync> = OnceLock::new();
        GLOBAL.get_or_init(DirSync::new)
    }

    /// An empty table (tests use their own).
    pub fn new() -> Self {
        DirSync {
            dirs: Mutex::new(HashMap::new()),
        }
    }

    /// Returns once an fsync of `dir` that started after this call has finished: every
    /// entry made in `dir` before the call is then on stable storage.
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        self.sync_with(dir, |d| File::open(d)?.sync_all())
    }

    /// [`Self::sync`] with the fsync supplied (tests count and fail it).
    fn sync_with<F>(&self, dir: &Path, fsync: F) -> io::Result<()>
    where
        F: Fn(&Path) -> io::Result<()>,
    {
        let entry = self.enter(dir);
        let result = entry.sync(dir, &fsync);
        self.leave(dir);
        result
    }

    fn enter(&self, dir: &Path) -> Arc<Dir> {
        let mut dirs = lock(&self.dirs);
        let (entry, users) = dirs.entry(dir.to_path_buf()).or_default();
        *users += 1;
        Arc::clone(entry)
    }

    fn leave(&self, dir: &Path) {
        let mut dirs = lock(&self.dirs);
        if let Some((_, users)) = dirs.get_mut(dir) {
            *users -= 1;
            if *users == 0 {
                dirs.remove(dir);
            }
        }
    }

    /// Directories with a caller in flight (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.dirs).len()
    }
}

impl Default for DirSync {
    fn default() -> Self {
        DirSync::new()
    }
}

impl Dir {
    fn sync<F>(&self, dir: &Path, fsync: &F) -> io::Result<()>
    where
        F: Fn(&Path) -> io::Result<()>,
    {
        let mut rounds = lock(&self.state);
        rounds.issued += 1;
        let ticket = rounds.issued;
        let failures_before = rounds.failures;
        loop {
            if rounds.covered >= ticket {
                crate::metrics::dir_sync(false);
                return match rounds.last_error {
                    Some(kind) if rounds.failures != failures_before => Err(io::Error::new(
                        kind,
                        format!("fsync of {} failed", dir.display()),
                    )),
                    _ => Ok(()),
                };
            }
            if rounds.running {
                rounds = self
                    .done
                    .wait(rounds)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a round for every ticket issued so far, this one included.
            rounds.running = true;
            let target = rounds.issued;
            drop(rounds);
            let result = fsync(dir);
            rounds = lock(&self.state);
            rounds.running = false;
            rounds.covered = target;
            if let Err(e) = &result {
                rounds.failures += 1;
                rounds.last_error = Some(e.kind());
            }
            self.done.notify_all();
            crate::metrics::dir_sync(true);
            // The leader reports its own fsync's error as it is (errno and all).
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_caller_syncs_once_and_leaves_no_entry() {
        let table = DirSync::new();
        let calls = AtomicUsize::new(0);
        let dir = Path::new("/nonexistent/new");
        table
            .sync_with(dir, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .expect("synced");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(table.len(), 0, "no entry kept for an idle directory");
    }

    #[test]
    fn concurrent_callers_share_rounds_and_each_is_covered_by_a_later_start() {
        // 16 threads sync one directory whose fsync takes 20 ms: they must need far fewer
        // than 16 fsyncs, and every caller must return after a round that started after
        // its call (checked with the round start times).
        let table = Arc::new(DirSync::new());
        let starts = Arc::new(Mutex::new(Vec::<std::time::Instant>::new()));
        let dir = PathBuf::from("/nonexistent/new");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (table, starts, dir) = (Arc::clone(&table), Arc::clone(&starts), dir.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(i % 4));
                    let called = std::time::Instant::now();
                    table
                        .sync_with(&dir, |_| {
                            lock(&starts).push(std::time::Instant::now());
                            std::thread::sleep(Duration::from_millis(20));
                            Ok(())
                        })
                        .expect("synced");
                    let starts = lock(&starts);
                    assert!(
                        starts.iter().any(|s| *s >= called),
                        "returned without a round that started after the call"
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let rounds = lock(&starts).len();
        assert!(rounds < 8, "{rounds} fsyncs for 16 concurrent callers");
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_failed_round_fails_every_caller_it_covered() {
        let table = Arc::new(DirSync::new());
        let dir = PathBuf::from("/nonexistent/new");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (table, dir) = (Arc::clone(&table), dir.clone());
                std::thread::spawn(move || {
                    table.sync_with(&dir, |_| {
                        std::thread::sleep(Duration::from_millis(10));
                        Err(io::Error::from_raw_os_error(libc::EIO))
                    })
                })
            })
            .collect();
        for t in threads {
            let result = t.join().expect("thread");
            assert!(result.is_err(), "a caller saw Ok after failed fsyncs only");
        }
    }

    #[test]
    fn a_real_directory_syncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        DirSync::global().sync(dir.path()).expect("fsync");
        let missing = dir.path().join("missing");
        assert_eq!(
            DirSync::global()
                .sync(&missing)
                .expect_err("missing")
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
