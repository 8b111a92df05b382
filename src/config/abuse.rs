//! `[abuse]`: RFC 5965 abuse reports to the abuse contact of the connecting MTA's address
//! (see `crate::report`). Opt-in; its own file so the other sections' edits stay apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::mail::received::ReceivedFormat;

/// `[abuse]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAbuse {
    /// Send reports at all (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Envelope sender and `From` of every report; required when enabled.
    pub report_from: Option<String>,
    /// CIDR networks of our own relays whose `Received` headers are believed (see
    /// `report::source`).
    #[serde(default)]
    pub trusted_relays: Vec<String>,
    /// Networks never reported. Default: loopback, RFC 1918, link-local, ULA, CGNAT; our
    /// own addresses are always added.
    pub ignore_networks: Option<Vec<String>>,
    /// CIDR → abuse address, tried before RDAP; the most specific network wins.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
    /// RDAP base URLs, tried in order (after the bootstrap file's, when there is one). The
    /// admin's choice is trusted as written (`http://` and internal addresses allowed, e.g.
    /// a local RDAP proxy); servers from the bootstrap file and every redirect must be
    /// `https://` and resolve to public addresses only.
    pub rdap_base_urls: Option<Vec<String>>,
    /// A local copy of IANA's RFC 9224 bootstrap file (`ipv4.json` or `ipv6.json`; give
    /// both as a list); selects the base URL for an address.
    #[serde(default)]
    pub rdap_bootstrap: Option<BootstrapPaths>,
    /// Seconds an RDAP answer (also "no contact") is cached.
    #[serde(default = "defaults::rdap_cache_secs")]
    pub rdap_cache_secs: u64,
    /// At most one report per source IP per this many seconds; later incidents are counted.
    #[serde(default = "defaults::min_interval_secs")]
    pub min_interval_secs: u64,
    /// At most one report per RDAP network (the network the RDAP answer or the override
    /// names) per this many seconds.
    #[serde(default = "defaults::network_interval_secs")]
    pub network_interval_secs: u64,
    /// At most one report per abuse contact per this many seconds.
    #[serde(default = "defaults::contact_interval_secs")]
    pub contact_interval_secs: u64,
    /// At most one report (to anyone) per this many seconds.
    #[serde(default = "defaults::global_interval_secs")]
    pub global_interval_secs: u64,
    /// Reports being worked on at once (source, RDAP, queueing); an incident beyond is
    /// skipped and logged, never queued.
    #[serde(default = "defaults::max_lookups_in_flight")]
    pub max_lookups_in_flight: usize,
    /// Total time for one RDAP lookup: every server and redirect together.
    #[serde(default = "defaults::rdap_timeout_secs")]
    pub rdap_timeout_secs: u64,
    /// The MTAs whose `Received` headers are read for the source address: `postfix`,
    /// `exim`, `sendmail`.
    pub received_formats: Option<Vec<String>>,
    /// Log what would be sent; send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `rdap_bootstrap`: one path or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BootstrapPaths {
    One(String),
    Many(Vec<String>),
}

impl Default for RawAbuse {
    fn default() -> Self {
        RawAbuse {
            enabled: false,
            report_from: None,
            trusted_relays: Vec::new(),
            ignore_networks: None,
            overrides: BTreeMap::new(),
            rdap_base_urls: None,
            rdap_bootstrap: None,
            rdap_cache_secs: defaults::rdap_cache_secs(),
            min_interval_secs: defaults::min_interval_secs(),
            network_interval_secs: defaults::network_interval_secs(),
            contact_interval_secs: defaults::contact_interval_secs(),
            global_interval_secs: defaults::global_interval_secs(),
            max_lookups_in_flight: defaults::max_lookups_in_flight(),
            rdap_timeout_secs: defaults::rdap_timeout_secs(),
            received_formats: None,
            dry_run: false,
        }
    }
}

