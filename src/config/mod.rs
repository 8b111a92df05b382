//! Configuration: the TOML file (public interface: key names are relied on by outside
//! harnesses) → [`RawConfig`] (serde, unknown keys refused) → validated [`Config`]. Every
//! problem is collected and reported at once, so an admin fixes the file in one pass.
//! Relative paths resolve against the directory of the config file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::scan::ClamdAddr;

mod acl;
mod delivery;
mod log;
mod notify;
mod sieve;
mod spool;
#[cfg(test)]
use acl::user_id;
pub use acl::XforwardAcl;
use acl::{group_id, parse_acl_entry, AclEntry};
pub use log::{LogConfig, LogFormat, RawLog};
pub use notify::{is_plain_address, NotifyConfig, RawNotify, Relay};
pub use sieve::{MessageLimits, RawSieve, SieveConfig};
pub mod abuse;
pub use abuse::{AbuseConfig, RawAbuse};

/// The whole file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub scanner: RawScanner,
    pub mailbox: RawMailbox,
    #[serde(default)]
    pub sieve: RawSieve,
    #[serde(default)]
    pub quarantine: RawQuarantine,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub notify: RawNotify,
    #[serde(default)]
    pub abuse: RawAbuse,
    #[serde(default)]
    pub log: RawLog,
}

/// `[quarantine]`: whole-message quarantine of infected mail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Keep a copy of every message whose virustest reaches `min_virustest`.
    #[serde(default)]
    pub enabled: bool,
    /// Where the copies go, one `<id>.eml` file each; required when enabled.
    pub dir: Option<String>,
    /// The lowest virustest quarantined: 4 also keeps heuristic hits (the false positives
    /// an admin wants back), 5 only named viruses.
    #[serde(default = "defaults::min_virustest")]
    pub min_virustest: u8,
    /// Entries older than this are purged by the server (file and index).
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u64,
}

impl Default for RawQuarantine {
    fn default() -> Self {
        RawQuarantine {
            enabled: false,
            dir: None,
            min_virustest: defaults::min_virustest(),
            retention_days: defaults::retention_days(),
        }
    }
}

/// `[state]`: the embedded state store (quarantine index, caches, rate limits, queue).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Directory of `sievegate.db`. Without it, state lives in memory and is lost at
    /// restart (and the quarantine cannot be enabled).
    pub dir: Option<String>,
}

/// `[server]`: listeners, limits and timeouts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `host:port` for TCP, `unix:PATH` for a unix socket.
    pub listen: Vec<String>,
    /// Name in the greeting, LHLO reply and `Received` header; defaults to the host name.
    pub hostname: Option<String>,
    /// Largest message accepted, in bytes; advertised as SIZE.
    #[serde(default = "defaults::max_message_size")]
    pub max_message_size: u64,
    /// Concurrent sessions; more get `421` and are closed.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Of `max_connections`, slots only trusted peers (those in `xforward_from`: the MTA)
    /// may use, so slow or hostile clients cannot take every slot. Default: an eighth of
    /// `max_connections`.
    pub reserved_connections: Option<usize>,
    /// Recipients per transaction; more get `452 4.5.3` (the client sends them later).
    #[serde(default = "defaults::max_recipients")]
    pub max_recipients: usize,
    /// Trusted peers, allowed to send XFORWARD and to use the reserved connections: CIDR
    /// networks or addresses, `unix:USER` / `unix:UID` (unix-socket peers by their uid), or
    /// `unix` (any peer that can open the unix socket).
    /// Default: `["unix:postfix"]` (trusting no one, silently, where there is no such
    /// user).
    pub xforward_from: Option<Vec<String>>,
    /// Seconds a whole command line may take to arrive (a total, not per byte).
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Seconds DATA may take on top of the allowance of `min_data_rate` (a total).
    #[serde(default = "defaults::data_timeout_secs")]
    pub data_timeout_secs: u64,
    /// Bytes per second: every byte of DATA received extends its deadline by
    /// `1 / min_data_rate` seconds (Postfix's `smtpd_min_data_rate`).
    #[serde(default = "defaults::min_data_rate")]
    pub min_data_rate: u64,
    /// Longest command line, in bytes (DATA lines are not limited by this).
    #[serde(default = "defaults::max_line_length")]
    pub max_line_length: usize,
    /// Seconds SIGTERM waits for in-flight deliveries before exiting anyway.
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// Permissions of unix listening sockets, octal.
    #[serde(default = "defaults::socket_mode")]
    pub socket_mode: String,
    /// Group (name or gid) of unix listening sockets, e.g. `postfix`; default: the
    /// process's group. Setting it needs root or membership of that group.
    pub socket_group: Option<String>,
    /// `HOST:PORT` where Prometheus metrics are served (`GET /metrics`); default: off.
    pub metrics_listen: Option<String>,
    /// Messages larger than this many bytes are spooled to a file in `spool_dir` while
    /// they arrive, instead of memory; 0 spools every message.
    #[serde(default = "spool::default_threshold")]
    pub spool_threshold: u64,
    /// Directory of the spool files (unnamed, gone with their message). Default:
    /// `<state.dir>/spool`, else `/var/tmp/sievegate`.
    pub spool_dir: Option<String>,
    /// Bytes of messages parsed for Sieve at once (the parser decodes MIME parts in
    /// memory); deliveries beyond it wait their turn.
    #[serde(default = "spool::default_max_parse_memory")]
    pub max_parse_memory: u64,
}

