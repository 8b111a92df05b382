//! Login and logout of the admin view and the sample mailboxes: the form (with its nonce
//! cookie), the password check (Dovecot's schemes, [`crate::auth::password`]) behind the
//! failed-login limit, the session cookie. Failures are logged with the address and name,
//! never the password.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};

use super::{field, form_fields, page, sample, see_other, verify, AdminSite, ClientIp};
use crate::delivery::Services;
use crate::web::login_limit::Attempt;
use crate::web::session::{cookie_value, Role, Sessions};

/// `GET /admin/login`.
pub async fn admin_form(State(site): State<Arc<AdminSite>>) -> Response {
    if !admin_enabled(&site.services()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    form(&site, Role::Admin, None, StatusCode::OK)
}

/// `GET /sample/login`.
pub async fn sample_form(State(site): State<Arc<AdminSite>>) -> Response {
    form(&site, Role::Sample, None, StatusCode::OK)
}

/// `POST /admin/login`.
pub async fn admin_login(
    State(site): State<Arc<AdminSite>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !admin_enabled(&site.services()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    login(site, Role::Admin, ip, headers, body).await
}

/// `POST /sample/login`.
pub async fn sample_login(
    State(site): State<Arc<AdminSite>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    login(site, Role::Sample, ip, headers, body).await
}

/// `POST /admin/logout`.
pub async fn admin_logout(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    logout(&site, Role::Admin, &headers, &body)
}

/// `POST /sample/logout`.
pub async fn sample_logout(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    logout(&site, Role::Sample, &headers, &body)
}

/// True when `[web] admin_users` names someone: otherwise there is no admin view.
pub fn admin_enabled(services: &Services) -> bool {
    !admin_users(services).is_empty()
}

/// `[web] admin_users` of the running configuration.
fn admin_users(services: &Services) -> &[crate::config::AdminUser] {
    &services.config.web.admin_users
}

/// The login form with a fresh nonce cookie.
fn form(site: &AdminSite, role: Role, error: Option<&str>, status: StatusCode) -> Response {
    let Some(nonce) = Sessions::login_nonce() else {
        tracing::error!("web login: the system has no randomness for the form nonce");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let token = site.sessions.csrf(&nonce);
    (
        status,
        AppendHeaders([(header::SET_COOKIE, site.sessions.login_cookie(role, &nonce))]),
        page::login(role, &token, error),
    )
        .into_response()
}

async fn login(
    site: Arc<AdminSite>,
    role: Role,
    ip: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let name = match role {
        Role::Admin => field(&fields, "name").trim().to_string(),
        Role::Sample => field(&fields, "name").trim().to_lowercase(),
    };
    let password = field(&fields, "password").to_string();
    let nonce = cookie(&headers, role.login_cookie_name());
    if !nonce.is_some_and(|n| site.sessions.csrf_ok(&n, field(&fields, "csrf"))) {
        tracing::warn!(
            role = role.path(),
            ip,
            "web login refused: missing or wrong form nonce"
        );
        return form(
            &site,
            role,
            Some("The form expired or did not come from this site: please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let now = Instant::now();
    if let Attempt::Limited(wait) = site.limit.check(&ip, &name, now) {
        tracing::warn!(role = role.path(), ip, name = ?name, "web login refused: too many failed logins");
        let mut response = form(
            &site,
            role,
            Some("Too many failed logins: please try again later."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let services = site.services();
    let ok = match role {
        Role::Admin => check_admin(&services, &name, password).await,
        Role::Sample => sample::check_login(&services, &name, password).await,
    };
    if !ok {
        site.limit.failed(&ip, &name, now);
        tracing::warn!(role = role.path(), ip, name = ?name, "web login failed");
        return form(
            &site,
            role,
            Some("Wrong name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    site.limit.succeeded(&name);
    tracing::info!(role = role.path(), ip, name = ?name, "web login");
    let value = site.sessions.issue(role, &name, SystemTime::now());
    (
        StatusCode::SEE_OTHER,
        AppendHeaders([
            (header::LOCATION, role.path().to_string()),
            (
                header::SET_COOKIE,
                site.sessions.session_cookie(role, &value),
            ),
        ]),
    )
        .into_response()
}

fn logout(site: &AdminSite, role: Role, headers: &HeaderMap, body: &[u8]) -> Response {
    let fields = form_fields(body);
    // A logout without the session's nonce would let another site log the admin out.
    if let Some((session, cookie)) = site.session(role, headers) {
        if !site.sessions.csrf_ok(&cookie, field(&fields, "csrf")) {
            return (
                StatusCode::FORBIDDEN,
                page::message("Not done", "The form did not come from this site."),
            )
                .into_response();
        }
        tracing::info!(role = role.path(), name = ?session.name, "web logout");
    }
    let mut response = see_other(&format!("{}/login", role.path()));
    if let Ok(v) = HeaderValue::from_str(&site.sessions.clear_session_cookie(role)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, name))
        .map(str::to_string)
}

/// True when `name` is in `[web] admin_users` and `password` matches its hash. An unknown
/// name is checked against another hash all the same, so the time taken does not tell
/// which names exist.
async fn check_admin(services: &Services, name: &str, password: String) -> bool {
    let users = admin_users(services);
    let (stored, known) = match users.iter().find(|u| u.name == name) {
        Some(u) => (u.password.clone(), true),
        None => match users.first() {
            Some(u) => (u.password.clone(), false),
            None => return false,
        },
    };
    verify(stored, password, name).await && known
}
