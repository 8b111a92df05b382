//! RCPT TO (RFC 5321 §4.1.1.3): the recipient is resolved here, so unknown domains and
//! addresses that could escape the store are refused before any data is sent. A user
//! missing from `[mailbox] users_file` is accepted by default and refused after the scan
//! (`unknown_users`), so that infected mail to it is never bounced.

use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{reply, reply::Reply, Session};
use crate::config::UnknownUsers;
use crate::delivery::{self, Refused};
use crate::mail::address::{AddressError, Recipient};
use crate::users::Refusal;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// smtp-proto refuses some addresses outright (`../x@d`, bare `.`); when such an
    /// address would also be unsafe as a path, say so with 550 5.1.3 (and log it) rather
    /// than a plain syntax error, so path tricks are visible as what they are.
    pub(super) fn rcpt_unparsable(&mut self, line: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(line);
        let address = text
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(address, _)| address.to_string())
            .unwrap_or_default();
        let mailbox = &self.services.config.mailbox;
        match Recipient::resolve(&address, &mailbox.domains, &mailbox.recipient_delimiter) {
            Err(AddressError::UnsafeLocalPart) => {
                tracing::warn!(to = ?address, "recipient refused: local part could escape the store");
                reply::unsafe_recipient(&address)
            }
            _ => reply::bad_recipient_syntax(),
        }
    }

    pub(super) fn rcpt(&mut self, to: RcptTo<String>) -> Reply {
        let mailbox = &self.services.config.mailbox;
        let max = self.services.config.server.max_recipients;
        let Some(txn) = self.txn.as_mut() else {
            return reply::need_mail();
        };
        if txn.rcpts.len() >= max {
            return reply::too_many_recipients();
        }
        match delivery::admit(mailbox, &self.services.users, &to.address) {
            Ok(rcpt) => match self.services.user_limit.try_acquire(&rcpt.user()) {
                Some(slot) => {
                    txn.slots.extend(slot);
                    txn.rcpts.push(rcpt);
                    txn.unknown.push(false);
                    reply::recipient_ok()
                }
                None => {
                    tracing::info!(
                        to = %to.address,
                        limit = mailbox.user_concurrency_limit,
                        "recipient deferred: too many concurrent deliveries for this user"
                    );
                    reply::user_busy(&to.address)
                }
            },
            Err(Refused::User {
                rcpt,
                refusal: Refusal::Unknown,
            }) if mailbox.unknown_users == UnknownUsers::AfterScan => {
                // Refused after the scan, and only when the message is not infected:
                // a 550 here would make the MTA bounce infected mail to its (forged)
                // sender. No per-user slot: nothing is stored for this recipient.
                tracing::info!(to = %to.address, "no such user: accepted, to be refused after the scan unless infected");
                txn.rcpts.push(*rcpt);
                txn.unknown.push(true);
                reply::recipient_ok()
            }
            Err(
                refused @ Refused::User {
                    refusal: Refusal::Unknown,
                    ..
                },
            ) => {
                tracing::info!(to = %to.address, "recipient refused: {refused}");
                reply::unknown_user(&to.address)
            }
            Err(refused @ Refused::User { .. }) => {
                tracing::error!(to = %to.address, "recipient deferred: {refused}");
                reply::local_error(&to.address)
            }
            Err(Refused::Address(AddressError::Syntax)) => reply::bad_recipient_syntax(),
            Err(refused @ Refused::Address(AddressError::UnknownDomain)) => {
                tracing::info!(to = %to.address, "recipient refused: {refused}");
                reply::unknown_domain(&to.address)
            }
            Err(refused @ Refused::Address(AddressError::UnsafeLocalPart)) => {
                tracing::warn!(to = ?to.address, "recipient refused: {refused}");
                reply::unsafe_recipient(&to.address)
            }
        }
    }
}
