//! The admin view (`/admin`) and the sample mailboxes' pages (`/sample`): login with a
//! signed session cookie ([`crate::web::session`]), failed logins limited per address and
//! name ([`crate::web::login_limit`]), a form nonce on every POST.
//!
//! - `/admin`: every quarantine entry, filtered and paged ([`query`]); an entry's page (all
//!   fields, the headers as text, never the body, the release log); release (the recipients
//!   chosen, through [`crate::delivery::release`], recorded as `admin:<name>`) and delete
//!   ([`crate::quarantine::admin::delete`]): the CLI's code, so the CLI's rules.
//! - `/sample`: a sample mailbox (`[quarantine] sample_recipients`) logs in with its users
//!   file password, lists the entries held for it and downloads one raw, as an attachment.
//!
//! This module turns requests into those calls and their results into pages; it decides
//! nothing about mail itself.

mod entry;
mod login;
mod page;
pub mod query;
mod sample;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::delivery::Services;
use crate::quarantine::admin::{self as qadmin, AdminError};
use crate::quarantine::link::LinkKey;
use crate::quarantine::{Quarantine, QuarantineError};
use crate::reload::Current;
use crate::web::login_limit::LoginLimit;
use crate::web::session::{cookie_value, Role, Session, Sessions};

/// What the admin and sample pages share: the current services (replaced on reload), the
/// session signer and the failed-login counter.
pub struct AdminSite {
    current: Current,
    sessions: Sessions,
    limit: LoginLimit,
}

impl AdminSite {
    /// A site over the running services (taken per request, so a reload applies to the
    /// next one), signing sessions with a key derived from the `[web]` secret; cookies are
    /// `Secure` when `base_url` is https (as it is at startup, like the key).
    pub fn new(current: Current, key: &LinkKey) -> Arc<Self> {
        let secure = current
            .get()
            .config
            .web
            .base_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        Arc::new(AdminSite {
            current,
            sessions: Sessions::new(key.secret(), secure),
            limit: LoginLimit::default(),
        })
    }

    fn services(&self) -> Arc<Services> {
        self.current.get()
    }

    /// The valid session of `role` in the request's cookies, with the cookie's value (for
    /// the form nonce).
    fn session(&self, role: Role, headers: &HeaderMap) -> Option<(Session, String)> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|h| cookie_value(h, role.cookie_name()))
            .find_map(|value| {
                self.sessions
                    .check(role, value, SystemTime::now())
                    .map(|s| (s, value.to_string()))
            })
    }
}

/// The routes of the admin view and the sample pages, merged into the site's router (which
/// adds the security headers, limits and timeout of every page).
/// Without `[web] admin_users`, `/admin` answers 404; without sample recipients, so does
/// `/sample/login`'s POST for everyone.
pub fn router(site: Arc<AdminSite>) -> Router {
    Router::new()
        .route("/admin", get(entry::list))
        .route("/admin/", get(entry::list))
        .route(
            "/admin/login",
            get(login::admin_form).post(login::admin_login),
        )
        .route("/admin/logout", post(login::admin_logout))
        .route("/admin/entry/{id}", get(entry::show))
        .route("/admin/entry/{id}/raw", get(entry::raw))
        .route("/admin/entry/{id}/release", post(entry::release))
        .route("/admin/entry/{id}/delete", post(entry::delete))
        .route("/sample", get(sample::list))
        .route("/sample/", get(sample::list))
        .route(
            "/sample/login",
            get(login::sample_form).post(login::sample_login),
        )
        .route("/sample/logout", post(login::sample_logout))
        .route("/sample/entry/{id}/raw", get(sample::raw))
        .route(page::ADMIN_CSS_PATH, get(page::admin_css))
        .with_state(site)
}

/// The client's address, for the failed-login counter and the log: the TCP peer, or
/// `local` on a unix socket (behind a reverse proxy, the proxy: limit per client there).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "local".to_string()),
        ))
    }
}

/// The fields of a url-encoded form body, in order (a field may repeat: `rcpt`).
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name` in `fields`, or `""`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Why a request is answered without doing what it asked (small, unlike a `Response`).
enum Denied {
    /// No such page here (the admin view is off).
    NotFound,
    /// No valid session: to this login form.
    LoginFirst(&'static str),
    /// The operation failed.
    Failed(AdminError),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NotFound => StatusCode::NOT_FOUND.into_response(),
            Denied::LoginFirst(form) => see_other(form),
            Denied::Failed(e) => error_response(&e),
        }
    }
}

/// The quarantine of the current services, or why there is none.
fn quarantine(services: &Services) -> Result<Quarantine, Denied> {
    qadmin::open(&services.config, &services.state).map_err(Denied::Failed)
}

/// Runs a state store call (blocking: SQLite, or PostgreSQL's own runtime) off the async
/// workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(AdminError::NotConfigured(format!("internal error: {e}"))),
    }
}

/// The status and page for a failed operation; the text is the CLI's.
fn error_response(e: &AdminError) -> Response {
    let status = match e {
        AdminError::Quarantine(QuarantineError::NotFound(_) | QuarantineError::BadId(_)) => {
            StatusCode::NOT_FOUND
        }
        AdminError::AlreadyReleased(_)
        | AdminError::StillInfected { .. }
        | AdminError::InProgress(_) => StatusCode::CONFLICT,
        AdminError::BadRecipient(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "admin view: operation failed");
    }
    (status, page::message("Not done", &e.to_string())).into_response()
}

/// 303 to `location`.
fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// Checks `password` against a `{SCHEME}hash` off the async workers (the slow schemes take
/// tens of milliseconds on purpose); a hash that cannot be checked is logged and refused.
pub async fn verify(stored: String, password: String, name: &str) -> bool {
    let checked = tokio::task::spawn_blocking(move || {
        crate::auth::password::verify(&stored, password.as_bytes())
    })
    .await;
    match checked {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            tracing::error!(name = ?name, error = %e, "web login: the stored password cannot be checked");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "web login: the password check failed");
            false
        }
    }
}
