//! Logins for the servers that need them (ManageSieve, the web admin view): one
//! [`Authenticator`] that decodes SASL PLAIN ([`plain`]), applies the failed-login limits
//! ([`limit`]) and asks one backend:
//! - `users_file`: the passwd-file of `[mailbox] users_file`, its password field checked
//!   with Dovecot's schemes ([`password`]);
//! - `dovecot`: Dovecot's auth service over its auth-client socket ([`dovecot`]), so the
//!   passwords stay wherever Dovecot keeps them.
//!
//! It takes plain values (paths, limits), not a config section: the servers' own sections
//! (`[managesieve] auth`, ...) choose the backend. One log line per attempt (user, client,
//! outcome); never a password or a stored hash.

pub mod dovecot;
pub mod limit;
pub mod password;
pub mod plain;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use dovecot::{DovecotAuth, Origin};
pub use limit::Limits;
pub use password::Scheme;
pub use plain::{Credentials, PlainError};

use crate::mail::text::{sanitize, Charset};
use crate::users::{Lookup, UsersFile};

/// How long a login may wait for Dovecot's auth service, including its failure delay.
pub const DOVECOT_TIMEOUT: Duration = Duration::from_secs(15);

/// How many password hashes are computed at once: Argon2 takes tens of MiB and bcrypt a
/// core for a while; a burst of logins queues here instead of taking the host.
const MAX_CONCURRENT_HASHES: usize = 4;

/// A hash checked for names that have no entry (or no password), so an unknown user costs
/// the time a known one does and the answer's timing does not tell which names exist.
/// `doveadm pw -s SHA512-CRYPT` of a random password nobody knows.
const DUMMY_HASH: &str = "{SHA512-CRYPT}$6$QEZwQr3Dqg02LOzj$SoyulbTC3y1SNpZyA3L2Bjfyy0UMRhAHjXJAoGcM25fSGXOKrwtgA32bLjiuGdKJWhFEvrTWF3mKZZarSgyek1";

/// What one login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The password is right.
    Success(Login),
    /// Wrong password or unknown user (which one is not said: "authentication failed").
    Failed,
    /// Too many failures from this address or for this user: refused without checking.
    RateLimited,
    /// The client's SASL message is not PLAIN as RFC 4616 defines it (or names another
    /// user as authzid).
    Malformed(PlainError),
    /// The backend cannot answer now (users file never read, Dovecot down or slow): a
    /// temporary failure, the client may try later.
    Unavailable,
}

impl Outcome {
    /// True for the failures a client should retry later (ManageSieve's `NO (TRYLATER)`).
    pub fn is_temporary(&self) -> bool {
        matches!(self, Outcome::Unavailable)
    }

    /// A short word for log lines and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "ok",
            Outcome::Failed => "failed",
            Outcome::RateLimited => "rate_limited",
            Outcome::Malformed(_) => "malformed",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user's name as the backend knows it, lowercased (`alice@example.test`, or a bare
    /// `alice` for a users_file entry without a domain). What `%u` means for this user.
    pub user: String,
    /// The home from the users file (`None` from Dovecot, whose auth service does not
    /// say, and for entries without one).
    pub home: Option<PathBuf>,
}

/// Where the passwords are.
#[derive(Debug)]
pub enum Backend {
    /// `[mailbox] users_file`, re-read when it changes.
    UsersFile {
        /// The passwd-file.
        users: UsersFile,
        /// The served domains (`[mailbox] domains`): a bare `alice` entry is
        /// `alice@<each of them>`, as for delivery.
        domains: Vec<String>,
        /// Dovecot's `default_pass_scheme` for fields without `{SCHEME}`.
        default_scheme: Scheme,
    },
    /// Dovecot's auth service.
    Dovecot(DovecotAuth),
}

/// The one entry point the servers use for logins.
#[derive(Debug)]
pub struct Authenticator {
    backend: Backend,
    limiter: limit::Limiter,
    /// What the log lines (and Dovecot) call the server: `managesieve`, ...
    service: String,
    hashes: Arc<Semaphore>,
}

impl Authenticator {
    /// Logins against the passwd-file at `path` (`[mailbox] users_file`), served
    /// `domains`, and Dovecot's `default_pass_scheme` (`Scheme::Crypt` is Dovecot's default).
    pub fn users_file(
        service: &str,
        path: &Path,
        domains: &[String],
        default_scheme: Scheme,
        limits: Limits,
    ) -> Authenticator {
        Authenticator::new(
            service,
            Backend::UsersFile {
                users: UsersFile::open(path.to_path_buf(), crate::users::RECHECK_EVERY),
                domains: domains.iter().map(|d| d.to_lowercase()).collect(),
                default_scheme,
            },
            limits,
        )
    }

    /// Logins through Dovecot's auth service at `socket`
    /// (`[managesieve] dovecot_auth_socket`), `service` being what Dovecot sees.
    pub fn dovecot(service: &str, socket: &Path, limits: Limits) -> Authenticator {
        Authenticator::new(
            service,
            Backend::Dovecot(DovecotAuth::new(socket, service, DOVECOT_TIMEOUT)),
            limits,
        )
    }

