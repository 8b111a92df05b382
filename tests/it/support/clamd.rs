//! A real `/usr/sbin/clamd` in the foreground, with a private configuration and our own
//! signature database (`tests/fixtures/clamd/`) in a temporary directory.
//!
//! Tests must fail, never pass vacuously, when clamd is missing: such a scan test would let a broken
//! scanner ship.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use sievegate::scan::ClamdAddr;
use tempfile::TempDir;

use super::fixtures_dir;

const CLAMD_BIN: &str = "/usr/sbin/clamd";

/// How long clamd may take to answer PING after launch. About 0.3-0.6 s with our small
/// database; generous because the machine is shared with parallel builds.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a SIGTERM may take before we SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Knobs for a private instance. `Default` is what [`Clamd::start`] uses.
#[derive(Debug, Clone)]
pub struct ClamdOptions {
    /// Also listen on TCP `127.0.0.1:<free port>`.
    pub tcp: bool,
    /// clamd's `StreamMaxLength` (e.g. `100M`); INSTREAM beyond it answers `... ERROR`.
    pub stream_max_length: String,
}

impl Default for ClamdOptions {
    fn default() -> Self {
        ClamdOptions {
            tcp: false,
            stream_max_length: "100M".to_owned(),
        }
    }
}

/// A running private clamd. Killed on drop.
pub struct Clamd {
    /// Holds config, database copy, temp dir, socket and logs. `None` only for the shared
    /// instance, whose directory is removed by its exit hook instead.
    dir: Option<TempDir>,
    root: PathBuf,
    socket: PathBuf,
    tcp_port: Option<u16>,
    child: Option<Child>,
    /// Spawn from a thread that lives as long as the process (shared instance), so that
    /// PDEATHSIG does not fire when the first test's thread ends.
    keeper: bool,
}

impl Clamd {
    /// Starts a private clamd with the default options and waits until it answers PING.
    pub fn start() -> Clamd {
        Clamd::start_with(ClamdOptions::default())
    }

    /// Starts a private clamd with `options` and waits until it answers PING.
    pub fn start_with(options: ClamdOptions) -> Clamd {
        let dir = tempfile::Builder::new()
            .prefix("sievegate-clamd-")
            .tempdir()
            .expect("create clamd tempdir");
        let root = dir.path().to_owned();
        let mut clamd = Clamd::prepare(root, &options, false);
        clamd.dir = Some(dir);
        clamd.launch();
        clamd
    }

