//! `/q/{token}`: one quarantine entry for the recipient a signed link was made for, or,
//! with a list token, everything held for them ([`super::list`]).
//!
//! `GET` shows the entry (sender, subject, date, verdict, size, the header section as
//! text; never the body) with one form per action the recipient may take; it never
//! changes anything, whatever action its token names. Each form posts to the URL of that
//! action's own token, minted here for the same entry, recipient and expiry, so the page
//! can only ever do what its buttons say. `POST` checks the token, then the CSRF defences,
//! then does the one action its token names ([`super::actions::perform`]).
//!
//! CSRF: a token in a URL is already a secret only its recipient holds, so a forged
//! cross-site form would need it. Two checks more, so a leaked or guessed URL is not
//! enough from another site: the form carries a nonce, an HMAC of the action's token under
//! its own domain ([`link::form_nonce`]), which only a page served by us contains; and a
//! browser's `Sec-Fetch-Site` must be `same-origin` (or `none`), and its `Origin`, when
//! sent and not `null` (browsers send `null` under our `Referrer-Policy: no-referrer`),
//! the origin of `[web] base_url`. Clients that send neither header (curl) pass on
//! the nonce alone.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::actions::{self, Done, Refused, Shown, Standing};
use super::layout::{page, ErrorPage};
use super::WebState;
use crate::quarantine::admin::rfc3339;
use crate::quarantine::link::{self, Action, Claims, LinkError};

/// From `/q/{token}` to the site's root.
pub(super) const ROOT: &str = "..";

/// The fields the action forms post.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// [`link::form_nonce`] of the token posted to.
    pub nonce: String,
}

/// A refused link as an error page: malformed 400, not ours 403, expired 410.
fn link_error(e: &LinkError) -> ErrorPage {
    match e {
        LinkError::Malformed => ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "The link is incomplete or damaged. Open it again from your message, copying all of it.",
        ),
        LinkError::BadSignature => ErrorPage::new(
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "The link was changed or was not made by this server. Open it again from your message.",
        ),
        LinkError::Expired { at } => ErrorPage::new(
            StatusCode::GONE,
            "This link has expired",
            format!(
                "The link stopped working on {}. Ask your postmaster if you still need the message.",
                rfc3339(*at)
            ),
        ),
    }
}

/// A refused action as an error page with its status.
fn refused(r: &Refused) -> ErrorPage {
    use StatusCode as S;
    let (status, title, message): (_, _, String) = match r {
        Refused::NotFound | Refused::NoQuarantine => (
            S::NOT_FOUND,
            "Not in the quarantine",
            "This message is not in the quarantine (any more): it was deleted, released to everyone or has expired.".into(),
        ),
        Refused::ViewOnly => (
            S::BAD_REQUEST,
            "Nothing to do",
            "This link only shows the message; use the buttons on its page.".into(),
        ),
        Refused::ListOnly => (
            S::BAD_REQUEST,
            "Nothing to do",
            "This link only shows the list of your held messages; open one of them to act on it.".into(),
        ),
        Refused::Infected => (
            S::FORBIDDEN,
            "Not allowed",
            "This message contains a virus. It cannot be released or deleted from here; you can ask the postmaster to look at it.".into(),
        ),
        Refused::NotInfected => (
            S::BAD_REQUEST,
            "Nothing to request",
            "This message holds no virus: you can release it yourself from its page.".into(),
        ),
        Refused::AlreadyReleased { at } => (
            S::CONFLICT,
            "Already released",
            format!("This message was already released to you on {}. It is not delivered twice.", rfc3339(*at)),
        ),
        Refused::AlreadyDeleted { at } => (
            S::CONFLICT,
            "Already deleted",
            format!("This message was deleted on {}.", rfc3339(*at)),
        ),
        Refused::StillInfected => (
            S::FORBIDDEN,
            "Not released",
            "A new scan finds a virus in this message, so it stays in the quarantine. Ask the postmaster if you need it.".into(),
        ),
        Refused::AlreadyRequested => (
            S::TOO_MANY_REQUESTS,
            "Already requested",
            "The postmaster was already asked about this message within the last hour.".into(),
        ),
        Refused::NoPostmaster => (
            S::SERVICE_UNAVAILABLE,
            "Cannot ask the postmaster",
            "No postmaster address is set up on this server. Please contact your administrator.".into(),
        ),
        Refused::Unavailable => (
            S::SERVICE_UNAVAILABLE,
            "Please try again later",
            "The quarantine cannot be reached right now. Nothing was changed.".into(),
        ),
    };
    ErrorPage::new(status, title, message)
}