    /// Any backend (e.g. a [`DovecotAuth`] with another timeout).
    pub fn new(service: &str, backend: Backend, limits: Limits) -> Authenticator {
        Authenticator {
            backend,
            limiter: limit::Limiter::new(limits),
            service: service.to_string(),
            hashes: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A SASL PLAIN login with its base64 initial response (ManageSieve's
    /// `AUTHENTICATE "PLAIN" "<base64>"`).
    pub async fn plain_base64(&self, response: &str, origin: Origin) -> Outcome {
        match plain::decode_base64(response) {
            Ok(credentials) => self.login(&credentials, origin).await,
            Err(e) => self.malformed(e, origin).await,
        }
    }

    /// A SASL PLAIN login with the decoded message.
    pub async fn plain(&self, message: &[u8], origin: Origin) -> Outcome {
        match plain::decode(message) {
            Ok(credentials) => self.login(&credentials, origin).await,
            Err(e) => self.malformed(e, origin).await,
        }
    }

    /// A login with a name and password (a web form).
    pub async fn login(&self, credentials: &Credentials, origin: Origin) -> Outcome {
        let user = credentials.user.to_lowercase();
        let outcome = if plain::name(user.as_bytes()).is_err() {
            Outcome::Malformed(PlainError::Name)
        } else if self.limiter.blocked(origin.remote, &user) {
            Outcome::RateLimited
        } else {
            match &self.backend {
                Backend::UsersFile {
                    users,
                    domains,
                    default_scheme,
                } => {
                    self.check_file(
                        users,
                        domains,
                        *default_scheme,
                        &user,
                        &credentials.password,
                    )
                    .await
                }
                Backend::Dovecot(auth) => {
                    let mut message =
                        Vec::with_capacity(user.len() + credentials.password.len() + 2);
                    message.push(0);
                    message.extend_from_slice(credentials.user.as_bytes());
                    message.push(0);
                    message.extend_from_slice(&credentials.password);
                    match auth.plain(&message, origin).await {
                        dovecot::Reply::Ok { user } => Outcome::Success(Login {
                            user: user.to_lowercase(),
                            home: None,
                        }),
                        dovecot::Reply::Failed { reason } => {
                            if let Some(reason) = reason {
                                tracing::debug!(service = %self.service, reason, "dovecot auth refused the login");
                            }
                            Outcome::Failed
                        }
                        dovecot::Reply::Unavailable { why } => {
                            tracing::warn!(service = %self.service, "login not checked: {why}");
                            Outcome::Unavailable
                        }
                    }
                }
            }
        };
        self.finish(&user, origin, outcome).await
    }

    async fn malformed(&self, e: PlainError, origin: Origin) -> Outcome {
        self.finish("", origin, Outcome::Malformed(e)).await
    }

    /// Counts, delays and logs an outcome.
    async fn finish(&self, user: &str, origin: Origin, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Success(login) => self.limiter.succeeded(&login.user),
            Outcome::Failed | Outcome::Malformed(_) => self.limiter.failed(origin.remote, user),
            Outcome::RateLimited | Outcome::Unavailable => {}
        }
        let shown = sanitize(user, 128, Charset::Utf8);
        let client = origin.remote.map(|ip| ip.to_string()).unwrap_or_default();
        match &outcome {
            Outcome::Success(login) => tracing::info!(
                service = %self.service, user = %login.user, client, secured = origin.secured,
                outcome = outcome.label(), "login"
            ),
            Outcome::Malformed(e) => tracing::info!(
                service = %self.service, client, outcome = outcome.label(), "login refused: {e}"
            ),
            _ => tracing::info!(
                service = %self.service, user = %shown, client, secured = origin.secured,
                outcome = outcome.label(), "login"
            ),
        }
        let delay = self.limiter.limits().failure_delay;
        let backend_delays = matches!(self.backend, Backend::Dovecot(_));
        match outcome {
            Outcome::Failed if backend_delays => {}
            Outcome::Failed | Outcome::RateLimited | Outcome::Malformed(_) if !delay.is_zero() => {
                tokio::time::sleep(delay).await
            }
            _ => {}
        }
        outcome
    }

    /// The users_file backend: find the entry, check the password off the async threads.
    async fn check_file(
        &self,
        users: &UsersFile,
        domains: &[String],
        default_scheme: Scheme,
        user: &str,
        password: &[u8],
    ) -> Outcome {
        let (local, domain) = match user.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (user, None),
        };
        let found = match domain {
            // A bare entry is the name at every served domain; another domain is not ours.
            Some(d) if !domains.iter().any(|s| s == d) => Lookup::Unknown,
            // `get(name, "")` finds only a bare entry: no name ends in `@`.
            _ => users.lookup(local, domain.unwrap_or("")),
        };
        let (stored, login) = match found {
            Lookup::Unavailable => {
                tracing::warn!(service = %self.service, "login not checked: {} cannot be read", users.path().display());
                return Outcome::Unavailable;
            }
            Lookup::Unknown => (None, None),
            Lookup::Found(entry) => (
                entry.password.clone(),
                Some(Login {
                    user: user.to_string(),
                    home: entry.home,
                }),
            ),
        };
        let known = stored.is_some();
        let field = stored.map_or_else(|| DUMMY_HASH.to_string(), |p| p.expose().to_string());
        let password = password.to_vec();
        let Ok(_permit) = self.hashes.clone().acquire_owned().await else {
            return Outcome::Unavailable;
        };
        let checked = tokio::task::spawn_blocking(move || {
            password::verify_with_default(&field, &password, default_scheme)
        })
        .await;
        match (checked, login) {
            (Ok(Ok(true)), Some(login)) if known => Outcome::Success(login),
            (Ok(Ok(_)), _) => Outcome::Failed,
            (Ok(Err(e)), _) => {
                // The admin's problem, not the client's: the entry cannot log in at all.
                tracing::warn!(service = %self.service, user = %sanitize(user, 128, Charset::Utf8), "users_file password of this user cannot be checked: {e}");
                Outcome::Failed
            }
            (Err(_), _) => Outcome::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests;
