//! Network addresses as the configuration writes them: where clamd listens (the `unix:` /
//! `tcp:` form). Plain values, so the configuration and the scanner share them without
//! importing each other.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

/// The address of a clamd instance, written `unix:/path/to/clamd.sock` or
/// `tcp:host:port` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// A local (AF_UNIX) stream socket: clamd's `LocalSocket`.
    Unix(PathBuf),
    /// A TCP endpoint as `host:port` (clamd's `TCPAddr`/`TCPSocket`). Kept as text and
    /// resolved at each connect, so a DNS change needs no restart.
    Tcp(String),
}

/// Why a clamd address did not parse. The message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid clamd address {input:?}: {reason}")]
pub struct AddrParseError {
    input: String,
    reason: &'static str,
}

impl AddrParseError {
    fn new(input: &str, reason: &'static str) -> Self {
        AddrParseError {
            input: input.to_owned(),
            reason,
        }
    }
}

impl FromStr for ClamdAddr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddrParseError::new(s, "empty socket path"));
            }
            // A daemon's working directory is not something an operator thinks about; a
            // relative path would silently depend on it.
            if !path.starts_with('/') {
                return Err(AddrParseError::new(s, "socket path must be absolute"));
            }
            Ok(ClamdAddr::Unix(PathBuf::from(path)))
        } else if let Some(host_port) = s.strip_prefix("tcp:") {
            // rsplit so that a bracketed IPv6 literal such as `[::1]:3310` keeps its colons.
            let Some((host, port)) = host_port.rsplit_once(':') else {
                return Err(AddrParseError::new(s, "expected tcp:host:port"));
            };
            if host.is_empty() || host == "[]" {
                return Err(AddrParseError::new(s, "empty host"));
            }
            if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
                return Err(AddrParseError::new(
                    s,
                    "IPv6 addresses must be bracketed, e.g. tcp:[::1]:3310",
                ));
            }
            match port.parse::<u16>() {
                Ok(0) | Err(_) => Err(AddrParseError::new(s, "port must be 1-65535")),
                Ok(_) => Ok(ClamdAddr::Tcp(host_port.to_owned())),
            }
        } else {
            Err(AddrParseError::new(
                s,
                "expected unix:/path/to/clamd.sock or tcp:host:port",
            ))
        }
    }
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ClamdAddr::Tcp(host_port) => write!(f, "tcp:{host_port}"),
        }
    }
}

/// An IP network or a single address, as the configuration lists them (`ADDR/PREFIX`,
/// or `ADDR` for a host); host bits are cleared. The one parser for `[abuse]` networks and
/// `xforward_from`.
pub fn parse_net(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_addresses_and_prints_them_back() {
        let cases: &[(&str, ClamdAddr)] = &[
            (
                "unix:/run/clamav/clamd.ctl",
                ClamdAddr::Unix("/run/clamav/clamd.ctl".into()),
            ),
            (
                "unix:/tmp/dir with space/c.sock",
                ClamdAddr::Unix("/tmp/dir with space/c.sock".into()),
            ),
            (
                "tcp:127.0.0.1:3310",
                ClamdAddr::Tcp("127.0.0.1:3310".into()),
            ),
            (
                "tcp:clamd.example.org:3310",
                ClamdAddr::Tcp("clamd.example.org:3310".into()),
            ),
            ("tcp:[::1]:3310", ClamdAddr::Tcp("[::1]:3310".into())),
            (
                "tcp:localhost:65535",
                ClamdAddr::Tcp("localhost:65535".into()),
            ),
        ];
        for (input, expected) in cases {
            let parsed: ClamdAddr = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&parsed, expected, "{input}");
            assert_eq!(parsed.to_string(), *input, "round trip of {input}");
        }
    }

    #[test]
    fn rejects_invalid_addresses() {
        let cases = [
            "",
            "/run/clamav/clamd.ctl",
            "unix:",
            "unix:relative/clamd.sock",
            "tcp:",
            "tcp:127.0.0.1",
            "tcp::3310",
            "tcp:127.0.0.1:",
            "tcp:127.0.0.1:0",
            "tcp:127.0.0.1:65536",
            "tcp:127.0.0.1:33a0",
            "tcp:::1:3310",
            "tcp:[]:3310",
            "udp:127.0.0.1:3310",
            "UNIX:/run/clamd.sock",
        ];
        for input in cases {
            let err = input
                .parse::<ClamdAddr>()
                .expect_err(&format!("{input:?} must not parse"));
            assert!(
                err.to_string().contains(&format!("{input:?}")),
                "error names the input: {err}"
            );
        }
    }
}
