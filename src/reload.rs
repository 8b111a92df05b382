//! SIGHUP reload: the configuration file is read and checked again, and when it is good,
//! new [`Services`] replace the current ones in [`Current`]. Each transaction takes the
//! services current at its MAIL, so sessions are never dropped: a delivery in flight
//! finishes with the services it started with, the session's next transaction uses the
//! new ones. A bad file (or a global script that no longer compiles) is refused with one
//! log line and the old services stay.
//!
//! What lives across reloads is reused, not reopened: the state store (SQLite must not be
//! opened twice), the outbox (its one sender task runs in `serve`; it takes the new
//! `[mailbox]` settings, redirect deadline and filter for users' logs once the reload is
//! applied, [`crate::outbound::Outbox::reconfigure`]) and the postmaster
//! notifier with its rate-limit window; the scanner (with its health flag and probe) and
//! the per-user delivery counts while their settings are unchanged. Scripts need nothing special: new services bring
//! an empty compile cache, and the cache keys every entry by the file's inode, size and
//! mtime anyway. The users file is re-read by the new services at once.
//!
//! Some keys cannot change without a restart (bound sockets, the connection slots, the
//! state store, the log format, the outbound relay). A reload keeps their old values and
//! logs a warning naming each changed one: see [`RESTART_ONLY`].

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{Config, ScannerConfig};
use crate::delivery::Services;
use crate::report::AbuseReporter;

/// The services new transactions use; replaced whole on reload. Cheap to clone (clones
/// share one cell).
#[derive(Clone)]
pub struct Current {
    tx: watch::Sender<Arc<Services>>,
}

impl Current {
    /// A cell holding `services`.
    pub fn new(services: Arc<Services>) -> Current {
        Current {
            tx: watch::Sender::new(services),
        }
    }

    /// The current services.
    pub fn get(&self) -> Arc<Services> {
        Arc::clone(&self.tx.borrow())
    }

    /// A receiver that sees every later replacement (the current value counts as seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Services>> {
        self.tx.subscribe()
    }

    /// Makes `services` current; new transactions take it from now on.
    pub fn replace(&self, services: Arc<Services>) {
        self.tx.send_replace(services);
    }
}

/// Keys a reload does not apply (their old value stays until a restart), and why.
pub const RESTART_ONLY: &[(&str, &str)] = &[
    ("server.listen", "the sockets are bound at startup"),
    ("server.socket_mode", "the sockets are bound at startup"),
    ("server.socket_group", "the sockets are bound at startup"),
    (
        "server.max_connections",
        "the connection slots are sized at startup",
    ),
    (
        "server.reserved_connections",
        "the connection slots are sized at startup",
    ),
    (
        "server.metrics_listen",
        "the metrics socket is bound at startup",
    ),
    (
        "server.hostname",
        "the outbound sender and the notifier keep their name",
    ),
    ("state.dir", "the state store stays open"),
    ("state.backend", "the state store stays open"),
    ("state.outbox_lease_secs", "the outbox sender keeps running"),
    ("state.outbox_poll_secs", "the outbox sender keeps running"),
    ("notify", "the outbound relay and the notifier keep running"),
    ("log.format", "the log writer is set up once"),
];

/// A configuration that passed every check, ready to become current.
pub struct Reloaded {
    /// The new services (reusing the old state store, outbox and notifier).
    pub services: Services,
    /// Restart-only keys that changed in the file; their old values were kept.
    pub kept: Vec<&'static str>,
    /// The new config's warnings (as `check-config` prints them).
    pub warnings: Vec<String>,
}

