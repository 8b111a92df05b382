//! A test environment: a temp directory with a config pointing at a clamd, Maildirs and
//! personal scripts inside it, and helpers to drive sessions in memory or read mailboxes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::lmtp::{Peer, Session};
use sievegate::scan::ClamdAddr;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Knobs for the generated config; `Default` is what most tests want.
#[derive(Clone)]
pub struct Options {
    pub clamd: ClamdAddr,
    pub listen: Vec<String>,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub on_failure: &'static str,
    pub scan_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub xforward_from: Vec<String>,
    pub maildir: Option<String>,
    /// Content of a `[mailbox] users_file` written as `<dir>/users`; `None`: no users file.
    pub users: Option<String>,
    /// Extra `key = value` lines for `[server]`.
    pub server_extra: Vec<String>,
    /// Extra `key = value` lines for `[sieve]`.
    pub sieve_extra: Vec<String>,
    /// `[scanner] max_scan_size`; `None` keeps the default.
    pub max_scan_size: Option<usize>,
    /// Extra `key = value` lines for `[scanner]`.
    pub scanner_extra: Vec<String>,
    /// Whole sections (`[quarantine]`, `[state]`, ...) appended to the file.
    pub extra_sections: Vec<String>,
    /// `[sieve] before`; `None`: the shipped `sieve/virus-policy.sieve`.
    pub before: Option<Vec<String>>,
    /// Extra `key = value` lines for `[mailbox]`.
    pub mailbox_extra: Vec<String>,
}

impl Options {
    pub fn new(clamd: ClamdAddr) -> Self {
        Options {
            clamd,
            listen: vec!["127.0.0.1:0".into()],
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 64,
            on_failure: "tempfail",
            scan_timeout_secs: 10,
            idle_timeout_secs: 60,
            xforward_from: vec!["127.0.0.0/8".into(), "unix".into()],
            maildir: None,
            users: None,
            server_extra: Vec::new(),
            sieve_extra: Vec::new(),
            max_scan_size: None,
            scanner_extra: Vec::new(),
            extra_sections: Vec::new(),
            before: None,
            mailbox_extra: Vec::new(),
        }
    }
}

/// The repository root (for the shipped sieve/ scripts and fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Env {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub services: Arc<Services>,
}

