//! What `serve` will touch, as [`Check`]s: each config key's paths and what they must
//! allow for the user that runs it; and how a missing path counts.

use std::path::{Path, PathBuf};

use sievegate::config::{Config, ListenAddr};
use sievegate::mail::address::{template_uses, Recipient};
use sievegate::scan::ClamdAddr;
use sievegate::users::UserTable;

use super::identity::Identity;
use super::probe::{Need, Probe};
use super::unit::Unit;

/// The users whose Maildirs and scripts are checked one by one; past this the rest is
/// assumed to be like them (a check-config must stay quick on a large users file).
const MAX_USERS: usize = 1000;

/// One thing to try, and what it is for.
#[derive(Debug, Clone)]
pub struct Check {
    /// The config key (or `the configuration file`) the path comes from.
    pub key: &'static str,
    pub probe: Probe,
    /// When the path does not exist: `None` is fine, else the text of a warning.
    pub if_missing: Option<String>,
}

/// The checks for `config` run as `who`.
pub fn checks(config: &Config, who: &Identity, table: Option<&UserTable>) -> Vec<Check> {
    let unit = who.unit.as_ref();
    let mut out = Vec::new();
    let mut add = |key, path: &Path, need, if_missing: Option<String>| {
        let probe = Probe {
            path: path.to_path_buf(),
            need,
        };
        if !out.iter().any(|c: &Check| c.probe == probe) {
            out.push(Check {
                key,
                probe,
                if_missing,
            });
        }
    };
    add(
        "the configuration file",
        &config.path.canonicalize().unwrap_or(config.path.clone()),
        Need::Read,
        None,
    );
    if let Some(users) = &config.mailbox.users_file {
        add("mailbox.users_file", users, Need::Read, None);
    }
    for p in &config.sieve.before {
        add("sieve.before", p, Need::Read, None);
    }
    for p in &config.sieve.after {
        add("sieve.after", p, Need::Read, None);
    }
    if let Some(p) = &config.sieve.default {
        add("sieve.default", p, Need::Read, None);
    }
    if let Some(dir) = &config.sieve.scripts.global_dir {
        add("sieve.global_dir", dir, Need::Traverse, None);
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                add("sieve.global_dir", &entry.path(), Need::Read, None);
            }
        }
    }
    for listen in &config.server.listen {
        let ListenAddr::Unix(sock) = listen else {
            continue;
        };
        let Some(dir) = sock.parent() else { continue };
        if made_by_unit(unit, dir) {
            // Made for the unit's user at each start; socket_group is judged by
            // membership then (no directory to try a chown in).
            continue;
        }
        add("server.listen", dir, Need::Write, None);
        if let Some(gid) = config.server.socket_group {
            add(
                "server.socket_group",
                dir,
                Need::Chown {
                    uid: None,
                    gid: Some(gid),
                },
                None,
            );
        }
    }
    if let (true, ClamdAddr::Unix(sock)) = (config.scanner.enabled, &config.scanner.clamd) {
        add(
            "scanner.clamd",
            sock,
            Need::Connect,
            Some(format!(
                "scanner.clamd: nothing listens at {}: is clamd running (systemctl status clamav-daemon)? Until it is, every message gets 451",
                sock.display()
            )),
        );
    }
    let users = users(config, table);
    let own = config.mailbox.ownership;
    let mut chown_tried = false;
    for root in expand_all(&config.mailbox.maildir, &users, &config.mailbox.domains) {
        if root.is_dir() {
            add("mailbox.maildir", &root, Need::Write, None);
            for sub in ["tmp", "new", "cur"] {
                if root.join(sub).is_dir() {
                    add("mailbox.maildir", &root.join(sub), Need::Write, None);
                }
            }
        } else {
            add("mailbox.maildir", &root, Need::Write, None);
        }
        if (own.uid.is_some() || own.gid.is_some()) && !chown_tried {
            if let Some(dir) = root.ancestors().find(|a| a.is_dir()) {
                chown_tried = true;
                add(
                    "mailbox.owner",
                    dir,
                    Need::Chown {
                        uid: own.uid,
                        gid: own.gid,
                    },
                    None,
                );
            }
        }
    }
    for template in [&config.sieve.personal, &config.sieve.scripts.personal_dir]
        .into_iter()
        .flatten()
    {
        let key = if Some(template) == config.sieve.personal.as_ref() {
            "sieve.personal"
        } else {
            "sieve.personal_dir"
        };
        for path in expand_all(template, &users, &config.mailbox.domains) {
            if path.is_file() {
                add(key, &path, Need::Read, None);
            } else if path.is_dir() {
                add(key, &path, Need::Traverse, None);
            }
        }
    }
    if let Some(dir) = &config.state.dir {
        if !made_by_unit(unit, dir) {
            add("state.dir", dir, Need::Write, None);
        }
        for name in ["", "-wal", "-shm"] {
            let file = dir.join(format!("{}{name}", sievegate::state::sqlite::DB_FILE));
            if file.is_file() {
                add("state.dir", &file, Need::WriteFile, None);
            }
        }
    }
    let spool = &config.server.spool;
    if spool.threshold < config.server.max_message_size && !made_by_unit(unit, &spool.dir) {
        add("server.spool_dir", &spool.dir, Need::Write, None);
    }
    // Read at start and on SIGHUP by the service user; their contents are checked by
    // `Report::files`.
    if let (true, Some((cert, key))) = (config.managesieve.enabled(), &config.managesieve.tls) {
        add("managesieve.tls_cert", cert, Need::Read, None);
        add("managesieve.tls_key", key, Need::Read, None);
    }
    if let Some(secret) = &config.web.secret_file {
        add("web.secret_file", secret, Need::Read, None);
    }
    // With PostgreSQL the messages are in the database: the directory is not used.
    if config.quarantine.enabled
        && config.state.postgres.is_none()
        && !made_by_unit(unit, &config.quarantine.dir)
    {
        add("quarantine.dir", &config.quarantine.dir, Need::Write, None);
    }
    out
}

