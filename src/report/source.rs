//! Which IP address a virus came from: the one whose abuse contact hears about it.
//!
//! # Whose word we take
//! Anyone can write any `Received` header into a message, so a header is believed only
//! when a host we trust added it, and a host is trusted only when the chain of trust reaches
//! it from our side:
//!
//! 1. The LMTP client (our MTA) is trusted when it is a trusted peer (`server.xforward_from`:
//!    the same rule that lets it send XFORWARD). An untrusted client's XFORWARD was already
//!    refused, and its headers prove nothing: no source, no report.
//! 2. Its XFORWARD `ADDR` (a real IP, not `[UNAVAILABLE]`) is the address that connected
//!    to it: that is the source, unless it is one of `[abuse] trusted_relays` (a relay of
//!    ours, e.g. a front MX or a content filter), in which case the walk goes on below.
//! 3. Without XFORWARD (or past a trusted relay), the headers are walked from the top. The
//!    topmost `Received` was added by the trusted LMTP client; the one below it by the host
//!    that the topmost names as its client, and so on. So header *n* is believed while every
//!    client named above it is in `trusted_relays`; the first client address outside them is
//!    the source.
//! 4. The client address of a header is read only in the formats of the MTAs the admin
//!    lists (`[abuse] received_formats`, see [`crate::mail::received`]), from the part the
//!    receiving MTA wrote itself; the HELO is the client's claim and is never read. A
//!    header in none of those formats (local submission, another MTA, an ambiguous value)
//!    ends the walk without a source.
//!
//! The source is then dropped when it is inside `[abuse] ignore_networks` or one of our own
//! addresses: private and local senders are nobody else's business.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::mail::received::{self, ReceivedFormat};

/// How the source address was found (for the log and the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The trusted LMTP client's XFORWARD ADDR.
    Xforward,
    /// The client named in the `n`-th `Received` header from the top (0-based).
    Received(usize),
}

/// The outcome of the source selection: expected conditions are values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// Report this address.
    Report { ip: IpAddr, via: Via },
    /// Found, but inside `ignore_networks` or our own: never reported.
    Ignored { ip: IpAddr, via: Via },
    /// No address we can believe; the reason is for the log.
    Unknown(&'static str),
}

/// What the source selection needs to know about one message.
#[derive(Debug, Clone, Copy)]
pub struct SourceInput<'a> {
    /// The LMTP client is a trusted peer (`server.xforward_from`).
    pub peer_trusted: bool,
    /// XFORWARD ADDR, parsed where the session read it.
    pub xforward_addr: Option<IpAddr>,
    /// The message's top-level header section.
    pub headers: &'a [u8],
}

/// The rules: `[abuse] trusted_relays` and the ignored networks (including our own).
#[derive(Debug, Clone, Copy)]
pub struct SourceRules<'a> {
    /// `[abuse] trusted_relays`.
    pub trusted_relays: &'a [IpNet],
    /// `[abuse] ignore_networks` and our own addresses.
    pub ignore: &'a [IpNet],
    /// `[abuse] received_formats`: the MTAs whose `Received` headers are read.
    pub formats: &'a [ReceivedFormat],
}

