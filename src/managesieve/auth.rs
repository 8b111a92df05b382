//! Who may log in: the small interface the session needs ([`Authenticate`]), SASL PLAIN's
//! message (RFC 4616), and the mapping of a login to the user whose scripts it edits.

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
        password: &'a str,
        peer: Option<IpAddr>,
    ) -> AuthFuture<'a>;
}

/// The parts of a SASL PLAIN message (RFC 4616 §2): `authzid NUL authcid NUL passwd`.
#[derive(Debug, PartialEq, Eq)]
pub struct Plain {
    pub authzid: String,
    pub authcid: String,
    pub password: String,
}

/// Decodes a base64 PLAIN response; `None` when it is not one.
pub fn decode_plain(b64: &[u8]) -> Option<Plain> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut parts = raw.split(|b| *b == 0);
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Some(Plain {
        authzid: text(authzid)?,
        authcid: text(authcid)?,
        password: text(password)?,
    })
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
    fn plain_messages() {
        use base64::Engine as _;
        let enc = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode_plain(enc(b"\0alice\0secret").as_bytes()),
            Some(Plain {
                authzid: String::new(),
                authcid: "alice".into(),
                password: "secret".into()
            })
        );
        assert_eq!(decode_plain(enc(b"alice\0secret").as_bytes()), None);
        assert_eq!(decode_plain(enc(b"\0\0secret").as_bytes()), None);
        assert_eq!(decode_plain(b"!!"), None);
    }

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
