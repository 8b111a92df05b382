//! The bottom layer: plain mail notions every other module may use. Imports nothing of ours.
//!
//! - [`header`]: the one header walker: well-formed field lines only, capped.
//! - [`received`]: the client address in a `Received` header, per MTA format.

pub mod header;
pub mod received;
