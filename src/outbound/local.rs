//! Mail we send to one of our own users goes straight into their Maildir INBOX through the
//! normal store: no relay is needed (a postmaster notice still arrives when the relay, or the
//! whole MTA, is down), and no Sieve runs (a user script must not be able to drop or redirect
//! the notices about their mail system).

use std::path::PathBuf;

use crate::config::MailboxConfig;
use crate::mail::address::{AddressError, Recipient};
use crate::store::{Folder, Maildir, StoreError, StoredMessage, SystemFlags};
use crate::users::{Lookup, Users};

/// Where a recipient's mail goes.
#[derive(Debug)]
pub enum Route {
    /// One of ours: into this Maildir.
    Local(Recipient),
    /// Anyone else: through the relay.
    Relay,
}

/// Why a message for a local user could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// An address at one of our domains that no Maildir can belong to.
    #[error("{address}: not a deliverable local address ({reason:?})")]
    BadAddress {
        /// The address as queued.
        address: String,
        /// Why.
        reason: AddressError,
    },
    /// `[mailbox] users_file` does not list the user: nothing to deliver to, ever.
    #[error("{0}: no such user in mailbox.users_file")]
    UnknownUser(String),
    /// The user has no home, but the Maildir template needs `%h`.
    #[error("{0}: no home in mailbox.users_file, but mailbox.maildir uses %h")]
    NoHome(String),
    /// The users file cannot be read right now.
    #[error("{0}: mailbox.users_file cannot be read now")]
    UsersUnavailable(String),
    /// The store failed (full disk, permissions, ...).
    #[error("{address}: {source}")]
    Store {
        /// The recipient.
        address: String,
        /// The store's error.
        source: StoreError,
    },
}

impl LocalError {
    /// True when retrying cannot help until an admin changes the configuration, so the
    /// message is dropped (logged) rather than retried for days.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            LocalError::BadAddress { .. } | LocalError::UnknownUser(_) | LocalError::NoHome(_)
        )
    }
}

/// Resolves and stores mail for our own users.
#[derive(Debug)]
pub struct LocalDelivery {
    mailbox: MailboxConfig,
    /// Our own reader of `[mailbox] users_file` (re-read on change like the server's), so
    /// the outbox does not depend on the LMTP server's state.
    users: Users,
}

impl LocalDelivery {
    /// Delivery for the users of `[mailbox]`.
    pub fn new(mailbox: &MailboxConfig) -> Self {
        LocalDelivery {
            mailbox: mailbox.clone(),
            users: Users::new(mailbox.users_file.as_deref()),
        }
    }

    /// Where `address` goes: local when its domain is one of `[mailbox] domains`.
    pub fn route(&self, address: &str) -> Result<Route, LocalError> {
        match Recipient::resolve(
            address,
            &self.mailbox.domains,
            &self.mailbox.recipient_delimiter,
        ) {
            Ok(rcpt) => Ok(Route::Local(rcpt)),
            Err(AddressError::UnknownDomain) => Ok(Route::Relay),
            Err(reason) => Err(LocalError::BadAddress {
                address: address.to_string(),
                reason,
            }),
        }
    }

    /// Stores `message` into `rcpt`'s INBOX with `Return-Path: <from>` and `Delivered-To`
    /// in front, as a delivery agent does. Blocking (fsyncs): call it off the async threads.
    pub fn store(
        &self,
        rcpt: &Recipient,
        from: &str,
        message: &[u8],
    ) -> Result<StoredMessage, LocalError> {
        let trace = format!("Return-Path: <{from}>\r\nDelivered-To: {}\r\n", rcpt.user());
        self.store_chunks(rcpt, &[trace.as_bytes(), message])
    }

    /// Stores `message`, which already starts with its trace fields (a redirect's failure
    /// keep: the recipient's own `Return-Path`, `Delivered-To` and `Received` from the
    /// delivery), into `rcpt`'s INBOX as it is: the same bytes a keep would have stored.
    /// Blocking (fsyncs).
    pub fn keep(&self, rcpt: &Recipient, message: &[u8]) -> Result<StoredMessage, LocalError> {
        self.store_chunks(rcpt, &[message])
    }

    /// The user checked against `[mailbox] users_file` (for `%h`), then one durable Maildir
    /// write (tmp → fsync → rename → fsync dir) with the configured owner and modes.
    fn store_chunks(
        &self,
        rcpt: &Recipient,
        chunks: &[&[u8]],
    ) -> Result<StoredMessage, LocalError> {
        let mut rcpt = rcpt.clone();
        let user = rcpt.user();
        match self.users.admit(&mut rcpt, self.mailbox.needs_home) {
            Ok(()) => {}
            Err(crate::users::Refusal::Unknown) => return Err(LocalError::UnknownUser(user)),
            Err(crate::users::Refusal::NoHome) => return Err(LocalError::NoHome(user)),
            Err(crate::users::Refusal::Unavailable) => {
                return Err(LocalError::UsersUnavailable(user))
            }
        }
        let root: PathBuf = rcpt.expand(&self.mailbox.maildir);
        Maildir::new(root)
            .with_ownership(self.mailbox.ownership)
            .store(&Folder::inbox(), SystemFlags::default(), false, chunks)
            .map_err(|source| LocalError::Store {
                address: user,
                source,
            })
    }

    /// True when `[mailbox] users_file` lists `rcpt` (always true without one).
    pub fn exists(&self, rcpt: &Recipient) -> bool {
        matches!(self.users.lookup(rcpt), Lookup::Found(_))
    }
}
