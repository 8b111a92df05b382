//! The client address in one `Received` header, read only in the formats of the MTAs the
//! admin lists (`[abuse] received_formats`). Each parser knows exactly what its MTA writes
//! and which part of it is the client's own claim (the HELO), so a forged HELO such as
//! `[192.0.2.77]` or `x (unknown [203.0.113.66])` is never taken for the connecting address.
//!
//! - **Postfix** (`smtpd`): `from HELO (NAME [ADDR])` or `(NAME [ADDR]:PORT)`, then
//!   optional TLS comments, then `by HOST (Postfix) with PROTO id QID`. Postfix 3.7 writes
//!   a HELO's spaces and parentheses as `?` (tests/it/received.rs sees it), so the HELO is
//!   one word; should another version not, a value with more than one `(NAME [ADDR])`
//!   group is ambiguous and yields nothing.
//! - **Exim** (default `received_header_text`): `from [ADDR] (helo=HELO)` without reverse
//!   DNS, `from NAME ([ADDR] helo=HELO)` with it (`[ADDR]:PORT` with port logging), then
//!   `by HOST with PROTO (Exim VERSION)`. The address comes before anything the client
//!   chose, and Exim refuses a HELO with spaces or parentheses.
//! - **Sendmail** (default `Received:` of sendmail.cf): `from HELO (NAME [ADDR])`, `(user@NAME
//!   [ADDR])`, `([ADDR])`, `(NAME [ADDR] (may be forged))`, or `from NAME [ADDR]` without
//!   HELO, then `by HOST (8.x.y/8.x.y) with PROTO id QID`. Sendmail refuses a HELO with
//!   characters other than letters, digits and `[].-_#:` (then writes `from [ADDR]
//!   ([ADDR])`). Sendmail 8.17 writes IPv6 uncompressed, `([IPv6:0:0:0:0:0:0:0:1])`, and
//!   without reverse DNS `from [192.0.2.77] ([127.0.0.2])` (tests/it/received.rs runs it).
//!
//! A value must carry its MTA's `by` clause exactly once (`by HOST (Postfix`, `(Exim `,
//! `by HOST (8.`): a header in none of the listed formats names no client.

use std::net::IpAddr;

/// An MTA whose `Received` headers we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceivedFormat {
    Postfix,
    Exim,
    Sendmail,
}

impl ReceivedFormat {
    /// Every format, by its config name.
    pub const ALL: [ReceivedFormat; 3] = [
        ReceivedFormat::Postfix,
        ReceivedFormat::Exim,
        ReceivedFormat::Sendmail,
    ];

    /// The config name (`postfix`, `exim`, `sendmail`).
    pub fn name(self) -> &'static str {
        match self {
            ReceivedFormat::Postfix => "postfix",
            ReceivedFormat::Exim => "exim",
            ReceivedFormat::Sendmail => "sendmail",
        }
    }

    /// The format called `name` (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<ReceivedFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The client address in `value` (one unfolded `Received` value), when it is written
    /// in this MTA's format and names a client; `None` otherwise (another MTA, a local
    /// submission, an ambiguous value).
    pub fn client_ip(self, value: &str) -> Option<IpAddr> {
        let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
        if !tokens.first()?.eq_ignore_ascii_case("from") {
            return None;
        }
        match self {
            ReceivedFormat::Postfix => postfix(&tokens),
            ReceivedFormat::Exim => exim(&tokens),
            ReceivedFormat::Sendmail => sendmail(&tokens),
        }
    }
}

/// The client address in `value` by the first of `formats` that reads it.
pub fn client_ip(formats: &[ReceivedFormat], value: &str) -> Option<IpAddr> {
    formats.iter().find_map(|f| f.client_ip(value))
}

/// Index of the one `by` token at or after `from` whose clause satisfies `marker(host,
/// rest)`; `None` when there is none or more than one.
fn one_by_clause(tokens: &[&str], from: usize, marker: impl Fn(&[&str]) -> bool) -> Option<usize> {
    let mut found = None;
    for i in from..tokens.len() {
        if tokens[i].eq_ignore_ascii_case("by")
            && tokens.get(i + 1).is_some()
            && marker(&tokens[i + 2..])
        {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

/// `[ADDR]`, `[ADDR]:PORT` (with `IPv6:` allowed) at the start of `token` → the address.
fn literal(token: &str) -> Option<IpAddr> {
    let inner = token.strip_prefix('[')?;
    let close = inner.find(']')?;
    let rest = &inner[close + 1..];
    let port_ok = rest.is_empty()
        || rest == ")"
        || rest
            .strip_prefix(':')
            .map(|p| p.strip_suffix(')').unwrap_or(p))
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return None;
    }
    address(&inner[..close])
}

/// An address as MTAs write it in a literal: plain or with the `IPv6:` tag (RFC 5321
/// §4.1.3); IPv4-mapped IPv6 becomes IPv4.
fn address(text: &str) -> Option<IpAddr> {
    let bare = match text.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &text[5..],
        _ => text,
    };
    let ip: IpAddr = bare.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// A host name as an MTA writes a verified one, or `unknown`.
fn host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn postfix(tokens: &[&str]) -> Option<IpAddr> {
    let by = one_by_clause(tokens, 2, |rest| {
        rest.first().is_some_and(|t| t.starts_with("(Postfix"))
    })?;
    // Every `(NAME [ADDR])` group before the by clause; the HELO may forge one, so exactly
    // one must be there.
    let mut found = None;
    for i in 2..by.saturating_sub(1) {
        let (name, addr) = (tokens[i], tokens[i + 1]);
        let Some(name) = name.strip_prefix('(') else {
            continue;
        };
        if !addr.ends_with(')') || !host_name(name) {
            continue;
        }
        if let Some(ip) = literal(addr) {
            if found.is_some() {
                return None;
            }
            found = Some(ip);
        }
    }
    found
}

fn exim(tokens: &[&str]) -> Option<IpAddr> {
    let first = tokens.get(1)?;
    let (ip, next) = if first.starts_with('[') {
        // `from [ADDR]`: no reverse DNS; the address is Exim's own, the HELO comes after.
        (literal(first)?, 2)
    } else {
        // `from NAME ([ADDR] ...)`: the first item of the comment.
        let comment = tokens.get(2)?.strip_prefix('(')?;
        if !host_name(first) {
            return None;
        }
        (literal(comment)?, 3)
    };
    let by = one_by_clause(tokens, next, |_| true)?;
    tokens[by..].contains(&"(Exim").then_some(ip)
}

fn sendmail(tokens: &[&str]) -> Option<IpAddr> {
    let by = one_by_clause(tokens, 2, |rest| {
        rest.first().is_some_and(|t| {
            t.strip_prefix('(')
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('/'))
        })
    })?;
    let from = &tokens[1..by];
    match from {
        // No HELO: `from NAME [ADDR]` or `from [ADDR]`.
        [name, addr] if host_name(name) && addr.starts_with('[') => literal(addr),
        [addr] => literal(addr),
        // `from HELO (... [ADDR] ...)`: the first literal of the first comment. The HELO is
        // one word (Sendmail refuses spaces and parentheses in it) and is never read.
        [_helo, comment @ ..] => {
            let mut words = comment.iter();
            let first = words.next()?.strip_prefix('(')?;
            for word in std::iter::once(first).chain(words.copied()) {
                if word.starts_with('[') {
                    return literal(word);
                }
                if word.contains(['(', ')']) {
                    break;
                }
            }
            None
        }
        [] => None,
    }
}

#[cfg(test)]
mod tests;