/// Why a reload was refused: every problem, as `check-config` would print it.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct Refused {
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Reads `path` again and builds services from it, reusing `old`'s long-lived parts.
/// Blocking (reads files, compiles the global scripts): call it off the runtime's
/// workers.
pub fn reload(path: &Path, old: &Services) -> Result<Reloaded, Refused> {
    let mut config = Config::load(path).map_err(|e| Refused {
        problems: e.to_string().lines().map(str::to_string).collect(),
    })?;
    let kept = keep_restart_only(&old.config, &mut config);
    if config.quarantine.enabled && !config.state.is_durable() {
        // Validation saw the new state.dir; without it the quarantine index would live in
        // memory and be lost at the next restart.
        return Err(Refused {
            problems: vec![
                "quarantine.enabled needs state.dir, which only a restart opens: restart sievegate instead"
                    .to_string(),
            ],
        });
    }
    let warnings = config.warnings();
    let mut services = Services::with_state(config, Arc::clone(&old.state));
    // One outbox sender and one notifier window for the life of the process.
    services.outbox = old.outbox.clone();
    services.notifier = old.notifier.clone();
    // The same clamd settings: the same scanner, so its health flag (and the probe in
    // `serve` that keeps it) carries on. Otherwise `serve` starts a probe for the new one.
    if same_scanner(&old.config.scanner, &services.config.scanner) {
        services.scanner = old.scanner.clone();
    }
    // The same per-user limit: the same counts, so deliveries in flight still count.
    if old.config.mailbox.user_concurrency_limit == services.config.mailbox.user_concurrency_limit {
        services.user_limit = old.user_limit.clone();
    }
    if services.abuse.is_some() {
        // Rebuilt so its reports go into the outbox whose sender runs.
        let sink = Arc::new(services.outbox.clone());
        services.abuse =
            AbuseReporter::new(&services.config, Arc::clone(&services.state), sink).ok();
    }
    let problems: Vec<String> = services
        .filter
        .check()
        .iter()
        .map(|p| p.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(Refused { problems });
    }
    Ok(Reloaded {
        services,
        kept,
        warnings,
    })
}

/// True when both configs build the same [`crate::scan::Scanner`].
fn same_scanner(old: &ScannerConfig, new: &ScannerConfig) -> bool {
    old.clamd == new.clamd
        && old.timeout == new.timeout
        && old.heuristic_prefixes == new.heuristic_prefixes
        && old.max_scan_size == new.max_scan_size
        && old.pass_fd == new.pass_fd
}

/// True when `new` uses the scanner `old` used, with the same probe period: the running
/// clamd probe still serves it. Otherwise the caller starts a probe for `new`'s scanner.
pub fn same_probe(old: &Services, new: &Services) -> bool {
    std::ptr::eq(old.scanner.health(), new.scanner.health())
        && old.config.scanner.health_interval == new.config.scanner.health_interval
}

/// Puts the old value of every restart-only key back into `new`; returns the keys whose
/// value differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($key:literal, $($field:ident).+) => {
            if old.$($field).+ != new.$($field).+ {
                kept.push($key);
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    keep!("server.listen", server.listen);
    keep!("server.socket_mode", server.socket_mode);
    keep!("server.socket_group", server.socket_group);
    keep!("server.max_connections", server.max_connections);
    keep!("server.reserved_connections", server.reserved_connections);
    keep!("server.metrics_listen", server.metrics_listen);
    keep!("server.hostname", server.hostname);
    keep!("state.dir", state.dir);
    keep!("state.backend", state.postgres);
    keep!("state.outbox_lease_secs", state.outbox_lease);
    keep!("state.outbox_poll_secs", state.outbox_poll);
    keep!("notify", notify);
    keep!("log.format", log.format);
    kept
}

