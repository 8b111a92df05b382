//! A real private Postfix (`postfix -c DIR start-fg`) in front of sievegate, as on a mail
//! host: its own `config_directory` (main.cf and master.cf written here), `queue_directory`,
//! `data_directory` and `maillog_file` in a temporary directory; smtpd on
//! `127.0.0.1:<free port>`; mail for `example.test` goes by `virtual_transport` to the LMTP
//! destination the test gives (`lmtp:unix:PATH` or `lmtp:inet:127.0.0.1:PORT`) with
//! `lmtp_send_xforward_command = yes`.
//!
//! Several instances run at once (tests run in parallel): each has its own directories,
//! port and `syslog_name`, so queues, locks and logs never mix. Retries are fast (1 s
//! backoff) so a test never waits for Postfix's 300 s timers; [`Postfix::flush`]
//! (`postqueue -f`) makes a retry happen now.
//!
//! Tests fail, never skip, when Postfix is missing or the test does not run as root
//! (`postfix start` needs root).
//!
//! [`SmtpClient`] submits mail to it (`client.rs`); [`Gate`] is the sievegate binary
//! configured to sit behind it (`gate.rs`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod client;
mod gate;

pub use client::SmtpClient;
pub use gate::{Gate, Lmtp};

const POSTFIX_BIN: &str = "/usr/sbin/postfix";
const POSTQUEUE_BIN: &str = "/usr/sbin/postqueue";
const PACKAGES: &str = "apt-get install postfix";

/// From launch until smtpd greets: about 2 s here (postfix-script's checks); generous for a
/// shared machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Knobs for a private instance.
#[derive(Debug, Clone)]
pub struct PostfixOptions {
    /// `virtual_transport`, e.g. `lmtp:unix:/path/lmtp.sock` or `lmtp:inet:127.0.0.1:2424`.
    pub transport: String,
    /// Addresses in `virtual_mailbox_maps`; `None`: no map (every local part accepted).
    pub users: Option<Vec<String>>,
    /// `lmtp_destination_concurrency_limit` (and the initial concurrency: no slow start).
    pub concurrency: usize,
    /// `lmtp_destination_recipient_limit`.
    pub recipient_limit: usize,
    /// Run the lmtp client chrooted to the queue directory (`y` in master.cf's chroot
    /// column, Debian's default): a unix socket path is then relative to the queue.
    pub lmtp_chroot: bool,
    /// Extra main.cf lines.
    pub extra: Vec<String>,
}

impl PostfixOptions {
    pub fn new(transport: impl Into<String>) -> Self {
        PostfixOptions {
            transport: transport.into(),
            users: None,
            concurrency: 10,
            recipient_limit: 50,
            lmtp_chroot: false,
            extra: Vec::new(),
        }
    }
}

/// One delivery line of the maillog (`QID: to=<..>, ..., status=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLine {
    pub queue_id: String,
    /// Without the angle brackets.
    pub to: String,
    /// `sent`, `deferred`, `bounced`, ...
    pub status: String,
    /// The whole line, for assertion messages.
    pub line: String,
}

