//! Reading an RDAP answer (RFC 9083): the abuse address of the entity with the role
//! `abuse`, and the network the answer names. Answers are untrusted JSON: the entity walk
//! stops at [`MAX_DEPTH`] levels and [`MAX_ENTITIES`] entities, and an address is used only
//! when it looks like one. Apart from the client (`mod.rs`: where we connect, redirects,
//! deadlines) because this is pure: values in, values out, table-tested.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::{MAX_DEPTH, MAX_ENTITIES};

/// The abuse address in an RFC 9083 answer: the `email` of the first entity with the role
/// `abuse`, breadth first, so the one closest to the network wins (RIPE lists it at the top;
/// ARIN and others nest it inside the registrant organisation). `None` when there is none
/// or its address does not look like one.
pub fn abuse_email(answer: &Value) -> Option<String> {
    let mut level: Vec<&Value> = entities(answer).collect();
    let mut seen = 0;
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for entity in level {
            seen += 1;
            if seen > MAX_ENTITIES {
                return None;
            }
            let is_abuse = entity
                .get("roles")
                .and_then(Value::as_array)
                .is_some_and(|roles| {
                    roles
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|r| r.eq_ignore_ascii_case("abuse"))
                });
            if is_abuse {
                if let Some(email) = vcard_email(entity) {
                    return Some(email);
                }
            }
            next.extend(entities(entity));
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    None
}

fn entities(object: &Value) -> impl Iterator<Item = &Value> {
    object
        .get("entities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.is_object())
}

/// The first valid `email` property of an entity's jCard (RFC 7095):
/// `"vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["email", {}, "text", "a@b"]]]`.
pub fn vcard_email(entity: &Value) -> Option<String> {
    let card = entity.get("vcardArray")?.as_array()?;
    if card.first()?.as_str()? != "vcard" {
        return None;
    }
    card.get(1)?
        .as_array()?
        .iter()
        .filter_map(Value::as_array)
        .filter(|prop| {
            prop.first()
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("email"))
        })
        .filter_map(|prop| prop.get(3)?.as_str())
        .map(str::trim)
        .find(|addr| crate::mail::address::is_valid_email(addr))
        .map(str::to_string)
}

