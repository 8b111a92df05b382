//! The quarantine's web page (`[web] listen`): the person a held message was for opens a
//! signed link ([`crate::quarantine::link`]) and sees the entry, then releases or deletes
//! it (mail held by policy) or asks the postmaster to look at it (infected mail, which a
//! user never releases).
//!
//! - [`router`]: the routes, on one shared [`WebState`], with the security headers
//!   ([`layout::security_headers`]), a request body limit, a per-request timeout and a
//!   bound on requests in flight. The admin view adds its routes here.
//! - [`layout`]: the page frame, the stylesheet, the error page: shared by every page.
//! - [`entry`]: `GET /q/{token}` (the entry page; never changes anything) and
//!   `POST /q/{token}` (the one action its token names, with the CSRF checks).
//! - [`list`]: `GET /q/{token}` with a list token: every entry still held for its
//!   recipient, each with a view link (the digest's "... and N more" link).
//! - [`actions`]: what each action does to the quarantine and the mail, with no HTTP in
//!   it: release through [`crate::delivery::release`] (the CLI's path), delete for one
//!   recipient, the release request to the postmaster.
//! - `listen`: TCP and unix listeners, our own accept loop over hyper's HTTP/1 connection
//!   (a connection limit, a deadline for the request head, graceful shutdown).
//!
//! The pages hold no JavaScript and load nothing from elsewhere; they work in any
//! browser, and in text browsers.

pub mod actions;
pub mod admin;
pub mod entry;
pub mod layout;
pub mod list;
mod listen;
pub mod login_limit;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;

use crate::quarantine::link::LinkKey;
use crate::reload::Current;

pub use listen::{Web, WebError};

/// Largest request body accepted: the forms post one short field.
pub const MAX_BODY: usize = 4 * 1024;

/// Longest a request may take, from its head to the end of the response (a release
/// rescans and delivers; it keeps running to its end if this passes, see
/// [`actions`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests handled at once; more wait for a slot (the connection limit bounds how many
/// can wait).
pub const MAX_IN_FLIGHT: usize = 64;

/// What every handler shares. Built once at startup; the services are taken from
/// [`Current`] per request, so a SIGHUP reload applies to the next one.
pub struct WebState {
    /// The running configuration and services (quarantine, state store, outbox).
    pub current: Current,
    /// The key the links are signed with (`[web] secret_file`, read at startup).
    pub key: LinkKey,
    /// Taken by every action while it runs: two clicks (or two tabs) on one release never
    /// deliver twice within this process. Other hosts and the CLI rely on the recorded
    /// release, checked under this lock before delivering.
    pub actions: tokio::sync::Mutex<()>,
}

impl WebState {
    /// The state for `key`, taking its services from `current`.
    pub fn new(current: Current, key: LinkKey) -> Arc<WebState> {
        Arc::new(WebState {
            current,
            key,
            actions: tokio::sync::Mutex::new(()),
        })
    }
}

/// The whole site: every route, the shared layers, `state`. The admin view merges its own
/// routes into this one router, so it gets the same headers and limits.
pub fn router(state: Arc<WebState>) -> Router {
    let admin = admin::router(admin::AdminSite::new(state.current.clone(), &state.key));
    Router::new()
        .route("/q/{token}", get(entry::show).post(entry::act))
        .route(layout::CSS_PATH, get(layout::css))
        .fallback(layout::not_found)
        .with_state(state)
        .merge(admin)
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        // Outermost: the headers go on every response, those of the layers above too.
        .layer(axum::middleware::map_response(layout::security_headers))
}