/// A running private Postfix; aborted (`postfix abort`) and killed on drop.
pub struct Postfix {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Postfix {
    /// Writes the configuration, starts Postfix in the foreground and waits for smtpd's
    /// greeting.
    pub fn start(options: PostfixOptions) -> Postfix {
        assert!(
            Path::new(POSTFIX_BIN).exists(),
            "{POSTFIX_BIN} not found: {PACKAGES}"
        );
        assert!(
            nix::unistd::geteuid().is_root(),
            "a private Postfix needs root (`postfix start` refuses otherwise)"
        );
        let postfix = nix::unistd::User::from_name("postfix")
            .expect("passwd lookup")
            .unwrap_or_else(|| panic!("no `postfix` user: {PACKAGES}"));
        let dir = tempfile::Builder::new()
            .prefix("sievegate-postfix-")
            .tempdir()
            .expect("postfix tempdir");
        let root = dir.path();
        // Postfix's daemons run as `postfix` and must reach the queue below this directory.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("chmod root");
        for sub in ["conf", "queue", "data"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
        }
        // postfix-script warns (and Postfix's caches fail) unless `postfix` owns it.
        std::os::unix::fs::chown(root.join("data"), Some(postfix.uid.as_raw()), None)
            .expect("chown data_directory");
        let port = free_port();
        fs::write(root.join("conf/main.cf"), main_cf(root, &options)).expect("main.cf");
        fs::write(
            root.join("conf/master.cf"),
            master_cf(port, options.lmtp_chroot),
        )
        .expect("master.cf");
        if let Some(users) = &options.users {
            let map: String = users.iter().map(|u| format!("{u} OK\n")).collect();
            fs::write(root.join("conf/vmailbox"), map).expect("vmailbox");
        }
        let mut postfix = Postfix {
            dir,
            port,
            child: None,
        };
        postfix.check();
        // The port was free a moment ago; a parallel test may have taken it since. Then
        // the master cannot bind it and exits: try another.
        for _ in 0..5 {
            match postfix.launch() {
                Ok(()) => return postfix,
                Err(why) if why.contains("Address already in use") => {
                    postfix.port = free_port();
                    fs::write(
                        postfix.root().join("conf/master.cf"),
                        master_cf(postfix.port, options.lmtp_chroot),
                    )
                    .expect("master.cf");
                }
                Err(why) => panic!("{why}"),
            }
        }
        panic!(
            "Postfix found no free port in 5 tries:\n{}",
            postfix.maillog()
        );
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The instance's name (`syslog_name`, also in smtpd's banner): its directory's name.
    pub fn name(&self) -> String {
        self.root()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("conf")
    }

    /// Where smtpd listens.
    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The whole maillog so far.
    pub fn maillog(&self) -> String {
        fs::read_to_string(self.root().join("maillog")).unwrap_or_default()
    }

    /// Every delivery line (`status=`) in the maillog, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryLine> {
        self.maillog().lines().filter_map(parse_delivery).collect()
    }

