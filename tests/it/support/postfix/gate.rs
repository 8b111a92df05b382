//! The real sievegate binary set up to sit behind a private Postfix: its listeners, socket
//! permissions and XFORWARD trust as the README tells an admin.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::{Postfix, PostfixOptions};
use crate::support::binary::Running;
use crate::support::env::{Env, Options};

/// How Postfix reaches sievegate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lmtp {
    /// `lmtp:unix:PATH`: the socket with `socket_group = "postfix"`, mode 0660, and
    /// `xforward_from = ["unix:postfix"]`, as the README tells an admin.
    Unix,
    /// `lmtp:inet:127.0.0.1:PORT`, with `xforward_from` trusting 127.0.0.1.
    Inet,
}

/// The real sievegate binary set up to sit behind a private Postfix.
pub struct Gate {
    pub env: Env,
    pub running: Option<Running>,
    pub lmtp: Lmtp,
    /// The unix socket.
    socket: PathBuf,
    /// Holds the socket unless the test chose its place; searchable by `postfix` (a plain
    /// tempdir is 0700).
    _sock_dir: Option<TempDir>,
}

impl Gate {
    /// Writes the config (`options` with the listeners and trust of `lmtp`) and starts
    /// `sievegate serve`.
    pub fn start(lmtp: Lmtp, options: Options) -> Gate {
        Gate::start_with_mailbox(lmtp, options, &[])
    }

    /// [`Gate::start`] with extra `[mailbox]` lines (e.g. `owner = "mail"`).
    pub fn start_with_mailbox(lmtp: Lmtp, options: Options, mailbox: &[&str]) -> Gate {
        let sock_dir = tempfile::Builder::new()
            .prefix("sievegate-sock-")
            .tempdir()
            .expect("socket tempdir");
        fs::set_permissions(sock_dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod socket dir");
        let socket = sock_dir.path().join("lmtp.sock");
        let mut gate = Gate::build(lmtp, options, socket, mailbox);
        gate._sock_dir = Some(sock_dir);
        gate
    }

    /// [`Gate::start`] with the unix socket at `socket` (e.g. inside Postfix's queue
    /// directory, for a chrooted lmtp client).
    pub fn start_at(lmtp: Lmtp, options: Options, socket: PathBuf) -> Gate {
        Gate::build(lmtp, options, socket, &[])
    }

    fn build(lmtp: Lmtp, mut options: Options, socket: PathBuf, mailbox: &[&str]) -> Gate {
        // The TCP listener also tells `Running::start` that the server is up.
        options.listen = vec![
            "127.0.0.1:0".to_string(),
            format!("unix:{}", socket.display()),
        ];
        options
            .server_extra
            .push("socket_group = \"postfix\"".to_string());
        options.xforward_from = match lmtp {
            Lmtp::Unix => vec!["unix:postfix".to_string()],
            Lmtp::Inet => vec!["127.0.0.1".to_string()],
        };
        let env = Env::new(options);
        if !mailbox.is_empty() {
            // Env has no knob for [mailbox]; the binary reads the file, so add them there.
            let config = fs::read_to_string(&env.config_path).expect("read config");
            let lines: String = mailbox.iter().map(|l| format!("{l}\n")).collect();
            let config = config.replacen("[mailbox]\n", &format!("[mailbox]\n{lines}"), 1);
            fs::write(&env.config_path, config).expect("write config");
        }
        let running = Running::start(&env.config_path);
        Gate {
            env,
            running: Some(running),
            lmtp,
            socket,
            _sock_dir: None,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("sievegate is running")
    }

    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// Postfix's `virtual_transport` for this gate.
    pub fn transport(&self) -> String {
        match self.lmtp {
            Lmtp::Unix => format!("lmtp:unix:{}", self.socket().display()),
            Lmtp::Inet => format!("lmtp:inet:{}", self.running().addr),
        }
    }

    /// Starts a private Postfix delivering to this gate.
    pub fn postfix(&self, tweak: impl FnOnce(&mut PostfixOptions)) -> Postfix {
        let mut options = PostfixOptions::new(self.transport());
        tweak(&mut options);
        Postfix::start(options)
    }

    /// SIGKILL, no goodbye: what a crash or the OOM killer does. The logs so far.
    pub fn kill9(&mut self) -> String {
        let running = self.running.take().expect("sievegate is running");
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(running.pid(), libc::SIGKILL) };
        let logs = running.logs();
        drop(running); // reaps it
        logs
    }

    /// SIGTERM and wait for the exit (in-flight deliveries finish). The logs so far.
    pub fn terminate(&mut self) -> String {
        let mut running = self.running.take().expect("sievegate is running");
        let status = running.terminate(Duration::from_secs(30));
        assert!(status.success(), "sievegate exited with {status}");
        running.logs()
    }

    /// Starts sievegate again with the same config (same unix socket; the stale socket file
    /// of a killed server is replaced).
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "kill it first");
        self.running = Some(Running::start(&self.env.config_path));
    }

    /// Every message file in `user`'s Maildir (any folder, new/ and cur/), sorted.
    pub fn stored(&self, user: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let root = self.env.maildir(user);
        let mut out = Vec::new();
        let mut folders = vec![root.clone()];
        if let Ok(entries) = fs::read_dir(&root) {
            folders.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| e.path()),
            );
        }
        for folder in folders {
            for sub in ["new", "cur"] {
                for e in fs::read_dir(folder.join(sub))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    out.push((e.path(), fs::read(e.path()).expect("read message")));
                }
            }
        }
        out.sort();
        out
    }
}
