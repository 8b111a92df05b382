//! The sample mailboxes' pages: an address of `[quarantine] sample_recipients` logs in with
//! its `[mailbox] users_file` password, lists the entries held for it and downloads one as
//! the raw message, always as an attachment (`message/rfc822`), never shown in the browser.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::page::{self, Who};
use super::{blocking, error_response, quarantine, AdminSite, Denied};
use crate::delivery::Services;
use crate::quarantine::admin::AdminError;
use crate::quarantine::QuarantineError;
use crate::state::{QuarantineEntry, QuarantineFilter};
use crate::web::session::{Role, Session};

/// True when `address` may log in as a sample mailbox: it is one of the sample recipients.
pub fn is_sample(services: &Services, address: &str) -> bool {
    services.config.quarantine.is_sample_recipient(address)
}

/// True when `address` is a sample mailbox and `password` is its users-file password.
pub async fn check_login(services: &Services, address: &str, password: String) -> bool {
    if !is_sample(services, address) {
        return false;
    }
    let Some(stored) = users_file_password(services, address) else {
        return false;
    };
    super::verify(stored, password, address).await
}

/// The password field of `address` in `[mailbox] users_file`, if it has one.
fn users_file_password(services: &Services, address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let table = services.users.table()?;
    let user = table.get(local, domain)?;
    user.password.as_ref().map(|p| p.expose().to_string())
}

/// True when `entry` holds mail for `address` (as given or as resolved).
fn is_for(entry: &QuarantineEntry, address: &str) -> bool {
    entry
        .recipients
        .iter()
        .chain(entry.resolved.iter())
        .any(|r| r.eq_ignore_ascii_case(address))
}

fn sample(
    site: &AdminSite,
    headers: &HeaderMap,
) -> Result<(Arc<Services>, Session, String), Denied> {
    let services = site.services();
    match site.session(Role::Sample, headers) {
        // Removed from the sample recipients since logging in: the session ends there.
        Some((session, cookie)) if is_sample(&services, &session.name) => {
            Ok((services, session, cookie))
        }
        _ => Err(Denied::LoginFirst("/sample/login")),
    }
}

/// `GET /sample`: the entries held for the logged-in sample mailbox, newest first.
pub async fn list(State(site): State<Arc<AdminSite>>, headers: HeaderMap) -> Response {
    let (services, session, cookie) = match sample(&site, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let address = session.name.clone();
    let entries = blocking(move || {
        let filter = QuarantineFilter {
            rcpt: Some(address),
            ..QuarantineFilter::default()
        };
        q.state()
            .quarantine_list(&filter)
            .map_err(|e| AdminError::from(QuarantineError::from(e)))
    })
    .await;
    let mut entries = match entries {
        Ok(e) => e,
        Err(e) => return error_response(&e),
    };
    entries.reverse();
    let csrf = site.sessions.csrf(&cookie);
    let who = Who {
        role: Role::Sample,
        name: &session.name,
        csrf: &csrf,
    };
    page::sample_list(&who, &entries).into_response()
}

/// `GET /sample/entry/{id}/raw`: one entry held for the logged-in sample mailbox, as
/// received. Another recipient's entry answers 404, as one that does not exist.
pub async fn raw(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (services, session, _) = match sample(&site, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let address = session.name.clone();
    let target = id.clone();
    let found = blocking(move || {
        let entry = q.get(&target)?;
        if !is_for(&entry, &address) {
            return Err(AdminError::Quarantine(QuarantineError::NotFound(target)));
        }
        Ok(q.raw(&target)?)
    })
    .await;
    match found {
        Ok(bytes) => {
            tracing::info!(quarantine_id = %id, name = ?session.name, "sample downloaded");
            download(&id, bytes)
        }
        Err(e) => error_response(&e),
    }
}

/// The raw message as a download: `message/rfc822`, an attachment named `<id>.eml` (ids
/// are letters, digits, `.` and `-`); with the site's `nosniff`, no browser renders it.
pub fn download(id: &str, bytes: Vec<u8>) -> Response {
    let name = if crate::quarantine::valid_id(id) {
        id
    } else {
        "message"
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.eml\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