    /// The delivery lines of `queue_id`.
    pub fn deliveries_of(&self, queue_id: &str) -> Vec<DeliveryLine> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.queue_id == queue_id)
            .collect()
    }

    /// The `client=NAME[ADDR]` smtpd logged for `queue_id`: the address XFORWARD forwards.
    pub fn client_of(&self, queue_id: &str) -> Option<String> {
        let needle = format!(": {queue_id}: client=");
        self.maillog().lines().find_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let addr = rest.split('[').nth(1)?.split(']').next()?;
            Some(addr.to_string())
        })
    }

    /// Queue id → Message-ID, from cleanup's `QID: message-id=<...>` lines.
    pub fn message_ids(&self) -> Vec<(String, String)> {
        self.maillog()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("/cleanup[")?;
                let (_, rest) = rest.split_once("]: ")?;
                let (qid, rest) = rest.split_once(": message-id=")?;
                Some((qid.to_string(), rest.trim().to_string()))
            })
            .collect()
    }

    /// Waits until `pred` holds for the maillog; fails with the log after `timeout`.
    pub fn wait_for_log(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let started = Instant::now();
        loop {
            let log = self.maillog();
            if pred(&log) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "Postfix: no {what} within {timeout:?}; maillog:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `queue_id` has a delivery line with `status` for `to`; returns it.
    pub fn wait_status(&self, queue_id: &str, to: &str, status: &str) -> DeliveryLine {
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        loop {
            if let Some(d) = self
                .deliveries_of(queue_id)
                .into_iter()
                .find(|d| d.to == to && d.status == status)
            {
                return d;
            }
            assert!(
                started.elapsed() < timeout,
                "Postfix: no status={status} for {queue_id} to {to} within {timeout:?}; maillog:\n{}",
                self.maillog()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `postqueue -f`: retry every deferred message now (also forgets dead destinations).
    pub fn flush(&self) {
        self.postqueue("-f");
    }

    /// `postqueue -p`'s output.
    pub fn queue_listing(&self) -> String {
        self.postqueue("-p")
    }

    /// True when `postqueue -p` says the queue is empty.
    pub fn queue_is_empty(&self) -> bool {
        self.queue_listing().contains("Mail queue is empty")
    }

    /// Flushes every second until the queue is empty; fails after `timeout`.
    pub fn wait_queue_empty(&self, timeout: Duration) {
        let started = Instant::now();
        let mut last_flush = Instant::now();
        loop {
            if self.queue_is_empty() {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "Postfix queue not empty after {timeout:?}:\n{}\nmaillog:\n{}",
                self.queue_listing(),
                self.maillog()
            );
            if last_flush.elapsed() > Duration::from_secs(1) {
                self.flush();
                last_flush = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits `message` over SMTP from `source` (a loopback address, so the test knows the
    /// client address Postfix will forward); returns Postfix's queue id.
    pub fn submit_from(&self, source: &str, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        let mut client = SmtpClient::connect(source, self.smtp_addr());
        let qid = client.send(from, rcpts, message);
        client.quit();
        qid
    }

    /// [`Postfix::submit_from`] from 127.0.0.1.
    pub fn submit(&self, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        self.submit_from("127.0.0.1", from, rcpts, message)
    }

    /// Opens an SMTP session to smtpd for several transactions.
    pub fn client(&self) -> SmtpClient {
        SmtpClient::connect("127.0.0.1", self.smtp_addr())
    }

    /// `postfix abort` (no waiting for deliveries), then the foreground process is reaped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .command(POSTFIX_BIN)
            .arg("abort")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // If the master did not go, take it down by the pid it wrote.
        if let Ok(pid) = fs::read_to_string(self.root().join("queue/pid/master.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let deadline = Instant::now() + Duration::from_secs(10);
                // SAFETY: kill(2) with signal 0 only checks the pid; the master is ours.
                while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                // SAFETY: as above; SIGKILL to the master of our own instance.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.arg("-c").arg(self.config_dir()).stdin(Stdio::null());
        c
    }

    fn postqueue(&self, arg: &str) -> String {
        let out = self
            .command(POSTQUEUE_BIN)
            .arg(arg)
            .output()
            .unwrap_or_else(|e| panic!("run {POSTQUEUE_BIN}: {e}"));
        assert!(
            out.status.success(),
            "postqueue {arg} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `postfix check`: without a tty, config errors go only to syslog; this shows them, and
    /// creates the queue's subdirectories with their owners.
    fn check(&self) {
        let out = self
            .command(POSTFIX_BIN)
            .arg("check")
            .output()
            .unwrap_or_else(|e| panic!("run {POSTFIX_BIN}: {e}"));
        assert!(
            out.status.success(),
            "postfix check failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the master and waits for its own smtpd's greeting; `Err` with the logs when
    /// it exits first.
    fn launch(&mut self) -> Result<(), String> {
        let out = fs::File::create(self.root().join("postfix.out")).expect("postfix.out");
        let err = out.try_clone().expect("dup postfix.out");
        let mut command = self.command(POSTFIX_BIN);
        command.arg("start-fg").stdout(out).stderr(err);
        // SAFETY: prctl(2) is async-signal-safe, the only kind of call allowed between fork
        // and exec. A killed test binary then at least takes postfix-script down; its
        // master is stopped by Drop (or by `postfix -c DIR abort` by hand).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        self.child = Some(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {POSTFIX_BIN}: {e}")),
        );
        loop {
            if greets(self.smtp_addr(), &self.name()) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                self.child = None;
                return Err(format!(
                    "postfix start-fg exited ({status}):\n{}\n{}",
                    fs::read_to_string(self.root().join("postfix.out")).unwrap_or_default(),
                    self.maillog()
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                let log = self.maillog();
                self.stop();
                panic!("Postfix did not greet within {START_TIMEOUT:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn main_cf(root: &Path, options: &PostfixOptions) -> String {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = root.display();
    let maps = match &options.users {
        Some(_) => format!("texthash:{root}/conf/vmailbox"),
        None => String::new(),
    };
    let extra = options.extra.join("\n");
    format!(
        r#"# A private Postfix for sievegate's end-to-end tests (tests/it/support/postfix/).
compatibility_level = 3.6
config_directory = {root}/conf
queue_directory = {root}/queue
data_directory = {root}/data
# The one instance name in every log line; instances never share anything.
syslog_name = {name}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# No local delivery and no relaying: example.test is a virtual mailbox domain.
mydestination =
relay_domains =
local_transport = error:no local delivery here
alias_maps =
alias_database =
virtual_mailbox_domains = example.test
virtual_mailbox_maps = {maps}
virtual_transport = {transport}
lmtp_send_xforward_command = yes
lmtp_destination_recipient_limit = {recipient_limit}
lmtp_destination_concurrency_limit = {concurrency}
initial_destination_concurrency = {concurrency}
default_process_limit = 100
# Tests never wait for the 300 s backoff: a deferred message is retried within seconds.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_banner = $myhostname ESMTP $syslog_name
biff = no
{extra}
"#,
        transport = options.transport,
        recipient_limit = options.recipient_limit,
        concurrency = options.concurrency,
    )
}

/// Only the services this setup uses; none chrooted but, if asked, lmtp.
fn master_cf(port: u16, lmtp_chroot: bool) -> String {
    let chroot = if lmtp_chroot { "y" } else { "n" };
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup    unix  n - n 60 1 pickup\n\
         cleanup   unix  n - n - 0 cleanup\n\
         qmgr      unix  n - n 300 1 qmgr\n\
         rewrite   unix  - - n - - trivial-rewrite\n\
         bounce    unix  - - n - 0 bounce\n\
         defer     unix  - - n - 0 bounce\n\
         trace     unix  - - n - 0 bounce\n\
         verify    unix  - - n - 1 verify\n\
         flush     unix  n - n 1000? 0 flush\n\
         proxymap  unix  - - n - - proxymap\n\
         smtp      unix  - - n - - smtp\n\
         relay     unix  - - n - - smtp\n\
         showq     unix  n - n - - showq\n\
         error     unix  - - n - - error\n\
         retry     unix  - - n - - error\n\
         discard   unix  - - n - - discard\n\
         lmtp      unix  - - {chroot} - - lmtp\n\
         anvil     unix  - - n - 1 anvil\n\
         scache    unix  - - n - 1 scache\n\
         postlog   unix-dgram n - n - 1 postlogd\n"
    )
}

/// `... pfx/lmtp[123]: 4ABCD: to=<a@b>, relay=..., status=sent (...)`.
pub fn parse_delivery(line: &str) -> Option<DeliveryLine> {
    let (_, rest) = line.split_once("]: ")?;
    let (qid, rest) = rest.split_once(": to=<")?;
    let (to, rest) = rest.split_once('>')?;
    let status = rest.split("status=").nth(1)?.split_whitespace().next()?;
    Some(DeliveryLine {
        queue_id: qid.to_string(),
        to: to.to_string(),
        status: status.to_string(),
        line: line.to_string(),
    })
}

/// True when an SMTP server at `addr` greets with `220` and `token` (our instance's name: a
/// parallel test's server on a reused port does not count).
fn greets(addr: SocketAddr, token: &str) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    let greeted = BufReader::new(&stream).read_line(&mut line).is_ok()
        && line.starts_with("220 ")
        && line.contains(token);
    let _ = (&stream).write_all(b"QUIT\r\n");
    greeted
}

/// A port that was free a moment ago; smtpd binds it right after. A collision makes the
/// startup fail loudly, never pass.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
