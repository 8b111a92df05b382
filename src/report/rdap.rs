//! The abuse contact of an address: `[abuse] overrides`, then RDAP (RFC 9082 query, RFC
//! 9083 answer, RFC 9224 bootstrap), cached in the state store.
//!
//! RDAP answers are untrusted input: the body is read up to [`MAX_BODY`], the entity walk
//! stops at [`MAX_DEPTH`] levels and [`MAX_ENTITIES`] entities, and the address must look
//! like one ([`super::is_valid_email`]) before anything is sent to it.

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

/// Largest RDAP body read; real answers are a few KiB to a few hundred.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Entity nesting followed (registries nest abuse inside registrant: 2 or 3 levels).
pub const MAX_DEPTH: usize = 8;
/// Entities looked at in one answer.
pub const MAX_ENTITIES: usize = 1000;
/// Total time for one RDAP request, redirects included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a lookup failed (every server tried answered with an error or not at all).
#[derive(Debug, thiserror::Error)]
pub enum RdapError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: not RDAP JSON: {message}")]
    Json { url: String, message: String },
    #[error("no RDAP server to ask for {0}")]
    NoServer(IpAddr),
    #[error("{path}: {message}")]
    Bootstrap { path: PathBuf, message: String },
}

/// The address in `overrides` for `ip`: the most specific network that contains it wins.
pub fn override_for(overrides: &[(IpNet, String)], ip: IpAddr) -> Option<&str> {
    overrides
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, addr)| addr.as_str())
}

/// IANA's RFC 9224 bootstrap registry (`ipv4.json`, `ipv6.json`): network → base URLs.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    entries: Vec<(IpNet, Vec<String>)>,
}

impl Bootstrap {
    /// Reads and merges the files at `paths`.
    pub fn load(paths: &[PathBuf]) -> Result<Bootstrap, RdapError> {
        let mut all = Bootstrap::default();
        for path in paths {
            let err = |message: String| RdapError::Bootstrap {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let one = Bootstrap::parse(&text).map_err(err)?;
            all.entries.extend(one.entries);
        }
        Ok(all)
    }

    /// Parses one file: `{"services": [[["192.0.2.0/24", ...], ["https://rdap.example/"]], ...]}`.
    pub fn parse(text: &str) -> Result<Bootstrap, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let services = json
            .get("services")
            .and_then(Value::as_array)
            .ok_or("no \"services\" array (not an RFC 9224 bootstrap file)")?;
        let mut entries = Vec::new();
        for service in services {
            let (Some(nets), Some(urls)) = (
                service.get(0).and_then(Value::as_array),
                service.get(1).and_then(Value::as_array),
            ) else {
                return Err("a service is not [[networks], [urls]]".into());
            };
            let urls: Vec<String> = urls
                .iter()
                .filter_map(Value::as_str)
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .map(|u| u.trim_end_matches('/').to_string())
                .collect();
            for net in nets.iter().filter_map(Value::as_str) {
                let net: IpNet = net
                    .parse()
                    .map_err(|_| format!("{net:?} is not an IP network"))?;
                entries.push((net, urls.clone()));
            }
        }
        Ok(Bootstrap { entries })
    }

    /// The base URLs for `ip`: those of the most specific network holding it, `https`
    /// first (RFC 9224 §5: prefer the secure one).
    pub fn urls_for(&self, ip: IpAddr) -> Vec<String> {
        let Some((_, urls)) = self
            .entries
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
        else {
            return Vec::new();
        };
        let mut urls = urls.clone();
        urls.sort_by_key(|u| !u.starts_with("https://"));
        urls
    }
}

/// The abuse address in an RFC 9083 answer: the `email` of the first entity with the role
/// `abuse`, breadth first, so the one closest to the network wins (RIPE lists it at the top;
/// ARIN and others nest it inside the registrant organisation). `None` when there is none
/// or its address does not look like one.
pub fn abuse_email(answer: &Value) -> Option<String> {
    let mut level: Vec<&Value> = entities(answer).collect();
    let mut seen = 0;
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for entity in level {
            seen += 1;
            if seen > MAX_ENTITIES {
                return None;
            }
            let is_abuse = entity
                .get("roles")
                .and_then(Value::as_array)
                .is_some_and(|roles| {
                    roles
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|r| r.eq_ignore_ascii_case("abuse"))
                });
            if is_abuse {
                if let Some(email) = vcard_email(entity) {
                    return Some(email);
                }
            }
            next.extend(entities(entity));
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    None
}

fn entities(object: &Value) -> impl Iterator<Item = &Value> {
    object
        .get("entities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.is_object())
}

/// The first valid `email` property of an entity's jCard (RFC 7095):
/// `"vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["email", {}, "text", "a@b"]]]`.
pub fn vcard_email(entity: &Value) -> Option<String> {
    let card = entity.get("vcardArray")?.as_array()?;
    if card.first()?.as_str()? != "vcard" {
        return None;
    }
    card.get(1)?
        .as_array()?
        .iter()
        .filter_map(Value::as_array)
        .filter(|prop| {
            prop.first()
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("email"))
        })
        .filter_map(|prop| prop.get(3)?.as_str())
        .map(str::trim)
        .find(|addr| super::is_valid_email(addr))
        .map(str::to_string)
}

