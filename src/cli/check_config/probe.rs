//! The file checks themselves, done by really trying (open, create, connect, chown) rather
//! than by reading permission bits, so ACLs, read-only mounts and NFS root squash answer
//! as they will for the server. Run in this process when we are already the user to check
//! as, else in a child that [`run_as`] starts as that user (`check-config --probe`): the
//! probes go to its stdin as JSON, the outcomes come back on its stdout.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::identity::Identity;

/// What a path must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Need {
    /// A file: open and read it.
    Read,
    /// A directory: search it (reach what is inside).
    Traverse,
    /// A directory: create and remove an entry in it; a missing one must be creatable (its
    /// nearest existing ancestor writable).
    Write,
    /// An existing file: open it for writing (without changing it).
    WriteFile,
    /// A unix socket: connect to it.
    Connect,
    /// A directory: a file created in it can be given this group (`chown :gid`), as the
    /// listener's `socket_group` or the store's `[mailbox] owner`/`group` need.
    Chown {
        /// The owner to give, if any.
        uid: Option<u32>,
        /// The group to give, if any.
        gid: Option<u32>,
    },
}

/// One check: a path and what it must allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Probe {
    pub path: PathBuf,
    pub need: Need,
}

/// How a probe went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It works.
    Ok,
    /// The path does not exist (for [`Need::Write`]: neither does any ancestor to create it
    /// in, which cannot happen below `/`). For [`Need::Chown`]: nothing was tried.
    Missing,
    /// Refused. `at` is the path that refused: an ancestor that cannot be searched
    /// ([`Need::Traverse`] there), or the path itself (or, for a missing directory, the
    /// ancestor it would be created in) with the probe's own need.
    Denied {
        at: PathBuf,
        traverse: bool,
        /// `strerror` of what failed.
        error: String,
    },
    /// Something else went wrong (not a directory, connection refused, ...).
    Failed { error: String },
}

/// Runs every probe in this process, as whoever we are.
pub fn run_here(probes: &[Probe]) -> Vec<Outcome> {
    probes.iter().map(run_one).collect()
}