/// `[scanner]`: the clamd connection and what to do when it fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanner {
    /// `false`: no message is sent to clamd; every one gets virustest 0 (`Not scanned`).
    #[serde(default = "delivery::defaults::scanner_enabled")]
    pub enabled: bool,
    /// `unix:PATH` or `tcp:HOST:PORT`.
    pub clamd: String,
    #[serde(default = "defaults::scan_timeout_secs")]
    pub timeout_secs: u64,
    /// `tempfail` (451, the MTA retries) or `deliver-unscanned` (virustest sees 0).
    #[serde(default = "defaults::on_failure")]
    pub on_failure: String,
    /// Signature name prefixes that mean "probably a virus" (virustest 4) rather than 5.
    #[serde(default = "defaults::heuristic_prefixes")]
    pub heuristic_prefixes: Vec<String>,
    /// Larger messages are not scanned; they are delivered with virustest 0.
    #[serde(default = "defaults::max_scan_size")]
    pub max_scan_size: u64,
    /// Seconds between PINGs while clamd is down (0: no probe, no gating at MAIL).
    #[serde(default = "delivery::defaults::health_interval_secs")]
    pub health_interval_secs: u64,
    /// Pass clamd a read-only descriptor of the message (FILDES) on a unix socket.
    #[serde(default = "delivery::defaults::pass_fd")]
    pub pass_fd: bool,
}

/// `[mailbox]`: which recipients are local and where their Maildir lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub domains: Vec<String>,
    /// Dovecot-style template: `%u` user@domain, `%n` local part, `%d` domain.
    pub maildir: String,
    #[serde(default = "defaults::recipient_delimiter")]
    pub recipient_delimiter: String,
    /// Dovecot passwd-file listing the users that exist; others get 550 5.1.1 at RCPT.
    /// Without it every local part at `domains` is accepted. Its home field is `%h`.
    pub users_file: Option<String>,
    /// Special-use flag → folder, for Sieve `fileinto :specialuse` (RFC 8579). Dovecot keeps
    /// special use in its config, not in the Maildir: repeat its `special_use` settings here.
    /// Default: Dovecot's `\Drafts` Drafts, `\Junk` Junk, `\Sent` Sent, `\Trash` Trash.
    pub special_use: Option<std::collections::BTreeMap<String, String>>,
    /// Concurrent LMTP deliveries per user, across sessions (Dovecot's
    /// `lmtp_user_concurrency_limit`); more get 451 4.3.0 at RCPT. 0: unlimited.
    #[serde(default = "delivery::defaults::user_concurrency_limit")]
    pub user_concurrency_limit: usize,
    /// Owner (user name or uid) of what the store creates; needs root. Default: ours.
    pub owner: Option<String>,
    /// Group (name or gid) of what the store creates. Default: the owner's primary group.
    pub group: Option<String>,
    /// Mode of created files (octal).
    #[serde(default = "delivery::defaults::file_mode")]
    pub file_mode: String,
    /// Mode of created directories (octal).
    #[serde(default = "delivery::defaults::dir_mode")]
    pub dir_mode: String,
}

