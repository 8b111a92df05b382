//! `[notify]`: who hears about infected mail (the postmaster notice), and the relay every
//! message sievegate sends goes through when its recipient is not one of our own users.
//! Kept apart from `mod.rs` so the section reads in one place.

use std::fmt;

use serde::Deserialize;

/// `[notify]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Who gets one notice per infected message. Default: none (no notices).
    pub postmaster: Option<String>,
    /// `HOST:PORT` (`[IPv6]:PORT`) of the SMTP relay for mail to non-local recipients.
    #[serde(default = "default_relay")]
    pub relay: String,
    /// Notices per minute; beyond it, the rest of that minute go into one digest.
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// The notices' `From:` address. Default: `MAILER-DAEMON@<server.hostname>`.
    pub from: Option<String>,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify {
            postmaster: None,
            relay: default_relay(),
            max_per_minute: default_max_per_minute(),
            from: None,
        }
    }
}

fn default_relay() -> String {
    "127.0.0.1:25".into()
}

fn default_max_per_minute() -> u32 {
    10
}

/// Validated `[notify]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Where notices go; `None`: notices are off.
    pub postmaster: Option<String>,
    /// The SMTP relay for non-local recipients.
    pub relay: Relay,
    /// Notices per minute before the rest are collected into a digest; at least 1.
    pub max_per_minute: u32,
    /// The `From:` address of every notice.
    pub from: String,
}

/// An SMTP relay: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Relay {
    /// Parses `HOST:PORT` or `[IPv6]:PORT`.
    pub fn parse(value: &str) -> Result<Relay, String> {
        let bad = || format!("{value:?} is not HOST:PORT (or [IPv6]:PORT)");
        let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !host_ok || port == 0 {
            return Err(bad());
        }
        Ok(Relay {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl RawNotify {
    /// Checks every key, adding problems to `problems`; `hostname` gives the default
    /// `from`. Always returns a value (used only when there are no problems at all).
    pub fn validate(self, hostname: &str, problems: &mut Vec<String>) -> NotifyConfig {
        let mut address = |key: &str, value: Option<String>| {
            let value = value?;
            if crate::mail::address::is_plain_address(&value) {
                Some(value)
            } else {
                problems.push(format!(
                    "notify.{key}: {value:?} is not a plain address like \"postmaster@example.test\""
                ));
                None
            }
        };
        let postmaster = address("postmaster", self.postmaster);
        let from =
            address("from", self.from).unwrap_or_else(|| format!("MAILER-DAEMON@{hostname}"));
        let relay = Relay::parse(&self.relay).unwrap_or_else(|e| {
            problems.push(format!("notify.relay: {e}"));
            Relay {
                host: String::new(),
                port: 0,
            }
        });
        if self.max_per_minute == 0 {
            problems.push("notify.max_per_minute: must be greater than 0".to_string());
        }
        NotifyConfig {
            postmaster,
            relay,
            max_per_minute: self.max_per_minute,
            from,
        }
    }
}

/// Valid but probably wrong: a postmaster at one of our domains whom `[mailbox] users_file`
/// does not list would never get a notice (each one is logged as an error and dropped).
pub fn warnings(config: &super::Config) -> Vec<String> {
    let Some(postmaster) = &config.notify.postmaster else {
        return Vec::new();
    };
    let mailbox = &config.mailbox;
    let Some(users_file) = &mailbox.users_file else {
        return Vec::new();
    };
    let Ok(rcpt) = crate::mail::address::Recipient::resolve(
        postmaster,
        &mailbox.domains,
        &mailbox.recipient_delimiter,
    ) else {
        // Not one of ours: it goes through the relay.
        return Vec::new();
    };
    match super::users_file::UserTable::load(users_file) {
        Ok(table) if table.get(&rcpt.local, &rcpt.domain).is_none() => vec![format!(
            "notify.postmaster: {postmaster} is at a local domain but not in {}: notices to it would be dropped",
            users_file.display()
        )],
        // Listed, or the file is unreadable (reported as a problem already).
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_table() {
        let ok: &[(&str, &str, u16)] = &[
            ("127.0.0.1:25", "127.0.0.1", 25),
            ("relay.example.test:587", "relay.example.test", 587),
            ("[::1]:25", "::1", 25),
            ("localhost:2525", "localhost", 2525),
        ];
        for (input, host, port) in ok {
            let relay = Relay::parse(input).expect(input);
            assert_eq!((relay.host.as_str(), relay.port), (*host, *port), "{input}");
            assert_eq!(relay.to_string(), *input);
        }
        for bad in [
            "",
            "127.0.0.1",
            ":25",
            "host:",
            "host:0",
            "host:70000",
            "::1:25",
            "[::1]25",
            "a b:25",
            "host:port",
        ] {
            assert!(Relay::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_problem_at_once() {
        let raw = RawNotify {
            postmaster: Some("nobody".into()),
            relay: "nowhere".into(),
            max_per_minute: 0,
            from: Some("x y@z".into()),
        };
        let mut problems = Vec::new();
        raw.validate("mx.example.test", &mut problems);
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn warns_about_a_local_postmaster_missing_from_the_users_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("users"), "alice@example.test::::::\n").expect("users");
        let path = dir.path().join("sievegate.toml");
        let warnings = |postmaster: &str| {
            let toml = format!(
                "[server]\nlisten = [\"127.0.0.1:2424\"]\nhostname = \"mx.example.test\"\n\
                 [scanner]\nclamd = \"unix:clamd.ctl\"\n\
                 [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"m/%n\"\nusers_file = \"users\"\n\
                 [notify]\npostmaster = \"{postmaster}\"\n"
            );
            let config = super::super::Config::from_toml(&toml, &path).expect("valid");
            warnings(&config)
        };
        let w = warnings("postmaster@example.test");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("notices to it would be dropped"), "{w:?}");
        assert!(warnings("alice+notices@example.test").is_empty());
        assert!(warnings("postmaster@example.net").is_empty());
    }

    #[test]
    fn defaults() {
        let mut problems = Vec::new();
        let config = RawNotify::default().validate("mx.example.test", &mut problems);
        assert!(problems.is_empty());
        assert_eq!(
            config,
            NotifyConfig {
                postmaster: None,
                relay: Relay {
                    host: "127.0.0.1".into(),
                    port: 25
                },
                max_per_minute: 10,
                from: "MAILER-DAEMON@mx.example.test".into(),
            }
        );
    }
}
