//! Who may log in: the small interface the session needs ([`Authenticate`]), and the mapping
//! of a login to the user whose scripts it edits. SASL PLAIN's message (RFC 4616) is decoded
//! by [`crate::auth::plain`], the one decoder every login goes through.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::mail::address::Recipient;

/// Why a login failed. The client only ever hears "authentication failed" or "try later".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Wrong name or password (or the account may not log in).
    #[error("authentication failed")]
    Rejected,
    /// Too many failures from this peer or for this user: try later.
    #[error("too many failed logins")]
    RateLimited,
    /// The backend (Dovecot's auth service, the users file) could not answer.
    #[error("authentication backend unavailable: {0}")]
    Unavailable(String),
}

/// The future [`Authenticate::authenticate`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<String, AuthFailure>> + Send + 'a>>;

/// Checks a login; the session does not care where passwords live. Implemented by the
/// configured backend (the passwd-file or Dovecot's auth service), which also
/// rate-limits failures per peer and per user.
pub trait Authenticate: Send + Sync {
    /// Checks `authcid`'s `password` for a client at `peer` (`None`: a unix socket); the
    /// user name to work as on success (normally `authcid` as the backend spells it).
    fn authenticate<'a>(
        &'a self,
        authcid: &'a str,
        password: &'a [u8],
        peer: Option<IpAddr>,
    ) -> AuthFuture<'a>;
}

/// The recipient a login edits the scripts of: `user@domain` as given, or a bare name at
/// the first of `[mailbox] domains` (Dovecot's passwd-file allows bare names). `None`
/// when it is not a local address or could name a path.
pub fn login_recipient(login: &str, domains: &[String]) -> Option<Recipient> {
    let address = if login.contains('@') {
        login.to_string()
    } else {
        format!("{login}@{}", domains.first()?)
    };
    // No subaddress split: the login names the account.
    Recipient::resolve(&address, domains, "").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins() {
        let domains = vec!["example.test".to_string()];
        assert_eq!(
            login_recipient("Alice", &domains).map(|r| r.user()),
            Some("alice@example.test".into())
        );
        assert!(login_recipient("../x", &domains).is_none());
        assert!(login_recipient("a@other.test", &domains).is_none());
    }
}