mod defaults {
    pub fn spam_score_max() -> f64 {
        15.0
    }
    pub fn max_message_size() -> u64 {
        50 * 1024 * 1024
    }
    pub fn max_connections() -> usize {
        256
    }
    pub fn max_recipients() -> usize {
        1000
    }
    pub fn xforward_from() -> Vec<String> {
        vec!["unix:postfix".into()]
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn data_timeout_secs() -> u64 {
        300
    }
    pub fn min_data_rate() -> u64 {
        500
    }
    pub fn max_line_length() -> usize {
        4096
    }
    pub fn shutdown_timeout_secs() -> u64 {
        60
    }
    pub fn socket_mode() -> String {
        "0660".into()
    }
    pub fn scan_timeout_secs() -> u64 {
        60
    }
    pub fn on_failure() -> String {
        "tempfail".into()
    }
    pub fn heuristic_prefixes() -> Vec<String> {
        vec!["Heuristics.".into(), "PUA.".into()]
    }
    pub fn recipient_delimiter() -> String {
        "+".into()
    }
    pub fn cpu_limit() -> usize {
        10_000
    }
    /// Debian's packaged clamd.conf has `StreamMaxLength 25M`.
    pub fn max_scan_size() -> u64 {
        25 * 1024 * 1024
    }
    pub fn max_header_fields() -> usize {
        1000
    }
    pub fn max_header_size() -> usize {
        256 * 1024
    }
    pub fn max_run_time_secs() -> u64 {
        10
    }
    /// Pigeonhole's `sieve_max_redirects` default.
    pub fn max_redirects() -> usize {
        4
    }
    pub fn redirect_timeout_secs() -> u64 {
        30
    }
    /// Pigeonhole's vacation periods: at least 1 day, at most 60, 7 by default.
    pub fn vacation_min_days() -> u64 {
        1
    }
    pub fn vacation_max_days() -> u64 {
        60
    }
    pub fn vacation_default_days() -> u64 {
        7
    }
    pub fn notify_min_interval_secs() -> u64 {
        60
    }
    pub fn max_script_size() -> u64 {
        1024 * 1024
    }
    pub fn max_actions() -> usize {
        32
    }
    pub fn max_include_depth() -> usize {
        10
    }
    pub fn user_log_size() -> u64 {
        64 * 1024
    }
    pub fn min_virustest() -> u8 {
        4
    }
    pub fn retention_days() -> u64 {
        30
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (for messages).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub scanner: ScannerConfig,
    pub mailbox: MailboxConfig,
    pub sieve: SieveConfig,
    pub quarantine: QuarantineConfig,
    pub state: StateConfig,
    /// Postmaster notices and the outbound relay.
    pub notify: NotifyConfig,
    /// `[abuse]`: abuse reports (off by default).
    pub abuse: AbuseConfig,
    /// `[log]`: level and line format.
    pub log: LogConfig,
}

/// Validated `[quarantine]`.
#[derive(Debug, Clone)]
pub struct QuarantineConfig {
    pub enabled: bool,
    /// Absolute; meaningful only when `enabled`.
    pub dir: PathBuf,
    /// 4 or 5.
    pub min_virustest: u8,
    /// How long entries are kept before the server purges them.
    pub retention: Duration,
}

/// Validated `[state]`.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory of the database; `None`: in memory only.
    pub dir: Option<PathBuf>,
}

/// Validated `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<ListenAddr>,
    pub hostname: String,
    pub max_message_size: usize,
    pub max_connections: usize,
    /// Slots of `max_connections` kept for trusted peers; always below `max_connections`.
    pub reserved_connections: usize,
    pub max_recipients: usize,
    /// Trusted peers: XFORWARD and the reserved connections.
    pub xforward_from: XforwardAcl,
    /// Total time for one command line.
    pub idle_timeout: Duration,
    /// Total time for DATA, before the size allowance.
    pub data_timeout: Duration,
    /// Bytes per second; never 0.
    pub min_data_rate: u64,
    pub max_line_length: usize,
    pub shutdown_timeout: Duration,
    pub socket_mode: u32,
    /// Group id for unix listening sockets.
    pub socket_group: Option<u32>,
    /// Where `GET /metrics` is answered; `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Which messages are spooled to disk while they arrive, and where.
    pub spool: crate::spool::SpoolConfig,
    /// Bytes of messages parsed at once ([`crate::delivery::budget`]).
    pub max_parse_memory: usize,
    /// Not wrong, but risky: `check-config` and `serve` print these.
    pub warnings: Vec<String>,
}

