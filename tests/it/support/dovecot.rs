//! A real Dovecot LMTP server with Pigeonhole Sieve (`/usr/sbin/dovecot -F`), private to one
//! test: its own config file, `base_dir`, `state_dir`, log and Maildir root in a temp
//! directory, listening on `127.0.0.1:<free port>`. It is the reference that the differential
//! test (`tests/it/pigeonhole.rs`) compares sievegate with.
//!
//! Scripts are laid out per user so that every test user can have its own chain, which
//! Pigeonhole allows because its plugin settings expand `%n` (the recipient's local part):
//! - `sieve/<n>/personal.sieve`: the personal script, in a directory the mail user owns
//!   (Pigeonhole compiles it there on first use, as with a real `~/.dovecot.sieve`); the
//!   directory is also the user's script storage, where `include :personal` looks;
//! - `global/shared/<name>.sieve`: `include :global` scripts (`sieve_global`);
//! - `global/<n>/before/NN.sieve`, `global/<n>/after/NN.sieve`, `global/<n>/default.sieve`:
//!   `sieve_before`, `sieve_after` (directories: run in name order) and `sieve_default`.
//!   They are root-owned like real global scripts, so they are precompiled with `sievec`:
//!   the mail user could not write the `.svbin` beside them.
//!
//! Dovecot refuses to access mail as uid 0, so deliveries run as Debian's `mail` user.
//! Tests must fail, never skip, when Dovecot, sievec or that user is missing: a differential
//! test that passes without its reference proves nothing.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const DOVECOT_BIN: &str = "/usr/sbin/dovecot";
const SIEVEC_BIN: &str = "/usr/bin/sievec";
const PACKAGES: &str = "apt-get install dovecot-core dovecot-lmtpd dovecot-sieve";

/// The user deliveries run as. Debian's base system always has it (uid 8).
const MAIL_USER: &str = "mail";

/// The domain of every test recipient; `%d` in the Maildir template.
pub const DOMAIN: &str = "example.test";

/// Header that Pigeonhole's `virustest` reads (`sieve_virustest_status_header`): a test puts
/// `clean` or `infected` there so that Pigeonhole sees what clamd tells sievegate (which
/// reads the verdict from clamd, not from a header). Not an `X-Virus-*` name, because
/// sievegate strips those from incoming mail.
pub const VIRUS_HEADER: &str = "X-Diff-Scan";

/// Time from launch until the LMTP greeting: about 0.1 s here; generous for a shared machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Dovecot's master waits for its children on SIGTERM; about 1 s here.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A system user by name.
#[derive(Debug, Clone)]
pub struct MailUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl MailUser {
    /// Looks up [`MAIL_USER`]; panics (the test fails) when it does not exist.
    pub fn lookup() -> MailUser {
        let user = nix::unistd::User::from_name(MAIL_USER)
            .expect("passwd lookup")
            .unwrap_or_else(|| {
                panic!(
                    "no `{MAIL_USER}` user: Dovecot needs a non-root mail user (Debian's \
                     base-passwd has it; else `useradd --system --no-create-home {MAIL_USER}`)"
                )
            });
        MailUser {
            name: MAIL_USER.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// Gives `path` to this user.
    pub fn chown(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), self.name));
    }
}

/// Global scripts installed for one user, as files (the same files serve sievegate).
#[derive(Debug, Clone, Default)]
pub struct GlobalScripts {
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    pub default: Option<PathBuf>,
}

/// What a test's Dovecot does beyond plain LMTP delivery.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Send redirects, vacation replies and notifications there over SMTP
    /// (`submission_host`) instead of failing to.
    pub submission: Option<SocketAddr>,
    /// A passwd-file (its text) for the passdb, served on the auth-client socket
    /// [`Dovecot::auth_socket`]; without it the passdb lets anybody in without a password
    /// (LMTP never asks it).
    pub passwd: Option<String>,
    /// The inbox namespace's prefix (`namespace inbox { prefix = }`); `None`: Dovecot's
    /// implicit default namespace (prefix `""`).
    pub namespace_prefix: Option<String>,
}

/// A running private Dovecot; stopped on drop (also when the test panics).
pub struct Dovecot {
    /// `None` after [`Dovecot::keep_files`]; `root` stays valid.
    dir: Option<TempDir>,
    root: PathBuf,
    child: Option<Child>,
    port: u16,
    user: MailUser,
}

