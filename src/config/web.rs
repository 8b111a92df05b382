//! `[web]`: the quarantine's web page and the signed links to it (in digests and notices);
//! [`RawWeb`] as written, [`WebConfig`] validated. The key file itself is read where it is
//! used (`quarantine::link::LinkKey::load`, by `serve` and `check-config`): this layer
//! imports no feature module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve, ListenAddr};

/// `[web]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Where the page is served: `HOST:PORT` or `unix:PATH` (for a reverse proxy on this
    /// host), like `[server] listen`. Empty: no web server.
    #[serde(default)]
    pub listen: Vec<String>,
    /// The address users reach the page at (the reverse proxy's), which links start with:
    /// `https://quarantine.example.org` or with a path prefix.
    pub base_url: Option<String>,
    /// The HMAC key that signs the links: at least 32 bytes, mode 0600 or stricter.
    pub secret_file: Option<String>,
    /// How long a link works after it was made.
    #[serde(default = "defaults::link_ttl_days")]
    pub link_ttl_days: u64,
    /// The admin view's users: `"name:{SCHEME}hash"` each (Dovecot's password schemes, as
    /// `doveadm pw` prints them). Empty: no admin view.
    #[serde(default)]
    pub admin_users: Vec<String>,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            listen: Vec::new(),
            base_url: None,
            secret_file: None,
            link_ttl_days: defaults::link_ttl_days(),
            admin_users: Vec::new(),
        }
    }
}

/// Validated `[web]`.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// The page's listeners; empty when off.
    pub listen: Vec<ListenAddr>,
    /// Without a trailing slash; `Some` whenever `listen` is set (or a check of another
    /// section, [`WebConfig::require_links`], passed).
    pub base_url: Option<String>,
    /// Absolute; `Some` whenever `listen` is set.
    pub secret_file: Option<PathBuf>,
    /// Lifetime of a link, 1 to 365 days.
    pub link_ttl: Duration,
    /// `admin_users`: who may log in to the admin view; empty when there is none.
    pub admin_users: Vec<AdminUser>,
}

/// One admin of the admin view: a name and a password hash checked at login.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUser {
    /// The login name (no `:`, no white space or control characters).
    pub name: String,
    /// `{SCHEME}hash`; kept out of `Debug` so no log line carries it.
    pub password: String,
}

impl std::fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `"name:{SCHEME}hash"` → an admin, or why not (the hash is never repeated in the text).
fn admin_user(entry: &str) -> Result<AdminUser, String> {
    let Some((name, password)) = entry.split_once(':') else {
        return Err("is not \"name:{SCHEME}hash\"".to_string());
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{name:?}: a name must be non-empty, without white space or control characters"
        ));
    }
    let scheme_ok = password
        .strip_prefix('{')
        .and_then(|rest| rest.split_once('}'))
        .is_some_and(|(scheme, hash)| !scheme.is_empty() && !hash.is_empty());
    if !scheme_ok {
        return Err(format!(
            "{name:?}: the password must be a {{SCHEME}}hash as doveadm pw prints it"
        ));
    }
    Ok(AdminUser {
        name: name.to_string(),
        password: password.to_string(),
    })
}

impl WebConfig {
    /// Whether the web server runs.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Reports what is missing for making links, for a feature (`why`, e.g.
    /// `"quarantine.digest.enabled = true"`) that puts them into mail even on a host that
    /// serves no page.
    pub fn require_links(&self, why: &str, problems: &mut Vec<String>) {
        if self.base_url.is_none() {
            problems.push(format!(
                "web.base_url: needed when {why} (the links in the mail start with it)"
            ));
        }
        if self.secret_file.is_none() {
            problems.push(format!(
                "web.secret_file: needed when {why} (the key that signs the links)"
            ));
        }
    }
}

