//! The HTML of the admin and sample pages (maud escapes every value we put in, so a hostile
//! subject or sender is shown as text). No script: every action is a form.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::query::{ListQuery, Page};
use crate::quarantine::admin::rfc3339;
use crate::state::QuarantineEntry;
use crate::web::session::Role;

/// The admin pages' own stylesheet, after the site's: wider pages for the tables.
pub const ADMIN_CSS_PATH: &str = "/static/sievegate-admin.css";

const ADMIN_CSS: &str = "\
header.site,main{max-width:90rem}
header.site{display:flex;justify-content:space-between;align-items:center}
form.logout{display:flex;gap:.75rem;align-items:center;margin:0;font-weight:400}
form.filters,form.login{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:0 0 1rem}
form.login{flex-direction:column;align-items:start}
label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
input,select{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:.3rem;background:var(--bg);color:var(--fg)}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
th{color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
p.count{color:var(--muted)}
p.error{color:var(--bad)}
nav.paging{display:flex;gap:1rem;margin:1rem 0}
form.release label{flex-direction:row;gap:.5rem;color:var(--fg)}
";

/// `GET` [`ADMIN_CSS_PATH`].
pub async fn admin_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        ADMIN_CSS,
    )
        .into_response()
}

/// Who is logged in, for the page's header (name and the logout form's nonce).
pub struct Who<'a> {
    /// Admin or sample mailbox.
    pub role: Role,
    /// The name shown.
    pub name: &'a str,
    /// The session's form nonce.
    pub csrf: &'a str,
}

