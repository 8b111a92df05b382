//! Configuration: the TOML file (public interface: key names are relied on by outside
//! harnesses) → [`RawConfig`] (serde, unknown keys refused) → validated [`Config`]. Every
//! problem is collected and reported at once, so an admin fixes the file in one pass.
//! Relative paths resolve against the directory of the config file.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::scan::ClamdAddr;

/// The whole file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub scanner: RawScanner,
    pub mailbox: RawMailbox,
    #[serde(default)]
    pub sieve: RawSieve,
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
    /// Recipients per transaction; more get `452 4.5.3` (the client sends them later).
    #[serde(default = "defaults::max_recipients")]
    pub max_recipients: usize,
    /// Peers allowed to send XFORWARD: CIDR networks and/or `unix`.
    #[serde(default = "defaults::xforward_from")]
    pub xforward_from: Vec<String>,
    /// Seconds a session may wait for a command.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Seconds the client may stay silent while sending DATA.
    #[serde(default = "defaults::data_timeout_secs")]
    pub data_timeout_secs: u64,
    /// Longest command line, in bytes (DATA lines are not limited by this).
    #[serde(default = "defaults::max_line_length")]
    pub max_line_length: usize,
    /// Seconds SIGTERM waits for in-flight deliveries before exiting anyway.
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// Permissions of unix listening sockets, octal.
    #[serde(default = "defaults::socket_mode")]
    pub socket_mode: String,
}

/// `[scanner]`: the clamd connection and what to do when it fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanner {
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
}

/// `[sieve]`: the script chain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSieve {
    #[serde(default)]
    pub before: Vec<String>,
    pub personal: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub default: Option<String>,
    /// Instructions each script of the chain may execute before it is stopped (implicit keep).
    #[serde(default = "defaults::cpu_limit")]
    pub cpu_limit: usize,
    /// Wall-clock seconds one recipient's whole chain may run before it is stopped (implicit
    /// keep). Keep it well under Postfix's `lmtp_data_done_timeout` (600 s) divided by the
    /// recipients per transaction (`lmtp_destination_recipient_limit`, 50).
    #[serde(default = "defaults::max_run_time_secs")]
    pub max_run_time_secs: u64,
}

impl Default for RawSieve {
    fn default() -> Self {
        RawSieve {
            before: Vec::new(),
            personal: None,
            after: Vec::new(),
            default: None,
            cpu_limit: defaults::cpu_limit(),
            max_run_time_secs: defaults::max_run_time_secs(),
        }
    }
}

mod defaults {
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
        vec!["127.0.0.0/8".into(), "::1/128".into(), "unix".into()]
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn data_timeout_secs() -> u64 {
        300
    }
    pub fn max_line_length() -> usize {
        4096
    }
    pub fn shutdown_timeout_secs() -> u64 {
        60
    }
    pub fn socket_mode() -> String {
        "0666".into()
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
    pub fn max_run_time_secs() -> u64 {
        10
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
}

/// Validated `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<ListenAddr>,
    pub hostname: String,
    pub max_message_size: usize,
    pub max_connections: usize,
    pub max_recipients: usize,
    pub xforward_from: XforwardAcl,
    pub idle_timeout: Duration,
    pub data_timeout: Duration,
    pub max_line_length: usize,
    pub shutdown_timeout: Duration,
    pub socket_mode: u32,
}

/// Validated `[scanner]`.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    pub clamd: ClamdAddr,
    pub timeout: Duration,
    pub on_failure: OnScanFailure,
    pub heuristic_prefixes: Vec<String>,
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
    /// Absolute template.
    pub maildir: String,
    pub recipient_delimiter: String,
}

