//! Layer 2: the LMTP session over an in-memory stream, with a real clamd and real Maildirs.
//! Every transcript is also replayed split at every byte.
//!
//! This module holds what the files below share: the test environment and the expected
//! greeting, LHLO reply and transcript of one transaction.

mod delivery;
mod failures;
mod protocol;
mod timeouts;
mod unknown;

use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};

fn env() -> Env {
    Env::new(Options::new(Clamd::shared().addr()))
}

const LHLO_REPLY: &str = "250-mx.example.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250-SMTPUTF8\r\n250-DSN\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n";

const GREETING: &str = "220 mx.example.test LMTP sievegate ready\r\n";

fn expected(rcpt_replies: &[&str], finals: &[String]) -> String {
    let mut out = format!("{GREETING}{LHLO_REPLY}250 2.1.0 Sender ok\r\n");
    for r in rcpt_replies {
        out.push_str(r);
        out.push_str("\r\n");
    }
    out.push_str("354 Start mail input; end with <CRLF>.<CRLF>\r\n");
    for f in finals {
        out.push_str(f);
        out.push_str("\r\n");
    }
    out.push_str("221 2.0.0 Bye\r\n");
    out
}
