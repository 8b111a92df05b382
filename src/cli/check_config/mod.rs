//! `sievegate check-config`: [`super::load`] without the state store, then the file checks
//! as the user that runs `serve`; problems on stderr, each with what to do.
//!
//! Run as root, the file checks run as the installed unit's `User=` (with its `Group=`,
//! the user's groups and the `SupplementaryGroups=` of the unit and its drop-ins, as
//! systemd starts it), or as `--as-user NAME`; otherwise as ourselves. The checks really
//! try (read, create and remove, connect, chown) in a child with that user's credentials
//! ([`probe`]): what the kernel allows that user is what is reported, ACLs and read-only
//! mounts included. [`plan`] says what `serve` touches, [`advice`] what to do about a
//! refusal.

pub mod advice;
pub mod identity;
pub mod plan;
pub mod probe;
pub mod unit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use identity::Identity;
use probe::{Need, Outcome};
use unit::Unit;

use super::{load, recipients_note, Say};

/// What the command line asked for.
pub struct Request {
    pub config: PathBuf,
    /// `--as-user NAME`.
    pub as_user: Option<String>,
    /// `--unit FILE`: this unit file instead of the installed `sievegate.service`.
    pub unit: Option<PathBuf>,
}

pub fn check_config(request: Request) -> ExitCode {
    let path = &request.config;
    let Some(services) = load(path, false, Say::Stderr) else {
        return ExitCode::FAILURE;
    };
    let (who, note) = match who(&request) {
        Ok(who) => who,
        Err(problem) => {
            eprintln!("{}: {problem}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let table = services.users.table();
    let checks = plan::checks(&services.config, &who, table.as_deref());
    let probes: Vec<probe::Probe> = checks.iter().map(|c| c.probe.clone()).collect();
    let outcomes = if who.uid == nix::unistd::geteuid().as_raw() {
        probe::run_here(&probes)
    } else {
        match probe::run_as(&who, path, &probes) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    };
    println!("file checks ran as user {}{note}", who.describe());
    let mut report = Report::default();
    for (check, outcome) in checks.iter().zip(&outcomes) {
        report.add(&who, check, outcome);
    }
    report.spool_dir(&who, &services.config);
    report.files(&services.config);
    report.socket_group(&who, &services.config);
    if let Some(table) = &table {
        report.bare_names(table, &services.config.mailbox.domains);
    }
    for warning in &report.warnings {
        eprintln!("{}: warning: {warning}", path.display());
    }
    for problem in report.problems() {
        eprintln!("{}: {problem}", path.display());
    }
    if report.has_problems() {
        return ExitCode::FAILURE;
    }
    println!("{}: configuration ok", path.display());
    println!("{}", recipients_note(&services));
    ExitCode::SUCCESS
}

/// Whom to check as, and the rest of the line saying so.
fn who(request: &Request) -> Result<(Identity, String), String> {
    let root = nix::unistd::geteuid().is_root();
    let unit = match &request.unit {
        Some(file) if !file.is_file() => return Err(format!("--unit: no file {}", file.display())),
        Some(file) => Some(Unit::from_file(file)),
        None => Unit::installed(),
    };
    let from_unit = |unit: &Unit| {
        let n = unit.dropins.len();
        match n {
            0 => format!(": the user of {}", unit.path.display()),
            _ => format!(
                ": the user of {} with its {n} drop-in{}",
                unit.path.display(),
                if n == 1 { "" } else { "s" }
            ),
        }
    };
    if let Some(name) = &request.as_user {
        if !root {
            return Err("--as-user needs root (the checks switch to that user)".to_string());
        }
        let unit = unit.filter(|u| u.user.as_deref() == Some(name.as_str()));
        let who = Identity::of_user(name, unit.as_ref())?;
        let note = match &unit {
            Some(unit) => from_unit(unit),
            None => " (--as-user)".to_string(),
        };
        return Ok((who, note));
    }
    let me = Identity::myself();
    let Some(unit) = unit else {
        let note = match root {
            true => format!(
                ": no {} is installed; --as-user NAME checks as the user that runs serve",
                unit::UNIT_NAME
            ),
            false => String::new(),
        };
        return Ok((me, note));
    };
    // The unit's user and sandbox are what this file meets only if the unit runs it.
    if request.unit.is_none() && !unit.runs(&request.config) {
        let note = match root {
            true => format!(
                ": {} runs serve with {}, not with this file; --as-user NAME checks as the user that runs serve with it",
                unit.path.display(),
                unit.config
                    .as_deref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_else(|| "another file".into())
            ),
            false => String::new(),
        };
        return Ok((me, note));
    }
    let Some(user) = unit.user.clone() else {
        // No User=: the unit runs serve as root.
        return Ok((me.with_unit(unit), String::new()));
    };
    if root {
        if nix::unistd::User::from_name(&user).ok().flatten().is_none() {
            let note = format!(
                ": {} runs as user {user}, which does not exist here (yet); --as-user NAME checks as another user",
                unit.path.display()
            );
            return Ok((me, note));
        }
        let note = from_unit(&unit);
        return Ok((Identity::of_user(&user, Some(&unit))?, note));
    }
    if user != me.name {
        let note = format!(
            ", not as {user}, the user of {}: run check-config as root to check as {user}",
            unit.path.display()
        );
        return Ok((me, note));
    }
    Ok((me.with_unit(unit), String::new()))
}

impl Identity {
    /// This identity as the unit's: its drop-ins are a fix, its directories are made by
    /// systemd.
    fn with_unit(mut self, unit: Unit) -> Identity {
        self.unit = Some(unit);
        self
    }
}

/// The problems and warnings, refusals grouped so that a thousand Maildirs behind one
/// directory make one line.
#[derive(Default)]
struct Report {
    /// (key, advice) → the paths it covers.
    denied: BTreeMap<(String, String), Vec<PathBuf>>,
    other: Vec<String>,
    warnings: Vec<String>,
}

impl Report {
    fn add(&mut self, who: &Identity, check: &plan::Check, outcome: &Outcome) {
        let path = &check.probe.path;
        if let Some(unit) = &who.unit {
            if let Some(text) = sandboxed(unit, check) {
                self.denied
                    .entry((check.key.to_string(), text))
                    .or_default()
                    .push(path.clone());
                return;
            }
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::Missing => {
                if let Some(warning) = &check.if_missing {
                    self.warnings.push(warning.clone());
                }
            }
            Outcome::Denied {
                error,
                at,
                traverse,
            } => {
                let text = match check.probe.need {
                    // EACCES: the scratch file could not even be created (the Write check
                    // of the same directory says why); EPERM is the chown itself.
                    Need::Chown { .. } if !error.contains("Operation not permitted") => return,
                    Need::Chown { uid, gid } => chown_advice(who, uid, gid),
                    need => advice::denied(who, at, *traverse, need, error),
                };
                self.denied
                    .entry((check.key.to_string(), text))
                    .or_default()
                    .push(path.clone());
            }
            Outcome::Failed { error } if check.probe.need == Need::Connect => {
                self.warnings.push(format!(
                    "{}: {}: {error}: is clamd running (systemctl status clamav-daemon)? Until it is, every message gets 451",
                    check.key,
                    path.display()
                ));
            }
            Outcome::Failed { error } => {
                self.other
                    .push(format!("{}: {}: {error}", check.key, path.display()))
            }
        }
    }

    /// The files whose contents serve reads at start (and on SIGHUP): the STARTTLS
    /// certificate and key must form a pair rustls accepts, the link key must be long enough
    /// and closed to others. Read as they are loaded, by the same code; whether the service
    /// user may read them is the probes' part.
    fn files(&mut self, config: &sievegate::config::Config) {
        if let (true, Some((cert, key))) = (config.managesieve.enabled(), &config.managesieve.tls) {
            if let Err(e) = sievegate::managesieve::tls::load(cert, key) {
                self.other.push(format!(
                    "managesieve.tls_cert/tls_key: {}: {}: sievegate would not start",
                    e.path, e.message
                ));
            }
        }
        if let Some(secret) = &config.web.secret_file {
            if let Err(e) = sievegate::quarantine::link::LinkKey::load(secret) {
                self.other.push(format!("web.secret_file: {e}"));
            }
        }
    }

    /// `socket_group` for a socket whose directory does not exist yet (systemd's
    /// `RuntimeDirectory=`, made at each start): nothing to try a chown in, so the rule the
    /// kernel applies: only root and the group's members may give a file that group.
    fn socket_group(&mut self, who: &Identity, config: &sievegate::config::Config) {
        let Some(gid) = config.server.socket_group else {
            return;
        };
        let untried = config.server.listen.iter().any(|l| match l {
            sievegate::config::ListenAddr::Unix(sock) => sock.parent().is_some_and(|d| !d.is_dir()),
            sievegate::config::ListenAddr::Tcp(_) => false,
        });
        if untried && who.uid != 0 && !who.member(gid) {
            let sockets: Vec<PathBuf> = config
                .server
                .listen
                .iter()
                .filter_map(|l| match l {
                    sievegate::config::ListenAddr::Unix(sock) => Some(sock.clone()),
                    sievegate::config::ListenAddr::Tcp(_) => None,
                })
                .collect();
            self.denied
                .entry((
                    "server.socket_group".to_string(),
                    chown_advice(who, None, Some(gid)),
                ))
                .or_default()
                .extend(sockets);
        }
    }

    /// The spool directory's safety rule ([`sievegate::config::check_dir`]) for the user,
    /// when it is not us (for us, the config's own warning says it).
    fn spool_dir(&mut self, who: &Identity, config: &sievegate::config::Config) {
        let spool = &config.server.spool;
        if who.uid == nix::unistd::geteuid().as_raw()
            || spool.threshold >= config.server.max_message_size
        {
            return;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&spool.dir) {
            if let Err(why) = sievegate::config::check_dir(&meta, who.uid) {
                self.other.push(format!(
                    "server.spool_dir: {} is refused for user {}: {why}; messages above spool_threshold would get 451",
                    spool.dir.display(),
                    who.name
                ));
            }
        }
    }

    /// Bare names (`bob`) mean bob at every domain to us, but Dovecot's default
    /// `auth_username_format` looks up the full address in a shared passwd-file.
    fn bare_names(&mut self, table: &sievegate::users::UserTable, domains: &[String]) {
        let mut bare: Vec<&str> = table
            .iter()
            .map(|(name, _)| name)
            .filter(|n| !n.contains('@'))
            .collect();
        if bare.is_empty() {
            return;
        }
        bare.sort_unstable();
        let n = bare.len();
        let example = bare[0];
        let domain = domains
            .first()
            .map(String::as_str)
            .unwrap_or("example.test");
        bare.truncate(3);
        self.warnings.push(format!(
            "mailbox.users_file: {n} bare name{} ({}{}) without @domain: sievegate accepts {example}@ at every domain in mailbox.domains, but Dovecot (auth_username_format %u, Debian's default) looks up {example}@{domain} and does not find {example} in a passwd-file it shares; write user@domain entries ({example}@{domain}:...) in a file shared with Dovecot",
            if n == 1 { "" } else { "s" },
            bare.join(", "),
            if n > 3 { ", ..." } else { "" },
        ));
    }

    fn has_problems(&self) -> bool {
        !self.denied.is_empty() || !self.other.is_empty()
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((key, advice), paths) in &self.denied {
            let what = match paths.as_slice() {
                [one] => one.display().to_string(),
                many => format!(
                    "{} paths ({}{})",
                    many.len(),
                    many.iter()
                        .take(3)
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if many.len() > 3 { ", ..." } else { "" }
                ),
            };
            out.push(format!("{key}: {what}: {advice}"));
        }
        out.extend(self.other.iter().cloned());
        out
    }
}

/// What the unit's sandbox (systemd.exec(5)) does to a check's path, and the fix: the
/// file checks run with the unit's user and groups, but not in its mount namespace.
fn sandboxed(unit: &Unit, check: &plan::Check) -> Option<String> {
    let path = &check.probe.path;
    let write = matches!(
        check.probe.need,
        Need::Write | Need::WriteFile | Need::Chown { .. }
    );
    let edit = unit.edit_command();
    // The spool is ours alone: a private /var/tmp suits it.
    if unit.private(path) && check.key != "server.spool_dir" {
        return Some(format!(
            "the unit has PrivateTmp=yes: its /tmp and /var/tmp are its own, so no other process (Postfix, Dovecot, clamd) shares what is there: move it out of /tmp and /var/tmp (or PrivateTmp=no in a drop-in: {edit})"
        ));
    }
    let why = unit.sandbox(path, write)?;
    let fix = if why.starts_with("ProtectHome") {
        format!("move it out of /home, or ProtectHome=no in a drop-in ({edit}, under [Service])")
    } else {
        format!(
            "ReadWritePaths={} in a drop-in ({edit}, under [Service])",
            path.display()
        )
    };
    Some(format!("{why}: {fix}"))
}

/// The store or the listener cannot give a file the configured group (or owner).
fn chown_advice(who: &Identity, uid: Option<u32>, gid: Option<u32>) -> String {
    if let Some(uid) = uid.filter(|u| *u != who.uid) {
        let owner = identity::user_name(uid);
        return format!(
            "user {u} cannot give stored files owner {owner} (only root can), so every delivery would fail with 451: remove mailbox.owner and mailbox.group and let {u} own the Maildirs (Dovecot's mail_uid = {u}), or run sievegate as {owner}",
            u = who.name
        );
    }
    let group = identity::group_name(gid.unwrap_or_default());
    format!(
        "user {} cannot give files group {group}, as it is not a member: {}",
        who.name,
        advice::join_group(who, &group)
    )
}

/// The child's entry point: see [`probe`].
pub fn probe_child() -> ExitCode {
    probe::serve_probes()
}

/// Used by `serve` for its own startup errors.
pub fn myself() -> Identity {
    Identity::myself().with_installed_unit()
}

impl Identity {
    /// Ourselves, with the installed unit when we are its user (its drop-ins are a fix).
    fn with_installed_unit(self) -> Identity {
        match Unit::installed() {
            Some(unit) if unit.user.as_deref() == Some(self.name.as_str()) => self.with_unit(unit),
            _ => self,
        }
    }
}
