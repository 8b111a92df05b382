//! What every page shares: the HTML frame (header, footer, our stylesheet), the security
//! headers on every response, and the error page. Pages build their body with maud, which
//! escapes every value it interpolates, so no text from a message (subject, headers) can
//! become markup.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// The stylesheet's path under the site's root; pages link to it relatively (see
/// [`page`]), so a path prefix added by the reverse proxy keeps working.
pub const CSS_PATH: &str = "/static/sievegate.css";

/// The one stylesheet, served by us (`style-src 'self'`: no inline style, no CDN).
pub const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--muted:#666;--line:#d0d0d7;--accent:#0b57d0;--bad:#b3261e;--ok:#146c2e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e9;--bg:#17171a;--muted:#a0a0a8;--line:#3a3a42;--accent:#8ab4f8;--bad:#f2b8b5;--ok:#6dd58c}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:52rem;margin:0 auto;padding:1rem 1.25rem}
header{border-bottom:1px solid var(--line);font-weight:600}
footer{border-top:1px solid var(--line);color:var(--muted);font-size:.85rem}
h1{font-size:1.4rem;margin:.5rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:color-mix(in srgb,var(--line) 25%,transparent);border:1px solid var(--line);padding:.75rem;font-size:.8rem;max-height:28rem;overflow:auto}
.status{padding:.6rem .9rem;border-left:4px solid var(--accent);background:color-mix(in srgb,var(--accent) 10%,transparent);margin:1rem 0}
.status.bad{border-color:var(--bad);background:color-mix(in srgb,var(--bad) 10%,transparent)}
.status.ok{border-color:var(--ok);background:color-mix(in srgb,var(--ok) 10%,transparent)}
.virus{color:var(--bad);font-weight:600}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin:1.25rem 0}
.actions form{margin:0}
button{font:inherit;padding:.5rem 1.1rem;border-radius:.4rem;border:1px solid var(--accent);background:var(--accent);color:var(--bg);cursor:pointer}
button.secondary{background:transparent;color:var(--accent)}
table.held{border-collapse:collapse;width:100%;font-size:.9rem}
table.held th,table.held td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
table.held th{color:var(--muted);font-weight:600}
table.held td.num{white-space:nowrap}
p.note{color:var(--muted);font-size:.85rem}
";

/// `Content-Security-Policy` of every response: nothing but our own stylesheet and our
/// own form targets; no script at all (the pages work without it), no framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every response carries, whatever route or error produced it.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CSP),
    // For browsers older than `frame-ancestors`.
    ("x-frame-options", "DENY"),
    // The URL holds a token: never send it to another site.
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    // A page shows mail that may be released or deleted a minute later, and the URL is
    // a credential: no cache keeps either.
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to a response (replacing any the handler set).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The stylesheet.
pub async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// A whole page: `title` and `body` in the shared frame. `root` is the relative way from the
/// page's URL to the site's root (`".."` for `/q/{token}`), so the page works under any
/// prefix the reverse proxy adds.
pub fn page(root: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · sievegate" }
                link rel="stylesheet" href=(format!("{root}{CSS_PATH}"));
            }
            body {
                header { "Mail quarantine" }
                main {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "This page was opened from a personal link. Do not forward it: whoever has the link can see and act on what it shows until it expires."
                }
            }
        }
    }
}

/// A page that says something went wrong, with its HTTP status. Nothing in it comes from the
/// request but what the handler chose to say.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// 400, 403, 404, 409, 410, 429, 503...
    pub status: StatusCode,
    /// The heading.
    pub title: &'static str,
    /// One or two sentences for the reader.
    pub message: String,
}

impl ErrorPage {
    /// An error page.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        ErrorPage {
            status,
            title,
            message: message.into(),
        }
    }

    /// Rendered with `root` as in [`page`].
    pub fn render(&self, root: &str) -> Response {
        let body = html! {
            p class="status bad" { (self.message) }
        };
        (self.status, page(root, self.title, body)).into_response()
    }
}

/// The answer to a path we do not serve.
pub async fn not_found() -> Response {
    // The depth of an unknown path is unknown: link the stylesheet from the root.
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page here. Open the link from your message again.",
    )
    .render("")
}