/// The token's claims, or the error page.
fn check(state: &WebState, token: &str) -> Result<Claims, ErrorPage> {
    link::verify(&state.key, token, SystemTime::now()).map_err(|e| link_error(&e))
}

/// `GET /q/{token}`: the entry page, or the list page for a list token. Changes nothing.
pub async fn show(State(state): State<Arc<WebState>>, Path(token): Path<String>) -> Response {
    let claims = match check(&state, &token) {
        Ok(claims) => claims,
        Err(page) => return page.render(ROOT),
    };
    if claims.action == Action::List {
        return match super::list::show(&state, &claims).await {
            Ok(page) => page.into_response(),
            Err(r) => refused(&r).render(ROOT),
        };
    }
    match actions::show(&state, &claims).await {
        Ok(shown) => entry_page(&state, &claims, &shown).into_response(),
        Err(r) => refused(&r).render(ROOT),
    }
}

/// A form posting to `action`'s token for the same entry, recipient and expiry.
fn action_form(
    state: &WebState,
    claims: &Claims,
    action: Action,
    label: &str,
    class: &str,
) -> Markup {
    let token = link::sign(
        &state.key,
        &claims.entry_id,
        &claims.rcpt,
        action,
        claims.expires,
    );
    let nonce = link::form_nonce(&state.key, &token);
    html! {
        form method="post" action=(token) {
            input type="hidden" name="nonce" value=(nonce);
            button type="submit" class=[(!class.is_empty()).then_some(class)] name="action" value=(action.as_str()) { (label) }
        }
    }
}

fn entry_page(state: &WebState, claims: &Claims, shown: &Shown) -> Markup {
    let e = &shown.entry;
    let infected = actions::is_infected(e);
    let status = match &shown.standing {
        Standing::Held if infected => html! {
            p class="status bad" { "This message was held because it contains a virus. It cannot be released from here; you can ask the postmaster to look at it." }
        },
        Standing::Held => html! {
            p class="status" { "This message was held for you. Release it to your mailbox, or delete it." }
        },
        Standing::Released { at, .. } => html! {
            p class="status ok" { "This message was released to you on " (rfc3339(*at)) "." }
        },
        Standing::Deleted { at } => html! {
            p class="status" { "This message was deleted on " (rfc3339(*at)) "." }
        },
    };
    let none = |s: &str| {
        if s.is_empty() {
            "(none)".to_string()
        } else {
            s.to_string()
        }
    };
    let body = html! {
        (status)
        dl {
            dt { "For" } dd { (shown.rcpt) }
            dt { "Received" } dd { (rfc3339(e.received_at)) }
            dt { "Sender" } dd { (if e.sender.is_empty() { "<>".to_string() } else { e.sender.clone() }) }
            dt { "From" } dd { (none(&e.from)) }
            dt { "Subject" } dd { (none(&e.subject)) }
            dt { "Verdict" } dd {
                @if infected {
                    span class="virus" { "infected" }
                    @if !e.viruses.is_empty() { ": " (e.viruses.join(", ")) }
                } @else {
                    "held by a filter rule (" (e.verdict) ")"
                }
            }
            dt { "Size" } dd { (size(e.size)) }
            dt { "Link valid until" } dd { (rfc3339(claims.expires)) }
        }
        @if shown.standing == Standing::Held {
            div class="actions" {
                @if infected {
                    (action_form(state, claims, Action::RequestRelease, "Ask the postmaster to release it", ""))
                } @else {
                    (action_form(state, claims, Action::Release, "Release to my mailbox", ""))
                    (action_form(state, claims, Action::Delete, "Delete", "secondary"))
                }
            }
        }
        h2 { "Headers" }
        @match &shown.headers {
            Some(text) => pre { (text) },
            None => p { "The message's headers cannot be shown right now." },
        }
    };
    page(ROOT, "Held message", body)
}