mod defaults {
    pub fn rdap_cache_secs() -> u64 {
        86_400
    }
    pub fn min_interval_secs() -> u64 {
        86_400
    }
    pub fn network_interval_secs() -> u64 {
        86_400
    }
    pub fn contact_interval_secs() -> u64 {
        3_600
    }
    pub fn global_interval_secs() -> u64 {
        60
    }
    pub fn max_lookups_in_flight() -> usize {
        4
    }
    pub fn rdap_timeout_secs() -> u64 {
        10
    }
}

/// `received_formats` when not set: the MTA sievegate is documented behind. Exim and
/// Sendmail must be listed by an admin whose trusted relays run them.
pub const DEFAULT_RECEIVED_FORMATS: &[&str] = &["postfix"];

/// Networks that are never anybody else's to be told about: loopback, RFC 1918, link-local,
/// ULA (fc00::/7), CGNAT (100.64.0.0/10), and the unspecified addresses.
pub const DEFAULT_IGNORE_NETWORKS: &[&str] = &[
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fe80::/10",
    "fc00::/7",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "::/128",
];

/// The five RIRs' RDAP services: each redirects queries for space it does not hold.
pub const DEFAULT_RDAP_BASE_URLS: &[&str] = &[
    "https://rdap.arin.net/registry",
    "https://rdap.db.ripe.net",
    "https://rdap.apnic.net",
    "https://rdap.lacnic.net/rdap",
    "https://rdap.afrinic.net/rdap",
];

/// Validated `[abuse]`.
#[derive(Debug, Clone)]
pub struct AbuseConfig {
    pub enabled: bool,
    /// Empty only when not enabled.
    pub report_from: String,
    pub trusted_relays: Vec<IpNet>,
    pub ignore_networks: Vec<IpNet>,
    /// Network (host bits cleared) → address.
    pub overrides: Vec<(IpNet, String)>,
    /// Without a trailing `/`.
    pub rdap_base_urls: Vec<String>,
    /// Bootstrap files, absolute.
    pub rdap_bootstrap: Vec<PathBuf>,
    pub rdap_cache_ttl: Duration,
    /// Per source IP.
    pub min_interval: Duration,
    /// Per RDAP network.
    pub network_interval: Duration,
    /// Per abuse contact.
    pub contact_interval: Duration,
    /// For all reports.
    pub global_interval: Duration,
    /// At least 1.
    pub max_lookups_in_flight: usize,
    /// One RDAP lookup, all servers and redirects.
    pub rdap_timeout: Duration,
    /// Never empty.
    pub received_formats: Vec<ReceivedFormat>,
    pub dry_run: bool,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        let mut problems = Vec::new();
        RawAbuse::default().validate(Path::new("/"), &mut problems)
    }
}