    /// One clamd shared by all tests of this process that do not stop it. Killed (and its
    /// directory removed) when the test binary exits, and by PDEATHSIG if it is killed.
    pub fn shared() -> &'static Clamd {
        static SHARED: OnceLock<Clamd> = OnceLock::new();
        SHARED.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("sievegate-clamd-shared-")
                .tempdir()
                .expect("create clamd tempdir");
            let root = dir.keep();
            let mut clamd = Clamd::prepare(root, &ClamdOptions::default(), true);
            clamd.launch();
            let pid = clamd.child.as_ref().map(|c| c.id()).expect("spawned");
            register_exit_cleanup(pid, clamd.root.clone());
            clamd
        })
    }

    /// The address to give to [`sievegate::scan::Scanner::new`].
    pub fn addr(&self) -> ClamdAddr {
        ClamdAddr::Unix(self.socket.clone())
    }

    /// The TCP address, when started with `tcp: true`.
    pub fn tcp_addr(&self) -> Option<ClamdAddr> {
        self.tcp_port
            .map(|port| ClamdAddr::Tcp(format!("127.0.0.1:{port}")))
    }

    /// The signature database directory clamd loads (a private copy: a test may edit it,
    /// then [`Clamd::restart`]).
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The unix socket clamd listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// clamd's own log so far, for assertion messages.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.root.join("clamd.log")).unwrap_or_default();
        let stderr = fs::read_to_string(self.root.join("clamd.stderr")).unwrap_or_default();
        format!("--- clamd.log ---\n{log}--- clamd stdout/stderr ---\n{stderr}")
    }

    /// Stops clamd (SIGTERM, then SIGKILL), waits for it, and makes sure the socket is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait().expect("wait for clamd") {
                Some(_) => break,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // clamd unlinks its socket on SIGTERM; after a SIGKILL it cannot.
        let _ = fs::remove_file(&self.socket);
        assert!(!self.socket.exists(), "clamd socket still there after stop");
    }

    /// Stops and starts again: same socket path, same database.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn prepare(root: PathBuf, options: &ClamdOptions, keeper: bool) -> Clamd {
        if !Path::new(CLAMD_BIN).exists() {
            panic!("clamd not found: apt-get install clamav-daemon");
        }
        let db = root.join("db");
        let tmp = root.join("tmp");
        fs::create_dir(&db).expect("create db dir");
        fs::create_dir(&tmp).expect("create clamd tmp dir");
        // Copy only signature files, so what clamd loads is exactly the shipped database and
        // not whatever else sits in the fixtures folder (README, editor backups).
        for entry in fs::read_dir(fixtures_dir().join("clamd")).expect("read fixtures/clamd") {
            let path = entry.expect("dir entry").path();
            let is_signature_db = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("ndb" | "hdb" | "hsb" | "ldb" | "ign2")
            );
            if is_signature_db {
                let name = path.file_name().expect("file name");
                fs::copy(&path, db.join(name)).expect("copy signature file");
            }
        }

        let socket = root.join("clamd.sock");
        let tcp_port = options.tcp.then(free_tcp_port);
        let mut conf = format!(
            "Foreground yes\n\
             LocalSocket {socket}\n\
             LocalSocketMode 666\n\
             DatabaseDirectory {db}\n\
             TemporaryDirectory {tmp}\n\
             PidFile {root}/clamd.pid\n\
             LogFile {root}/clamd.log\n\
             LogTime yes\n\
             StreamMaxLength {max}\n",
            socket = socket.display(),
            db = db.display(),
            tmp = tmp.display(),
            root = root.display(),
            max = options.stream_max_length,
        );
        if let Some(port) = tcp_port {
            conf.push_str(&format!("TCPSocket {port}\nTCPAddr 127.0.0.1\n"));
        }
        fs::write(root.join("clamd.conf"), conf).expect("write clamd.conf");

        Clamd {
            dir: None,
            root,
            socket,
            tcp_port,
            child: None,
            keeper,
        }
    }

    fn launch(&mut self) {
        let stderr = fs::File::create(self.root.join("clamd.stderr")).expect("clamd.stderr");
        let stdout = stderr.try_clone().expect("dup clamd.stderr");
        let mut command = Command::new(CLAMD_BIN);
        command
            .arg("-c")
            .arg(self.root.join("clamd.conf"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: prctl(2) is async-signal-safe, the only kind of call allowed between fork
        // and exec. PDEATHSIG kills clamd when the spawning thread dies, so a test binary that
        // is killed (or a panicking test thread) leaves no clamd behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }

        let started = Instant::now();
        let child = if self.keeper {
            spawn_on_keeper_thread(command)
        } else {
            command.spawn().expect("spawn clamd")
        };
        self.child = Some(child);
        self.wait_ready(started);
    }

    fn wait_ready(&mut self, started: Instant) {
        loop {
            let unix_ok = ping_unix(&self.socket);
            let tcp_ok = self.tcp_port.is_none_or(ping_tcp);
            if unix_ok && tcp_ok {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait clamd"))
            {
                panic!("clamd exited during startup ({status})\n{}", self.log());
            }
            if started.elapsed() > START_TIMEOUT {
                let log = self.log();
                self.stop();
                panic!("clamd did not answer PING within {START_TIMEOUT:?}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ping_unix(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok_and(ping)
}

fn ping_tcp(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(ping)
}

fn ping<S: Read + Write>(mut stream: S) -> bool {
    let mut reply = Vec::new();
    stream.write_all(b"zPING\0").is_ok()
        && stream.read_to_end(&mut reply).is_ok()
        && reply == b"PONG\0"
}

/// A port that was free a moment ago. clamd binds it right after; a collision would only make
/// startup fail loudly.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Spawns `command` from a thread that never exits, because PDEATHSIG follows the spawning
/// *thread* and cargo test runs every test on its own short-lived thread.
fn spawn_on_keeper_thread(mut command: Command) -> Child {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("clamd-keeper".into())
        .spawn(move || {
            let _ = tx.send(command.spawn());
            loop {
                std::thread::park();
            }
        })
        .expect("spawn keeper thread");
    rx.recv()
        .expect("keeper thread answers")
        .expect("spawn clamd")
}

static SHARED_CLEANUP: OnceLock<(u32, PathBuf)> = OnceLock::new();

/// Kills the shared clamd and removes its directory when the test binary exits normally
/// (libtest returns from main or calls `exit`, both run atexit handlers). Statics are never
/// dropped, so without this the directory would stay in /tmp.
fn register_exit_cleanup(pid: u32, root: PathBuf) {
    extern "C" fn cleanup() {
        if let Some((pid, root)) = SHARED_CLEANUP.get() {
            // SAFETY: plain syscalls on the pid of our own child.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
            let _ = fs::remove_dir_all(root);
        }
    }
    if SHARED_CLEANUP.set((pid, root)).is_ok() {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(cleanup) };
    }
}