/// The network an RDAP answer names that holds `ip`: a `cidr0_cidrs` entry, else the
/// largest CIDR block inside `startAddress`..`endAddress` that holds `ip` (a range need not
/// be one block; the cache must not cover addresses outside it). `None` when the answer
/// names no network holding `ip`.
pub fn network_of(answer: &Value, ip: IpAddr) -> Option<IpNet> {
    let cidrs = answer.get("cidr0_cidrs").and_then(Value::as_array);
    for cidr in cidrs.into_iter().flatten() {
        let prefix = cidr
            .get("v4prefix")
            .or_else(|| cidr.get("v6prefix"))
            .and_then(Value::as_str);
        let len = cidr.get("length").and_then(Value::as_u64);
        if let (Some(prefix), Some(len)) = (prefix, len) {
            if let Ok(net) = format!("{prefix}/{len}").parse::<IpNet>() {
                if net.contains(&ip) {
                    return Some(net.trunc());
                }
            }
        }
    }
    let addr = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    };
    let (start, end) = (addr("startAddress")?, addr("endAddress")?);
    if start.is_ipv4() != ip.is_ipv4() || start.is_ipv4() != end.is_ipv4() {
        return None;
    }
    if !(start <= ip && ip <= end) {
        return None;
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let mut best = IpNet::new(ip, max).ok()?;
    for len in (0..max).rev() {
        let net = IpNet::new(ip, len).ok()?.trunc();
        if net.network() < start || net.broadcast() > end {
            break;
        }
        best = net;
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vcard(email: &str) -> Value {
        json!(["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "NOC"], ["email", {"type": "work"}, "text", email]]])
    }

    #[test]
    fn abuse_entity_nested_in_registrant() {
        let answer = json!({
            "objectClassName": "ip network",
            "handle": "NET-203-0-113-0-1",
            "startAddress": "203.0.113.0",
            "endAddress": "203.0.113.255",
            "entities": [
                {"objectClassName": "entity", "handle": "ORG-1", "roles": ["registrant"],
                 "vcardArray": vcard("hostmaster@example.net"),
                 "entities": [
                    {"objectClassName": "entity", "handle": "TECH-1", "roles": ["technical"],
                     "vcardArray": vcard("noc@example.net")},
                    {"objectClassName": "entity", "handle": "ABUSE-1", "roles": ["abuse"],
                     "vcardArray": vcard("abuse@example.net")}
                 ]}
            ]
        });
        assert_eq!(abuse_email(&answer).as_deref(), Some("abuse@example.net"));
    }

    #[test]
    fn top_level_abuse_wins_over_nested() {
        let answer = json!({"entities": [
            {"roles": ["registrant"], "entities": [{"roles": ["abuse"], "vcardArray": vcard("deep@example.net")}]},
            {"roles": ["abuse", "technical"], "vcardArray": vcard("top@example.net")}
        ]});
        assert_eq!(abuse_email(&answer).as_deref(), Some("top@example.net"));
    }

    #[test]
    fn no_abuse_role_or_bad_cards() {
        let cases = [
            json!({"entities": [{"roles": ["registrant"], "vcardArray": vcard("a@example.net")}]}),
            json!({}),
            json!({"entities": "nope"}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["vcard", "x"]}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["notvcard", [["email", {}, "text", "a@example.net"]]]}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": vcard("not an address")}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": vcard("a@example.net\r\nBcc: x@y.z")}]}),
            json!({"entities": [{"roles": ["abuse"], "vcardArray": ["vcard", [["email", {}, "text", 42]]]}]}),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(abuse_email(c), None, "case {i}");
        }
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        for text in ["", "{", "[1,2", "null", "{\"entities\": [}"] {
            let parsed: Result<Value, _> = serde_json::from_str(text);
            if let Ok(v) = parsed {
                assert_eq!(abuse_email(&v), None);
            }
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut v = json!({"roles": ["abuse"], "vcardArray": vcard("deep@example.net")});
        for _ in 0..50 {
            v = json!({"roles": ["registrant"], "entities": [v]});
        }
        let answer = json!({"entities": [v]});
        assert_eq!(abuse_email(&answer), None);
    }

    #[test]
    fn network_named_by_the_answer() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| Some(s.parse::<IpNet>().unwrap());
        let cases = [
            (
                json!({"startAddress": "203.0.113.0", "endAddress": "203.0.113.255"}),
                "203.0.113.7",
                net("203.0.113.0/24"),
            ),
            // A range that is not one block: the largest block inside it holding the address.
            (
                json!({"startAddress": "203.0.112.0", "endAddress": "203.0.114.255"}),
                "203.0.114.7",
                net("203.0.114.0/24"),
            ),
            (
                json!({"startAddress": "203.0.112.0", "endAddress": "203.0.114.255"}),
                "203.0.112.7",
                net("203.0.112.0/23"),
            ),
            (
                json!({"startAddress": "2001:db8:1::", "endAddress": "2001:db8:1::ffff:ffff:ffff:ffff"}),
                "2001:db8:1::99",
                net("2001:db8:1::/64"),
            ),
            (
                json!({"cidr0_cidrs": [{"v6prefix": "2001:db8::", "length": 32}], "startAddress": "2001:db8::", "endAddress": "2001:db8::1"}),
                "2001:db8:5::1",
                net("2001:db8::/32"),
            ),
            (
                json!({"startAddress": "203.0.113.0", "endAddress": "203.0.113.255"}),
                "198.51.100.1",
                None,
            ),
            (json!({"startAddress": "203.0.113.0"}), "203.0.113.1", None),
            (
                json!({"startAddress": "2001:db8::", "endAddress": "2001:db8::ff"}),
                "203.0.113.1",
                None,
            ),
            (
                json!({"startAddress": "junk", "endAddress": "203.0.113.255"}),
                "203.0.113.1",
                None,
            ),
        ];
        for (answer, addr, want) in cases {
            assert_eq!(network_of(&answer, ip(addr)), want, "{answer} {addr}");
        }
    }
}
