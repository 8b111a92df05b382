//! `[domain."example.org"]`: the AV policy of one of our domains, for the recipients at
//! that domain; [`RawDomain`] as written, [`DomainPolicy`] validated.
//!
//! One table per domain reads like the admin thinks of it ("for example.org, ignore these
//! signatures and do not tell me"); every key is optional, and a domain without a table
//! follows the global keys (`[scanner] ignore_signatures`, `[quarantine] min_virustest`,
//! notices on).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::scanner::SignatureGlobs;

/// `[domain."<name>"]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDomain {
    /// Signature globs treated as clean for this domain, on top of the global list.
    #[serde(default)]
    pub ignore_signatures: Vec<String>,
    /// The virustest from which infected mail to this domain is quarantined rather than
    /// discarded; unset: `[quarantine] min_virustest`.
    pub min_virustest: Option<u8>,
    /// `false`: the postmaster hears nothing of infected mail to this domain.
    #[serde(default = "notices_default")]
    pub notices: bool,
}

/// Notices stay on unless a domain turns them off: silence has to be asked for.
fn notices_default() -> bool {
    true
}

/// Validated policy of one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainPolicy {
    /// Added to `[scanner] ignore_signatures` (never replacing it: a global false positive
    /// is one for every domain, and a domain list stays short).
    pub ignore_signatures: SignatureGlobs,
    /// 4 or 5; `None`: the global `[quarantine] min_virustest`.
    pub min_virustest: Option<u8>,
    /// Whether infected mail to this domain's recipients earns a postmaster notice.
    pub notices: bool,
}

impl Default for DomainPolicy {
    /// A domain without a table: the global keys, notices on.
    fn default() -> Self {
        DomainPolicy {
            ignore_signatures: SignatureGlobs::default(),
            min_virustest: None,
            notices: true,
        }
    }
}

/// Checks every `[domain."..."]` table; `domains` are `[mailbox] domains`, lowercased. A
/// table for a domain we do not receive for is a typo that would silently do nothing, so
/// it is a problem.
pub(super) fn validate(
    raw: BTreeMap<String, RawDomain>,
    domains: &[String],
    problems: &mut Vec<String>,
) -> BTreeMap<String, DomainPolicy> {
    let mut policies = BTreeMap::new();
    for (name, d) in raw {
        let domain = name.to_lowercase();
        let key = format!("domain.{name:?}");
        if !domains.contains(&domain) {
            problems.push(format!("{key}: not one of mailbox.domains"));
        }
        if policies.contains_key(&domain) {
            problems.push(format!(
                "{key}: given twice (domain names are case-insensitive)"
            ));
        }
        // Same bounds as the global key: below 4 is not infected mail (RFC 5235).
        if let Some(v) = d.min_virustest.filter(|v| !(4..=5).contains(v)) {
            problems.push(format!(
                "{key}.min_virustest: {v} must be 4 (heuristic matches too) or 5 (named viruses only)"
            ));
        }
        let ignore_signatures = SignatureGlobs::validate(
            &format!("{key}.ignore_signatures"),
            d.ignore_signatures,
            problems,
        );
        policies.insert(
            domain,
            DomainPolicy {
                ignore_signatures,
                min_virustest: d.min_virustest,
                notices: d.notices,
            },
        );
    }
    policies
}
