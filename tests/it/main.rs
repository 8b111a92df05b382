//! The integration-test binary: one binary, one `support` module (as ripgrep does), so the
//! crate is linked once and helpers are shared.

mod abuse;
mod health;
mod infected;
mod lda;
mod lda_postfix;
mod limits;
mod outbound;
mod ownership;
mod pigeonhole;
mod quarantine;
mod scan;
mod server;
mod session;
mod sieve_hostile;
mod sieve_send;
mod sieve_store;
mod sieve_tools;
mod store;
mod support;
mod user_limit;
