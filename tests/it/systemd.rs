//! Layer 3: the real binary under systemd's readiness protocol (`Type=notify`): a datagram
//! socket of ours stands in for systemd's, named by `$NOTIFY_SOCKET` as systemd does.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::binary::bin;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};

/// `sievegate serve` with `NOTIFY_SOCKET` set; its stderr collected by a thread.
struct Served {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Served {
    fn start(env: &Env, notify_socket: &std::path::Path) -> Served {
        let mut child = Command::new(bin())
            .args(["serve", "-c"])
            .arg(&env.config_path)
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", notify_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sievegate");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().expect("logs");
                l.push_str(&line);
                l.push('\n');
            }
        });
        Served { child, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next datagram on `socket`, or a panic with the server's log after 30 s.
fn next_state(socket: &UnixDatagram, served: &Served) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification ({e}):\n{}", served.logs()),
    }
}

/// An env whose server listens on TCP and on a unix socket we can name before it starts.
/// The returned directory holds the socket: keep it alive as long as the env.
fn env_with_unix_listener() -> (Env, tempfile::TempDir, std::path::PathBuf) {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let lmtp = sock_dir.path().join("lmtp.sock");
    let mut options = Options::new(Clamd::shared().addr());
    options.listen = vec!["127.0.0.1:0".into(), format!("unix:{}", lmtp.display())];
    (Env::new(options), sock_dir, lmtp)
}

#[test]
fn ready_once_every_listener_is_bound_and_stopping_on_sigterm() {
    let (env, _sock_dir, lmtp) = env_with_unix_listener();
    let notify = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).expect("bind notify socket");
    let mut served = Served::start(&env, &notify);

    assert_eq!(next_state(&socket, &served), "READY=1");
    // READY=1 means Postfix can connect now: the listener answers at once.
    let mut conn = UnixStream::connect(&lmtp).expect("listener bound before READY=1");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut greeting = [0u8; 256];
    let n = conn.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"220 "), "{:?}", &greeting[..n]);
    let logs = served.logs();
    assert!(logs.contains("listening on 127.0.0.1:"), "{logs}");
    drop(conn);

    let status = served.terminate();
    assert_eq!(next_state(&socket, &served), "STOPPING=1");
    assert!(status.success(), "{status:?}\n{}", served.logs());
}

#[test]
fn a_notify_socket_nobody_listens_on_is_logged_and_serving_goes_on() {
    let (env, _sock_dir, lmtp) = env_with_unix_listener();
    let gone = env.dir.path().join("nobody-listens.sock");
    let mut served = Served::start(&env, &gone);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !served.logs().contains("systemd notification failed") {
        assert!(Instant::now() < deadline, "no warning:\n{}", served.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut conn = UnixStream::connect(&lmtp).expect("still serving");
    let mut greeting = [0u8; 256];
    let n = conn.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"220 "));
    drop(conn);
    assert!(served.terminate().success(), "{}", served.logs());
}
