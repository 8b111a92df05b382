//! Who the checks run as: the unit's `User=` with its groups when we are root and the unit
//! is installed, the user of `--as-user`, or ourselves.

use nix::unistd::{Gid, Group, Uid, User};

use super::unit::Unit;

/// A user with the credentials `serve` would have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (or `uid N` without a passwd entry).
    pub name: String,
    pub uid: u32,
    /// The primary group (`Group=` of the unit, else the user's).
    pub gid: u32,
    /// Every group, the primary one included.
    pub groups: Vec<u32>,
    /// The unit these credentials come from, when they do: its drop-ins are a fix.
    pub unit: Option<Unit>,
}

impl Identity {
    /// True when files of group `gid` are accessed with the group's permission bits.
    pub fn member(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// This process.
    pub fn myself() -> Identity {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid().as_raw();
        let mut groups: Vec<u32> = nix::unistd::getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        groups.push(gid);
        Identity {
            name: User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {uid}")),
            uid: uid.as_raw(),
            gid,
            groups,
            unit: None,
        }
    }

    /// `name` as a login would have it (its primary group and the groups listing it); with
    /// `unit`, that unit's `Group=` and `SupplementaryGroups=` on top. Problems (a missing
    /// user or group) are returned as text.
    pub fn of_user(name: &str, unit: Option<&Unit>) -> Result<Identity, String> {
        let user = match name.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(name),
        }
        .ok()
        .flatten()
        .ok_or_else(|| format!("no user {name:?} on this host"))?;
        let mut gid = user.gid.as_raw();
        let mut problems = Vec::new();
        if let Some(group) = unit.and_then(|u| u.group.as_deref()) {
            match group_id(group) {
                Some(g) => gid = g,
                None => problems.push(format!("Group={group}: no such group")),
            }
        }
        let cname = std::ffi::CString::new(user.name.as_str()).map_err(|e| e.to_string())?;
        let mut groups: Vec<u32> = nix::unistd::getgrouplist(&cname, Gid::from_raw(gid))
            .unwrap_or_default()
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        for group in unit.map(|u| u.supplementary.as_slice()).unwrap_or_default() {
            match group_id(group) {
                Some(g) => groups.push(g),
                None => problems.push(format!("SupplementaryGroups={group}: no such group")),
            }
        }
        if !problems.is_empty() {
            let unit = unit
                .map(|u| u.path.display().to_string())
                .unwrap_or_default();
            return Err(format!(
                "{unit} (or a drop-in): {}: systemd would not start the unit",
                problems.join("; ")
            ));
        }
        groups.sort_unstable();
        groups.dedup();
        Ok(Identity {
            name: user.name,
            uid: user.uid.as_raw(),
            gid,
            groups,
            unit: unit.cloned(),
        })
    }

    /// `name (uid N), groups a, b`: for the line saying whom the checks ran as.
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(|g| group_name(*g)).collect();
        format!(
            "{} (uid {}, groups {})",
            self.name,
            self.uid,
            groups.join(", ")
        )
    }
}

/// A group's gid from its name or number.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// A group's name, or its number when it has none.
pub fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// A user's name, or its number when it has none.
pub fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
