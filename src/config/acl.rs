//! `[server] xforward_from`: who is a trusted peer, by IP network or by the uid of a
//! unix-socket peer, and the user and group lookups behind `unix:USER` and `socket_group`.

use std::net::IpAddr;

use ipnet::IpNet;

/// Trusted peers: who may send XFORWARD (it sets the client address Sieve and the logs
/// see, so only the MTA may) and use the reserved connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XforwardAcl {
    pub(super) nets: Vec<IpNet>,
    /// `unix`: any peer that can open the socket (its permissions decide).
    pub(super) unix_any: bool,
    /// `unix:USER` / `unix:UID`: unix-socket peers by their uid (`SO_PEERCRED`).
    pub(super) unix_uids: Vec<u32>,
}

impl XforwardAcl {
    /// True for a TCP peer inside one of the networks.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// True for a unix-socket peer with `uid` (`None`: its credentials are unknown).
    pub fn allows_unix(&self, uid: Option<u32>) -> bool {
        self.unix_any || uid.is_some_and(|uid| self.unix_uids.contains(&uid))
    }
}

/// One `xforward_from` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AclEntry {
    Net(IpNet),
    UnixAny,
    /// `unix:NAME` of a user that does not exist (here, now): matches no one.
    UnknownUser(String),
    Uid(u32),
}

/// Parses an entry: `unix`, `unix:UID`, `unix:USER`, `ADDR/PREFIX` or a single address.
pub(super) fn parse_acl_entry(entry: &str) -> Result<AclEntry, String> {
    if entry == "unix" {
        return Ok(AclEntry::UnixAny);
    }
    if let Some(user) = entry.strip_prefix("unix:") {
        if user.is_empty() {
            return Err(format!("{entry:?}: \"unix:\" needs a user name or uid"));
        }
        if let Ok(uid) = user.parse::<u32>() {
            return Ok(AclEntry::Uid(uid));
        }
        return Ok(match user_id(user) {
            Some(uid) => AclEntry::Uid(uid),
            None => AclEntry::UnknownUser(user.to_string()),
        });
    }
    match crate::mail::net::parse_net(entry) {
        Some(net) => Ok(AclEntry::Net(net)),
        None => Err(format!(
            "{entry:?} is neither an IP network (ADDR/PREFIX, prefix 0..=32 or 0..=128), an IP address, \"unix\" nor \"unix:USER\""
        )),
    }
}

/// The uid of user `name` (/etc/passwd or whatever NSS is configured).
pub(super) fn user_id(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// The gid of group `name`.
pub(super) fn group_id(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}
