//! The `auth = "users_file"` backend: the password field of `[mailbox] users_file`
//! (Dovecot's passwd-file) checked with [`crate::auth::password`], in a blocking thread
//! (the slow schemes are slow on purpose). The file is followed like delivery follows it:
//! an edit applies within a second.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::auth::{login_recipient, AuthFailure, AuthFuture, Authenticate};
use crate::users::{Lookup, UsersFile, RECHECK_EVERY};

/// Checks logins against a passwd-file.
pub struct PasswdFile {
    users: Arc<UsersFile>,
    /// `[mailbox] domains`: a bare login name is a user at the first.
    domains: Vec<String>,
}

impl PasswdFile {
    /// Follows the file at `path`.
    pub fn new(path: PathBuf, domains: Vec<String>) -> PasswdFile {
        PasswdFile {
            users: Arc::new(UsersFile::open(path, RECHECK_EVERY)),
            domains,
        }
    }
}

impl Authenticate for PasswdFile {
    fn authenticate<'a>(
        &'a self,
        authcid: &'a str,
        password: &'a str,
        _peer: Option<IpAddr>,
    ) -> AuthFuture<'a> {
        let users = Arc::clone(&self.users);
        let rcpt = login_recipient(authcid, &self.domains);
        let password = password.as_bytes().to_vec();
        Box::pin(async move {
            let Some(rcpt) = rcpt else {
                return Err(AuthFailure::Rejected);
            };
            let checked = tokio::task::spawn_blocking(move || {
                let user = match users.lookup(&rcpt.local, &rcpt.domain) {
                    Lookup::Found(user) => user,
                    Lookup::Unknown => return Err(AuthFailure::Rejected),
                    Lookup::Unavailable => {
                        return Err(AuthFailure::Unavailable("users file unreadable".into()))
                    }
                };
                let Some(stored) = user.password else {
                    return Err(AuthFailure::Rejected);
                };
                match crate::auth::password::verify(stored.expose(), &password) {
                    Ok(true) => Ok(rcpt.user()),
                    Ok(false) => Err(AuthFailure::Rejected),
                    Err(e) => {
                        // The admin's to fix; the client hears only "failed".
                        tracing::error!(user = %rcpt.user(), error = %e, "managesieve: password field cannot be checked");
                        Err(AuthFailure::Rejected)
                    }
                }
            })
            .await;
            checked.unwrap_or_else(|e| Err(AuthFailure::Unavailable(e.to_string())))
        })
    }
}
