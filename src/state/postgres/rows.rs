//! Values between Rust and PostgreSQL rows: text as PostgreSQL can hold it, the line
//! lists, the column lists and their readers.

use std::borrow::Cow;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::state::{from_micros, QuarantineEntry, QueuedMail, RcptRelease, RedirectOwner};

/// Text as PostgreSQL can store it: NUL (which text columns refuse) becomes U+FFFD.
pub(super) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

pub(super) fn owned(s: &str) -> String {
    text(s).into_owned()
}

pub(super) fn lines(items: &[String]) -> String {
    owned(&items.join("\n"))
}

pub(super) fn unlines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

/// A recipient or user name in a release row: no control characters (as SQLite's store).
pub(super) fn release_field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `LIKE` pattern for a substring, with `\` as the escape character.
pub(super) fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in owned(text).chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The columns [`entry_from_row`] reads; the entry table is `q`. The releases come as three
/// arrays in order of release.
pub(super) const ENTRY_COLUMNS: &str = "q.id, q.received_at, q.sender, q.recipients, q.resolved, \
    q.client_ip, q.client_helo, q.queue_id, q.verdict, q.virustest, q.viruses, q.message_id, \
    q.subject, q.from_header, q.size, q.backscatter, q.released_at, q.released_by, \
    (SELECT array_agg(r.rcpt ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id), \
    (SELECT array_agg(r.released_at ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id), \
    (SELECT array_agg(r.released_by ORDER BY r.released_at, r.rcpt) FROM quarantine_release r WHERE r.entry = q.id)";

pub(super) fn entry_from_row(row: &Row) -> Result<QuarantineEntry, tokio_postgres::Error> {
    let virustest: i16 = row.try_get(9)?;
    let size: i64 = row.try_get(14)?;
    let rcpts: Option<Vec<String>> = row.try_get(18)?;
    let ats: Option<Vec<i64>> = row.try_get(19)?;
    let bys: Option<Vec<String>> = row.try_get(20)?;
    let releases = rcpts
        .unwrap_or_default()
        .into_iter()
        .zip(ats.unwrap_or_default())
        .zip(bys.unwrap_or_default())
        .map(|((rcpt, at), by)| RcptRelease {
            rcpt,
            at: from_micros(at),
            by,
        })
        .collect();
    Ok(QuarantineEntry {
        id: row.try_get(0)?,
        received_at: from_micros(row.try_get(1)?),
        sender: row.try_get(2)?,
        recipients: unlines(row.try_get(3)?),
        resolved: unlines(row.try_get(4)?),
        client_ip: row.try_get(5)?,
        client_helo: row.try_get(6)?,
        queue_id: row.try_get(7)?,
        verdict: row.try_get(8)?,
        virustest: u8::try_from(virustest).unwrap_or(u8::MAX),
        viruses: unlines(row.try_get(10)?),
        message_id: row.try_get(11)?,
        subject: row.try_get(12)?,
        from: row.try_get(13)?,
        size: u64::try_from(size).unwrap_or(0),
        backscatter: row.try_get(15)?,
        released_at: row.try_get::<_, Option<i64>>(16)?.map(from_micros),
        released_by: row.try_get(17)?,
        releases,
    })
}

/// The columns [`queued_from_row`] reads.
pub(super) const QUEUE_COLUMNS: &str =
    "id, kind, sender, recipients, message, attempts, next_attempt, \
    last_error, redirect_for, redirect_inbox_copy";

pub(super) fn queued_from_row(row: &Row) -> Result<QueuedMail, tokio_postgres::Error> {
    let attempts: i32 = row.try_get(5)?;
    let redirect: Option<String> = row.try_get(8)?;
    let inbox_copy: bool = row.try_get(9)?;
    Ok(QueuedMail {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        from: row.try_get(2)?,
        to: unlines(row.try_get(3)?),
        message: row.try_get(4)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt: from_micros(row.try_get(6)?),
        last_error: row.try_get(7)?,
        redirect: redirect.map(|rcpt| RedirectOwner { rcpt, inbox_copy }),
    })
}

/// Parameters of a statement built at run time, owned so they can move into the call.
pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

pub(super) fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
