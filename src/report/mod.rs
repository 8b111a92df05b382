//! What we tell people about infected mail. Every message here is built with mail-builder and
//! handed to [`crate::outbound::Outbox`]; none carries infected content.
//!
//! - [`notice`]: the postmaster notice, one per infected message, and the per-minute digest
//!   beyond `[notify] max_per_minute`.

pub mod notice;
