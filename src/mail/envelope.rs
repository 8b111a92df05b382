//! One received message's envelope and the original SMTP client it came from: what every
//! entry point (LMTP, LDA, quarantine release) hands the delivery pipeline, and what the
//! quarantine, notices and abuse reports read back.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::address::Recipient;

/// What the pipeline needs to know about one message besides its bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Transaction id: the `Received` header's `id` and the logs.
    pub id: String,
    /// MAIL FROM without brackets; `""` for the null sender.
    pub mail_from: String,
    /// Accepted recipients, in RCPT order; one outcome each comes back in this order.
    pub rcpts: Vec<Recipient>,
    /// The LMTP client's LHLO name.
    pub helo: Option<String>,
    /// The LMTP client's IP address (`None` on a unix socket).
    pub peer_addr: Option<String>,
    /// What the MTA told us about its own client (XFORWARD).
    pub client: Client,
    /// The LMTP client is a trusted peer (`server.xforward_from`), so `client` is its word
    /// and not a stranger's: abuse reports may name `client.addr`.
    pub client_trusted: bool,
    /// When the transaction started (MAIL): the log's `delay` counts from here.
    pub started: Instant,
    /// Where the keep goes instead of INBOX (LDA mode's `-m FOLDER`, like dovecot-lda), as
    /// a Sieve folder name already checked by the caller; a missing folder is not created
    /// and the copy goes to INBOX. A name, not a store type: this layer imports nothing.
    pub default_mailbox: Option<String>,
}

/// The original SMTP client, as the MTA reports it (XFORWARD, or Postfix local(8)'s
/// environment in LDA mode), decoded and sanitized where it was read. Placeholders such as
/// `[UNAVAILABLE]` are absent values here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// Reverse-DNS name (XFORWARD NAME): Sieve's `remote-host`.
    pub name: Option<String>,
    /// IP address (XFORWARD ADDR), parsed once where it is read ([`parse_ip`]): Sieve's
    /// `remote-ip`, the `Received` line, the abuse report's source.
    pub addr: Option<IpAddr>,
    /// HELO name (XFORWARD HELO): text, as the client sent it.
    pub helo: Option<String>,
    /// The MTA's queue id (XFORWARD IDENT), for the logs.
    pub queue_id: Option<String>,
}

impl Client {
    /// True when the MTA told us anything that names the client (the `Received` line then
    /// describes it instead of the LMTP peer).
    pub fn is_known(&self) -> bool {
        self.name.is_some() || self.addr.is_some() || self.helo.is_some()
    }
}

/// One sequence for session and transaction ids in this process.
static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A short id for one session or mail transaction (an [`Envelope::id`]), for logs, replies
/// and the `Received` header: unique within this process and unlikely to repeat across
/// restarts (it starts with the time). Every entry point (LMTP, LDA, a release) takes its
/// ids from here.
pub fn new_id() -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:07X}{:05X}", secs & 0xFFF_FFFF, n & 0xF_FFFF)
}

/// True for the values Postfix sends in place of one it does not know (XFORWARD_README):
/// they mean "absent", never a name or an address.
pub fn is_placeholder(value: &str) -> bool {
    value.eq_ignore_ascii_case("[UNAVAILABLE]") || value.eq_ignore_ascii_case("[TEMPUNAVAIL]")
}

/// A client address as an MTA writes it: an IPv4 address, or an IPv6 address with or
/// without Postfix's `IPV6:` prefix. Nothing else is taken (no brackets, zone ids or
/// names): the address ends up in `Received` and Sieve's `remote-ip`.
pub fn parse_ip(value: &str) -> Option<IpAddr> {
    match value.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("IPV6:") => {
            value[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => value.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full table goes through XFORWARD (`lmtp::xforward`'s tests); here what is
    /// particular to this layer: a placeholder is not an address, and the prefix is
    /// case-insensitive.
    #[test]
    fn parse_ip_basics() {
        assert_eq!(parse_ip("IPv6:2001:DB8::1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_ip("[UNAVAILABLE]"), None);
        assert_eq!(parse_ip(""), None);
    }

    #[test]
    fn placeholders() {
        assert!(is_placeholder("[UNAVAILABLE]"));
        assert!(is_placeholder("[tempunavail]"));
        assert!(!is_placeholder("unknown"));
        assert!(!is_placeholder("192.0.2.1"));
    }
}
