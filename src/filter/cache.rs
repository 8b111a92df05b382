//! The compile cache: each script file compiles once and is reused until the file it names
//! changes. A script is identified by its canonical path (symlinks resolved), so re-pointing
//! a `.dovecot.sieve` symlink selects a different entry, and an entry is valid only while
//! device, inode, size and mtime of that target are unchanged.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sieve::{Compiler, Sieve};

/// Default largest script file we read (`[sieve] max_script_size`); matches sieve-rs's
/// default `max_script_size`. At most the limit (plus one byte, to tell "too large") is ever
/// read, whatever the file claims.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// Cache size at which the whole map is dropped. Entries are per user (personal scripts)
/// and outlive re-pointed symlinks, so the map needs a bound; recompiling is cheap.
const MAX_ENTRIES: usize = 10_000;

/// Why a script could not be used. Displays as `path:line:col: message` (compile errors) or
/// `path: message` (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptProblem {
    /// The file was read but does not compile.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Compile {
        /// The script as configured (or expanded from the personal template).
        path: PathBuf,
        /// 1-based line of the error as sieve-rs reports it (0 for whole-file errors).
        line: usize,
        /// Column of the error as sieve-rs reports it.
        column: usize,
        /// The compiler's message, without its own position suffix.
        message: String,
    },
    /// The file exists but cannot be used: permissions, not a regular file, too large, or
    /// (for a global script) missing.
    #[error("{}: {message}", path.display())]
    Unreadable {
        /// The script as configured (or expanded from the personal template).
        path: PathBuf,
        /// What went wrong, for the log.
        message: String,
    },
}

impl ScriptProblem {
    /// The script the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            ScriptProblem::Compile { path, .. } | ScriptProblem::Unreadable { path, .. } => path,
        }
    }
}

/// What looking a script up gave.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No file (or a dangling symlink): for a personal script, "the user has none".
    Missing,
    /// Compiled and ready to run.
    Ready(Arc<Sieve>),
    /// Present but unusable.
    Broken(ScriptProblem),
}

/// Identity of the file content we compiled. Any change of the target (rewrite in place,
/// rename over it, re-pointed symlink) changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    compiled: Result<Arc<Sieve>, ScriptProblem>,
}

/// Thread-safe map of canonical path → compiled script (or its compile error, so a broken
/// script is not recompiled for every recipient).
#[derive(Debug)]
pub struct ScriptCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// Largest script file read, in bytes.
    max_bytes: u64,
}

impl Default for ScriptCache {
    fn default() -> Self {
        ScriptCache::new(MAX_SCRIPT_BYTES)
    }
}

impl ScriptCache {
    /// An empty cache that reads at most `max_bytes` of any script.
    pub fn new(max_bytes: u64) -> Self {
        ScriptCache {
            entries: Mutex::new(HashMap::new()),
            max_bytes,
        }
    }

    /// Looks `path` up, compiling it when it is new or changed. Opens the file on every call
    /// and checks the opened descriptor (`fstat`), so what is checked is what is read: no
    /// window between a check by name and the read. Compiles outside the lock so one slow
    /// compile does not stall other recipients.
    pub fn get(&self, path: &Path, compiler: &Compiler) -> Lookup {
        let canonical = match fs::canonicalize(path) {
            Ok(canonical) => canonical,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Lookup::Missing,
            Err(err) => return Lookup::Broken(unreadable(path, &err.to_string())),
        };
        let file = match open_script(&canonical) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Lookup::Missing,
            Err(err) => return Lookup::Broken(unreadable(path, &err.to_string())),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(err) => return Lookup::Broken(unreadable(path, &err.to_string())),
        };
        // A FIFO or device would block or stream forever on read.
        if !meta.is_file() {
            return Lookup::Broken(unreadable(path, "not a regular file"));
        }
        let stamp = Stamp::of(&meta);
        if let Some(entry) = self.lock().get(&canonical) {
            if entry.stamp == stamp {
                return to_lookup(entry.compiled.clone());
            }
        }
        // The stamp belongs to the descriptor we read: if the file is rewritten in place
        // meanwhile, the next call sees a different stamp and compiles again.
        let compiled = compile_file(path, file, compiler, self.max_bytes);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            canonical,
            Entry {
                stamp,
                compiled: compiled.clone(),
            },
        );
        to_lookup(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated (every change is a
        // single insert or clear), so a poisoned map is still good to use.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn to_lookup(compiled: Result<Arc<Sieve>, ScriptProblem>) -> Lookup {
    match compiled {
        Ok(script) => Lookup::Ready(script),
        Err(problem) => Lookup::Broken(problem),
    }
}

fn unreadable(path: &Path, message: &str) -> ScriptProblem {
    ScriptProblem::Unreadable {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Opens a script for reading. `O_NONBLOCK` keeps the open of a FIFO from waiting for a
/// writer (the fstat that follows refuses it); `O_NOFOLLOW` refuses a symlink swapped in
/// after the path was canonicalised.
fn open_script(canonical: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(canonical)
}

/// Reads at most `max_bytes` from the opened script and compiles it; `path` is what
/// problems name (the configured path, which the administrator or user recognises).
fn compile_file(
    path: &Path,
    file: fs::File,
    compiler: &Compiler,
    max_bytes: u64,
) -> Result<Arc<Sieve>, ScriptProblem> {
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| unreadable(path, &err.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(unreadable(
            path,
            &format!("script larger than {max_bytes} bytes"),
        ));
    }
    compile_bytes(path, &bytes, compiler).map(Arc::new)
}

/// Compiles script text, turning sieve-rs's error into a [`ScriptProblem::Compile`].
pub fn compile_bytes(
    path: &Path,
    bytes: &[u8],
    compiler: &Compiler,
) -> Result<Sieve, ScriptProblem> {
    compiler.compile(bytes).map_err(|err| {
        // sieve-rs appends " at line N, column M." to every message; we print the position
        // in front instead, the way compilers and editors expect it.
        let text = err.to_string();
        let message = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(message, _)| message)
            .to_string();
        ScriptProblem::Compile {
            path: path.to_path_buf(),
            line: err.line_num(),
            column: err.line_pos(),
            message,
        }
    })
}