impl Dovecot {
    /// Writes the configuration, starts Dovecot in the foreground and waits until its LMTP
    /// listener greets.
    pub fn start() -> Dovecot {
        Dovecot::start_sending_to(None)
    }

    /// Like [`Dovecot::start`]; with `submission`, Dovecot sends redirects, vacation replies
    /// and notifications there over SMTP (`submission_host`) instead of failing to.
    pub fn start_sending_to(submission: Option<SocketAddr>) -> Dovecot {
        Dovecot::start_with(Options {
            submission,
            ..Options::default()
        })
    }

    /// Like [`Dovecot::start`], with the [`Options`].
    pub fn start_with(options: Options) -> Dovecot {
        for bin in [DOVECOT_BIN, SIEVEC_BIN] {
            assert!(Path::new(bin).exists(), "{bin} not found: {PACKAGES}");
        }
        assert!(
            Path::new("/usr/lib/dovecot/lmtp").exists(),
            "Dovecot's lmtp service not found: {PACKAGES}"
        );
        assert!(
            Path::new("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists(),
            "Pigeonhole's sieve plugin not found: {PACKAGES}"
        );
        assert_eq!(
            nix::unistd::geteuid().as_raw(),
            0,
            "the Dovecot differential test needs root: Dovecot's master switches to the `{MAIL_USER}` user"
        );
        let user = MailUser::lookup();
        let dir = tempfile::Builder::new()
            .prefix("sievegate-dovecot-")
            .tempdir()
            .expect("create dovecot tempdir");
        let root = dir.path();
        // The mail user must traverse the tree down to its Maildirs and scripts.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("chmod root");
        for dir in root.ancestors().skip(1) {
            let mode = fs::metadata(dir)
                .expect("stat temp dir parent")
                .permissions()
                .mode();
            assert!(
                mode & 0o001 != 0,
                "the `{MAIL_USER}` user cannot reach {}: {} is mode {:o}; set TMPDIR to a \
                 directory others can traverse (e.g. /tmp)",
                root.display(),
                dir.display(),
                mode & 0o7777
            );
        }
        for sub in ["run", "state", "global", "global/shared"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
        }
        for sub in ["mail", "home", "sieve"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
            user.chown(&root.join(sub));
        }
        let port = free_tcp_port();
        fs::write(
            root.join("dovecot.conf"),
            config(root, port, &user, &options),
        )
        .expect("write config");
        if let Some(passwd) = &options.passwd {
            fs::write(root.join("passwd"), passwd).expect("write passwd");
        }
        let root = root.to_owned();
        let mut dovecot = Dovecot {
            dir: Some(dir),
            root,
            child: None,
            port,
            user,
        };
        dovecot.launch();
        dovecot
    }

    /// The LMTP listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Leaves the directory (config, logs, scripts, Maildirs) in place after the test, for
    /// a post-mortem.
    pub fn keep_files(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
    }

    /// The auth-client listener of the auth service (`service auth { unix_listener }`).
    pub fn auth_socket(&self) -> PathBuf {
        self.root().join("run").join("sievegate-auth")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root().join("dovecot.conf")
    }

    /// `<local>@example.test`'s Maildir.
    pub fn maildir(&self, local: &str) -> PathBuf {
        self.root()
            .join("mail")
            .join(DOMAIN)
            .join(local)
            .join("Maildir")
    }

    /// The personal script path with sievegate's `%n` template variable: the same files
    /// Pigeonhole reads.
    pub fn personal_template(&self) -> String {
        format!("{}/sieve/%n/personal.sieve", self.root().display())
    }

    /// Creates `local`'s home directory, where Pigeonhole keeps its duplicate database
    /// (`.dovecot.lda-dupes`: vacation, `duplicate` and redirect records). Dovecot does not
    /// create it when the mail lives elsewhere.
    pub fn add_user(&self, local: &str) {
        let domain = self.root().join("home").join(DOMAIN);
        for dir in [domain.clone(), domain.join(local)] {
            if !dir.exists() {
                fs::create_dir(&dir).expect("mkdir home");
                self.user.chown(&dir);
            }
        }
    }

    /// Installs `script` as `local`'s personal script.
    pub fn set_personal(&self, local: &str, script: &str) -> PathBuf {
        let dir = self.root().join("sieve").join(local);
        fs::create_dir_all(&dir).expect("mkdir personal dir");
        self.user.chown(&dir);
        let path = dir.join("personal.sieve");
        fs::write(&path, script).expect("write personal script");
        self.user.chown(&path);
        path
    }

    /// Installs `name.sieve` in `local`'s personal script directory (`include :personal`).
    pub fn set_personal_include(&self, local: &str, name: &str, script: &str) {
        let dir = self.root().join("sieve").join(local);
        fs::create_dir_all(&dir).expect("mkdir personal dir");
        self.user.chown(&dir);
        let path = dir.join(format!("{name}.sieve"));
        fs::write(&path, script).expect("write personal include");
        self.user.chown(&path);
    }

    /// The directory of `include :global` scripts (Pigeonhole's `sieve_global`).
    pub fn global_include_dir(&self) -> PathBuf {
        self.root().join("global").join("shared")
    }

    /// Installs `name.sieve` for `include :global` and precompiles it.
    pub fn set_global_include(&self, name: &str, script: &str) {
        let path = self.global_include_dir().join(format!("{name}.sieve"));
        fs::write(&path, script).expect("write global include");
        self.sievec(&path);
    }

    /// Installs `local`'s global scripts and precompiles them with `sievec`. Panics with
    /// sievec's output if one does not compile: global scripts of a test must be valid.
    pub fn set_globals(
        &self,
        local: &str,
        before: &[&str],
        after: &[&str],
        default: Option<&str>,
    ) -> GlobalScripts {
        let base = self.root().join("global").join(local);
        let mut scripts = GlobalScripts::default();
        for (slot, texts, out) in [
            ("before", before, &mut scripts.before),
            ("after", after, &mut scripts.after),
        ] {
            if texts.is_empty() {
                continue;
            }
            let dir = base.join(slot);
            fs::create_dir_all(&dir).expect("mkdir global dir");
            for (i, text) in texts.iter().enumerate() {
                // Pigeonhole runs a directory's scripts in name order: zero-pad the index.
                let path = dir.join(format!("{:02}.sieve", i + 1));
                fs::write(&path, text).expect("write global script");
                self.sievec(&path);
                out.push(path);
            }
        }
        if let Some(text) = default {
            fs::create_dir_all(&base).expect("mkdir global dir");
            let path = base.join("default.sieve");
            fs::write(&path, text).expect("write default script");
            self.sievec(&path);
            scripts.default = Some(path);
        }
        scripts
    }

    /// Dovecot's log (including Pigeonhole's messages) and its stdout/stderr so far.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.root().join("dovecot.log")).unwrap_or_default();
        let out = fs::read_to_string(self.root().join("dovecot.out")).unwrap_or_default();
        format!("--- dovecot.log ---\n{log}--- dovecot stdout/stderr ---\n{out}")
    }

