//! `serve`'s startup errors, each with what is wrong, which key or file, and the fix: the
//! library's errors carry the facts (the address, the step, the errno); the advice on a
//! refused path comes from trying it as ourselves ([`probe`]) and reading the refusing
//! path's owner and mode ([`advice`]), as `check-config` does.

use std::path::Path;

use sievegate::config::{Config, ListenAddr};
use sievegate::server::{ServerError, UnixStep};

use crate::cli::check_config::advice;
use crate::cli::check_config::identity::{group_name, Identity};
use crate::cli::check_config::plan;
use crate::cli::check_config::probe::{self, Need, Outcome, Probe};

/// Why a TCP address cannot be bound, and what to do; `key` is the config key naming it.
pub fn tcp(key: &str, addr: &std::net::SocketAddr, e: &std::io::Error) -> String {
    let fix = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "another process listens there (ss -ltnp 'sport = :{}' shows which): stop it, or change {key}",
            addr.port()
        ),
        Some(libc::EACCES) if addr.port() < 1024 => format!(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE: use a port above 1023 in {key}, or add AmbientCapabilities=CAP_NET_BIND_SERVICE in a drop-in (systemctl edit sievegate)"
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "no interface of this host has the address {}: change {key}",
            addr.ip()
        ),
        _ => format!("check {key}"),
    };
    format!("{key}: cannot listen on {addr}: {e}: {fix}")
}

/// [`ServerError`] with its fix.
pub fn server(e: &ServerError, who: &Identity) -> String {
    match e {
        ServerError::Bind {
            addr: ListenAddr::Tcp(sa),
            source,
        } => tcp("server.listen", sa, source),
        ServerError::Bind { addr, source } => format!("server.listen: cannot listen on {addr}: {source}"),
        ServerError::SocketInUse { addr } => format!(
            "server.listen: cannot listen on {addr}: a server is already answering on that socket: stop it (another sievegate? systemctl stop sievegate), or give this one another path in server.listen"
        ),
        ServerError::Unix {
            addr,
            step: UnixStep::Chown(gid),
            source,
        } => {
            let group = group_name(*gid);
            format!(
                "server.socket_group: cannot listen on {addr}: cannot give the socket group {group} (server.socket_group = {group:?}): {source}: user {u} is not a member of group {group}, and only members (or root) can give a file that group; {}. Or leave socket_group unset (the socket keeps group {ug}) and add the MTA's user to group {ug} (adduser postfix {ug})",
                advice::join_group(who, &group),
                u = who.name,
                ug = group_name(who.gid),
            )
        }
        ServerError::Unix {
            addr,
            step: step @ (UnixStep::RemoveStale(_) | UnixStep::CreateDir(_) | UnixStep::Bind(_)),
            source,
        } => {
            let ListenAddr::Unix(sock) = addr else {
                return format!("server.listen: {e}");
            };
            let dir = sock.parent().unwrap_or(Path::new("/"));
            let fix = why_denied(who, dir, Need::Write).unwrap_or_else(|| {
                format!("the directory {} must exist or be creatable, and be writable by user {}", dir.display(), who.name)
            });
            let unit = match dir.strip_prefix("/run") {
                Ok(rest) if !rest.as_os_str().is_empty() => format!(
                    "; under systemd, RuntimeDirectory={} in the unit creates it for the unit's user at each start",
                    rest.display()
                ),
                _ => String::new(),
            };
            format!("server.listen: cannot listen on {addr}: cannot {step}: {source}: {fix}{unit}")
        }
        ServerError::Unix { .. } => format!("server.listen: {e}"),
    }
}

