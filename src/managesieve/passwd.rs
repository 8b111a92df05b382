//! The login backends of `[managesieve] auth`: the shared [`crate::auth::Authenticator`]
//! (SASL PLAIN, failed-login limits per address and per user, the failure delay) over
//! `[mailbox] users_file` or Dovecot's auth service, seen through [`Authenticate`].

use std::net::IpAddr;

use super::auth::{AuthFailure, AuthFuture, Authenticate};
use crate::auth::{Authenticator, Credentials, Origin, Outcome};

impl Authenticate for Authenticator {
    fn authenticate<'a>(
        &'a self,
        authcid: &'a str,
        password: &'a [u8],
        peer: Option<IpAddr>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            let credentials = Credentials {
                user: authcid.to_string(),
                password: password.to_vec(),
            };
            // The session asks only over TLS or on a loopback/unix listener the admin
            // allowed: both count as secured for Dovecot's disable_plaintext_auth.
            let origin = Origin {
                remote: peer,
                local: None,
                secured: true,
            };
            match self.login(&credentials, origin).await {
                Outcome::Success(login) => Ok(login.user),
                Outcome::Failed | Outcome::Malformed(_) => Err(AuthFailure::Rejected),
                Outcome::RateLimited => Err(AuthFailure::RateLimited),
                Outcome::Unavailable => Err(AuthFailure::Unavailable(
                    "the login backend does not answer".into(),
                )),
            }
        })
    }
}
