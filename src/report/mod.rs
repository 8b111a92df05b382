//! What we tell people about infected mail. Every message here is built with mail-builder and
//! handed to [`crate::outbound::Outbox`] (through its queue in the state store); none carries
//! infected content.
//!
//! - [`notice`]: the postmaster notice, one per infected message, and the per-minute digest
//!   beyond `[notify] max_per_minute`.
//! - [`mdn`]: the RFC 5429 rejection message of Sieve `reject`, when `[sieve]
//!   allow_reject_mdn` is on.
//! - RFC 5965 abuse reports to the abuse contact of the address that sent it (`[abuse]`,
//!   opt-in), never to the envelope sender or its domain, which virus mail forges.
//!
//! One abuse report, top to bottom:
//! - [`source`]: which address sent it, from the trusted peer's XFORWARD or the `Received`
//!   chain of our own relays, minus `ignore_networks` and our own addresses;
//! - [`rdap`]: that address's abuse contact: `overrides`, then RDAP, cached in the state store;
//! - the rate limit: one report per address per `min_interval_secs`; the next one counts
//!   the incidents held back;
//! - [`arf`]: the RFC 5965 message (headers only, never the infected body), with a plea to
//!   stop bouncing when the infected message was a bounce ([`crate::mail::bounce`]);
//! - a [`ReportSink`] takes it (the outbound queue); `dry_run` only logs it.
//!
//! [`AbuseReporter`] ties them together; the delivery pipeline spawns
//! [`AbuseReporter::report`] for each infected message, so a report never delays or fails a
//! delivery.

pub mod abuse;
pub mod arf;
pub mod contact;
pub mod mdn;
pub mod notice;
pub mod rdap;
pub mod source;

pub use abuse::{AbuseReporter, Incident, ReportOutcome, ReportSink, SubmitError};

/// The top-level header section of `message` as the one header walker reads it
/// ([`crate::mail::header::section`]): whole, well-formed field lines from the top, capped
/// ([`crate::mail::header::MAX_BYTES`], [`crate::mail::header::MAX_FIELDS`]); never a body
/// line, even when the message has no blank line.
pub fn header_section(message: &[u8]) -> &[u8] {
    crate::mail::header::section(message)
}

/// Checks a header section we are about to attach to a notice or report with clamd: `None`
/// when it may go out; otherwise why not (a signature matched, or clamd could not scan
/// it: we do not send what we could not check). Nothing we send is infected.
pub async fn withhold_headers(scanner: &crate::scan::Scanner, headers: &[u8]) -> Option<String> {
    if headers.is_empty() {
        return None;
    }
    match scanner.scan(headers).await {
        Ok(crate::scan::Verdict::Clean) => None,
        Ok(crate::scan::Verdict::Infected { name, .. }) => {
            Some(format!("clamd found {name} in the header section"))
        }
        Ok(other) => Some(format!(
            "the header section was not scanned ({})",
            other.word()
        )),
        Err(e) => Some(format!("clamd could not scan the header section: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_table() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b"\r\nbody"), b"");
        // No blank line: the body is not a header.
        assert_eq!(header_section(b"A: 1\r\nbody line\r\n"), b"A: 1\r\n");
    }
}

#[cfg(test)]
mod reporter_tests;