impl RawWeb {
    /// Checks `[web]`: every problem goes to `problems`.
    pub(super) fn validate(self, base: &Path, problems: &mut Vec<String>) -> WebConfig {
        let mut listen = Vec::new();
        for entry in &self.listen {
            match entry.strip_prefix("unix:") {
                Some("") => problems.push("web.listen: \"unix:\" needs a path".to_string()),
                Some(path) => listen.push(ListenAddr::Unix(resolve(base, path))),
                None => match entry.parse() {
                    Ok(addr) => listen.push(ListenAddr::Tcp(addr)),
                    Err(_) => problems.push(format!(
                        "web.listen: {entry:?} is neither HOST:PORT (an IP address and port) nor unix:PATH"
                    )),
                },
            }
        }
        let base_url = self.base_url.as_deref().and_then(|url| {
            check_base_url(url)
                .map_err(|why| problems.push(format!("web.base_url: {url:?} {why}")))
                .ok()
        });
        let secret_file = match self.secret_file.as_deref() {
            Some("") => {
                problems.push("web.secret_file: must not be empty".to_string());
                None
            }
            Some(path) => Some(resolve(base, path)),
            None => None,
        };
        if !(1..=365).contains(&self.link_ttl_days) {
            problems.push(format!(
                "web.link_ttl_days: {} must be between 1 and 365",
                self.link_ttl_days
            ));
        }
        let mut admin_users: Vec<AdminUser> = Vec::new();
        for (n, entry) in self.admin_users.iter().enumerate() {
            match admin_user(entry) {
                Ok(user) if admin_users.iter().any(|u| u.name == user.name) => problems.push(
                    format!("web.admin_users[{n}]: {:?} is listed twice", user.name),
                ),
                Ok(user) => admin_users.push(user),
                Err(why) => problems.push(format!("web.admin_users[{n}]: {why}")),
            }
        }
        let config = WebConfig {
            admin_users,
            listen,
            base_url,
            secret_file,
            link_ttl: Duration::from_secs(self.link_ttl_days.clamp(1, 365) * 86_400),
        };
        if !self.listen.is_empty() {
            // Only what is missing: a bad value was reported above.
            if self.base_url.is_none() || self.secret_file.is_none() {
                let mut missing = Vec::new();
                config.require_links("web.listen is set", &mut missing);
                problems.extend(missing.into_iter().filter(|p| {
                    (p.starts_with("web.base_url") && self.base_url.is_none())
                        || (p.starts_with("web.secret_file") && self.secret_file.is_none())
                }));
            }
        }
        config
    }
}

/// Valid settings that are probably not what the admin wants.
pub(super) fn warnings(config: &super::Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.web.enabled() && !config.quarantine.enabled {
        warnings.push(
            "web.listen is set but quarantine.enabled = false: the page has no entries to show"
                .to_string(),
        );
    }
    warnings
}

