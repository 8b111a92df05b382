//! The abuse contact of an address: `[abuse] overrides`, then RDAP (RFC 9082 query, RFC
//! 9083 answer, RFC 9224 bootstrap), cached in the state store.
//!
//! RDAP answers are untrusted input: the body is read up to [`MAX_BODY`], the entity walk
//! stops at [`MAX_DEPTH`] levels and [`MAX_ENTITIES`] entities, and the address must look
//! like one ([`crate::mail::address::is_valid_email`]) before anything is sent to it.
//! Reading the answer is `answer.rs`; this file is the client.
//!
//! **Where we connect.** The servers an admin names in `rdap_base_urls` are used as written
//! (`http://` and internal addresses allowed: a local RDAP proxy, the tests' server on
//! loopback). Every other URL (the bootstrap file's servers, every redirect) must be
//! `https://` and its host must resolve to public addresses only ([`is_public`]): the
//! check runs inside the HTTP client's resolver, on the addresses it then connects to, so a
//! name that resolves to loopback, a private network, link-local or a ULA is refused.
//! Redirects are followed by hand (at most [`MAX_REDIRECTS`]), and one lookup has one
//! total deadline for all its servers and redirects (`[abuse] rdap_timeout_secs`).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;

use crate::config::rdap::{Bootstrap, BootstrapError};

mod answer;

pub use answer::{abuse_email, network_of, vcard_email};

/// Largest RDAP body read; real answers are a few KiB to a few hundred.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Entity nesting followed (registries nest abuse inside registrant: 2 or 3 levels).
pub const MAX_DEPTH: usize = 8;
/// Entities looked at in one answer.
pub const MAX_ENTITIES: usize = 1000;
/// Redirects followed in one request.
pub const MAX_REDIRECTS: usize = 3;

/// Why a lookup failed (every server tried answered with an error or not at all).
#[derive(Debug, thiserror::Error)]
pub enum RdapError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: not RDAP JSON: {message}")]
    Json { url: String, message: String },
    #[error("no RDAP server to ask for {0}")]
    NoServer(IpAddr),
    #[error("RDAP lookup for {0} ran out of time")]
    Deadline(IpAddr),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
}

/// The address in `overrides` for `ip`: the most specific network that contains it wins.
pub fn override_for(overrides: &[(IpNet, String)], ip: IpAddr) -> Option<&str> {
    overrides
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, addr)| addr.as_str())
}

/// True for an address on the public internet: not loopback, unspecified, private
/// (RFC 1918), CGNAT, link-local, ULA, multicast, broadcast, documentation, benchmarking or
/// reserved space (IPv4-mapped IPv6 is judged as its IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    const V4: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ];
    const V6: &[&str] = &[
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::ffff:0:0/96",
    ];
    let ip = super::source::canonical(ip);
    let list = if ip.is_ipv4() { V4 } else { V6 };
    !list
        .iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|n| n.contains(&ip))
}

/// The resolver of the RDAP client: the system's, then, for every host but the configured
/// servers', only public addresses ([`is_public`]); none left is an error.
#[derive(Debug)]
struct PublicOnly {
    /// `host:port` of the servers in `rdap_base_urls` (used as configured).
    trusted: Vec<String>,
    inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        if authority(&uri.to_string()).is_some_and(|a| self.trusted.contains(&a)) {
            return Ok(all);
        }
        let mut public = self.empty();
        for addr in all.iter().filter(|a: &&SocketAddr| is_public(a.ip())) {
            public.push(*addr);
        }
        if public.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{uri}: resolves to no public address (RDAP goes only to public https servers)"
                ),
            )));
        }
        Ok(public)
    }
}

/// `host:port` of an `http(s)://` URL (the scheme's port when none is written), lowercase.
fn authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth
        .rsplit_once('@')
        .map_or(auth, |(_, a)| a)
        .to_ascii_lowercase();
    let has_port = match auth.rfind(':') {
        Some(i) => !auth[i..].contains(']'),
        None => false,
    };
    if has_port {
        return Some(auth);
    }
    let port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    Some(format!("{auth}:{port}"))
}

/// The RDAP client: trusted base URLs in order, after the bootstrap's https servers; one
/// blocking HTTP agent whose resolver refuses internal addresses for other hosts.
pub struct Rdap {
    base_urls: Vec<String>,
    bootstrap: Bootstrap,
    agent: ureq::Agent,
    deadline: Duration,
}

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The abuse address; `None`: a server answered for the address, without a usable one.
    pub contact: Option<String>,
    /// The network the answer names ([`network_of`]).
    pub network: Option<IpNet>,
}

