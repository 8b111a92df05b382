//! What the fuzz targets share: a scratch directory, an in-process fake clamd whose verdict
//! the message chooses, and the checker of an LMTP transcript.
//!
//! A fuzz target cannot start the real clamd (seconds to load signatures, for every process
//! libFuzzer forks), so the scanner talks to [`FakeClamd`] over a unix socket: the same
//! client code as in production, a peer that answers in microseconds.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub mod transcript;

/// The scratch directory of this process, removed at exit.
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_scratch() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fresh directory for one fuzz process: on tmpfs (`/dev/shm`) when there is one, so the
/// Maildir writer's fsyncs cost nothing. Named after the target and the process id, and
/// removed when the process exits (libFuzzer ends with `exit`; after a crash `scripts/fuzz`
/// removes what is left).
pub fn scratch_dir(target: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("sievegate-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    if SCRATCH.set(dir.clone()).is_ok() {
        // SAFETY: registers a plain function with no arguments, as atexit(3) expects.
        unsafe {
            libc::atexit(remove_scratch);
        }
    }
    dir
}

/// Writes `files` (name relative to `dir`, content) below `dir`, creating directories.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a directory");
        }
        std::fs::write(&path, content).expect("write a file");
    }
}

/// What the fake clamd answered to one INSTREAM scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// `stream: OK`.
    Clean,
    /// `stream: Fuzz.Virus FOUND`: virustest 5.
    Virus,
    /// `stream: Heuristics.Fuzz FOUND`: virustest 4.
    Heuristic,
    /// `INSTREAM: Can't write to temporary file. ERROR`: a scan failure.
    Error,
}

/// Markers a message carries to choose its verdict (the seed corpus has each).
pub const VIRUS_MARKER: &[u8] = b"FUZZ-VIRUS";
/// See [`VIRUS_MARKER`].
pub const HEURISTIC_MARKER: &[u8] = b"FUZZ-HEURISTIC";
/// See [`VIRUS_MARKER`].
pub const ERROR_MARKER: &[u8] = b"FUZZ-SCAN-ERROR";

impl Scan {
    /// The verdict for a scanned stream: the first marker found wins, in this order.
    pub fn of(stream: &[u8]) -> Scan {
        let has = |marker: &[u8]| stream.windows(marker.len()).any(|w| w == marker);
        if has(ERROR_MARKER) {
            Scan::Error
        } else if has(VIRUS_MARKER) {
            Scan::Virus
        } else if has(HEURISTIC_MARKER) {
            Scan::Heuristic
        } else {
            Scan::Clean
        }
    }

    fn reply(self) -> &'static [u8] {
        match self {
            Scan::Clean => b"stream: OK\0",
            Scan::Virus => b"stream: Fuzz.Virus FOUND\0",
            Scan::Heuristic => b"stream: Heuristics.Fuzz FOUND\0",
            Scan::Error => b"INSTREAM: Can't write to temporary file. ERROR\0",
        }
    }
}

/// A clamd stand-in on a unix socket, served by one thread, one connection at a time. It
/// keeps the verdict of every INSTREAM it answered, in order, for the transcript checker.
pub struct FakeClamd {
    socket: PathBuf,
    scans: Arc<Mutex<Vec<Scan>>>,
}

impl FakeClamd {
    /// Listens on `socket`; runs until the process exits.
    pub fn start(socket: PathBuf) -> FakeClamd {
        let listener = UnixListener::bind(&socket).expect("bind the fake clamd socket");
        let scans = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&scans);
        std::thread::Builder::new()
            .name("fake-clamd".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let _ = serve(conn, &log);
                }
            })
            .expect("spawn the fake clamd");
        FakeClamd { socket, scans }
    }

    /// The scanner address for the configuration.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Forgets the verdicts so far (at the start of each fuzz input).
    pub fn clear(&self) {
        self.scans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The verdicts answered since the last [`FakeClamd::clear`], in order.
    pub fn scans(&self) -> Vec<Scan> {
        self.scans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One connection: `zPING\0` gets `PONG\0` (a health probe is no scan); `zINSTREAM\0` and
/// its length-prefixed chunks get the verdict the content asks for.
fn serve(mut conn: UnixStream, log: &Mutex<Vec<Scan>>) -> io::Result<()> {
    let mut command = Vec::new();
    let mut byte = [0u8; 1];
    while command.len() < 32 {
        conn.read_exact(&mut byte)?;
        if byte[0] == 0 || byte[0] == b'\n' {
            break;
        }
        command.push(byte[0]);
    }
    match &command[..] {
        b"zPING" | b"nPING" => return conn.write_all(b"PONG\0"),
        b"zINSTREAM" | b"nINSTREAM" => {}
        _ => return conn.write_all(b"UNKNOWN COMMAND\0"),
    }
    let mut stream = Vec::new();
    loop {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            break;
        }
        let start = stream.len();
        stream.resize(start + len, 0);
        conn.read_exact(&mut stream[start..])?;
    }
    let scan = Scan::of(&stream);
    // Logged before the answer, so the session cannot finish before its scan is recorded.
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(scan);
    conn.write_all(scan.reply())
}