/// Picks the source address (see the module doc for whose word is taken).
pub fn select_source(input: &SourceInput<'_>, rules: &SourceRules<'_>) -> SourceChoice {
    if !input.peer_trusted {
        return SourceChoice::Unknown("the LMTP client is not a trusted peer");
    }
    let relay = |ip: &IpAddr| rules.trusted_relays.iter().any(|n| n.contains(ip));
    let decide = |ip: IpAddr, via: Via| {
        if rules.ignore.iter().any(|n| n.contains(&ip)) {
            SourceChoice::Ignored { ip, via }
        } else {
            SourceChoice::Report { ip, via }
        }
    };
    if let Some(ip) = input.xforward_addr.map(canonical) {
        if !relay(&ip) {
            return decide(ip, Via::Xforward);
        }
    }
    for (n, value) in received_headers(input.headers).enumerate() {
        let Some(ip) = received::client_ip(rules.formats, &value) else {
            return SourceChoice::Unknown(
                "a trusted Received header names no client address in the listed received_formats (local submission, another MTA, an ambiguous value)",
            );
        };
        if !relay(&ip) {
            return decide(ip, Via::Received(n));
        }
    }
    SourceChoice::Unknown("no Received header outside the trusted relays")
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) as IPv4, so networks of either family match.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The unfolded values of the top-level `Received` headers, topmost first, as the one
/// header walker reads them.
fn received_headers(headers: &[u8]) -> impl Iterator<Item = String> + '_ {
    crate::mail::header::fields(headers)
        .filter(|f| f.is("received"))
        .map(|f| f.unfolded())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn default_ignore() -> Vec<IpNet> {
        nets(&[
            "127.0.0.0/8",
            "10.0.0.0/8",
            "192.168.0.0/16",
            "fc00::/7",
            "100.64.0.0/10",
        ])
    }

    #[test]
    fn source_selection_table() {
        let relays = nets(&["192.0.2.0/24"]);
        let ignore = default_ignore();
        let formats = [ReceivedFormat::Postfix];
        let rules = SourceRules {
            trusted_relays: &relays,
            ignore: &ignore,
            formats: &formats,
        };
        let top = "Received: from a (a.example.net [203.0.113.7])\r\n\tby mx.example.test (Postfix) with ESMTP id 1;\r\n\tSat, 28 Nov 2026 06:00:00 +0000\r\n";
        let relayed = "Received: from front (front.example.test [192.0.2.5]) by mx (Postfix) id 2\r\nReceived: from b (b.example.net [198.51.100.20]) by front (Postfix) id 1\r\n";
        let relay_then_forged = "Received: from front (front [192.0.2.5]) by mx (Postfix) id 2\r\nReceived: from b (b [198.51.100.20]) by front (Postfix) id 1\r\nReceived: from forged (forged [203.0.113.99]) by b (Postfix) id 0\r\n";
        let local = "Received: by mx.example.test (Postfix, from userid 0) id 3\r\n";
        let private = "Received: from lan (lan [192.168.1.20]) by mx (Postfix) id 4\r\n";
        let exim = "Received: from [198.51.100.99] (helo=[192.0.2.77])\r\n\tby mx with esmtp (Exim 4.96)\r\n";
        let body = "Subject: x\r\n\r\nReceived: from body (body [203.0.113.66]) by x (Postfix)\r\n";
        type Case<'a> = (&'a str, bool, Option<&'a str>, String, SourceChoice);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: Vec<Case> = vec![
            (
                "trusted XFORWARD wins over headers",
                true,
                Some("198.51.100.1"),
                top.into(),
                SourceChoice::Report { ip: ip("198.51.100.1"), via: Via::Xforward },
            ),
            (
                "XFORWARD with Postfix's IPV6: prefix",
                true,
                Some("IPV6:2001:db8::1"),
                String::new(),
                SourceChoice::Report { ip: ip("2001:db8::1"), via: Via::Xforward },
            ),
            (
                "untrusted peer: nothing is believed",
                false,
                Some("198.51.100.1"),
                top.into(),
                SourceChoice::Unknown("the LMTP client is not a trusted peer"),
            ),
            (
                "no XFORWARD: the topmost Received",
                true,
                None,
                top.into(),
                SourceChoice::Report { ip: ip("203.0.113.7"), via: Via::Received(0) },
            ),
            (
                "placeholder XFORWARD: the topmost Received",
                true,
                Some("[UNAVAILABLE]"),
                top.into(),
                SourceChoice::Report { ip: ip("203.0.113.7"), via: Via::Received(0) },
            ),
            (
                "through a trusted relay",
                true,
                None,
                relayed.into(),
                SourceChoice::Report { ip: ip("198.51.100.20"), via: Via::Received(1) },
            ),
            (
                "XFORWARD is a trusted relay: the walk goes on",
                true,
                Some("192.0.2.5"),
                relayed.into(),
                SourceChoice::Report { ip: ip("198.51.100.20"), via: Via::Received(1) },
            ),
            (
                "headers below the first untrusted host are not read",
                true,
                None,
                relay_then_forged.into(),
                SourceChoice::Report { ip: ip("198.51.100.20"), via: Via::Received(1) },
            ),
            (
                "local submission",
                true,
                None,
                local.into(),
                SourceChoice::Unknown(
                    "a trusted Received header names no client address in the listed received_formats (local submission, another MTA, an ambiguous value)",
                ),
            ),
            (
                "Exim's header when exim is not listed",
                true,
                None,
                exim.into(),
                SourceChoice::Unknown(
                    "a trusted Received header names no client address in the listed received_formats (local submission, another MTA, an ambiguous value)",
                ),
            ),
            (
                "private network is ignored",
                true,
                None,
                private.into(),
                SourceChoice::Ignored { ip: ip("192.168.1.20"), via: Via::Received(0) },
            ),
            (
                "loopback XFORWARD is ignored",
                true,
                Some("127.0.0.1"),
                String::new(),
                SourceChoice::Ignored { ip: ip("127.0.0.1"), via: Via::Xforward },
            ),
            (
                "CGNAT is ignored",
                true,
                Some("100.64.1.1"),
                String::new(),
                SourceChoice::Ignored { ip: ip("100.64.1.1"), via: Via::Xforward },
            ),
            (
                "ULA is ignored",
                true,
                Some("IPv6:fd00::1"),
                String::new(),
                SourceChoice::Ignored { ip: ip("fd00::1"), via: Via::Xforward },
            ),
            (
                "a Received in the body is not a header",
                true,
                None,
                body.into(),
                SourceChoice::Unknown("no Received header outside the trusted relays"),
            ),
            (
                "IPv4-mapped XFORWARD",
                true,
                Some("::ffff:203.0.113.8"),
                String::new(),
                SourceChoice::Report { ip: ip("203.0.113.8"), via: Via::Xforward },
            ),
        ];
        for (name, trusted, xf, headers, want) in cases {
            let input = SourceInput {
                peer_trusted: trusted,
                xforward_addr: xf.and_then(crate::mail::envelope::parse_ip),
                headers: headers.as_bytes(),
            };
            assert_eq!(select_source(&input, &rules), want, "{name}");
        }
    }
}
