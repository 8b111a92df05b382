//! Admission, the front door's first step: an address as given (RCPT TO, LDA's `-a`, a
//! quarantine entry's recipient, `sieve test --user`) → a [`Recipient`] that exists here,
//! with its home. One function for every entry point, so the address rules (domains,
//! `+detail`, path safety) and the users file are applied the same way everywhere; each
//! caller maps the typed refusal to its own answer (an LMTP reply, a sysexits status, an
//! admin's error message).

use crate::config::MailboxConfig;
use crate::mail::address::{AddressError, Recipient};
use crate::users::{Refusal, Users};

/// Why an address is not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an address of ours at all: bad syntax, a domain we do not serve, a local part
    /// that could escape the store.
    Address(AddressError),
    /// The address resolves, but `[mailbox] users_file` does not admit it (no such user,
    /// the file cannot be read, no home while a template needs `%h`). The recipient is
    /// kept: LMTP's `unknown_users = "after-scan"` and LDA mode still deliver to it through
    /// the pipeline, which refuses it after the scan unless the mail is infected.
    User {
        /// The resolved address.
        rcpt: Box<Recipient>,
        /// Why the users file refused it.
        refusal: Refusal,
    },
}

impl Refused {
    /// True when the users file says the user does not exist (a permanent answer), as
    /// opposed to one it cannot give now.
    pub fn is_unknown_user(&self) -> bool {
        matches!(
            self,
            Refused::User {
                refusal: Refusal::Unknown,
                ..
            }
        )
    }

    /// A short phrase for logs and admins (names no path).
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Address(AddressError::Syntax) => "bad address syntax",
            Refused::Address(AddressError::UnknownDomain) => "domain not local",
            Refused::Address(AddressError::UnsafeLocalPart) => "local part could escape the store",
            Refused::User {
                refusal: Refusal::Unknown,
                ..
            } => "no such user",
            Refused::User {
                refusal: Refusal::Unavailable,
                ..
            } => "the users file could not be read",
            Refused::User {
                refusal: Refusal::NoHome,
                ..
            } => "the user has no home in the users file, but a template uses %h",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Refused {}

/// Resolves `address` under `[mailbox]` (domains, recipient delimiter, path safety) and
/// admits it through `users` (which sets its home): the one admission rule of every
/// entry point.
pub fn admit(mailbox: &MailboxConfig, users: &Users, address: &str) -> Result<Recipient, Refused> {
    let mut rcpt = Recipient::resolve(address, &mailbox.domains, &mailbox.recipient_delimiter)
        .map_err(Refused::Address)?;
    match users.admit(&mut rcpt, mailbox.needs_home) {
        Ok(()) => Ok(rcpt),
        Err(refusal) => Err(Refused::User {
            rcpt: Box::new(rcpt),
            refusal,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> MailboxConfig {
        let text = "[server]\nlisten = [\"127.0.0.1:2424\"]\nhostname = \"mx.example.test\"\n\
                    [scanner]\nclamd = \"unix:run/clamd.sock\"\n\
                    [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"vmail/%d/%n/Maildir\"\n";
        crate::config::Config::from_toml(text, std::path::Path::new("/x/t.toml"))
            .expect("config")
            .mailbox
    }

    #[test]
    fn every_refusal_is_typed() {
        let mailbox = mailbox();
        let users = Users::Everyone;
        let ok = admit(&mailbox, &users, "Alice+x@Example.TEST").expect("admitted");
        assert_eq!(ok.user(), "alice@example.test");
        for (address, want) in [
            ("nobody", Refused::Address(AddressError::Syntax)),
            (
                "a@elsewhere.test",
                Refused::Address(AddressError::UnknownDomain),
            ),
            (
                "../x@example.test",
                Refused::Address(AddressError::UnsafeLocalPart),
            ),
        ] {
            assert_eq!(
                admit(&mailbox, &users, address).err(),
                Some(want),
                "{address}"
            );
        }
    }
}
