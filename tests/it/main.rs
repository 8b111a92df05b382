//! The integration-test binary: one binary, one `support` module (as ripgrep does), so the
//! crate is linked once and helpers are shared.

mod abuse;
mod abuse_bomb;
mod abuse_list;
mod faults_postfix;
mod health;
mod infected;
mod lda;
mod lda_postfix;
mod limits;
mod logs;
mod metrics;
mod outbound;
mod ownership;
mod pigeonhole;
mod postfix;
mod postfix_backscatter;
mod postfix_dovecot;
mod postfix_kill;
mod quarantine;
mod quarantine_state;
mod received;
mod reload;
mod scan;
mod scan_fildes;
mod server;
mod session;
mod sieve_corpus;
mod sieve_hostile;
mod sieve_send;
mod sieve_store;
mod sieve_tools;
mod store;
mod support;
mod systemd;
mod user_limit;
