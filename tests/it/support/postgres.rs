//! A private PostgreSQL for tests: Debian's server binaries (`postgresql`), one throwaway
//! cluster in a temporary directory, reachable through a unix socket in that
//! directory (`listen_addresses = ''`), so nothing on the host can collide with it and no
//! TCP port is taken. [`Cluster::start_tcp`] also listens on loopback (a free port), with
//! TLS and a CA made by the harness when asked, for the TLS tests.
//!
//! `initdb` refuses root, so the cluster runs as the `postgres` user. The server is a child
//! of one long-lived spawner thread with `PR_SET_PDEATHSIG`: when the test process dies
//! (even by SIGKILL) the server gets SIGKILL too. At a normal exit every server is shut
//! down cleanly (SIGINT, waited for) and its directory removed.
//!
//! [`shared`] is one cluster per test process (started once); [`fresh_database`] a new
//! empty database in it per test. [`Cluster::start`] is a cluster of one's own, for a
//! test that stops and starts the server. Nothing here skips: without PostgreSQL the
//! caller panics with the reason.
//!
//! Used by the integration tests (`tests/it`) and, through `#[path]`, by the unit tests of
//! `src/state`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The port the socket file is named after (`.s.PGSQL.<port>`): no TCP listener exists,
/// so every cluster can use the same one in its own directory.
pub const PORT: u16 = 5432;

/// One cluster: its data directory, socket directory and server process.
pub struct Cluster {
    /// Holds `data/`, `sock/` and `server.log`; removed on drop.
    root: tempfile::TempDir,
    /// The running server (`None` while stopped).
    server: Mutex<Option<Child>>,
    /// The server's port: [`PORT`] (the socket file's name only), or the TCP port of a
    /// cluster that listens on loopback ([`Cluster::start_tcp`]).
    port: u16,
    /// Server settings (`-c name=value`) besides the defaults: listening on loopback, TLS.
    settings: Vec<String>,
}

