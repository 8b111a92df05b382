//! `[server]`: listeners, limits, timeouts and the trusted peers; [`RawServer`] as written,
//! [`ServerConfig`] validated. Its spool keys are validated in `spool.rs`; `metrics_listen`
//! on its own ([`RawServer::validate_metrics_listen`]), after `[notify]` and `[log]`, so
//! problems are listed in the order they always were.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::acl::{group_id, parse_acl_entry, AclEntry};
use super::{resolve, spool, XforwardAcl};

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
    pub spool: spool::SpoolConfig,
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

/// What [`RawServer::validate`] found: the parts of [`ServerConfig`] that need checking,
/// until the keys checked later (`metrics_listen`, the spool) join them in
/// [`Checked::finish`].
pub(super) struct Checked {
    pub(super) listen: Vec<ListenAddr>,
    pub(super) hostname: String,
    pub(super) xforward: XforwardAcl,
    pub(super) reserved_connections: usize,
    pub(super) socket_group: Option<u32>,
    /// `None`: not a valid mode (a problem was reported).
    pub(super) socket_mode: Option<u32>,
    pub(super) warnings: Vec<String>,
}

impl RawServer {
    /// Checks `[server]` but `metrics_listen` and the spool keys. `also_positive`: keys of
    /// other sections that must be greater than 0, checked in one table with this
    /// section's own so their problems read alike.
    pub(super) fn validate(
        &self,
        base: &Path,
        also_positive: &[(&str, usize)],
        problems: &mut Vec<String>,
    ) -> Checked {
        let s = self;
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
        warnings.extend(tcp_listener_warnings(&listen, &xforward));
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
        let positive = [
            ("server.max_message_size", s.max_message_size as usize),
            ("server.max_connections", s.max_connections),
            ("server.max_recipients", s.max_recipients),
            ("server.max_parse_memory", s.max_parse_memory as usize),
            ("server.idle_timeout_secs", s.idle_timeout_secs as usize),
            ("server.data_timeout_secs", s.data_timeout_secs as usize),
            ("server.min_data_rate", s.min_data_rate as usize),
        ];
        for (key, value) in positive.iter().chain(also_positive) {
            if *value == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        if s.max_line_length < 512 {
            problems.push(
                "server.max_line_length: must be at least 512 (RFC 5321 §4.5.3.1.4)".to_string(),
            );
        }
        let socket_mode = super::octal_mode(&s.socket_mode).filter(|m| *m <= 0o777);
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
        Checked {
            listen,
            hostname,
            xforward,
            reserved_connections,
            socket_group,
            socket_mode,
            warnings,
        }
    }

    /// `metrics_listen`: an IP address and port, or `None` (off, or a problem reported).
    pub(super) fn validate_metrics_listen(&self, problems: &mut Vec<String>) -> Option<SocketAddr> {
        self.metrics_listen.as_deref().and_then(|m| {
            m.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "server.metrics_listen: {m:?} is not HOST:PORT (an IP address and port)"
                    ))
                })
                .ok()
        })
    }
}

/// A TCP listener whose peers `xforward_from` does not cover. The MTA on this host connects
/// from the listener's own address (127.0.0.1 to 127.0.0.1); when that address is not
/// trusted, Postfix's XFORWARD is ignored over TCP (no client address in Received, Sieve's
/// remote-ip or abuse reports) without any error, and the port takes mail from every local
/// user besides. A wildcard listener (`0.0.0.0`, `::`) is covered by any TCP entry.
fn tcp_listener_warnings(listen: &[ListenAddr], acl: &XforwardAcl) -> Vec<String> {
    listen
        .iter()
        .filter_map(|l| match l {
            ListenAddr::Tcp(addr) => Some(addr),
            ListenAddr::Unix(_) => None,
        })
        .filter(|addr| {
            let ip = addr.ip();
            if ip.is_unspecified() {
                acl.nets.is_empty()
            } else {
                !acl.allows_ip(ip)
            }
        })
        .map(|addr| {
            let who = if addr.ip().is_loopback() {
                "every local user"
            } else {
                "every host that reaches it"
            };
            format!(
                "server.listen: TCP listener {addr} but xforward_from trusts no TCP peer at {ip}: XFORWARD from the MTA over it is ignored (no client address in Received, Sieve's remote-ip or abuse reports), and {who} can connect and deliver mail; add \"{ip}\" to xforward_from (only where {who} may be trusted) or listen on a unix socket only",
                ip = addr.ip()
            )
        })
        .collect()
}

impl Checked {
    /// The validated section, once `socket_mode` is known to be valid and the keys checked
    /// later are in.
    pub(super) fn finish(
        self,
        s: &RawServer,
        socket_mode: u32,
        metrics_listen: Option<SocketAddr>,
        spool: spool::SpoolConfig,
    ) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            hostname: self.hostname,
            max_message_size: s.max_message_size as usize,
            max_connections: s.max_connections,
            reserved_connections: self.reserved_connections,
            max_recipients: s.max_recipients,
            xforward_from: self.xforward,
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            data_timeout: Duration::from_secs(s.data_timeout_secs),
            min_data_rate: s.min_data_rate,
            max_line_length: s.max_line_length,
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs),
            socket_mode,
            socket_group: self.socket_group,
            metrics_listen,
            spool,
            max_parse_memory: usize::try_from(s.max_parse_memory).unwrap_or(usize::MAX),
            warnings: self.warnings,
        }
    }
}

/// Defaults of the `[server]` keys (the spool keys' are in `spool.rs`).
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
}
