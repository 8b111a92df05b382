//! LHLO (RFC 2033 §4.1): identifies the client and resets any transaction.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{reply, reply::Reply, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn lhlo(&mut self, host: String) -> Reply {
        self.end_transaction();
        self.lhlo = Some(reply::sanitize(&host, 255));
        let server = &self.services.config.server;
        reply::lhlo(
            &server.hostname,
            server.max_message_size,
            self.xforward_allowed,
        )
    }
}
