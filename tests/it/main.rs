//! The integration-test binary: one binary, one `support` module (as ripgrep does), so the
//! crate is linked once and helpers are shared.

mod abuse;
mod limits;
mod pigeonhole;
mod scan;
mod server;
mod session;
mod store;
mod support;