    /// Log lines about one user's deliveries (`lmtp(<local>@example.test)...`), then the
    /// compile errors Pigeonhole writes beside the personal script (`pigeonhole.log`).
    pub fn user_log(&self, local: &str) -> Vec<String> {
        let needle = format!("({local}@{DOMAIN})");
        let mut lines: Vec<String> = fs::read_to_string(self.root().join("dovecot.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_owned)
            .collect();
        let script_log = self.root().join("sieve").join(local).join("pigeonhole.log");
        lines.extend(
            fs::read_to_string(script_log)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.contains("started log at"))
                .map(|l| format!("pigeonhole.log: {l}")),
        );
        lines
    }

    /// SIGTERM, wait (Dovecot's master stops its children first), SIGKILL after a timeout.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn sievec(&self, script: &Path) {
        let out = Command::new(SIEVEC_BIN)
            .arg("-c")
            .arg(self.config_path())
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {SIEVEC_BIN}: {e}"));
        assert!(
            out.status.success(),
            "sievec {} failed ({}):\n{}{}\nscript:\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(script).unwrap_or_default()
        );
    }

    fn launch(&mut self) {
        // `-F`: stay in the foreground, so the master is our child (stop = SIGTERM to it).
        // Its stdout/stderr go to a file: a daemon's inherited pipes would hang a reader.
        let out = fs::File::create(self.root().join("dovecot.out")).expect("dovecot.out");
        let err = out.try_clone().expect("dup dovecot.out");
        let mut command = Command::new(DOVECOT_BIN);
        command
            .arg("-F")
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl(2) is async-signal-safe, the only kind of call allowed between fork
        // and exec. If the test process dies without running Drop, the master gets SIGTERM
        // and takes its children down with it.
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
                .unwrap_or_else(|e| panic!("spawn {DOVECOT_BIN}: {e}")),
        );
        self.wait_ready(started);
    }

    /// Polls until the LMTP listener accepts and sends its `220` greeting, which needs the
    /// master, the lmtp process and its configuration all up.
    fn wait_ready(&mut self, started: Instant) {
        loop {
            if greets(self.addr()) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait dovecot"))
            {
                panic!("dovecot exited during startup ({status})\n{}", self.log());
            }
            if started.elapsed() > START_TIMEOUT {
                let log = self.log();
                self.stop();
                panic!("dovecot did not greet on LMTP within {START_TIMEOUT:?}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The whole configuration: nothing is read from /etc/dovecot.
fn config(root: &Path, port: u16, user: &MailUser, options: &Options) -> String {
    let passdb = if options.passwd.is_some() {
        format!(
            "driver = passwd-file\n  args = scheme=CRYPT username_format=%Lu {}/passwd",
            root.display()
        )
    } else {
        "driver = static\n  args = nopassword=y".to_string()
    };
    let namespace = options
        .namespace_prefix
        .as_ref()
        .map(|prefix| {
            format!("namespace inbox {{\n  inbox = yes\n  separator = .\n  prefix = {prefix}\n}}\n")
        })
        .unwrap_or_default();
    let root = root.display();
    let submission = options
        .submission
        .map(|addr| format!("submission_host = {addr}\n"))
        .unwrap_or_default();
    let (name, uid, gid) = (&user.name, user.uid, user.gid);
    format!(
        r#"# Private Dovecot for sievegate's differential test.
base_dir = {root}/run
state_dir = {root}/state
instance_name = sievegate-diff-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
debug_log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
hostname = mx.{DOMAIN}
postmaster_address = postmaster@{DOMAIN}
# Nothing may leave this machine: a redirect, vacation or reject would run this.
# With a submission_host (the differential test's smtp-sink) that is used instead.
sendmail_path = /bin/false
{submission}
# Dovecot refuses mail access as root.
mail_uid = {name}
mail_gid = {name}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%d/%n/Maildir
{namespace}
# Like sievegate: a fileinto into a missing folder without :create goes to INBOX, and
# user+detail delivers to user (but not into a "detail" folder).
lda_mailbox_autocreate = no
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no

userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%d/%n allow_all_users=yes
}}
passdb {{
  {passdb}
}}
# Logins through the auth-client protocol (sievegate's auth::dovecot); root-only socket.
auth_mechanisms = plain
service auth {{
  unix_listener sievegate-auth {{
    mode = 0600
  }}
}}

service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}

protocol lmtp {{
  mail_plugins = sieve
}}

plugin {{
  # Per-user chains: %n is the recipient's local part (see tests/it/support/dovecot.rs).
  # The user's script directory (`include :personal`) holds the active script itself.
  sieve = file:{root}/sieve/%n;active={root}/sieve/%n/personal.sieve
  sieve_global = {root}/global/shared
  # Not personal.sieve.log: with `personal_dir` set, sievegate writes that one itself.
  sieve_user_log = {root}/sieve/%n/pigeonhole.log
  sieve_before = {root}/global/%n/before
  sieve_after = {root}/global/%n/after
  sieve_default = {root}/global/%n/default.sieve
  sieve_extensions = +editheader +virustest +vacation-seconds
  sieve_virustest_status_type = text
  sieve_virustest_status_header = {VIRUS_HEADER}
  sieve_virustest_text_value1 = clean
  sieve_virustest_text_value5 = infected
}}
"#
    )
}

/// True when an LMTP server at `addr` answers with a `220` greeting.
fn greets(addr: SocketAddr) -> bool {
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
    let greeted = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220 ");
    let _ = (&stream).write_all(b"QUIT\r\n");
    greeted
}

/// A port that was free a moment ago; Dovecot binds it right after. A collision makes the
/// startup fail loudly, never pass.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