/// A whole page.
pub fn layout(title: &str, who: Option<&Who<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · sievegate" }
                link rel="stylesheet" href=(crate::web::layout::CSS_PATH);
                link rel="stylesheet" href=(ADMIN_CSS_PATH);
            }
            body {
                header.site {
                    span.brand { "sievegate quarantine" }
                    @if let Some(who) = who {
                        form.logout method="post" action=(format!("{}/logout", who.role.path())) {
                            span.who { (who.name) }
                            input type="hidden" name="csrf" value=(who.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page with one message (an error, or what an action did).
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            p.message { (text) }
            p { a href="/admin" { "Back to the list" } }
        },
    )
}

/// The login form of `role`; `token`: the form nonce for this browser's login cookie.
pub fn login(role: Role, token: &str, error: Option<&str>) -> Markup {
    let (title, label) = match role {
        Role::Admin => ("Admin login", "Name"),
        Role::Sample => ("Sample mailbox login", "Address"),
    };
    layout(
        title,
        None,
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.login method="post" action=(format!("{}/login", role.path())) {
                input type="hidden" name="csrf" value=(token);
                label { (label) " " input type="text" name="name" autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

fn short_time(entry: &QuarantineEntry) -> String {
    let t = rfc3339(entry.received_at);
    t.replace('T', " ").trim_end_matches('Z').to_string()
}

fn virus_text(entry: &QuarantineEntry) -> String {
    if entry.viruses.is_empty() {
        entry.verdict.clone()
    } else {
        entry.viruses.join(", ")
    }
}

/// The admin list: the filter form, one page of entries, the paging links.
pub fn list(who: &Who<'_>, query: &ListQuery, page: &Page, error: Option<&str>) -> Markup {
    let selected = |v: &str| query.state.trim() == v;
    layout(
        "Quarantine",
        Some(who),
        html! {
            form.filters method="get" action="/admin" {
                label { "Recipient " input type="text" name="rcpt" value=(query.rcpt); }
                label { "Sender " input type="text" name="sender" value=(query.sender); }
                label { "Virus " input type="text" name="virus" value=(query.virus); }
                label { "From " input type="date" name="from" value=(query.from); }
                label { "To " input type="date" name="to" value=(query.to); }
                label { "State "
                    select name="state" {
                        option value="" selected[selected("")] { "any" }
                        option value="held" selected[selected("held")] { "held" }
                        option value="released" selected[selected("released")] { "released" }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p.count { (page.total) " entries · page " (page.page) " of " (page.pages) }
            table.entries {
                thead { tr {
                    th { "Received (UTC)" } th { "Sender" } th { "Subject" }
                    th { "Recipients" } th { "Virus" } th { "Size" } th { "State" }
                } }
                tbody {
                    @for e in &page.entries {
                        @let held = e.held();
                        tr {
                            td { a href=(format!("/admin/entry/{}", e.id)) { (short_time(e)) } }
                            td { (e.sender) }
                            td { (e.subject) }
                            td { (e.recipients.join(", ")) }
                            td { (virus_text(e)) }
                            td.num { (e.size) }
                            td { @if held.is_empty() { "released" } @else { "held" } }
                        }
                    }
                }
            }
            nav.paging {
                @if page.page > 1 {
                    a rel="prev" href=(format!("/admin?{}", query.with_page(page.page - 1))) { "← newer" }
                }
                " "
                @if page.page < page.pages {
                    a rel="next" href=(format!("/admin?{}", query.with_page(page.page + 1))) { "older →" }
                }
            }
        },
    )
}

/// One entry for the admin: every field, the headers as text, the release log, the release
/// and delete forms.
pub fn entry(who: &Who<'_>, e: &QuarantineEntry, headers: &str) -> Markup {
    let held = e.held();
    layout(
        &format!("Entry {}", e.id),
        Some(who),
        html! {
            dl.fields {
                dt { "Received" } dd { (rfc3339(e.received_at)) }
                dt { "Envelope sender" } dd { @if e.sender.is_empty() { "<>" } @else { (e.sender) } }
                dt { "From" } dd { (e.from) }
                dt { "Subject" } dd { (e.subject) }
                dt { "Message-ID" } dd { (e.message_id) }
                dt { "Recipients" } dd { (e.recipients.join(", ")) }
                dt { "Mailboxes" } dd { (e.resolved.join(", ")) }
                dt { "Held for" } dd { (held.join(", ")) }
                dt { "Verdict" } dd { (e.verdict) " (virustest " (e.virustest) ")" }
                dt { "Viruses" } dd { (e.viruses.join(", ")) }
                dt { "Size" } dd { (e.size) " bytes" }
                dt { "Client" } dd {
                    (e.client_ip.as_deref().unwrap_or("-")) " "
                    (e.client_helo.as_deref().unwrap_or("")) " "
                    (e.queue_id.as_deref().unwrap_or(""))
                }
                dt { "Bounce" } dd { @if e.backscatter { "yes" } @else { "no" } }
            }
            h2 { "Releases" }
            @if e.releases.is_empty() {
                p { "None yet." }
            } @else {
                table.releases {
                    thead { tr { th { "Recipient" } th { "When (UTC)" } th { "By" } } }
                    tbody {
                        @for r in &e.releases {
                            tr { td { (r.rcpt) } td { (rfc3339(r.at)) } td { (r.by) } }
                        }
                    }
                }
            }
            @if !held.is_empty() {
                h2 { "Release" }
                form.release method="post" action=(format!("/admin/entry/{}/release", e.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    p { "The message is scanned again first; if it is still not clean, nothing is released." }
                    @for r in &held {
                        label { input type="checkbox" name="rcpt" value=(r) checked; " " (r) }
                    }
                    button type="submit" { "Release" }
                }
            }
            h2 { "Delete" }
            form.delete method="post" action=(format!("/admin/entry/{}/delete", e.id)) {
                input type="hidden" name="csrf" value=(who.csrf);
                button type="submit" { "Delete this entry" }
            }
            h2 { "Headers" }
            pre.headers { (headers) }
            p { a href=(format!("/admin/entry/{}/raw", e.id)) { "Download the message (raw, as received)" } }
        },
    )
}

/// What a release did, per recipient.
pub fn released(who: &Who<'_>, id: &str, outcomes: &[(String, String)]) -> Markup {
    layout(
        "Released",
        Some(who),
        html! {
            p.message { "Released from " (id) ":" }
            ul.outcomes {
                @for (rcpt, outcome) in outcomes {
                    li { (rcpt) ": " (outcome) }
                }
            }
            p { a href=(format!("/admin/entry/{id}")) { "Back to the entry" } " · " a href="/admin" { "Back to the list" } }
        },
    )
}

/// After a delete.
pub fn deleted(who: &Who<'_>, id: &str) -> Markup {
    layout(
        "Deleted",
        Some(who),
        html! {
            p.message { (id) " is deleted." }
            p { a href="/admin" { "Back to the list" } }
        },
    )
}

/// A sample mailbox's entries, each with its download link.
pub fn sample_list(who: &Who<'_>, entries: &[QuarantineEntry]) -> Markup {
    layout(
        "Samples",
        Some(who),
        html! {
            p { "Messages held for " (who.name) ". Each downloads as a raw message file: open it only with tools meant for malware." }
            table.entries {
                thead { tr { th { "Received (UTC)" } th { "Sender" } th { "Subject" } th { "Virus" } th { "Size" } th {} } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (short_time(e)) }
                            td { (e.sender) }
                            td { (e.subject) }
                            td { (virus_text(e)) }
                            td.num { (e.size) }
                            td { a href=(format!("/sample/entry/{}/raw", e.id)) download { "download" } }
                        }
                    }
                }
            }
        },
    )
}
