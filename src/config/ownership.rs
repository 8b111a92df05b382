//! `[mailbox] owner`, `group`, `file_mode`, `dir_mode`: the owner and modes of what the
//! store creates. Their raw fields live in `RawMailbox` (serde needs them there); the
//! validation is here.

use crate::mail::maildir::{Ownership, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};

/// Defaults of the keys validated here.
pub(super) mod defaults {
    pub fn file_mode() -> String {
        "0600".to_string()
    }
    pub fn dir_mode() -> String {
        "0700".to_string()
    }
}

/// An owner other than ourselves needs root: without it every store would fail with EPERM.
pub(super) fn warnings(config: &super::Config) -> Vec<String> {
    let own = &config.mailbox.ownership;
    let me = nix::unistd::geteuid().as_raw();
    let foreign = own.uid.is_some_and(|uid| uid != me) || own.gid.is_some();
    if foreign && me != 0 {
        vec!["mailbox.owner/group: sievegate does not run as root here, so it cannot give stored files another owner; every store would fail".to_string()]
    } else {
        Vec::new()
    }
}

/// `[mailbox] owner`, `group`, `file_mode`, `dir_mode` → [`Ownership`]. An owner without a
/// group takes the owner's primary group, as `chown user` does with `user:`.
pub(super) fn ownership(
    owner: Option<&str>,
    group: Option<&str>,
    file_mode: &str,
    dir_mode: &str,
    problems: &mut Vec<String>,
) -> Ownership {
    let mut uid = None;
    let mut primary_gid = None;
    if let Some(owner) = owner {
        match lookup_user(owner) {
            Some((u, g)) => {
                uid = Some(u);
                primary_gid = Some(g);
            }
            None => problems.push(format!(
                "mailbox.owner: {owner:?} is no user on this system"
            )),
        }
    }
    let gid = match group {
        Some(group) => match lookup_group(group) {
            Some(g) => Some(g),
            None => {
                problems.push(format!(
                    "mailbox.group: {group:?} is no group on this system"
                ));
                None
            }
        },
        None => primary_gid,
    };
    let file_mode =
        parse_mode("mailbox.file_mode", file_mode, 0o600, problems).unwrap_or(DEFAULT_FILE_MODE);
    let dir_mode =
        parse_mode("mailbox.dir_mode", dir_mode, 0o700, problems).unwrap_or(DEFAULT_DIR_MODE);
    Ownership {
        uid,
        gid,
        file_mode,
        dir_mode,
    }
}

/// An octal mode such as `"0640"`; it must keep `needed` (the owner's own access: the owner
/// has to read and write what it is given) and fit in the permission bits.
fn parse_mode(key: &str, text: &str, needed: u32, problems: &mut Vec<String>) -> Option<u32> {
    let mode = match super::octal_mode(text) {
        Some(mode) => mode,
        None => {
            problems.push(format!(
                "{key}: {text:?} is not an octal mode such as \"{needed:04o}\""
            ));
            return None;
        }
    };
    if mode & needed != needed {
        problems.push(format!(
            "{key}: {text:?} must give the owner at least {needed:04o}, or the mail user cannot use what is stored"
        ));
        return None;
    }
    Some(mode)
}

/// uid and primary gid of `name` (a user name or a numeric uid).
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let user = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    };
    match user {
        Ok(Some(user)) => Some((user.uid.as_raw(), user.gid.as_raw())),
        // A numeric uid without a passwd entry is still a valid owner (as for chown).
        _ => name.parse::<u32>().ok().map(|uid| (uid, uid)),
    }
}

/// gid of `name` (a group name or a numeric gid).
fn lookup_group(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    super::acl::group_id(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use std::path::Path;
    use std::time::Duration;

    fn load(scanner: &str, mailbox: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:2424\"]\nhostname = \"mx.example.test\"\n\
             [scanner]\nclamd = \"unix:/run/clamd.sock\"\n{scanner}\n\
             [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"/var/vmail/%d/%n\"\n{mailbox}\n"
        );
        Config::from_toml(&text, Path::new("/etc/sievegate/sievegate.toml"))
    }

    #[test]
    fn defaults_and_values_from_the_file() {
        let config = load("", "").expect("valid");
        assert_eq!(config.scanner.health_interval, Some(Duration::from_secs(2)));
        assert_eq!(config.mailbox.user_concurrency_limit, 10);
        assert_eq!(config.mailbox.ownership, Ownership::default());
        let config = load(
            "health_interval_secs = 0",
            "user_concurrency_limit = 0\nowner = \"root\"\nfile_mode = \"0640\"\ndir_mode = \"0750\"",
        )
        .expect("valid");
        assert_eq!(config.scanner.health_interval, None);
        assert_eq!(config.mailbox.user_concurrency_limit, 0);
        assert_eq!(
            config.mailbox.ownership,
            Ownership {
                uid: Some(0),
                gid: Some(0),
                file_mode: 0o640,
                dir_mode: 0o750
            }
        );
    }

    #[test]
    fn scanner_off_has_no_health_gating_and_says_so() {
        let on = load("", "").expect("valid");
        assert!(on.scanner.enabled);
        assert!(!on.warnings().iter().any(|w| w.contains("scanner.enabled")));
        let off = load("enabled = false", "").expect("valid");
        assert!(!off.scanner.enabled);
        assert_eq!(off.scanner.health_interval, None, "nothing to gate on");
        let warnings = off.warnings();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("scanner.enabled = false")),
            "{warnings:?}"
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let Err(ConfigError::Invalid { problems, .. }) = load(
            "",
            "owner = \"no-such-user-x\"\ngroup = \"no-such-group-x\"\nfile_mode = \"0400\"\ndir_mode = \"9\"",
        ) else {
            panic!("invalid config accepted");
        };
        for key in [
            "mailbox.owner",
            "mailbox.group",
            "mailbox.file_mode",
            "mailbox.dir_mode",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn modes_table() {
        let cases: &[(&str, u32, Option<u32>)] = &[
            ("0600", 0o600, Some(0o600)),
            ("640", 0o600, Some(0o640)),
            ("0660", 0o600, Some(0o660)),
            ("2770", 0o700, Some(0o2770)),
            ("0400", 0o600, None),
            ("0500", 0o700, None),
            ("0800", 0o600, None),
            ("rw", 0o600, None),
            ("17777", 0o600, None),
        ];
        for (text, needed, want) in cases {
            let mut problems = Vec::new();
            assert_eq!(
                parse_mode("k", text, *needed, &mut problems),
                *want,
                "{text}"
            );
            assert_eq!(problems.is_empty(), want.is_some(), "{text}: {problems:?}");
        }
    }

    #[test]
    fn owner_takes_its_primary_group() {
        let mut problems = Vec::new();
        let own = ownership(Some("root"), None, "0600", "0700", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((own.uid, own.gid), (Some(0), Some(0)));
        let own = ownership(Some("0"), Some("12345"), "0640", "0750", &mut problems);
        assert_eq!((own.uid, own.gid), (Some(0), Some(12345)));
        assert_eq!((own.file_mode, own.dir_mode), (0o640, 0o750));
        assert_eq!(
            ownership(None, None, "0600", "0700", &mut problems),
            Ownership::default()
        );
        ownership(
            Some("no-such-user-here"),
            Some("no-such-group"),
            "0600",
            "0700",
            &mut problems,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