impl ServerConfig {
    /// How long DATA may take once `received` bytes have arrived: `data_timeout` plus the
    /// time those bytes need at `min_data_rate`. A client that sends at least that fast
    /// never hits it; one that drips a byte now and then gets about `data_timeout` in all.
    pub fn data_allowance(&self, received: u64) -> Duration {
        self.data_timeout + Duration::from_secs_f64(received as f64 / self.min_data_rate as f64)
    }
}

/// Validated `[scanner]`.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// `[scanner] enabled`: false sends nothing to clamd (every message unscanned).
    pub enabled: bool,
    pub clamd: ClamdAddr,
    pub timeout: Duration,
    pub on_failure: OnScanFailure,
    pub heuristic_prefixes: Vec<String>,
    pub max_scan_size: usize,
    /// PING period while clamd is down; `None`: no health gating.
    pub health_interval: Option<Duration>,
    /// `[scanner] pass_fd`: FILDES instead of INSTREAM (unix sockets only).
    pub pass_fd: bool,
}

/// What a scanner failure does to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnScanFailure {
    /// 451 for every recipient; nothing is delivered; the MTA retries.
    Tempfail,
    /// Deliver anyway; Sieve's `virustest` sees 0 (not scanned).
    DeliverUnscanned,
}

/// Validated `[mailbox]`.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Lowercased.
    pub domains: Vec<String>,
    /// Absolute template (or one starting with `%h`, the user's absolute home).
    pub maildir: String,
    pub recipient_delimiter: String,
    /// The passwd-file of existing users; `None`: every local part exists.
    pub users_file: Option<PathBuf>,
    /// True when `maildir` or `sieve.personal` uses `%h`: a user without a home in
    /// `users_file` cannot be delivered to.
    pub needs_home: bool,
    /// Concurrent LMTP deliveries per user; 0: unlimited.
    pub user_concurrency_limit: usize,
    /// Owner and modes of what the store creates.
    pub ownership: crate::store::Ownership,
}

