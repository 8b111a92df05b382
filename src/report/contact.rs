//! The abuse contact of a source address and the network it stands for: `[abuse]
//! overrides`, then the cache, then RDAP.
//!
//! The cache is kept per network, the one the RDAP answer names (its `cidr0_cidrs` or its
//! start and end address, see [`super::rdap::network_of`]), so one lookup serves every
//! address of that network: 1000 addresses of one /64 cost one lookup, not 1000. An answer
//! that names no network is cached for the address's /32 (IPv4) or /64 (IPv6, the smallest
//! end-site assignment). A failed lookup is remembered for five minutes for the address's
//! /24 or /64, so a registry that does not answer costs one deadline per block and five
//! minutes, not one per message.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::rdap::{override_for, Rdap};
use crate::state::StateStore;

/// How long a failed RDAP lookup is remembered.
pub const LOOKUP_FAILURE_TTL: Duration = Duration::from_secs(300);

/// What [`Contacts::find`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Tell `to`; `network` is the network it answers for (the rate limit's key).
    Contact { to: String, network: IpNet },
    /// A server answered for the address without a usable abuse contact.
    NoContact,
    /// Every RDAP server failed (now or in the last five minutes).
    Failed,
}

/// Overrides, the per-network cache in the state store, and the RDAP client.
pub struct Contacts {
    overrides: Vec<(IpNet, String)>,
    rdap: Rdap,
    state: Arc<dyn StateStore>,
    ttl: Duration,
    /// (IPv6?, prefix length) of the networks this process cached: a cache probe asks for
    /// those only (at most 33 + 129 entries). After a restart the first incident of a
    /// network misses and asks RDAP again.
    prefixes: Mutex<BTreeSet<(bool, u8)>>,
}

/// The block a lone address is cached for, and a failure remembered for: /32 or /24
/// (IPv4), /64 (IPv6).
fn block(ip: IpAddr, failure: bool) -> IpNet {
    let len = match (ip, failure) {
        (IpAddr::V4(_), false) => 32,
        (IpAddr::V4(_), true) => 24,
        (IpAddr::V6(_), _) => 64,
    };
    IpNet::new(ip, len).map_or(IpNet::from(ip), |n| n.trunc())
}

impl Contacts {
    /// Contacts from `overrides`, then the cache (answers kept for `ttl`), then `rdap`.
    pub fn new(
        overrides: Vec<(IpNet, String)>,
        rdap: Rdap,
        state: Arc<dyn StateStore>,
        ttl: Duration,
    ) -> Contacts {
        Contacts {
            overrides,
            rdap,
            state,
            ttl,
            prefixes: Mutex::new(BTreeSet::new()),
        }
    }

    /// The contact for `ip` at `now` (blocking: the cache, and RDAP up to its deadline).
    pub fn find(&self, ip: IpAddr, now: SystemTime) -> Found {
        if let Some(to) = override_for(&self.overrides, ip) {
            let network = self
                .overrides
                .iter()
                .filter(|(net, _)| net.contains(&ip))
                .max_by_key(|(net, _)| net.prefix_len())
                .map_or_else(|| block(ip, false), |(net, _)| *net);
            return Found::Contact {
                to: to.to_string(),
                network,
            };
        }
        if let Some(found) = self.cached(ip, now) {
            return found;
        }
        let failed = block(ip, true);
        match self.rdap.lookup(ip) {
            Ok(answer) => {
                let network = answer
                    .network
                    .filter(|n| n.contains(&ip))
                    .unwrap_or_else(|| block(ip, false));
                let value = match &answer.contact {
                    Some(addr) => format!("contact:{addr}"),
                    None => "none".to_string(),
                };
                self.put(network, &value, now + self.ttl);
                match answer.contact {
                    Some(to) => Found::Contact { to, network },
                    None => Found::NoContact,
                }
            }
            Err(e) => {
                tracing::warn!(source_ip = %ip, error = %e, "RDAP lookup failed on every server");
                self.put(failed, "failed", now + LOOKUP_FAILURE_TTL.min(self.ttl));
                Found::Failed
            }
        }
    }

    /// The cached answer of the most specific cached network holding `ip`, or a recent
    /// failure of its block.
    fn cached(&self, ip: IpAddr, now: SystemTime) -> Option<Found> {
        let lengths: Vec<u8> = {
            let prefixes = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
            prefixes
                .iter()
                .rev()
                .filter(|(v6, _)| *v6 == ip.is_ipv6())
                .map(|(_, len)| *len)
                .collect()
        };
        let mut keys: Vec<IpNet> = lengths
            .into_iter()
            .filter_map(|len| IpNet::new(ip, len).ok().map(|n| n.trunc()))
            .collect();
        keys.push(block(ip, true));
        for network in keys {
            let value = match self.state.cache_get(&key(network), now) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "RDAP cache unreadable; asking RDAP");
                    return None;
                }
            };
            return Some(match value.strip_prefix("contact:") {
                Some(to) if crate::mail::address::is_valid_email(to) => Found::Contact {
                    to: to.to_string(),
                    network,
                },
                _ if value == "failed" => Found::Failed,
                _ => Found::NoContact,
            });
        }
        None
    }

    fn put(&self, network: IpNet, value: &str, expires: SystemTime) {
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((network.addr().is_ipv6(), network.prefix_len()));
        if let Err(e) = self.state.cache_put(&key(network), value, expires) {
            tracing::warn!(error = %e, "cannot cache the RDAP answer");
        }
    }
}

/// The cache key of a network.
fn key(network: IpNet) -> String {
    format!("rdap-net:{network}")
}