/// Runs the probes as `who`: in a child process with `who`'s uid, gid and groups (we must
/// be root). Its own binary is executed through a descriptor opened now, so a build tree
/// the user cannot reach (`/root/...`) still runs.
pub fn run_as(who: &Identity, config: &Path, probes: &[Probe]) -> Result<Vec<Outcome>, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::fs::File::open("/proc/self/exe")
        .map_err(|e| format!("cannot open our own binary (/proc/self/exe): {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&exe);
    // SAFETY: fcntl on a descriptor we own; clearing FD_CLOEXEC keeps it open across the
    // exec so that `/proc/self/fd/N` names it in the child.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(format!(
            "cannot pass our own binary to the child: {}",
            std::io::Error::last_os_error()
        ));
    }
    let groups: Vec<libc::gid_t> = who.groups.clone();
    let (uid, gid) = (who.uid, who.gid);
    let mut command = Command::new(format!("/proc/self/fd/{fd}"));
    command
        .args(["check-config", "--probe", "-c"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: only async-signal-safe system calls between fork and exec, on data prepared
    // before the fork (no allocation).
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the checks as user {}: {e}", who.name))?;
    let input = serde_json::to_vec(probes).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .map_err(|e| format!("cannot hand the checks to the child: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("the checks as user {} failed: {e}", who.name))?;
    drop(exe);
    if !output.status.success() {
        return Err(format!(
            "the checks as user {} failed ({})",
            who.name, output.status
        ));
    }
    let outcomes: Vec<Outcome> = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the checks as user {} answered garbage: {e}", who.name))?;
    if outcomes.len() != probes.len() {
        return Err(format!(
            "the checks as user {} answered {} of {} probes",
            who.name,
            outcomes.len(),
            probes.len()
        ));
    }
    Ok(outcomes)
}

/// The child's side (`check-config --probe`): probes on stdin, outcomes on stdout.
pub fn serve_probes() -> std::process::ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("check-config --probe: cannot read the probes: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let probes: Vec<Probe> = match serde_json::from_slice(&input) {
        Ok(probes) => probes,
        Err(e) => {
            eprintln!("check-config --probe: bad input: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcomes = run_here(&probes);
    match serde_json::to_writer(std::io::stdout().lock(), &outcomes) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check-config --probe: cannot answer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One probe, by trying it.
fn run_one(probe: &Probe) -> Outcome {
    let path = probe.path.as_path();
    let result = match probe.need {
        Need::Read => read(path),
        Need::Traverse => std::fs::metadata(path.join(".")).map(drop),
        Need::WriteFile => std::fs::OpenOptions::new().write(true).open(path).map(drop),
        Need::Connect => std::os::unix::net::UnixStream::connect(path).map(drop),
        Need::Write => return write(path),
        Need::Chown { uid, gid } => {
            if !path.is_dir() {
                return Outcome::Missing;
            }
            chown_in(path, uid, gid)
        }
    };
    match result {
        Ok(()) => Outcome::Ok,
        Err(e) => judge(path, probe.need, e),
    }
}

/// Turns an error into an outcome: a refusal names the path that refused.
fn judge(path: &Path, need: Need, e: std::io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Outcome::Missing,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => {
            let (at, traverse) = blocker(path, need);
            Outcome::Denied {
                at,
                traverse,
                error: e.to_string(),
            }
        }
        _ => Outcome::Failed {
            error: e.to_string(),
        },
    }
}

/// The first ancestor of `path` we cannot search, else `path` itself.
fn blocker(path: &Path, need: Need) -> (PathBuf, bool) {
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    for dir in ancestors {
        if dir.as_os_str().is_empty() {
            continue;
        }
        if !access(dir, libc::X_OK) {
            return (dir.to_path_buf(), true);
        }
    }
    (path.to_path_buf(), need == Need::Traverse)
}

/// access(2): with real ids equal to effective ones (the child), the kernel's own answer,
/// ACLs included.
fn access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

fn read(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut byte = [0u8; 1];
    file.read(&mut byte).map(drop)
}

/// [`Need::Write`]: an entry created and removed in the directory, or, for a missing one,
/// a directory created and removed in its nearest existing ancestor.
fn write(path: &Path) -> Outcome {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match scratch_file(path) {
            Ok(()) => Outcome::Ok,
            Err(e) => judge(path, Need::Write, e),
        },
        Ok(_) => Outcome::Failed {
            error: "not a directory".to_string(),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let Some(parent) = path.ancestors().skip(1).find(|a| a.exists()) else {
                return Outcome::Missing;
            };
            if !parent.is_dir() {
                return Outcome::Failed {
                    error: format!("{} is not a directory", parent.display()),
                };
            }
            let scratch = parent.join(format!(".sievegate-check-{}", std::process::id()));
            match std::fs::create_dir(&scratch) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(&scratch);
                    Outcome::Ok
                }
                Err(e) => judge(parent, Need::Write, e),
            }
        }
        Err(e) => judge(path, Need::Write, e),
    }
}

/// Creates and removes a file in `dir`: an unnamed one where the file system has them
/// (nothing is left behind even if we die), else a named one.
fn scratch_file(dir: &Path) -> std::io::Result<()> {
    scratch(dir, |_| Ok(()))
}

/// [`Need::Chown`]: a scratch file in `dir` given the owner and group.
fn chown_in(dir: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    scratch(dir, |file| std::os::unix::fs::fchown(file, uid, gid))
}

fn scratch(
    dir: &Path,
    with: impl Fn(&std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(file) => return with(&file),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) => {}
        Err(e) => return Err(e),
    }
    let path = dir.join(format!(".sievegate-check-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let result = with(&file);
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_as_root_table() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let missing = tmp.path().join("a/b/c");
        let cases = [
            (
                Probe {
                    path: file.clone(),
                    need: Need::Read,
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: file.clone(),
                    need: Need::WriteFile,
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: tmp.path().into(),
                    need: Need::Write,
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: missing.clone(),
                    need: Need::Write,
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: missing.clone(),
                    need: Need::Read,
                },
                Outcome::Missing,
            ),
            (
                Probe {
                    path: tmp.path().into(),
                    need: Need::Traverse,
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: tmp.path().into(),
                    need: Need::Chown {
                        uid: None,
                        gid: Some(0),
                    },
                },
                Outcome::Ok,
            ),
            (
                Probe {
                    path: missing,
                    need: Need::Chown {
                        uid: None,
                        gid: Some(0),
                    },
                },
                Outcome::Missing,
            ),
        ];
        for (probe, want) in cases {
            assert_eq!(run_one(&probe), want, "{probe:?}");
        }
        // Nothing left behind.
        let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").collect();
        assert_eq!(left.len(), 1, "{left:?}");
        match run_one(&Probe {
            path: file.clone(),
            need: Need::Write,
        }) {
            Outcome::Failed { error } => assert!(error.contains("not a directory")),
            other => panic!("{other:?}"),
        }
    }
}
