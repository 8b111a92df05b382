//! Postfix's `smtp-sink` on a loopback port: a real SMTP server that accepts everything (or
//! refuses chosen commands with `-f`/`-r`) and dumps each transaction, envelope included, to
//! its own file (`-d DIR/%Y%m%d%H%M%S.`). Tests read the dumps back as [`Transaction`]s.
//!
//! Tests fail, never skip, when `smtp-sink` is missing (package `postfix`).

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// How long smtp-sink may take to accept connections after launch.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running smtp-sink, killed on drop.
pub struct SmtpSink {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
}

/// One mail transaction as smtp-sink dumped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The EHLO/HELO argument.
    pub helo: Option<String>,
    /// The MAIL FROM arguments as sent, e.g. `<>`.
    pub mail_from: String,
    /// The RCPT TO arguments as sent, e.g. `<postmaster@example.net>`, in order.
    pub rcpt_to: Vec<String>,
    /// The message as received (after dot-unstuffing), with CRLF line ends restored
    /// (smtp-sink writes LF).
    pub message: Vec<u8>,
}

/// A free loopback port (nothing listens there once this returns).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl SmtpSink {
    /// Accepts every command, on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(free_port(), &[])
    }

    /// On `port`, with extra smtp-sink options (e.g. `["-f", "RCPT"]` for a 5xx to RCPT).
    pub fn start_on(port: u16, options: &[&str]) -> SmtpSink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install the postfix package (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("sievegate-sink-")
            .tempdir()
            .expect("sink tempdir");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        fs::create_dir(dir.path().join("dumps")).expect("dumps dir");
        let log = fs::File::create(dir.path().join("smtp-sink.log")).expect("log file");
        let mut command = Command::new(SMTP_SINK);
        if nix::unistd::geteuid().is_root() {
            // smtp-sink insists on -u as root. Staying root (not "nobody") keeps PDEATHSIG,
            // which the kernel clears on a change of user.
            command.args(["-u", "root"]);
        }
        command
            .args(options)
            .arg("-d")
            .arg(format!("{}/dumps/%Y%m%d%H%M%S.", dir.path().display()))
            .arg(addr.to_string())
            .arg("100")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl(2) is async-signal-safe, the only kind of call allowed between fork
        // and exec. A killed test binary leaves no smtp-sink behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {SMTP_SINK}: {e}"));
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(dir.path().join("smtp-sink.log")).unwrap_or_default();
                panic!("smtp-sink on {addr} exited at once: {status}\n{log}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "smtp-sink does not listen on {addr} after {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SmtpSink { child, dir, addr }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every transaction dumped so far, oldest first.
    pub fn transactions(&self) -> Vec<Transaction> {
        let mut files: Vec<(SystemTime, String, Vec<u8>)> =
            fs::read_dir(self.dir.path().join("dumps"))
                .expect("read sink dir")
                .map(|e| {
                    let e = e.expect("entry");
                    let modified = e.metadata().and_then(|m| m.modified()).expect("mtime");
                    let name = e.file_name().to_string_lossy().into_owned();
                    (modified, name, fs::read(e.path()).expect("read dump"))
                })
                .collect();
        files.sort();
        files
            .into_iter()
            // smtp-sink writes the file while the transaction runs; a dump is whole once it
            // ends with the empty line that follows the message.
            .filter(|(_, _, bytes)| bytes.ends_with(b"\n\n"))
            .map(|(_, name, bytes)| parse_dump(&name, &bytes))
            .collect()
    }

    /// Waits until at least `n` transactions are dumped; fails after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Transaction> {
        let started = Instant::now();
        loop {
            let got = self.transactions();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < timeout,
                "smtp-sink got {} of {n} transactions within {timeout:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a dump into smtp-sink's own records, its 3-line `Received` header, and the
/// message (see smtp-sink(1), DUMP FILE FORMAT).
fn parse_dump(name: &str, bytes: &[u8]) -> Transaction {
    let text = bytes
        .strip_suffix(b"\n")
        .unwrap_or_else(|| panic!("{name}: no final empty line"));
    let mut helo = None;
    let mut mail_from = None;
    let mut rcpt_to = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("{name}: ends inside smtp-sink's records"));
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        if line.starts_with("Received: ") {
            break;
        }
        rest = &rest[end + 1..];
        let (key, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: odd record {line:?}"));
        match key {
            "X-Helo-Args" => helo = Some(value.to_string()),
            "X-Mail-Args" => mail_from = Some(value.to_string()),
            "X-Rcpt-Args" => rcpt_to.push(value.to_string()),
            _ => {}
        }
    }
    // Skip smtp-sink's Received header: its first line and its continuation lines.
    let mut lines = rest.split_inclusive(|&b| b == b'\n');
    let mut skipped = lines.next().map_or(0, <[u8]>::len);
    for line in lines {
        if !line.starts_with(b"\t") {
            break;
        }
        skipped += line.len();
    }
    let message_lf = &rest[skipped..];
    let mut message = Vec::with_capacity(message_lf.len() + message_lf.len() / 32);
    for &b in message_lf {
        if b == b'\n' {
            message.push(b'\r');
        }
        message.push(b);
    }
    Transaction {
        helo,
        mail_from: mail_from.unwrap_or_else(|| panic!("{name}: no X-Mail-Args")),
        rcpt_to,
        message,
    }
}