/// Reloads from `path` into `current` and logs one line: reloaded, or refused with every
/// problem (the old services stay). Returns the new services when they became current.
pub async fn apply(path: &Path, current: &Current) -> Option<Arc<Services>> {
    let old = current.get();
    let owned = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || reload(&owned, &old)).await;
    let reloaded = match result {
        Ok(Ok(reloaded)) => reloaded,
        Ok(Err(refused)) => {
            crate::metrics::reload(false);
            tracing::error!(
                config = %path.display(),
                problems = %refused,
                "reload refused: the running configuration stays: {refused}"
            );
            return None;
        }
        Err(e) => {
            crate::metrics::reload(false);
            tracing::error!(config = %path.display(), error = %e, "reload refused: the reload task failed; the running configuration stays");
            return None;
        }
    };
    for warning in &reloaded.warnings {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    for key in &reloaded.kept {
        let why = RESTART_ONLY
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, why)| *why)
            .unwrap_or("it needs a restart");
        tracing::warn!(
            key,
            "reload: {key} changed but needs a restart ({why}): the old value stays"
        );
    }
    let services = Arc::new(reloaded.services);
    // The outbox outlives configs: from now on its local deliveries and failure keeps use
    // the new [mailbox] settings (not the ones it started with).
    services.outbox.reconfigure(
        &services.config,
        Some(Arc::clone(&services.filter) as Arc<dyn crate::outbound::UserNotes>),
    );
    current.replace(Arc::clone(&services));
    crate::metrics::reload(true);
    tracing::info!(
        config = %path.display(),
        kept = reloaded.kept.len(),
        "reloaded {}: new transactions use it",
        path.display()
    );
    Some(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_server: &str, extra: &str) -> Config {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:2424\"]\nhostname = \"mx.example.test\"\n{extra_server}\n\
             [scanner]\nclamd = \"unix:/run/clamd.sock\"\n\
             [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"/var/mail/%n\"\n{extra}\n"
        );
        Config::from_toml(&text, Path::new("/etc/sievegate/sievegate.toml")).expect("config")
    }

    #[test]
    fn restart_only_keys_keep_their_old_value() {
        let old = config("", "");
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "", &[]),
            ("max_recipients = 5", "", &[]),
            ("idle_timeout_secs = 7", "[log]\nlevel = \"debug\"", &[]),
            (
                "max_connections = 10",
                "",
                // The default reservation is an eighth of max_connections.
                &["server.max_connections", "server.reserved_connections"],
            ),
            (
                "max_connections = 100\nreserved_connections = 32",
                "",
                &["server.max_connections"],
            ),
            (
                "metrics_listen = \"127.0.0.1:9425\"",
                "[state]\ndir = \"/var/lib/sievegate\"",
                &["server.metrics_listen", "state.dir"],
            ),
            ("socket_mode = \"0600\"", "", &["server.socket_mode"]),
            ("", "[log]\nformat = \"json\"", &["log.format"]),
            ("", "[notify]\nmax_per_minute = 3", &["notify"]),
        ];
        for (server, extra, want) in cases {
            let mut new = config(server, extra);
            let kept = keep_restart_only(&old, &mut new);
            assert_eq!(kept, *want, "{server} / {extra}");
            assert_eq!(new.server.max_connections, old.server.max_connections);
            assert_eq!(new.server.metrics_listen, old.server.metrics_listen);
            assert_eq!(new.state.dir, old.state.dir);
            assert_eq!(new.log.format, old.log.format);
            assert_eq!(new.notify, old.notify);
            assert_eq!(new.server.socket_mode, old.server.socket_mode);
        }
        // Reloadable keys take their new value.
        let mut new = config("max_recipients = 5", "[log]\nlevel = \"debug\"");
        keep_restart_only(&old, &mut new);
        assert_eq!(new.server.max_recipients, 5);
        assert_eq!(new.log.level, "debug");
    }

    #[test]
    fn enabling_the_quarantine_with_a_new_state_dir_needs_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sievegate.toml");
        let base = "[server]\nlisten = [\"127.0.0.1:2424\"]\nhostname = \"mx.example.test\"\n\
                    [scanner]\nclamd = \"unix:/run/clamd.sock\"\n\
                    [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"m/%n\"\n";
        std::fs::write(&path, base).expect("write");
        let old = Services::new(Config::load(&path).expect("config"));
        let quarantine =
            format!("{base}[state]\ndir = \"state\"\n[quarantine]\nenabled = true\ndir = \"q\"\n");
        std::fs::write(&path, quarantine).expect("write");
        let Err(refused) = reload(&path, &old) else {
            panic!("the reload should be refused");
        };
        assert!(refused.to_string().contains("restart"), "{refused}");
        // Any other change applies.
        std::fs::write(&path, format!("{base}[sieve]\ncpu_limit = 5\n")).expect("write");
        let reloaded = reload(&path, &old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reloaded.services.config.sieve.cpu_limit, 5);
        assert!(reloaded.kept.is_empty());
    }

    #[test]
    fn every_kept_key_is_documented() {
        let old = config("", "");
        let mut new = config(
            "max_connections = 10\nreserved_connections = 2\nmetrics_listen = \"127.0.0.1:1\"\nsocket_mode = \"0600\"",
            "[state]\ndir = \"/x\"\nbackend = \"postgres\"\nurl = \"host=db\"\noutbox_lease_secs = 60\noutbox_poll_secs = 5\n[log]\nformat = \"json\"\n[notify]\nmax_per_minute = 3",
        );
        new.server.listen.clear();
        new.server.hostname = "other.example".into();
        new.server.socket_group = Some(4242);
        let kept = keep_restart_only(&old, &mut new);
        let documented: Vec<&str> = RESTART_ONLY.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kept, documented,
            "every restart-only key is checked, in order"
        );
    }
}