/// Where Debian installs the server binaries: the newest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (install the postgresql package)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/postgres (install postgresql)".to_string())
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the two
    // integers out at once (tests start clusters one at a time under OnceLock or a lock).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("no `postgres` user (install the postgresql package)".to_string());
    }
    // SAFETY: non-null, as checked.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A request to the spawner thread: the command to start, where to send the child.
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process, so the child's
/// parent-death signal fires when the process ends, not when some test thread does.
fn spawn_lasting(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("postgres-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
                // The channel's sender lives in a static: never reached while the
                // process runs.
            })
            .expect("spawn the postgres spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    rx.recv()
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Servers to shut down at exit (their pids).
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Directories of clusters that are never dropped (the shared one), removed at exit.
static LEFTOVER: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn stop_all_at_exit() {
    let pids: Vec<u32> = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        stop_pid(pid);
    }
    for dir in LEFTOVER.lock().map(|d| d.clone()).unwrap_or_default() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// SIGINT (fast shutdown: clients cut, shared memory removed), then waits up to 10 s.
fn stop_pid(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: plain syscalls on a pid we started.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        // SAFETY: as above; signal 0 only probes.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

impl Cluster {
    /// Creates and starts a cluster of one's own (stopped and removed on drop).
    pub fn start() -> Result<Cluster, String> {
        Cluster::start_with(PORT, |_| Ok(vec!["listen_addresses=".to_string()]))
    }

    /// A cluster of one's own that also listens on 127.0.0.1 (a free port), with TLS
    /// (`ssl = on`) when `tls`: its certificate, for the name `localhost`, is signed by a
    /// CA made here with the openssl CLI; the CA's PEM file is `<root>/ca.pem`
    /// ([`Cluster::ca_file`]). Connect with [`Cluster::tcp_url`].
    pub fn start_tcp(tls: bool) -> Result<Cluster, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        Cluster::start_with(port, |root| {
            let mut settings = vec!["listen_addresses=127.0.0.1".to_string()];
            if tls {
                make_certificates(root)?;
                settings.extend([
                    "ssl=on".to_string(),
                    format!("ssl_cert_file={}", root.join("server.crt").display()),
                    format!("ssl_key_file={}", root.join("server.key").display()),
                ]);
            }
            Ok(settings)
        })
    }

    /// The test CA's PEM file of a [`Cluster::start_tcp`] cluster with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.root.path().join("ca.pem")
    }

    /// A connection string for database `db` over TCP on loopback, by the name
    /// `localhost` (the name in the TLS certificate), with extra `params`
    /// (`sslmode=require`).
    pub fn tcp_url(&self, db: &str, params: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname={db} {params}",
            self.port
        )
    }

    /// Creates and starts a cluster on `port` with the settings `settings(root)` gives.
    fn start_with(
        port: u16,
        settings: impl FnOnce(&Path) -> Result<Vec<String>, String>,
    ) -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let (uid, gid) = postgres_user()?;
        let root = tempfile::Builder::new()
            .prefix("sievegate-pg-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        // The postgres user must reach its directories inside root's tempdir.
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| format!("chmod: {e}"))?;
        for sub in ["data", "sock"] {
            let dir = root.path().join(sub);
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {sub}: {e}"))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {sub}: {e}"))?;
        }
        let log = root.path().join("initdb.log");
        let out = std::fs::File::create(&log).map_err(|e| format!("initdb log: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let status = Command::new(bin.join("initdb"))
            .args(["-D"])
            .arg(root.path().join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .uid(uid)
            .gid(gid)
            .current_dir(root.path())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("run initdb: {e}"))?;
        if !status.success() {
            return Err(format!(
                "initdb failed ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let settings = settings(root.path())?;
        let cluster = Cluster {
            root,
            server: Mutex::new(None),
            port,
            settings,
        };
        cluster.resume()?;
        Ok(cluster)
    }

    /// The socket directory (libpq's `host`).
    pub fn socket_dir(&self) -> PathBuf {
        self.root.path().join("sock")
    }

    /// A connection string for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Starts the server again after [`Cluster::stop`] (and at first start); returns once
    /// it accepts connections.
    pub fn resume(&self) -> Result<(), String> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_some() {
            return Ok(());
        }
        let bin = bin_dir()?;
        let (uid, gid) = postgres_user()?;
        let log_path = self.root.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("server log: {e}"))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.root.path().join("data"))
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string()])
            // A throwaway cluster: durability is not what these tests measure.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=400"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .uid(uid)
            .gid(gid)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; it runs in the child after setuid (which
        // would clear it) and before exec (which keeps it).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_lasting(command).map_err(|e| format!("start postgres: {e}"))?;
        let pid = child.id();
        {
            static AT_EXIT: OnceLock<()> = OnceLock::new();
            AT_EXIT.get_or_init(|| {
                // SAFETY: registers a plain extern "C" function.
                unsafe {
                    libc::atexit(stop_all_at_exit);
                }
            });
            RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        }
        *server = Some(child);
        drop(server);
        self.wait_ready(&log_path)
    }

    /// Waits until `postmaster.pid` says "ready" and the socket exists.
    fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let pidfile = self.root.path().join("data/postmaster.pid");
        let socket = self.socket_dir().join(format!(".s.PGSQL.{}", self.port));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let ready = std::fs::read_to_string(&pidfile)
                .map(|t| t.lines().any(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready && socket.exists() {
                return Ok(());
            }
            if let Some(child) = self
                .server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "postgres exited ({status}): {}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "postgres not ready after 60 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        ))
    }

    /// Stops the server (fast shutdown: clients are cut off); [`Cluster::resume`] starts
    /// it again with the same data.
    pub fn stop(&self) {
        let child = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            stop_pid(child.id());
            let _ = child.wait();
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| *p != child.id());
        }
    }

    /// Creates an empty database and returns its connection string.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let out = Command::new(bin_dir()?.join("createdb"))
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", "postgres", name])
            .output()
            .map_err(|e| format!("run createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "createdb {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(self.url(name))
    }

    /// Runs SQL in database `db` with psql (for tests that set up a state by hand).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin_dir()?.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if !out.status.success() {
            return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a CA and a server certificate for `localhost` signed by it in `root` with the
/// openssl CLI: `ca.pem` (for the client), `server.crt` and `server.key` (owned by the
/// postgres user, mode 0600, as the server requires of its key).
fn make_certificates(root: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(root)
            .output()
            .map_err(|e| format!("run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sievegate test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])?;
    std::fs::write(
        root.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    let (uid, gid) = postgres_user()?;
    for file in ["server.crt", "server.key"] {
        let path = root.join(file);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {file}: {e}"))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("chmod {file}: {e}"))?;
    }
    Ok(())
}

/// The cluster shared by every test of this process, started on first use.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(|| {
        let cluster = Cluster::start()?;
        LEFTOVER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cluster.root.path().to_path_buf());
        Ok(cluster)
    }) {
        Ok(cluster) => cluster,
        Err(e) => panic!("cannot start the test PostgreSQL: {e}"),
    }
}

/// A new empty database in the shared cluster; returns (its name, its connection string).
pub fn fresh_database() -> (String, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = shared()
        .create_database(&name)
        .unwrap_or_else(|e| panic!("{e}"));
    (name, url)
}