/// `url` without its trailing slashes if it is an absolute `http`/`https` URL with a host and
/// no query, fragment, whitespace or control characters (it is written into mail and HTML
/// as it is); otherwise why not.
fn check_base_url(url: &str) -> Result<String, &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// (or http://)")?;
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        return Err("must not contain spaces, quotes, angle brackets or control characters");
    }
    if url.contains(['?', '#']) {
        return Err("must not have a query or a fragment");
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err("needs a host name (and no user@)");
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Defaults of the `[web]` keys.
mod defaults {
    /// Two weeks: a weekly digest's links still work when the next one arrives.
    pub fn link_ttl_days() -> u64 {
        14
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError};
    use super::*;

    const MINIMAL: &str = r#"
[server]
listen = ["127.0.0.1:2424"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:run/clamd.sock"
[mailbox]
domains = ["example.test"]
maildir = "vmail/%d/%n/Maildir"
"#;
    const QUARANTINE: &str =
        "[quarantine]\nenabled = true\ndir = \"q\"\n[state]\ndir = \"/var/lib/sievegate\"\n";

    fn problems(text: &str) -> String {
        match Config::from_toml(text, Path::new("/etc/sievegate/s.toml")) {
            Err(ConfigError::Invalid { problems, .. }) => problems.join("\n"),
            other => panic!("expected problems: {other:?}"),
        }
    }

    #[test]
    fn off_by_default() {
        let config = Config::from_toml(MINIMAL, Path::new("/etc/sievegate/s.toml")).expect("valid");
        assert!(!config.web.enabled());
        assert_eq!(config.web.link_ttl, Duration::from_secs(14 * 86_400));
        assert_eq!(config.web.base_url, None);
    }

    #[test]
    fn valid_section() {
        let text = format!(
            "{MINIMAL}{QUARANTINE}[web]\nlisten = [\"127.0.0.1:8025\", \"unix:run/web.sock\"]\nbase_url = \"https://quarantine.example.test/mail/\"\nsecret_file = \"link.key\"\nlink_ttl_days = 7\n"
        );
        let config = Config::from_toml(&text, Path::new("/etc/sievegate/s.toml")).expect("valid");
        let web = &config.web;
        assert!(web.enabled());
        assert_eq!(
            web.listen,
            vec![
                ListenAddr::Tcp("127.0.0.1:8025".parse().expect("addr")),
                ListenAddr::Unix(PathBuf::from("/etc/sievegate/run/web.sock")),
            ]
        );
        assert_eq!(
            web.base_url.as_deref(),
            Some("https://quarantine.example.test/mail")
        );
        assert_eq!(
            web.secret_file,
            Some(PathBuf::from("/etc/sievegate/link.key"))
        );
        assert_eq!(web.link_ttl, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn every_problem_at_once() {
        let text = format!(
            "{MINIMAL}[web]\nlisten = [\"localhost\", \"unix:\"]\nbase_url = \"ftp://x\"\nsecret_file = \"\"\nlink_ttl_days = 0\n"
        );
        let got = problems(&text);
        for needle in [
            "web.listen: \"localhost\" is neither",
            "web.listen: \"unix:\" needs a path",
            "web.base_url: \"ftp://x\" must start with https://",
            "web.secret_file: must not be empty",
            "web.link_ttl_days: 0 must be between 1 and 365",
        ] {
            assert!(got.contains(needle), "{needle:?} missing in:\n{got}");
        }
        // Missing keys are named once each, and no "needed" for keys that are set but bad.
        assert!(!got.contains("web.base_url: needed"), "{got}");
        let got = problems(&format!(
            "{MINIMAL}{QUARANTINE}[web]\nlisten = [\"127.0.0.1:8025\"]\nlink_ttl_days = 366\n"
        ));
        assert!(
            got.contains("web.base_url: needed when web.listen is set"),
            "{got}"
        );
        assert!(
            got.contains("web.secret_file: needed when web.listen is set"),
            "{got}"
        );
        assert!(got.contains("web.link_ttl_days: 366"), "{got}");
        assert_eq!(got.lines().count(), 3, "{got}");
    }

    #[test]
    fn a_page_without_a_quarantine_is_a_warning() {
        let text = format!(
            "{MINIMAL}[web]\nlisten = [\"127.0.0.1:8025\"]\nbase_url = \"https://q.example.test\"\nsecret_file = \"k\"\n"
        );
        let config = Config::from_toml(&text, Path::new("/etc/sievegate/s.toml")).expect("valid");
        assert!(
            config
                .warnings()
                .iter()
                .any(|w| w.contains("quarantine.enabled = false")),
            "{:?}",
            config.warnings()
        );
        let text = format!("{text}{QUARANTINE}");
        let config = Config::from_toml(&text, Path::new("/etc/sievegate/s.toml")).expect("valid");
        assert!(!config.warnings().iter().any(|w| w.starts_with("web.")));
    }

    #[test]
    fn base_urls() {
        for good in [
            "https://q.example",
            "http://127.0.0.1:8025/",
            "https://q.example/a/b",
        ] {
            assert!(check_base_url(good).is_ok(), "{good}");
        }
        for bad in [
            "q.example",
            "https://",
            "https:///x",
            "https://u@q.example",
            "https://q.example/?a=1",
            "https://q.example/#x",
            "https://q.example/ x",
            "https://q.example/\"><script>",
            "https://q.example/\r\nX: y",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_users_are_name_and_scheme_hash() {
        let ok = admin_user("anna:{SHA512-CRYPT}$6$salt$hash").expect("valid");
        assert_eq!(ok.name, "anna");
        assert_eq!(ok.password, "{SHA512-CRYPT}$6$salt$hash");
        assert!(!format!("{ok:?}").contains("$6$"), "no hash in Debug");
        for bad in [
            "anna",
            ":{PLAIN}x",
            "an na:{PLAIN}x",
            "anna:secret",
            "anna:{}x",
            "anna:{PLAIN}",
        ] {
            let why = admin_user(bad).expect_err(bad);
            assert!(!why.contains("secret"), "{why}");
        }
    }
}
