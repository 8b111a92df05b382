//! The `auth = "users_file"` backend: the password field of `[mailbox] users_file`
//! (Dovecot's passwd-file), read at each login so an edit applies at once.
//!
//! Interim: only `{PLAIN}`/`{CLEARTEXT}` passwords are verified here; the hashed schemes
//! come with the shared password module.

use std::net::IpAddr;
use std::path::PathBuf;

use super::auth::{AuthFailure, AuthFuture, Authenticate};

/// Checks logins against a passwd-file.
#[derive(Debug)]
pub struct PasswdFile {
    pub path: PathBuf,
}

impl Authenticate for PasswdFile {
    fn authenticate<'a>(
        &'a self,
        authcid: &'a str,
        password: &'a str,
        _peer: Option<IpAddr>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|e| AuthFailure::Unavailable(e.to_string()))?;
            let wanted = authcid.to_lowercase();
            for line in text.lines() {
                let mut fields = line.split(':');
                let (Some(name), Some(stored)) = (fields.next(), fields.next()) else {
                    continue;
                };
                if name.trim().to_lowercase() != wanted {
                    continue;
                }
                let plain = stored
                    .strip_prefix("{PLAIN}")
                    .or_else(|| stored.strip_prefix("{CLEARTEXT}"));
                return match plain {
                    Some(p) if same(p.as_bytes(), password.as_bytes()) => Ok(wanted),
                    _ => Err(AuthFailure::Rejected),
                };
            }
            Err(AuthFailure::Rejected)
        })
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
