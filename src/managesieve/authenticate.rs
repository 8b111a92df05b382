//! AUTHENTICATE (RFC 5804 §2.1) with SASL PLAIN, the initial response inline or after an
//! empty challenge; then the user's script directory is found the way delivery finds it.

use super::auth::{login_recipient, AuthFailure};
use super::dir::ScriptDir;
use super::parse::Arg;
use super::reply::{Code, Response};
use super::session::{End, Login, Session};
use crate::auth::plain::{self, PlainError};

impl Session {
    pub(super) async fn authenticate(&mut self, args: Vec<Arg>) -> std::io::Result<Option<End>> {
        let (mechanism, initial) = match args.as_slice() {
            [m] => (m.string(), None),
            [m, i] => (m.string(), i.string()),
            _ => (None, None),
        };
        let Some(mechanism) = mechanism else {
            Response::no("AUTHENTICATE takes a mechanism and an optional response")
                .write_to(&mut self.out);
            return Ok(None);
        };
        if !mechanism.eq_ignore_ascii_case(b"PLAIN") {
            Response::no("Unsupported mechanism: PLAIN only").write_to(&mut self.out);
            return Ok(None);
        }
        if !self.may_authenticate() {
            Response::no_code(
                Code::EncryptNeeded,
                "Authentication needs TLS: use STARTTLS first",
            )
            .write_to(&mut self.out);
            return Ok(None);
        }
        let response = match initial {
            Some(initial) => initial.to_vec(),
            None => {
                // An empty challenge; the client answers with a string (RFC 5804 §2.1).
                self.out.extend_from_slice(b"\"\"\r\n");
                self.flush().await?;
                match self.read_data_line().await? {
                    Ok(line) => line,
                    Err(end) => return Ok(Some(end)),
                }
            }
        };
        if response == b"*" {
            Response::no("Authentication cancelled").write_to(&mut self.out);
            return Ok(None);
        }
        // The decoder every login shares: the authzid must be empty or the user itself (any
        // case), names and password bounded.
        let decoded = std::str::from_utf8(&response)
            .map_err(|_| PlainError::Base64)
            .and_then(plain::decode_base64);
        let credentials = match decoded {
            Ok(credentials) => credentials,
            Err(PlainError::Authzid) => {
                Response::no("Authorization as another user is not supported")
                    .write_to(&mut self.out);
                return Ok(None);
            }
            Err(e) => {
                Response::no(&format!("Malformed PLAIN response: {e}")).write_to(&mut self.out);
                return Ok(None);
            }
        };
        let peer_ip = self.peer.map(|p| p.ip());
        let shared = std::sync::Arc::clone(&self.shared);
        let result = shared
            .auth
            .authenticate(&credentials.user, &credentials.password, peer_ip)
            .await;
        let user = match result {
            Ok(user) => user,
            Err(failure) => {
                // The name the client gave, never the password.
                tracing::info!(peer = ?self.peer, user = %credentials.user, %failure, "managesieve: login failed");
                let response = match failure {
                    AuthFailure::Rejected => Response::no("Authentication failed"),
                    AuthFailure::RateLimited => {
                        Response::no_code(Code::TryLater, "Too many failed logins; try later")
                    }
                    AuthFailure::Unavailable(_) => Response::no_code(
                        Code::TryLater,
                        "Authentication is unavailable; try later",
                    ),
                };
                if self.auth_failed() {
                    Response::bye("Too many failed logins").write_to(&mut self.out);
                    return Ok(Some(End::Refused));
                }
                response.write_to(&mut self.out);
                return Ok(None);
            }
        };
        match self.script_dir(&user) {
            Ok(dir) => {
                tracing::info!(peer = ?self.peer, %user, "managesieve: logged in");
                self.login = Some(Login { user, dir });
                self.set_limits();
                Response::ok("Authenticate completed").write_to(&mut self.out);
            }
            Err(response) => {
                tracing::warn!(peer = ?self.peer, %user, "managesieve: login accepted but the user's Sieve directory is unknown");
                response.write_to(&mut self.out);
            }
        }
        Ok(None)
    }

    /// The user's script directory and active link, from `[sieve] personal_dir` and
    /// `personal` expanded as delivery expands them for that recipient.
    fn script_dir(&self, user: &str) -> Result<ScriptDir, Response> {
        let services = self.services();
        let config = &services.config;
        let mut rcpt = login_recipient(user, &config.mailbox.domains)
            .ok_or_else(|| Response::no("This account has no Sieve scripts here"))?;
        let (Some(dir), Some(active)) = (
            config.sieve.scripts.personal_dir.as_deref(),
            config.sieve.personal.as_deref(),
        ) else {
            return Err(Response::no("Personal scripts are not configured"));
        };
        let uses = crate::mail::address::template_uses;
        let needs_home = uses(dir, 'h') || uses(active, 'h');
        services
            .users
            .admit(&mut rcpt, needs_home)
            .map_err(|e| match e {
                crate::users::Refusal::Unknown | crate::users::Refusal::NoHome => {
                    Response::no("This account has no Sieve scripts here")
                }
                crate::users::Refusal::Unavailable => {
                    Response::no_code(Code::TryLater, "User lookup unavailable; try later")
                }
            })?;
        let ownership = &config.mailbox.ownership;
        let active = rcpt.expand(active);
        let owner = match (ownership.uid, ownership.gid) {
            (None, None) => inherited_owner(&active),
            (uid, gid) => Some((uid, gid)),
        };
        Ok(ScriptDir {
            dir: rcpt.expand(dir),
            active,
            owner,
        })
    }
}

/// Without `[mailbox] owner`, running as root: what we create belongs to whoever owns the
/// directory the active link lives in (the user's home), as delivery's files do.
fn inherited_owner(active: &std::path::Path) -> Option<(Option<u32>, Option<u32>)> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let meta = std::fs::metadata(active.parent()?).ok()?;
    Some((Some(meta.uid()), Some(meta.gid())))
}