/// A size for people: bytes, KB or MB.
pub(super) fn size(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} bytes"),
        10_000..=9_999_999 => format!("{} KB", bytes / 1000),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// The origin (`scheme://host[:port]`) of `base_url`.
fn origin_of(base_url: &str) -> &str {
    let after_scheme = base_url.find("://").map(|i| i + 3).unwrap_or(0);
    match base_url[after_scheme..].find('/') {
        Some(slash) => &base_url[..after_scheme + slash],
        None => base_url,
    }
}

/// Whether a browser says this POST comes from another site (see the module's CSRF notes).
fn cross_site(headers: &HeaderMap, base_url: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return true;
        }
    }
    if let Some(origin) = headers.get("origin") {
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        // `null`: what browsers send under `Referrer-Policy: no-referrer` (ours), so it
        // tells nothing; `Sec-Fetch-Site` above and the nonce decide then.
        if origin == "null" {
            return false;
        }
        if let Some(base) = base_url {
            if !origin.eq_ignore_ascii_case(origin_of(base)) {
                return true;
            }
        }
    }
    false
}

/// `POST /q/{token}`: the token's action, after the CSRF checks. A list token acts on
/// nothing: refused before anything else.
pub async fn act(
    State(state): State<Arc<WebState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let claims = match check(&state, &token) {
        Ok(claims) => claims,
        Err(page) => return page.render(ROOT),
    };
    if !claims.action.names_entry() {
        return refused(&Refused::ListOnly).render(ROOT);
    }
    let base_url = state.current.get().config.web.base_url.clone();
    let nonce_ok = form
        .as_ref()
        .is_ok_and(|Form(f)| link::verify_form_nonce(&state.key, &token, &f.nonce));
    if !nonce_ok || cross_site(&headers, base_url.as_deref()) {
        tracing::warn!(quarantine_id = %claims.entry_id, action = %claims.action, "web: action refused: not posted from our page");
        return ErrorPage::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This action must be sent from the message's page. Open the link from your message again.",
        )
        .render(ROOT);
    }
    match actions::perform(Arc::clone(&state), claims.clone()).await {
        Ok(done) => done_page(&state, &claims, &done).into_response(),
        Err(r) => refused(&r).render(ROOT),
    }
}

fn done_page(state: &WebState, claims: &Claims, done: &Done) -> Markup {
    let (title, text) = match done {
        Done::Released { .. } => (
            "Released",
            "The message was released to you: it is in your mailbox now.",
        ),
        Done::Deleted => (
            "Deleted",
            "The message was deleted from the quarantine; it will not be delivered to you.",
        ),
        Done::Requested => (
            "Release requested",
            "The postmaster was asked to look at this message. It stays in the quarantine until then.",
        ),
    };
    let view = link::sign(
        &state.key,
        &claims.entry_id,
        &claims.rcpt,
        Action::View,
        claims.expires,
    );
    page(
        ROOT,
        title,
        html! {
            p class="status ok" { (text) }
            p { a href=(view) { "Back to the message" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins() {
        assert_eq!(origin_of("https://q.example/mail"), "https://q.example");
        assert_eq!(origin_of("http://127.0.0.1:8025"), "http://127.0.0.1:8025");
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let base = Some("https://q.example/mail");
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(!cross_site(&with(&[]), base));
        assert!(!cross_site(
            &with(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://q.example")
            ]),
            base
        ));
        assert!(!cross_site(&with(&[("origin", "HTTPS://Q.EXAMPLE")]), base));
        assert!(cross_site(&with(&[("sec-fetch-site", "cross-site")]), base));
        assert!(cross_site(&with(&[("sec-fetch-site", "same-site")]), base));
        assert!(cross_site(
            &with(&[("origin", "https://evil.example")]),
            base
        ));
        assert!(!cross_site(&with(&[("origin", "null")]), base));
        assert!(cross_site(
            &with(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            base
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(12_345), "12 KB");
        assert_eq!(size(12_345_678), "12.3 MB");
    }
}
