//! `[managesieve]`: the RFC 5804 server users edit their scripts with; [`RawManageSieve`]
//! as written, [`ManageSieveConfig`] validated. Off unless `listen` names an address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve, ListenAddr, MailboxConfig, SieveConfig};

/// `[managesieve]`: listeners, TLS, authentication, quotas and session limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManageSieve {
    /// `HOST:PORT` or `unix:PATH` entries, like `[server] listen`; empty: no ManageSieve.
    #[serde(default)]
    pub listen: Vec<String>,
    /// PEM certificate chain for STARTTLS; read again on SIGHUP.
    pub tls_cert: Option<String>,
    /// PEM private key for STARTTLS; read again on SIGHUP.
    pub tls_key: Option<String>,
    /// Lets AUTHENTICATE run without TLS, but only on loopback and unix listeners: the
    /// password crosses no network there.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// Where passwords are checked: `"users_file"` (`[mailbox] users_file`) or `"dovecot"`.
    #[serde(default = "defaults::auth")]
    pub auth: String,
    /// Dovecot's auth-client socket (e.g. `/run/dovecot/auth-client`), for `auth = "dovecot"`.
    pub dovecot_auth_socket: Option<String>,
    /// Scripts one user may keep (`QUOTA/MAXSCRIPTS`).
    #[serde(default = "defaults::max_scripts")]
    pub max_scripts: usize,
    /// Largest script accepted (`QUOTA/MAXSIZE`); default `[sieve] max_script_size`, so
    /// nothing is accepted that delivery would skip as too large.
    pub max_script_size: Option<u64>,
    /// Bytes of all of one user's scripts together (`QUOTA/MAXSIZE`).
    #[serde(default = "defaults::max_total_size")]
    pub max_total_size: u64,
    /// Concurrent ManageSieve connections; more get `BYE` at once.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Seconds a session may wait for the start of the next command.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Seconds one command may take to arrive once it started (its literals included).
    #[serde(default = "defaults::command_timeout_secs")]
    pub command_timeout_secs: u64,
    /// Commands one session may send; a client past it gets `BYE` (a runaway or hostile
    /// loop, not an editor: those send a handful).
    #[serde(default = "defaults::max_commands")]
    pub max_commands: usize,
}

impl Default for RawManageSieve {
    fn default() -> Self {
        RawManageSieve {
            listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext_auth: false,
            auth: defaults::auth(),
            dovecot_auth_socket: None,
            max_scripts: defaults::max_scripts(),
            max_script_size: None,
            max_total_size: defaults::max_total_size(),
            max_connections: defaults::max_connections(),
            idle_timeout_secs: defaults::idle_timeout_secs(),
            command_timeout_secs: defaults::command_timeout_secs(),
            max_commands: defaults::max_commands(),
        }
    }
}

/// Where passwords are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthBackend {
    /// The passwd-file of `[mailbox] users_file`.
    UsersFile(PathBuf),
    /// Dovecot's auth service at this auth-client socket.
    Dovecot(PathBuf),
}

/// Validated `[managesieve]`.
#[derive(Debug, Clone)]
pub struct ManageSieveConfig {
    /// Listeners; empty: the server is off.
    pub listen: Vec<ListenAddr>,
    /// Certificate and key files; `None`: no STARTTLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// AUTHENTICATE without TLS on loopback and unix listeners.
    pub allow_plaintext_auth: bool,
    /// Where passwords are checked.
    pub auth: AuthBackend,
    pub max_scripts: usize,
    pub max_script_size: u64,
    pub max_total_size: u64,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub command_timeout: Duration,
    pub max_commands: usize,
    /// Valid but probably unintended settings, for `check-config` and the startup log.
    pub warnings: Vec<String>,
}