impl Env {
    pub fn new(options: Options) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let clamd = match &options.clamd {
            ClamdAddr::Unix(p) => format!("unix:{}", p.display()),
            ClamdAddr::Tcp(a) => format!("tcp:{a}"),
        };
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let maildir = options
            .maildir
            .clone()
            .unwrap_or_else(|| "mail/%d/%n/Maildir".to_string());
        let toml = format!(
            r#"
[server]
listen = [{listen}]
hostname = "mx.example.test"
max_message_size = {max_message_size}
max_recipients = {max_recipients}
max_connections = {max_connections}
xforward_from = [{xforward}]
idle_timeout_secs = {idle}
data_timeout_secs = {idle}
shutdown_timeout_secs = 10
{server_extra}
[scanner]
clamd = "{clamd}"
timeout_secs = {scan_timeout}
on_failure = "{on_failure}"
{max_scan_size}
{scanner_extra}
[mailbox]
domains = ["example.test", "other.example"]
maildir = "{maildir}"
{mailbox_extra}
[sieve]
before = [{before}]
personal = "mail/%d/%n/.dovecot.sieve"
default = "{repo}/sieve/default.sieve"
{sieve_extra}
"#,
            listen = q(&options.listen),
            max_message_size = options.max_message_size,
            max_recipients = options.max_recipients,
            max_connections = options.max_connections,
            xforward = q(&options.xforward_from),
            idle = options.idle_timeout_secs,
            scan_timeout = options.scan_timeout_secs,
            on_failure = options.on_failure,
            max_scan_size = options
                .max_scan_size
                .map(|n| format!("max_scan_size = {n}"))
                .unwrap_or_default(),
            repo = repo().display(),
            scanner_extra = options.scanner_extra.join("\n"),
            server_extra = options.server_extra.join("\n"),
            sieve_extra = options.sieve_extra.join("\n"),
            mailbox_extra = options.mailbox_extra.join("\n"),
            before = options
                .before
                .as_deref()
                .map(q)
                .unwrap_or_else(|| format!("\"{}/sieve/virus-policy.sieve\"", repo().display())),
        );
        let mut toml = toml;
        for section in &options.extra_sections {
            toml.push('\n');
            toml.push_str(section);
            toml.push('\n');
        }
        if let Some(users) = &options.users {
            std::fs::write(dir.path().join("users"), users).expect("write users file");
            toml = toml.replace("[mailbox]\n", "[mailbox]\nusers_file = \"users\"\n");
        }
        let config_path = dir.path().join("sievegate.toml");
        std::fs::write(&config_path, toml).expect("write config");
        let config = Config::load(&config_path).expect("valid test config");
        let services = Arc::new(Services::new(config));
        Env {
            dir,
            config_path,
            services,
        }
    }

    /// `<dir>/mail/example.test/<user>/Maildir`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("mail/example.test")
            .join(user)
            .join("Maildir")
    }

    /// Installs `script` as `user`'s personal Sieve script.
    pub fn set_personal(&self, user: &str, script: &str) {
        let path = self
            .dir
            .path()
            .join("mail/example.test")
            .join(user)
            .join(".dovecot.sieve");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, script).expect("write script");
    }

    /// Every message file of `user`'s `folder` (`""` for INBOX, else `.Name`), sorted.
    pub fn messages(&self, user: &str, folder: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let base = self.maildir(user).join(folder);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(base.join(sub)) {
                for e in entries.flatten() {
                    out.push((e.path(), std::fs::read(e.path()).expect("read message")));
                }
            }
        }
        out.sort();
        out
    }

    /// Count of message files anywhere below the mail directory (any user, any folder).
    pub fn total_messages(&self) -> usize {
        count_files(&self.dir.path().join("mail"))
    }

    /// Runs one in-memory session, writing `chunks` one after another, and returns the
    /// whole server output with session ids replaced by `ID`.
    pub async fn transcript(&self, chunks: &[&[u8]]) -> String {
        self.transcript_as(chunks, Peer::Tcp("127.0.0.1:40000".parse().expect("addr")))
            .await
    }

    /// Runs `input` in one write, then split in two at every byte (at most ~300 split
    /// points for long inputs, evenly spread), asserts every run answers the same, and
    /// returns that answer.
    pub async fn transcript_every_split(&self, input: &[u8]) -> String {
        let whole = self.transcript(&[input]).await;
        let step = (input.len() / 300).max(1);
        for k in (1..input.len()).step_by(step) {
            let got = self.transcript(&[&input[..k], &input[k..]]).await;
            assert_eq!(
                got,
                whole,
                "split at byte {k} of {:?}",
                String::from_utf8_lossy(&input[..k.min(80)])
            );
        }
        whole
    }

    pub async fn transcript_as(&self, chunks: &[&[u8]], peer: Peer) -> String {
        let mut live = self.start_session(peer);
        for chunk in chunks {
            live.client.write_all(chunk).await.expect("write");
            tokio::task::yield_now().await;
        }
        normalize(&live.finish().await)
    }

    /// Starts a session over an in-memory stream; the test drives its client end and its
    /// shutdown switch.
    pub fn start_session(&self, peer: Peer) -> LiveSession {
        let (client, server) = tokio::io::duplex(4 << 20);
        let (stop, stop_rx) = watch::channel(false);
        let session = Session::new(server, Arc::clone(&self.services), peer, stop_rx);
        LiveSession {
            client,
            stop,
            task: tokio::spawn(session.run()),
        }
    }
}

/// A running in-memory session (see [`Env::start_session`]).
pub struct LiveSession {
    pub client: DuplexStream,
    /// Sending `true` is SIGTERM for this session.
    pub stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LiveSession {
    /// Reads everything the server sends until it closes (at most 30 s), checks the
    /// session ended without an I/O error, and returns the raw output.
    pub async fn finish(mut self) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), self.client.read_to_end(&mut out))
            .await
            .expect("session answered within 30 s")
            .expect("read");
        self.task.await.expect("session task").expect("session io");
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else if p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "new" || n == "cur" || n == "tmp")
            {
                1
            } else {
                0
            }
        })
        .sum()
}

/// Replaces the session id in per-recipient replies (`<rcpt> 1A2B3C4D5E6F7 Saved`) by `ID`.
pub fn normalize(out: &str) -> String {
    out.split_inclusive("\r\n")
        .map(|line| match line.find("> ") {
            Some(i) if line.starts_with("250 2.0.0 <") => {
                let rest = &line[i + 2..];
                let end = rest.find(' ').unwrap_or(rest.len());
                format!("{}ID{}", &line[..i + 2], &rest[end..])
            }
            _ => line.to_string(),
        })
        .collect()
}

/// Splits a stored file into (our trace headers, the message as received): our block
/// ends with the `X-Virus-Status:` line we add last.
pub fn split_trace(stored: &[u8]) -> (&[u8], &[u8]) {
    let needle = b"X-Virus-Status:";
    let start = stored
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("X-Virus-Status header");
    let end = stored[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| start + i + 1)
        .expect("line end");
    stored.split_at(end)
}
