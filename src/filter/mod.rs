//! Sieve: script resolution (before → personal or default → after), a compile cache keyed by
//! file and modification time, and the sieve-rs event loop that turns one recipient's run into
//! a [`Plan`]. Nothing here touches a mailbox.

pub mod plan;

pub use plan::{Action, Plan};
