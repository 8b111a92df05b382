//! What to do about a refusal: from the refusing path's owner, group and mode (read as
//! root) and the user's groups, the smallest change that lets the user in: join the group
//! that already has access (`adduser`, or a `SupplementaryGroups=` drop-in for the unit),
//! or a `chmod`/`chgrp`/ACL on that one path. Shared by `check-config` and `serve`'s
//! startup errors.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::identity::{group_name, user_name, Identity};
use super::probe::Need;

/// `user U cannot read /path (root:dovecot 0640): <fix>`.
pub fn denied(who: &Identity, at: &Path, traverse: bool, need: Need, error: &str) -> String {
    let (verb, letters, bits) = if traverse {
        ("search the directory", "x", 0o1)
    } else {
        match need {
            Need::Read => ("read", "r", 0o4),
            Need::Traverse => ("search the directory", "x", 0o1),
            Need::Write => ("create files in", "wx", 0o3),
            Need::WriteFile => ("write", "w", 0o2),
            Need::Connect => ("connect to", "w", 0o2),
            Need::Chown { .. } => ("create files in", "wx", 0o3),
        }
    };
    let path = at.display();
    let Ok(meta) = std::fs::metadata(at) else {
        return format!("user {} cannot {verb} {path}: {error}", who.name);
    };
    let (owner, group, mode) = (meta.uid(), meta.gid(), meta.mode() & 0o7777);
    let facts = format!(
        "{}:{} {:04o}",
        user_name(owner),
        group_name(group),
        mode & 0o7777
    );
    let head = format!("user {} cannot {verb} {path} ({facts})", who.name);
    if error.contains("Read-only file system") {
        return format!(
            "{head}: the file system is read-only here; sievegate needs it writable (a mount, or ReadWritePaths={path} for the unit)"
        );
    }
    let u = &who.name;
    let class = if owner == who.uid {
        mode >> 6
    } else if who.member(group) {
        mode >> 3
    } else {
        mode
    } & 0o7;
    if class & bits == bits {
        // The mode lets the user in: something else refuses.
        return format!(
            "{head}: {error}, though the mode allows it: an ACL (getfacl {path}), a mount option or the file server (NFS root squash) refuses it"
        );
    }
    let fix = if owner == who.uid {
        format!("chmod u+{letters} {path}")
    } else if who.member(group) {
        format!("chmod g+{letters} {path}")
    } else if (mode >> 3) & bits == bits {
        let g = group_name(group);
        let join = join_group(who, &g);
        if need == Need::Read && !traverse {
            // A group such as dovecot also opens its other files (SQL passwords...): the
            // ACL gives this one file alone.
            let ug = group_name(who.gid);
            format!(
                "give only this file to {u}: setfacl -m u:{u}:r {path} (package acl), or make its other reader the owner and {ug} the group (chown OWNER:{ug} {path}; a users file shared with Dovecot: chown dovecot:{ug}); or {join} (that opens every file of group {g} to {u})"
            )
        } else {
            join
        }
    } else {
        let g = group_name(who.gid);
        let mut fix = format!("chgrp {g} {path} && chmod g+{letters} {path}");
        if need == Need::Write && !traverse {
            fix = format!("chown {u} {path}, or {fix}");
        }
        if need == Need::Read && !traverse {
            fix.push_str(&format!(", or setfacl -m u:{u}:r {path}"));
        }
        fix
    };
    format!("{head}: {fix}")
}

/// How `who` joins group `group`: `adduser`, and for the unit's user the drop-in (no
/// change to the system's group file, and it survives a reinstall).
pub fn join_group(who: &Identity, group: &str) -> String {
    let u = &who.name;
    match &who.unit {
        Some(unit) => format!(
            "add {u} to group {group}: a drop-in with SupplementaryGroups={group} ({}, under [Service]), or adduser {u} {group}; then restart sievegate",
            unit.edit_command()
        ),
        None => format!(
            "add {u} to group {group}: adduser {u} {group} (under systemd: a drop-in with SupplementaryGroups={group}, systemctl edit sievegate); then restart sievegate"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nobody() -> Identity {
        Identity {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            unit: None,
        }
    }

    #[test]
    fn the_fix_follows_the_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("users");
        std::fs::write(&file, "x").expect("write");
        let set = |mode| {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let root_group = group_name(0);
        // (mode, text the advice must contain)
        let cases = [
            (
                0o640,
                format!("add nobody to group {root_group}: adduser nobody {root_group}"),
            ),
            (0o600, format!("chgrp {} ", group_name(65534))),
            (0o600, "setfacl -m u:nobody:r".to_string()),
            (0o644, "though the mode allows it".to_string()),
        ];
        for (mode, want) in cases {
            set(mode);
            let text = denied(&nobody(), &file, false, Need::Read, "Permission denied");
            assert!(text.contains(&want), "{mode:o}: {text}");
            assert!(text.starts_with("user nobody cannot read "), "{text}");
        }
        let text = denied(&nobody(), tmp.path(), true, Need::Read, "Permission denied");
        assert!(text.contains("cannot search the directory"), "{text}");
    }
}
