//! The bottom layer: plain mail notions every other module may use. Imports nothing of ours.
//!
//! - [`address`]: a RCPT address → [`address::Recipient`] (case folding, `+detail`, path
//!   safety), the Dovecot-style path templates, and the address checks of what we send.
//! - [`bounce`]: is a message a bounce or a feedback report.
//! - [`date`]: the RFC 5322 date we write.
//! - [`envelope`]: one message's [`envelope::Envelope`] and the original [`envelope::Client`].
//! - [`header`]: the one header walker: well-formed field lines only, capped.
//! - [`maildir`]: the store's owner and modes, and which folder names are Maildir++ folders.
//! - [`net`]: network addresses as the configuration writes them ([`net::ClamdAddr`]).
//! - [`received`]: the client address in a `Received` header, per MTA format.
//! - [`sieve`]: Sieve settings as plain values (script limits, spam score, special use).
//! - [`text`]: the one sanitizer for client text written into headers and replies.

pub mod address;
pub mod bounce;
pub mod date;
pub mod envelope;
pub mod header;
pub mod maildir;
pub mod net;
pub mod received;
pub mod sieve;
pub mod text;