/// One listening address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", .problems.iter().map(|p| format!("{}: {p}", .path.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
        /// The `[sieve]` section's scripts that do exist, so `check-config` can still
        /// compile them and report everything in one pass.
        sieve: Box<SieveConfig>,
    },
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text` as if read from `path` (relative paths resolve against
    /// its directory).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        raw.validate(&base)
            .map(|mut config| {
                config.path = path.to_path_buf();
                config
            })
            .map_err(|(problems, sieve)| ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
                sieve,
            })
    }
}

impl Config {
    /// Settings that are valid but probably not what the admin wants; `check-config` prints
    /// them and `serve` logs them at startup.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.server.warnings.clone();
        warnings.extend(notify::warnings(self));
        warnings.extend(spool::warnings(
            &self.server.spool,
            self.server.max_message_size,
        ));
        warnings.extend(delivery::warnings(self));
        if !self.scanner.enabled {
            warnings.push("scanner.enabled = false: no message is scanned; every one is delivered with virustest 0 and \"X-Virus-Status: Not scanned\"".to_string());
        } else if self.server.max_message_size > self.scanner.max_scan_size {
            warnings.push(format!(
                "server.max_message_size ({}) is larger than scanner.max_scan_size ({}): messages in between are delivered unscanned (virustest 0)",
                self.server.max_message_size, self.scanner.max_scan_size
            ));
        }
        warnings
    }
}

/// `line:col: message` for a TOML syntax or type error.
fn parse_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().to_string();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{line}:{col}: {message}")
        }
        None => message,
    }
}

/// Joins a relative path onto the config directory; absolute paths are kept.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// [`resolve`] for a path template: one starting with `%h` (the user's home, absolute) is
/// kept as it is.
fn resolve_template(base: &Path, template: &str) -> String {
    if template.starts_with("%h") {
        template.to_string()
    } else {
        resolve(base, template).to_string_lossy().into_owned()
    }
}

impl RawConfig {
    /// Checks every value; returns all problems at once, with the `[sieve]` scripts that
    /// exist (for compiling them anyway).
    pub fn validate(self, base: &Path) -> Result<Config, (Vec<String>, Box<SieveConfig>)> {
        let mut problems = Vec::new();
        let s = self.server;

        let mut listen = Vec::new();
        if s.listen.is_empty() {
            problems.push("server.listen: at least one address is needed".to_string());
        }
        for entry in &s.listen {
            match entry.strip_prefix("unix:") {
                Some("") => problems.push("server.listen: \"unix:\" needs a path".to_string()),
                Some(path) => listen.push(ListenAddr::Unix(resolve(base, path))),
                None => match entry.parse::<SocketAddr>() {
                    Ok(addr) => listen.push(ListenAddr::Tcp(addr)),
                    Err(_) => problems.push(format!(
                        "server.listen: {entry:?} is neither HOST:PORT (an IP address and port) nor unix:PATH"
                    )),
                },
            }
        }
        let hostname = s
            .hostname
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        if hostname.is_empty()
            || !hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
        {
            problems.push(format!(
                "server.hostname: {hostname:?} is not a valid host name"
            ));
        }
        let mut warnings = Vec::new();
        let mut xforward = XforwardAcl::default();
        let explicit_acl = s.xforward_from.is_some();
        let acl_entries = s
            .xforward_from
            .clone()
            .unwrap_or_else(defaults::xforward_from);
        for entry in &acl_entries {
            match parse_acl_entry(entry) {
                Ok(AclEntry::Net(net)) => xforward.nets.push(net),
                Ok(AclEntry::UnixAny) => xforward.unix_any = true,
                Ok(AclEntry::Uid(uid)) => xforward.unix_uids.push(uid),
                Ok(AclEntry::UnknownUser(_)) if !explicit_acl => {}
                Ok(AclEntry::UnknownUser(user)) => warnings.push(format!(
                    "server.xforward_from: no user {user:?} on this host; {entry:?} trusts no one"
                )),
                Err(e) => problems.push(format!("server.xforward_from: {e}")),
            }
        }
        let reserved_connections = s.reserved_connections.unwrap_or(s.max_connections / 8);
        if s.max_connections > 0 && reserved_connections >= s.max_connections {
            problems.push(format!(
                "server.reserved_connections: {reserved_connections} must be below max_connections ({})",
                s.max_connections
            ));
        }
        let socket_group = match s.socket_group.as_deref() {
            None => None,
            Some(g) => match g.parse::<u32>().ok().or_else(|| group_id(g)) {
                Some(gid) => Some(gid),
                None => {
                    problems.push(format!("server.socket_group: no group {g:?} on this host"));
                    None
                }
            },
        };
        for (key, value) in [
            ("server.max_message_size", s.max_message_size as usize),
            ("server.max_connections", s.max_connections),
            ("server.max_recipients", s.max_recipients),
            ("server.max_parse_memory", s.max_parse_memory as usize),
            ("server.idle_timeout_secs", s.idle_timeout_secs as usize),
            ("server.data_timeout_secs", s.data_timeout_secs as usize),
            ("server.min_data_rate", s.min_data_rate as usize),
            ("scanner.timeout_secs", self.scanner.timeout_secs as usize),
            ("sieve.cpu_limit", self.sieve.cpu_limit),
            ("sieve.max_header_fields", self.sieve.max_header_fields),
            ("sieve.max_header_size", self.sieve.max_header_size),
            ("scanner.max_scan_size", self.scanner.max_scan_size as usize),
            (
                "sieve.max_run_time_secs",
                self.sieve.max_run_time_secs as usize,
            ),
            (
                "sieve.redirect_timeout_secs",
                self.sieve.redirect_timeout_secs as usize,
            ),
            (
                "sieve.vacation_min_days",
                self.sieve.vacation_min_days as usize,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        if s.max_line_length < 512 {
            problems.push(
                "server.max_line_length: must be at least 512 (RFC 5321 §4.5.3.1.4)".to_string(),
            );
        }
        let socket_mode = u32::from_str_radix(&s.socket_mode, 8)
            .ok()
            .filter(|m| *m <= 0o777);
        if socket_mode.is_none() {
            problems.push(format!(
                "server.socket_mode: {:?} is not an octal mode like \"0660\"",
                s.socket_mode
            ));
        }
        let has_unix_listener = listen.iter().any(|l| matches!(l, ListenAddr::Unix(_)));
        if has_unix_listener && socket_mode.is_some_and(|m| m & 0o002 != 0) {
            if xforward.unix_any {
                warnings.push(format!(
                    "server.xforward_from: \"unix\" with socket_mode {:?}: every local user can connect and forge XFORWARD (the client address in Received and Sieve's remote-ip); use \"unix:postfix\" or socket_mode \"0660\" with socket_group",
                    s.socket_mode
                ));
            } else {
                warnings.push(format!(
                    "server.socket_mode: {:?} lets every local user connect to the LMTP socket and deliver mail; \"0660\" with socket_group = \"postfix\" is enough for Postfix",
                    s.socket_mode
                ));
            }
        }

        let sc = self.scanner;
        let clamd = match sc.clamd.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Some(ClamdAddr::Unix(resolve(base, path))),
            _ => match sc.clamd.parse::<ClamdAddr>() {
                Ok(addr) => Some(addr),
                Err(e) => {
                    problems.push(format!("scanner.clamd: {:?}: {e}", sc.clamd));
                    None
                }
            },
        };
        let on_failure = match sc.on_failure.as_str() {
            "tempfail" => OnScanFailure::Tempfail,
            "deliver-unscanned" => OnScanFailure::DeliverUnscanned,
            other => {
                problems.push(format!(
                    "scanner.on_failure: {other:?} must be \"tempfail\" or \"deliver-unscanned\""
                ));
                OnScanFailure::Tempfail
            }
        };

        let m = self.mailbox;
        if m.domains.is_empty() {
            problems.push("mailbox.domains: at least one domain is needed".to_string());
        }
        let special_use: Vec<(String, String)> = match &m.special_use {
            Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => crate::filter::DEFAULT_SPECIAL_USE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for (flag, folder) in &special_use {
            // RFC 6154 §2: special-use attributes are `\` flags.
            if !flag.starts_with('\\') || flag.len() < 2 {
                problems.push(format!(
                    "mailbox.special_use: {flag:?} is not a special-use flag such as \"\\\\Junk\""
                ));
            }
            if let Err(e) = crate::store::Folder::from_sieve(folder) {
                problems.push(format!("mailbox.special_use: {folder:?}: {e}"));
            }
        }
        for d in &m.domains {
            if d.is_empty() || d.contains(['/', '@', ' ']) || d.starts_with('.') || d.contains("..")
            {
                problems.push(format!("mailbox.domains: {d:?} is not a domain name"));
            }
        }
        let uses = crate::address::template_uses;
        if !uses(&m.maildir, 'n') && !uses(&m.maildir, 'u') && !uses(&m.maildir, 'h') {
            problems.push(format!(
                "mailbox.maildir: {:?} must contain %n, %u or %h, or every user would share one Maildir",
                m.maildir
            ));
        }
        let maildir = resolve_template(base, &m.maildir);
        let users_file = m.users_file.as_deref().map(|p| resolve(base, p));
        if let Some(path) = &users_file {
            if let Err(e) = crate::users::UserTable::load(path) {
                problems.push(format!("mailbox.users_file: {e}"));
            }
        }
        let personal_home = [&self.sieve.personal, &self.sieve.personal_dir]
            .iter()
            .any(|t| t.as_deref().is_some_and(|p| uses(p, 'h')));
        let needs_home = uses(&m.maildir, 'h') || personal_home;
        if needs_home && users_file.is_none() {
            for (key, template) in [
                ("mailbox.maildir", Some(m.maildir.as_str())),
                ("sieve.personal", self.sieve.personal.as_deref()),
                ("sieve.personal_dir", self.sieve.personal_dir.as_deref()),
            ] {
                if template.is_some_and(|t| uses(t, 'h')) {
                    problems.push(format!(
                        "{key}: %h (the user's home) needs mailbox.users_file, which gives the homes"
                    ));
                }
            }
        }

        let ownership = delivery::ownership(
            m.owner.as_deref(),
            m.group.as_deref(),
            &m.file_mode,
            &m.dir_mode,
            &mut problems,
        );

        let notify = self.notify.validate(&hostname, &mut problems);
        let log = self.log.validate(&mut problems);
        let metrics_listen = s.metrics_listen.as_deref().and_then(|m| {
            m.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "server.metrics_listen: {m:?} is not HOST:PORT (an IP address and port)"
                    ))
                })
                .ok()
        });

        let abuse = self.abuse.validate(base, &mut problems);

        let sieve = self.sieve.validate(base, special_use, &mut problems);
        let q = self.quarantine;
        let quarantine_dir = q.dir.as_deref().map(|d| resolve(base, d));
        if q.enabled && quarantine_dir.is_none() {
            problems.push("quarantine.dir: needed when quarantine.enabled = true".to_string());
        }
        // Below 4 the message is not infected (RFC 5235: 1 clean, 2-3 unused by clamd):
        // quarantining clean mail would fill the quarantine with delivered messages.
        if !(4..=5).contains(&q.min_virustest) {
            problems.push(format!(
                "quarantine.min_virustest: {} must be 4 (heuristic matches too) or 5 (named viruses only)",
                q.min_virustest
            ));
        }
        if q.retention_days == 0 {
            problems.push("quarantine.retention_days: must be greater than 0".to_string());
        }
        let state_dir = self.state.dir.as_deref().map(|d| resolve(base, d));
        if q.enabled && state_dir.is_none() {
            problems.push(
                "state.dir: needed when quarantine.enabled = true (the quarantine index lives there)"
                    .to_string(),
            );
        }
        let quarantine = QuarantineConfig {
            enabled: q.enabled,
            dir: quarantine_dir.unwrap_or_default(),
            min_virustest: q.min_virustest,
            retention: Duration::from_secs(q.retention_days.saturating_mul(86_400)),
        };
        let spool = spool::validate(
            s.spool_threshold,
            s.spool_dir.as_deref(),
            base,
            state_dir.as_deref(),
            &mut problems,
        );
        let state = StateConfig { dir: state_dir };
        let (true, Some(clamd), Some(socket_mode)) = (problems.is_empty(), clamd, socket_mode)
        else {
            // A missing clamd or socket_mode was reported as a problem above.
            let existing =
                |paths: &[PathBuf]| paths.iter().filter(|p| p.is_file()).cloned().collect();
            let sieve = SieveConfig {
                before: existing(&sieve.before),
                after: existing(&sieve.after),
                default: sieve.default.filter(|p| p.is_file()),
                ..sieve
            };
            return Err((problems, Box::new(sieve)));
        };
        Ok(Config {
            path: PathBuf::new(),
            server: ServerConfig {
                listen,
                hostname,
                max_message_size: s.max_message_size as usize,
                max_connections: s.max_connections,
                reserved_connections,
                max_recipients: s.max_recipients,
                xforward_from: xforward,
                idle_timeout: Duration::from_secs(s.idle_timeout_secs),
                data_timeout: Duration::from_secs(s.data_timeout_secs),
                min_data_rate: s.min_data_rate,
                max_line_length: s.max_line_length,
                shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs),
                socket_mode,
                socket_group,
                metrics_listen,
                spool,
                max_parse_memory: usize::try_from(s.max_parse_memory).unwrap_or(usize::MAX),
                warnings,
            },
            scanner: ScannerConfig {
                enabled: sc.enabled,
                clamd,
                timeout: Duration::from_secs(sc.timeout_secs),
                on_failure,
                heuristic_prefixes: sc.heuristic_prefixes,
                max_scan_size: sc.max_scan_size as usize,
                // Nothing to gate on when nothing is scanned.
                health_interval: delivery::health_interval(sc.health_interval_secs)
                    .filter(|_| sc.enabled),
                pass_fd: sc.pass_fd,
            },
            mailbox: MailboxConfig {
                domains: m.domains.iter().map(|d| d.to_lowercase()).collect(),
                maildir,
                recipient_delimiter: m.recipient_delimiter,
                users_file,
                needs_home,
                user_concurrency_limit: m.user_concurrency_limit,
                ownership,
            },
            sieve,
            quarantine,
            state,
            notify,
            abuse,
            log,
        })
    }
}

#[cfg(test)]
mod tests;