impl ManageSieveConfig {
    /// Whether the server runs at all.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

/// Whether a listener is one where `allow_plaintext_auth` applies: a unix socket or a
/// loopback address (the password never leaves the host).
pub fn plaintext_allowed_on(addr: &ListenAddr) -> bool {
    match addr {
        ListenAddr::Unix(_) => true,
        ListenAddr::Tcp(sa) => sa.ip().is_loopback(),
    }
}

impl RawManageSieve {
    /// Checks the section against the `[mailbox]` and `[sieve]` it depends on.
    pub(super) fn validate(
        &self,
        base: &Path,
        mailbox: &MailboxConfig,
        sieve: &SieveConfig,
        problems: &mut Vec<String>,
    ) -> ManageSieveConfig {
        let m = self;
        let mut warnings = Vec::new();
        let mut listen = Vec::new();
        for entry in &m.listen {
            match entry.strip_prefix("unix:") {
                Some("") => problems.push("managesieve.listen: \"unix:\" needs a path".into()),
                Some(path) => listen.push(ListenAddr::Unix(resolve(base, path))),
                None => match entry.parse() {
                    Ok(addr) => listen.push(ListenAddr::Tcp(addr)),
                    Err(_) => problems.push(format!(
                        "managesieve.listen: {entry:?} is neither HOST:PORT (an IP address and port) nor unix:PATH"
                    )),
                },
            }
        }
        let tls = match (&m.tls_cert, &m.tls_key) {
            // Read (and their problems reported) when the server starts and on SIGHUP.
            (Some(cert), Some(key)) => Some((resolve(base, cert), resolve(base, key))),
            (None, None) => None,
            _ => {
                problems.push("managesieve.tls_cert and tls_key: set both or neither".into());
                None
            }
        };
        let auth = match m.auth.as_str() {
            "users_file" => match &mailbox.users_file {
                Some(path) => AuthBackend::UsersFile(path.clone()),
                None => {
                    if !listen.is_empty() {
                        problems.push("managesieve.auth = \"users_file\" needs [mailbox] users_file (its password field is checked)".into());
                    }
                    AuthBackend::UsersFile(PathBuf::new())
                }
            },
            "dovecot" => match &m.dovecot_auth_socket {
                Some(path) => AuthBackend::Dovecot(resolve(base, path)),
                None => {
                    problems.push(
                        "managesieve.auth = \"dovecot\" needs managesieve.dovecot_auth_socket"
                            .into(),
                    );
                    AuthBackend::Dovecot(PathBuf::new())
                }
            },
            other => {
                problems.push(format!(
                    "managesieve.auth: {other:?} is neither \"users_file\" nor \"dovecot\""
                ));
                AuthBackend::UsersFile(PathBuf::new())
            }
        };
        if !listen.is_empty() {
            if sieve.scripts.personal_dir.is_none() || sieve.personal.is_none() {
                problems.push("managesieve.listen: needs [sieve] personal_dir (where scripts are kept) and [sieve] personal (the active-script symlink)".into());
            }
            if tls.is_none() && !m.allow_plaintext_auth {
                problems.push("managesieve: without tls_cert and tls_key nobody can log in; set them, or allow_plaintext_auth for loopback and unix listeners".into());
            }
            if m.allow_plaintext_auth {
                for addr in listen.iter().filter(|a| !plaintext_allowed_on(a)) {
                    warnings.push(format!(
                        "managesieve.allow_plaintext_auth does not apply to {addr}: AUTHENTICATE there still needs STARTTLS (only loopback and unix listeners may log in without TLS)"
                    ));
                }
            }
        }
        let max_script_size = m.max_script_size.unwrap_or(sieve.scripts.max_script_size);
        if max_script_size > sieve.scripts.max_script_size {
            problems.push(format!(
                "managesieve.max_script_size: {max_script_size} is above [sieve] max_script_size ({}): such scripts would be skipped at delivery",
                sieve.scripts.max_script_size
            ));
        }
        for (key, value) in [
            ("managesieve.max_scripts", m.max_scripts as u64),
            ("managesieve.max_script_size", max_script_size),
            ("managesieve.max_total_size", m.max_total_size),
            ("managesieve.max_connections", m.max_connections as u64),
            ("managesieve.idle_timeout_secs", m.idle_timeout_secs),
            ("managesieve.command_timeout_secs", m.command_timeout_secs),
            ("managesieve.max_commands", m.max_commands as u64),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        ManageSieveConfig {
            listen,
            tls,
            allow_plaintext_auth: m.allow_plaintext_auth,
            auth,
            max_scripts: m.max_scripts,
            max_script_size,
            max_total_size: m.max_total_size,
            max_connections: m.max_connections,
            idle_timeout: Duration::from_secs(m.idle_timeout_secs),
            command_timeout: Duration::from_secs(m.command_timeout_secs),
            max_commands: m.max_commands,
            warnings,
        }
    }
}

/// Defaults of the `[managesieve]` keys.
mod defaults {
    pub fn auth() -> String {
        "users_file".into()
    }
    pub fn max_scripts() -> usize {
        100
    }
    pub fn max_total_size() -> u64 {
        10 * 1024 * 1024
    }
    pub fn max_connections() -> usize {
        100
    }
    pub fn idle_timeout_secs() -> u64 {
        600
    }
    pub fn command_timeout_secs() -> u64 {
        120
    }
    pub fn max_commands() -> usize {
        1000
    }
}