/// The RDAP client: base URLs in order, a blocking HTTP agent with a total timeout.
pub struct Rdap {
    base_urls: Vec<String>,
    bootstrap: Bootstrap,
    agent: ureq::Agent,
}

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The abuse address.
    Contact(String),
    /// A server answered for the address, with no usable abuse contact.
    NoContact,
}

impl Rdap {
    /// A client asking the bootstrap's servers for an address first, then `base_urls`.
    pub fn new(base_urls: Vec<String>, bootstrap: Bootstrap) -> Rdap {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .max_redirects(3)
            .http_status_as_error(false)
            .user_agent(concat!("sievegate/", env!("CARGO_PKG_VERSION")))
            .build();
        Rdap {
            base_urls,
            bootstrap,
            agent: ureq::Agent::new_with_config(config),
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

    /// Asks the servers in order (blocking; up to [`TIMEOUT`] each). The first one that
    /// answers with an RDAP object decides; errors (unreachable, 4xx/5xx, not JSON) move
    /// on to the next. `Err` only when none answered.
    pub fn lookup(&self, ip: IpAddr) -> Result<Lookup, RdapError> {
        let mut last = RdapError::NoServer(ip);
        for base in self.servers_for(ip) {
            let url = format!("{base}/ip/{ip}");
            match self.fetch(&url) {
                Ok(answer) => {
                    return Ok(match abuse_email(&answer) {
                        Some(addr) => Lookup::Contact(addr),
                        None => Lookup::NoContact,
                    })
                }
                Err(e) => {
                    tracing::debug!(error = %e, "RDAP server failed, trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn fetch(&self, url: &str) -> Result<Value, RdapError> {
        let http = |message: String| RdapError::Http {
            url: url.to_string(),
            message,
        };
        let response = self
            .agent
            .get(url)
            .header("Accept", "application/rdap+json, application/json")
            .call()
            .map_err(|e| http(e.to_string()))?;
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
            url: url.to_string(),
            message: e.to_string(),
        })?;
        if !value.is_object() {
            return Err(RdapError::Json {
                url: url.to_string(),
                message: "not a JSON object".into(),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vcard(email: &str) -> Value {
        json!(["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "NOC"], ["email", {"type": "work"}, "text", email]]])
    }

    #[test]
    fn abuse_entity_nested_in_registrant() {
        let answer = json!({
            "objectClassName": "ip network",
            "handle": "NET-203-0-113-0-1",
            "startAddress": "203.0.113.0",
            "endAddress": "203.0.113.255",
            "entities": [
                {"objectClassName": "entity", "handle": "ORG-1", "roles": ["registrant"],
                 "vcardArray": vcard("hostmaster@example.net"),
                 "entities": [
                    {"objectClassName": "entity", "handle": "TECH-1", "roles": ["technical"],
                     "vcardArray": vcard("noc@example.net")},
                    {"objectClassName": "entity", "handle": "ABUSE-1", "roles": ["abuse"],
                     "vcardArray": vcard("abuse@example.net")}
                 ]}
            ]
        });
        assert_eq!(abuse_email(&answer).as_deref(), Some("abuse@example.net"));
    }

    #[test]
    fn top_level_abuse_wins_over_nested() {
        let answer = json!({"entities": [
            {"roles": ["registrant"], "entities": [{"roles": ["abuse"], "vcardArray": vcard("deep@example.net")}]},
            {"roles": ["abuse", "technical"], "vcardArray": vcard("top@example.net")}
        ]});
        assert_eq!(abuse_email(&answer).as_deref(), Some("top@example.net"));
    }

    #[test]
    fn no_abuse_role_or_bad_cards() {
        let cases = [
            json!({"entities": [{"roles": ["registrant"], "vcardArray": vcard("a@example.net")}]}),
            json!({}),
            json!({"entities": "nope"}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["vcard", "x"]}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["notvcard", [["email", {}, "text", "a@example.net"]]]}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": vcard("not an address")}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": vcard("a@example.net\r\nBcc: x@y.z")}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["vcard", [["email", {}, "text", 42]]]}]}),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(abuse_email(c), None, "case {i}");
        }
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        for text in ["", "{", "[1,2", "null", "{\"entities\": [}"] {
            let parsed: Result<Value, _> = serde_json::from_str(text);
            if let Ok(v) = parsed {
                assert_eq!(abuse_email(&v), None);
            }
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = json!({"roles": ["abuse"], "vcardArray": vcard("deep@example.net")});
        for _ in 0..50 {
            v = json!({"roles": ["registrant"], "entities": [v]});
        }
        let answer = json!({"entities": [v]});
        assert_eq!(abuse_email(&answer), None);
    }

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
            vec!["https://rdap.apnic.example", "http://rdap.apnic.example"]
        );
        assert_eq!(
            b.urls_for(ip("2001:db8::1")),
            vec!["https://rdap.v6.example"]
        );
        assert!(b.urls_for(ip("192.0.2.1")).is_empty());
        assert!(Bootstrap::parse("{}").is_err());
        assert!(Bootstrap::parse(r#"{"services": [[["x"], ["https://a"]]]}"#).is_err());
        let rdap = Rdap::new(vec!["https://fallback.example".into()], b);
        assert_eq!(
            rdap.servers_for(ip("203.0.113.7")),
            vec!["https://rdap.test.example/rdap", "https://fallback.example"]
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