/// True when `dir`, or a missing directory above it, is one systemd creates for the unit
/// at start: it is the unit user's then, and need not exist now.
fn made_by_unit(unit: Option<&Unit>, dir: &Path) -> bool {
    let Some(unit) = unit else { return false };
    dir.ancestors()
        .take_while(|a| !a.exists())
        .any(|a| unit.creates(a))
        || (unit.creates(dir) && !dir.exists())
}

/// The recipients whose paths are checked: the users file's entries (a bare name at every
/// domain), at most [`MAX_USERS`]; none without a users file (then only the templates'
/// fixed parts are checked).
fn users(config: &Config, table: Option<&UserTable>) -> Vec<Recipient> {
    let Some(table) = table else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names: Vec<(&str, Option<&Path>)> = table
        .iter()
        .map(|(name, user)| (name, user.home.as_deref()))
        .collect();
    names.sort_unstable();
    for (name, home) in names {
        let addresses: Vec<String> = if name.contains('@') {
            vec![name.to_string()]
        } else {
            config
                .mailbox
                .domains
                .iter()
                .map(|d| format!("{name}@{d}"))
                .collect()
        };
        for address in addresses {
            if let Ok(mut rcpt) = Recipient::resolve(
                &address,
                &config.mailbox.domains,
                &config.mailbox.recipient_delimiter,
            ) {
                rcpt.home = home.map(Path::to_path_buf);
                out.push(rcpt);
            }
        }
        if out.len() >= MAX_USERS {
            break;
        }
    }
    out
}

/// `template` for every user (skipping those without the home it needs); without users,
/// for each domain its leading part up to the first directory with a `%` left.
fn expand_all(template: &str, users: &[Recipient], domains: &[String]) -> Vec<PathBuf> {
    if users.is_empty() {
        let mut out: Vec<PathBuf> = Vec::new();
        for domain in domains {
            let template = template.replace("%d", domain);
            let fixed: PathBuf = Path::new(&template)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains('%'))
                .collect();
            if !fixed.as_os_str().is_empty() && !out.contains(&fixed) {
                out.push(fixed);
            }
        }
        return out;
    }
    users
        .iter()
        .filter(|u| !template_uses(template, 'h') || u.home.is_some())
        .map(|u| u.expand(template))
        .collect()
}
