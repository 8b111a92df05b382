//! The admin's pages: the list, one entry, its raw bytes, release and delete. Release and
//! delete are the CLI's functions ([`crate::delivery::release::release`],
//! [`crate::quarantine::admin::delete`]) with the admin's name as `admin:<name>`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::page::{self, Who};
use super::query::ListQuery;
use super::{blocking, error_response, field, form_fields, quarantine, AdminSite, Denied};
use crate::delivery::{release as delivery_release, Services};
use crate::quarantine::admin::{self as qadmin, AdminError};
use crate::quarantine::QuarantineError;
use crate::web::session::{Role, Session};

/// At most this much of a message's header is shown (a header can be as large as the
/// message; the page stays small).
const MAX_HEADER_TEXT: usize = 64 * 1024;

/// The admin's session, or the response that sends the browser to log in (or 404 when
/// there is no admin view).
fn admin(
    site: &AdminSite,
    headers: &HeaderMap,
) -> Result<(Arc<Services>, Session, String), Denied> {
    let services = site.services();
    if !super::login::admin_enabled(&services) {
        return Err(Denied::NotFound);
    }
    match site.session(Role::Admin, headers) {
        Some((session, cookie)) => Ok((services, session, cookie)),
        None => Err(Denied::LoginFirst("/admin/login")),
    }
}

/// `GET /admin?rcpt=&sender=&virus=&from=&to=&state=&page=`.
pub async fn list(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (services, session, cookie) = match admin(&site, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let csrf = site.sessions.csrf(&cookie);
    let who = Who {
        role: Role::Admin,
        name: &session.name,
        csrf: &csrf,
    };
    let query: ListQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let filter = match query.store_filter() {
        Ok(f) => f,
        Err(e) => {
            let empty = ListQuery::default().page(Vec::new());
            return match empty {
                Ok(p) => (
                    StatusCode::BAD_REQUEST,
                    page::list(&who, &query, &p, Some(&e.to_string())),
                )
                    .into_response(),
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            };
        }
    };
    let entries = blocking(move || {
        q.state()
            .quarantine_list(&filter)
            .map_err(|e| AdminError::from(QuarantineError::from(e)))
    })
    .await;
    let entries = match entries {
        Ok(e) => e,
        Err(e) => return error_response(&e),
    };
    match query.page(entries) {
        Ok(p) => page::list(&who, &query, &p, None).into_response(),
        Err(e) => match ListQuery::default().page(Vec::new()) {
            Ok(p) => (
                StatusCode::BAD_REQUEST,
                page::list(&who, &query, &p, Some(&e.to_string())),
            )
                .into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
    }
}

/// `GET /admin/entry/{id}`.
pub async fn show(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (services, session, cookie) = match admin(&site, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let found = blocking(move || {
        let entry = q.get(&id)?;
        let raw = q.raw(&id)?;
        Ok((entry, header_text(&raw)))
    })
    .await;
    let (entry, header) = match found {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let csrf = site.sessions.csrf(&cookie);
    let who = Who {
        role: Role::Admin,
        name: &session.name,
        csrf: &csrf,
    };
    page::entry(&who, &entry, &header).into_response()
}

/// `GET /admin/entry/{id}/raw`: the message as received, as a download.
pub async fn raw(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (services, _, _) = match admin(&site, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let name = id.clone();
    match blocking(move || Ok(q.raw(&id)?)).await {
        Ok(bytes) => super::sample::download(&name, bytes),
        Err(e) => error_response(&e),
    }
}

/// `POST /admin/entry/{id}/release` (`csrf`, one `rcpt` per recipient chosen).
pub async fn release(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (services, session, cookie) = match admin(&site, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let fields = form_fields(&body);
    if !site.sessions.csrf_ok(&cookie, field(&fields, "csrf")) {
        return refused_form();
    }
    let rcpts: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "rcpt")
        .map(|(_, v)| v.clone())
        .collect();
    if rcpts.is_empty() {
        return error_response(&AdminError::BadRecipient(
            "choose at least one recipient to release".to_string(),
        ));
    }
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let by = format!("admin:{}", session.name);
    // Never forced from the web: a message still infected at the rescan stays held (the
    // CLI's --force is for the postmaster at a shell).
    match delivery_release::release(&services, &q, &id, &rcpts, false, &by).await {
        Ok(released) => {
            let outcomes: Vec<(String, String)> = released
                .iter()
                .map(|r| (r.rcpt.clone(), r.outcome.summary()))
                .collect();
            let csrf = site.sessions.csrf(&cookie);
            let who = Who {
                role: Role::Admin,
                name: &session.name,
                csrf: &csrf,
            };
            page::released(&who, &id, &outcomes).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `POST /admin/entry/{id}/delete` (`csrf`).
pub async fn delete(
    State(site): State<Arc<AdminSite>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (services, session, cookie) = match admin(&site, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let fields = form_fields(&body);
    if !site.sessions.csrf_ok(&cookie, field(&fields, "csrf")) {
        return refused_form();
    }
    let q = match quarantine(&services) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let target = id.clone();
    match blocking(move || qadmin::delete(&q, &target)).await {
        Ok(()) => {
            tracing::info!(quarantine_id = %id, by = ?format!("admin:{}", session.name), "quarantine entry deleted");
            let csrf = site.sessions.csrf(&cookie);
            let who = Who {
                role: Role::Admin,
                name: &session.name,
                csrf: &csrf,
            };
            page::deleted(&who, &id).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// A POST without the session's form nonce: refused, nothing done.
fn refused_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        page::message(
            "Not done",
            "The form did not come from this site (or the session changed): nothing was done.",
        ),
    )
        .into_response()
}

/// The header section of `message` as text (up to the first empty line, at most
/// [`MAX_HEADER_TEXT`] bytes); invalid UTF-8 shown as U+FFFD. Never the body.
pub fn header_text(message: &[u8]) -> String {
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| memchr::memmem::find(message, b"\n\n").map(|i| i + 1))
        .unwrap_or(message.len());
    let head = &message[..end.min(MAX_HEADER_TEXT)];
    String::from_utf8_lossy(head).replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::header_text;

    #[test]
    fn only_the_header_is_shown() {
        assert_eq!(
            header_text(b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n"),
            "Subject: x\nFrom: a@b\n"
        );
        assert_eq!(header_text(b"Subject: x\n\nbody"), "Subject: x\n");
        assert_eq!(header_text(b"Subject: \xff\r\n\r\n"), "Subject: \u{fffd}\n");
    }
}