impl RawAbuse {
    /// Checks every value; problems are appended to `problems` (the caller reports them all).
    pub fn validate(self, base: &Path, problems: &mut Vec<String>) -> AbuseConfig {
        let report_from = match self.report_from.as_deref() {
            Some(addr) if crate::mail::address::is_valid_email(addr) => addr.to_string(),
            Some(addr) => {
                problems.push(format!(
                    "abuse.report_from: {addr:?} is not an email address (local@domain)"
                ));
                String::new()
            }
            None if self.enabled => {
                problems.push(
                    "abuse.report_from: required when abuse.enabled = true (the reports' envelope sender)"
                        .to_string(),
                );
                String::new()
            }
            None => String::new(),
        };
        let mut nets = |key: &str, entries: &[String]| -> Vec<IpNet> {
            let mut out = Vec::new();
            for e in entries {
                match crate::mail::net::parse_net(e) {
                    Some(net) => out.push(net),
                    None => problems.push(format!(
                        "abuse.{key}: {e:?} is not an IP network (ADDR/PREFIX) or address"
                    )),
                }
            }
            out
        };
        let trusted_relays = nets("trusted_relays", &self.trusted_relays);
        let ignore: Vec<String> = self.ignore_networks.clone().unwrap_or_else(|| {
            DEFAULT_IGNORE_NETWORKS
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let ignore_networks = nets("ignore_networks", &ignore);
        let mut overrides: Vec<(IpNet, String)> = Vec::new();
        for (cidr, addr) in &self.overrides {
            let Some(net) = crate::mail::net::parse_net(cidr) else {
                problems.push(format!(
                    "abuse.overrides: {cidr:?} is not an IP network (ADDR/PREFIX) or address"
                ));
                continue;
            };
            if !crate::mail::address::is_valid_email(addr) {
                problems.push(format!(
                    "abuse.overrides: {cidr:?} = {addr:?} is not an email address"
                ));
                continue;
            }
            if overrides.iter().any(|(n, _)| *n == net) {
                problems.push(format!(
                    "abuse.overrides: {cidr:?} is the same network as another entry ({net})"
                ));
                continue;
            }
            overrides.push((net, addr.clone()));
        }
        let urls = self.rdap_base_urls.clone().unwrap_or_else(|| {
            DEFAULT_RDAP_BASE_URLS
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let mut rdap_base_urls = Vec::new();
        for url in &urls {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                problems.push(format!(
                    "abuse.rdap_base_urls: {url:?} is not an http:// or https:// URL"
                ));
            } else {
                rdap_base_urls.push(url.trim_end_matches('/').to_string());
            }
        }
        let paths = match self.rdap_bootstrap {
            None => Vec::new(),
            Some(BootstrapPaths::One(p)) => vec![p],
            Some(BootstrapPaths::Many(v)) => v,
        };
        let mut rdap_bootstrap = Vec::new();
        for p in paths {
            let path = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                base.join(&p)
            };
            if let Err(e) = super::rdap::Bootstrap::load(std::slice::from_ref(&path)) {
                problems.push(format!("abuse.rdap_bootstrap: {e}"));
            }
            rdap_bootstrap.push(path);
        }
        if self.enabled
            && rdap_base_urls.is_empty()
            && rdap_bootstrap.is_empty()
            && overrides.is_empty()
        {
            problems.push(
                "abuse: enabled, but no way to find a contact: set rdap_base_urls, rdap_bootstrap or overrides"
                    .to_string(),
            );
        }
        let mut received_formats = Vec::new();
        let names: Vec<String> = self.received_formats.clone().unwrap_or_else(|| {
            DEFAULT_RECEIVED_FORMATS
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        for name in &names {
            match ReceivedFormat::from_name(name) {
                Some(f) if !received_formats.contains(&f) => received_formats.push(f),
                Some(_) => {}
                None => problems.push(format!(
                    "abuse.received_formats: {name:?} is not one of \"postfix\", \"exim\", \"sendmail\""
                )),
            }
        }
        if received_formats.is_empty() && names.is_empty() {
            problems.push(
                "abuse.received_formats: list at least one MTA (postfix, exim, sendmail)"
                    .to_string(),
            );
        }
        if self.max_lookups_in_flight == 0 {
            problems.push("abuse.max_lookups_in_flight: must be greater than 0".to_string());
        }
        if self.rdap_timeout_secs == 0 {
            problems.push("abuse.rdap_timeout_secs: must be greater than 0".to_string());
        }
        if self.rdap_cache_secs == 0 {
            problems.push("abuse.rdap_cache_secs: must be greater than 0".to_string());
        }
        AbuseConfig {
            enabled: self.enabled,
            report_from,
            trusted_relays,
            ignore_networks,
            overrides,
            rdap_base_urls,
            rdap_bootstrap,
            rdap_cache_ttl: Duration::from_secs(self.rdap_cache_secs),
            min_interval: Duration::from_secs(self.min_interval_secs),
            network_interval: Duration::from_secs(self.network_interval_secs),
            contact_interval: Duration::from_secs(self.contact_interval_secs),
            global_interval: Duration::from_secs(self.global_interval_secs),
            max_lookups_in_flight: self.max_lookups_in_flight.max(1),
            rdap_timeout: Duration::from_secs(self.rdap_timeout_secs.max(1)),
            received_formats,
            dry_run: self.dry_run,
        }
    }
}