/// The state store cannot be opened: which directory or file refuses, and the fix.
pub fn state(config: &Config, who: &Identity, e: &sievegate::state::StateError) -> String {
    if let Some(pg) = &config.state.postgres {
        // The database, not a directory (dir then only places the spool).
        return format!("state.url ({}): {e}", pg.redacted());
    }
    let Some(dir) = &config.state.dir else {
        return format!("{e}");
    };
    let mut fix = why_denied(who, dir, Need::Write);
    for name in ["", "-wal", "-shm"] {
        let file = dir.join(format!("{}{name}", sievegate::state::sqlite::DB_FILE));
        if fix.is_none() && file.exists() {
            fix = why_denied(who, &file, Need::WriteFile);
        }
    }
    let fix = fix.unwrap_or_else(|| {
        format!(
            "the directory must be writable by user {} (sievegate creates {} in it), or set another state.dir",
            who.name,
            sievegate::state::sqlite::DB_FILE
        )
    });
    format!("state.dir = {:?}: {e}: {fix}", dir.display().to_string())
}

/// The configuration file cannot be read by us: the fix, when a permission refuses it.
pub fn config_file(who: &Identity, path: &Path) -> Option<String> {
    why_denied(who, path, Need::Read)
}

/// The paths of a configuration that cannot be loaded, which we cannot read: the users file
/// and the global scripts, from the raw file (the validated one does not exist).
pub fn unreadable(who: &Identity, path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(raw) = toml::from_str::<sievegate::config::RawConfig>(&text) else {
        return Vec::new();
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::path::absolute(&base).unwrap_or(base);
    let mut named: Vec<(&str, &str)> = Vec::new();
    if let Some(users) = raw.mailbox.users_file.as_deref() {
        named.push(("mailbox.users_file", users));
    }
    for p in &raw.sieve.before {
        named.push(("sieve.before", p));
    }
    for p in &raw.sieve.after {
        named.push(("sieve.after", p));
    }
    if let Some(p) = raw.sieve.default.as_deref() {
        named.push(("sieve.default", p));
    }
    named
        .into_iter()
        .filter_map(|(key, p)| {
            let fix = why_denied(who, &base.join(p), Need::Read)?;
            Some(format!("{key}: {fix}"))
        })
        .collect()
}

/// What `serve` will need later and cannot have now (the Maildirs, the spool and
/// quarantine directories, personal scripts, clamd's socket): logged at startup, each with
/// its fix, without refusing to start (each can be fixed while running; until then the
/// affected messages get 451).
pub fn later(config: &Config, who: &Identity) -> Vec<String> {
    let table = config
        .mailbox
        .users_file
        .as_deref()
        .and_then(|p| sievegate::users::UserTable::load(p).ok());
    let checks: Vec<plan::Check> = plan::checks(config, who, table.as_ref())
        .into_iter()
        .filter(|c| {
            matches!(
                c.key,
                "mailbox.maildir"
                    | "mailbox.owner"
                    | "server.spool_dir"
                    | "quarantine.dir"
                    | "sieve.personal"
                    | "sieve.personal_dir"
                    | "sieve.global_dir"
                    | "scanner.clamd"
            )
        })
        .collect();
    let probes: Vec<Probe> = checks.iter().map(|c| c.probe.clone()).collect();
    let mut out: Vec<String> = Vec::new();
    for (check, outcome) in checks.iter().zip(probe::run_here(&probes)) {
        if let Outcome::Denied {
            at,
            traverse,
            error,
        } = outcome
        {
            if matches!(check.probe.need, Need::Chown { .. }) {
                continue;
            }
            let text = format!(
                "{}: {}: until fixed, the deliveries that need it get 451",
                check.key,
                advice::denied(who, &at, traverse, check.probe.need, &error)
            );
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out
}

/// The advice for `path` when trying `need` on it as ourselves is refused; `None` when it
/// works or fails otherwise.
fn why_denied(who: &Identity, path: &Path, need: Need) -> Option<String> {
    let probe = Probe {
        path: path.to_path_buf(),
        need,
    };
    match probe::run_here(std::slice::from_ref(&probe)).pop() {
        Some(Outcome::Denied {
            at,
            traverse,
            error,
        }) => Some(advice::denied(who, &at, traverse, need, &error)),
        _ => None,
    }
}
