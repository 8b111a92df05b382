//! Configuration: the TOML file (public interface: key names are relied on by outside
//! harnesses) → [`RawConfig`] (serde, unknown keys refused) → validated [`Config`]. Every
//! problem is collected and reported at once, so an admin fixes the file in one pass.
//! Relative paths resolve against the directory of the config file.
//!
//! Each section's raw and validated types and its checks live in its own file
//! (`server.rs`, `scanner.rs`, `mailbox.rs`, `sieve.rs`, `quarantine.rs`, `state.rs`,
//! `notify.rs`, `abuse.rs`, `log.rs`; `ownership.rs` for `[mailbox]`'s owner and modes,
//! `spool.rs` for keys spread over sections, `rdap.rs` for the RDAP bootstrap files); this
//! file holds the whole file's types, loading, the order of the checks, the warnings and
//! the errors.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod acl;
mod digest;
mod domain;
mod log;
mod mailbox;
pub mod managesieve;
mod notify;
mod ownership;
mod quarantine;
mod scanner;
mod server;
mod sieve;
mod spool;
mod state;
mod web;
/// A file mode written in octal (`"0660"`, `"2770"`): at most `0o7777` (permission and
/// set-id/sticky bits). The one parser for `socket_mode`, `file_mode` and `dir_mode`; each
/// caller narrows it further.
fn octal_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

#[cfg(test)]
use acl::user_id;
pub use acl::XforwardAcl;
pub use digest::{DigestConfig, RawDigest, Schedule};
pub use domain::{DomainPolicy, RawDomain};
pub use log::{LogConfig, LogFormat, RawLog};
pub use mailbox::{MailboxConfig, RawMailbox, UnknownUsers};
pub use notify::{NotifyConfig, RawNotify, Relay};
pub use quarantine::{QuarantineConfig, RawQuarantine};
pub use scanner::{OnScanFailure, RawScanner, ScannerConfig, SignatureGlobs};
pub use server::{ListenAddr, RawServer, ServerConfig};
pub use sieve::{MessageLimits, RawSieve, SieveConfig};
pub use state::{Pooler, PostgresConfig, RawBackend, RawState, StateConfig};
pub use web::{AdminUser, RawWeb, WebConfig};
pub mod abuse;
pub mod rdap;
pub mod users_file;
pub use abuse::{AbuseConfig, RawAbuse};
pub use spool::{check_dir, check_existing_dir, DirProblem, SpoolConfig};

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
    #[serde(default)]
    pub managesieve: managesieve::RawManageSieve,
    /// `[domain."example.org"]`: per-domain AV policy.
    #[serde(default)]
    pub domain: std::collections::BTreeMap<String, RawDomain>,
    #[serde(default)]
    pub web: RawWeb,
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
    /// `[managesieve]`: the ManageSieve server (off by default).
    pub managesieve: managesieve::ManageSieveConfig,
    /// `[domain."..."]`: AV policy per domain (lowercased), for that domain's recipients.
    pub domains: std::collections::BTreeMap<String, DomainPolicy>,
    /// `[web]`: the quarantine's web page and its signed links (off by default).
    pub web: WebConfig,
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
        warnings.extend(ownership::warnings(self));
        warnings.extend(self.managesieve.warnings.iter().cloned());
        warnings.extend(quarantine::warnings(&self.quarantine));
        warnings.extend(web::warnings(self));
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
        // Keys of other sections that must be greater than 0: `[server]` checks them in one
        // table with its own.
        let positive = [
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
        ];
        let server = self.server.validate(base, &positive, &mut problems);
        let scanner = self.scanner.validate(base, &mut problems);
        let (mailbox, special_use) = self.mailbox.validate(base, &self.sieve, &mut problems);
        let notify = self.notify.validate(&server.hostname, &mut problems);
        let log = self.log.validate(&mut problems);
        let metrics_listen = self.server.validate_metrics_listen(&mut problems);
        let abuse = self.abuse.validate(base, &mut problems);
        let mut sieve = self.sieve.validate(base, special_use, &mut problems);
        sieve.namespace_prefix = mailbox.namespace_prefix.clone();
        let state = self.state.validate(base, &mut problems);
        let managesieve = self
            .managesieve
            .validate(base, &mailbox, &sieve, &mut problems);
        let quarantine =
            (self.quarantine).validate(base, &state, &mailbox.domains, &notify.from, &mut problems);
        let domains = domain::validate(self.domain, &mailbox.domains, &mut problems);
        let web = self.web.validate(base, &mut problems);
        if quarantine.digest.enabled {
            web.require_links("quarantine.digest.enabled = true", &mut problems);
        }
        let spool = spool::validate(
            self.server.spool_threshold,
            self.server.spool_dir.as_deref(),
            base,
            state.dir.as_deref(),
            &mut problems,
        );
        let (true, Some(scanner), Some(socket_mode)) =
            (problems.is_empty(), scanner, server.socket_mode)
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
            server: server.finish(&self.server, socket_mode, metrics_listen, spool),
            scanner,
            mailbox,
            sieve,
            quarantine,
            state,
            notify,
            abuse,
            log,
            managesieve,
            domains,
            web,
        })
    }
}

#[cfg(test)]
mod tests;