impl Rdap {
    /// A client asking the bootstrap's https servers for an address first, then
    /// `base_urls` (trusted as configured); one lookup takes at most `deadline`.
    pub fn new(base_urls: Vec<String>, bootstrap: Bootstrap, deadline: Duration) -> Rdap {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(deadline))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("sievegate/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = PublicOnly {
            trusted: base_urls.iter().filter_map(|u| authority(u)).collect(),
            inner: Default::default(),
        };
        Rdap {
            base_urls,
            bootstrap,
            agent: ureq::Agent::with_parts(
                config,
                ureq::unversioned::transport::DefaultConnector::new(),
                resolver,
            ),
            deadline,
        }
    }

    /// The servers to ask about `ip`, in order, without repeats.
    pub fn servers_for(&self, ip: IpAddr) -> Vec<String> {
        let mut urls = self.bootstrap.urls_for(ip);
        for url in &self.base_urls {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }

    /// Asks the servers in order (blocking; all of them within one deadline). The first
    /// one that answers with an RDAP object decides; errors (unreachable, 4xx/5xx, not
    /// JSON, a refused redirect) move on to the next. `Err` only when none answered.
    pub fn lookup(&self, ip: IpAddr) -> Result<Answer, RdapError> {
        let deadline = Instant::now() + self.deadline;
        let mut last = RdapError::NoServer(ip);
        for base in self.servers_for(ip) {
            let url = format!("{base}/ip/{ip}");
            match self.fetch(&url, deadline, ip) {
                Ok(answer) => {
                    return Ok(Answer {
                        contact: abuse_email(&answer),
                        network: network_of(&answer, ip),
                    })
                }
                Err(e @ RdapError::Deadline(_)) => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "RDAP server failed, trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn fetch(&self, first: &str, deadline: Instant, ip: IpAddr) -> Result<Value, RdapError> {
        let mut url = first.to_string();
        let mut redirects = 0;
        let response = loop {
            let http = |message: String| RdapError::Http {
                url: url.clone(),
                message,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RdapError::Deadline(ip));
            }
            let response = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(left))
                .build()
                .header("Accept", "application/rdap+json, application/json")
                .call()
                .map_err(|e| match e {
                    ureq::Error::Timeout(_) => RdapError::Deadline(ip),
                    e => http(e.to_string()),
                })?;
            let status = response.status();
            if !status.is_redirection() {
                break response;
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_string();
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(http(format!("more than {MAX_REDIRECTS} redirects")));
            }
            // Only to https, and (by the resolver) only to public addresses.
            if !location.starts_with("https://") || location.contains(char::is_whitespace) {
                return Err(http(format!(
                    "redirect to {:?} refused: RDAP redirects must go to https://",
                    crate::mail::text::sanitize(&location, 200, crate::mail::text::Charset::Ascii)
                )));
            }
            url = location;
        };
        let http = |message: String| RdapError::Http {
            url: url.clone(),
            message,
        };
        let status = response.status();
        if !status.is_success() {
            return Err(http(format!("HTTP status {status}")));
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| http(e.to_string()))?;
        if body.len() as u64 > MAX_BODY {
            return Err(http(format!("answer larger than {MAX_BODY} bytes")));
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| RdapError::Json {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if !value.is_object() {
            return Err(RdapError::Json {
                url: url.clone(),
                message: "not a JSON object".into(),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_selects_most_specific_https_first() {
        let text = r#"{"version": "1.0", "publication": "2026-01-01T00:00:00Z", "services": [
            [["203.0.0.0/8"], ["http://rdap.apnic.example/", "https://rdap.apnic.example/"]],
            [["203.0.113.0/24", "198.51.100.0/24"], ["https://rdap.test.example/rdap/"]],
            [["2001:db8::/32"], ["https://rdap.v6.example/"]]
        ]}"#;
        let b = Bootstrap::parse(text).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            b.urls_for(ip("203.0.113.7")),
            vec!["https://rdap.test.example/rdap"]
        );
        assert_eq!(
            b.urls_for(ip("203.1.2.3")),
            vec!["https://rdap.apnic.example"]
        );
        assert_eq!(
            b.urls_for(ip("2001:db8::1")),
            vec!["https://rdap.v6.example"]
        );
        assert!(b.urls_for(ip("192.0.2.1")).is_empty());
        assert!(Bootstrap::parse("{}").is_err());
        assert!(Bootstrap::parse(r#"{"services": [[["x"], ["https://a"]]]}"#).is_err());
        let rdap = Rdap::new(
            vec!["https://fallback.example".into()],
            b,
            Duration::from_secs(1),
        );
        assert_eq!(
            rdap.servers_for(ip("203.0.113.7")),
            vec!["https://rdap.test.example/rdap", "https://fallback.example"]
        );
    }

    #[test]
    fn public_addresses_and_authorities() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.20.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["1.1.1.1", "193.0.6.139", "2001:67c:2e8:22::c100:68b"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        assert_eq!(
            authority("https://rdap.example/x").as_deref(),
            Some("rdap.example:443")
        );
        assert_eq!(
            authority("http://127.0.0.1:8080/rdap").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(authority("http://[::1]/rdap").as_deref(), Some("[::1]:80"));
        assert_eq!(
            authority("https://u@H.example:444").as_deref(),
            Some("h.example:444")
        );
    }

    #[test]
    fn override_most_specific_wins() {
        let o = vec![
            (
                "203.0.0.0/8".parse().unwrap(),
                "wide@example.net".to_string(),
            ),
            (
                "203.0.113.0/24".parse().unwrap(),
                "narrow@example.net".to_string(),
            ),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            override_for(&o, ip("203.0.113.7")),
            Some("narrow@example.net")
        );
        assert_eq!(override_for(&o, ip("203.9.9.9")), Some("wide@example.net"));
        assert_eq!(override_for(&o, ip("198.51.100.1")), None);
    }
}