/// Validated `[sieve]`, paths absolute.
#[derive(Debug, Clone)]
pub struct SieveConfig {
    pub before: Vec<PathBuf>,
    pub personal: Option<String>,
    pub after: Vec<PathBuf>,
    pub default: Option<PathBuf>,
    pub cpu_limit: usize,
    /// Wall-clock budget of one recipient's chain.
    pub max_run_time: Duration,
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

/// Who may send XFORWARD (it sets the client address Sieve and the logs see, so only the
/// MTA may).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XforwardAcl {
    nets: Vec<Cidr>,
    unix: bool,
}

impl XforwardAcl {
    /// True for a TCP peer inside one of the networks.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// True when unix-socket peers may send XFORWARD.
    pub fn allows_unix(&self) -> bool {
        self.unix
    }
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
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
        let mut xforward = XforwardAcl::default();
        for entry in &s.xforward_from {
            if entry == "unix" {
                xforward.unix = true;
            } else {
                match entry.parse::<Cidr>() {
                    Ok(net) => xforward.nets.push(net),
                    Err(e) => problems.push(format!("server.xforward_from: {e}")),
                }
            }
        }
        for (key, value) in [
            ("server.max_message_size", s.max_message_size as usize),
            ("server.max_connections", s.max_connections),
            ("server.max_recipients", s.max_recipients),
            ("server.idle_timeout_secs", s.idle_timeout_secs as usize),
            ("server.data_timeout_secs", s.data_timeout_secs as usize),
            ("scanner.timeout_secs", self.scanner.timeout_secs as usize),
            ("sieve.cpu_limit", self.sieve.cpu_limit),
            (
                "sieve.max_run_time_secs",
                self.sieve.max_run_time_secs as usize,
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
        for d in &m.domains {
            if d.is_empty() || d.contains(['/', '@', ' ']) || d.starts_with('.') || d.contains("..")
            {
                problems.push(format!("mailbox.domains: {d:?} is not a domain name"));
            }
        }
        if !m.maildir.contains("%n") && !m.maildir.contains("%u") {
            problems.push(format!(
                "mailbox.maildir: {:?} must contain %n or %u, or every user would share one Maildir",
                m.maildir
            ));
        }
        let maildir = resolve(base, &m.maildir).to_string_lossy().into_owned();

        let sv = self.sieve;
        let check_file = |key: &str, path: &PathBuf, problems: &mut Vec<String>| {
            if !path.is_file() {
                problems.push(format!("{key}: {} is not a readable file", path.display()));
            }
        };
        let before: Vec<PathBuf> = sv.before.iter().map(|p| resolve(base, p)).collect();
        let after: Vec<PathBuf> = sv.after.iter().map(|p| resolve(base, p)).collect();
        let default = sv.default.as_deref().map(|p| resolve(base, p));
        for p in &before {
            check_file("sieve.before", p, &mut problems);
        }
        for p in &after {
            check_file("sieve.after", p, &mut problems);
        }
        if let Some(p) = &default {
            check_file("sieve.default", p, &mut problems);
        }
        let personal = sv
            .personal
            .as_deref()
            .map(|p| resolve(base, p).to_string_lossy().into_owned());

        let sieve = SieveConfig {
            before,
            personal,
            after,
            default,
            cpu_limit: sv.cpu_limit,
            max_run_time: Duration::from_secs(sv.max_run_time_secs),
        };
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
                max_recipients: s.max_recipients,
                xforward_from: xforward,
                idle_timeout: Duration::from_secs(s.idle_timeout_secs),
                data_timeout: Duration::from_secs(s.data_timeout_secs),
                max_line_length: s.max_line_length,
                shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs),
                socket_mode,
            },
            scanner: ScannerConfig {
                clamd,
                timeout: Duration::from_secs(sc.timeout_secs),
                on_failure,
                heuristic_prefixes: sc.heuristic_prefixes,
            },
            mailbox: MailboxConfig {
                domains: m.domains.iter().map(|d| d.to_lowercase()).collect(),
                maildir,
                recipient_delimiter: m.recipient_delimiter,
            },
            sieve,
        })
    }
}

#[cfg(test)]
mod tests;
