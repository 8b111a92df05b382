//! Row values of the SQLite store: quarantine entries (recipients as lines, releases as
//! one tab-separated text), queued mail, and the `LIKE` pattern of a substring filter.
//! Kept apart from the statements so the store reads as SQL and the encodings as Rust.

use rusqlite::Row;

use super::super::{
    from_micros, to_micros, QuarantineEntry, QueuedMail, RcptRelease, RedirectOwner,
};

pub(super) fn lines(items: &[String]) -> String {
    items.join("\n")
}

pub(super) fn unlines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

/// The columns [`entry_from_row`] reads, in order.
/// Every query names the entry table `q`. The releases come as one text (a line per
/// release, tab-separated fields, in order of release) from an index lookup per entry.
pub(super) const ENTRY_COLUMNS: &str = "q.id, q.received_at, q.sender, q.recipients, q.resolved, \
    q.client_ip, q.client_helo, q.queue_id, q.verdict, q.virustest, q.viruses, q.message_id, \
    q.subject, q.from_header, q.size, q.backscatter, q.released_at, q.released_by, \
    (SELECT group_concat(r.rcpt || char(9) || r.released_at || char(9) || r.released_by, \
    char(10)) FROM (SELECT * FROM quarantine_release WHERE entry = q.id \
    ORDER BY released_at, rcpt) r)";

pub(super) fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<QuarantineEntry> {
    let virustest: i64 = row.get(9)?;
    let size: i64 = row.get(14)?;
    Ok(QuarantineEntry {
        id: row.get(0)?,
        received_at: from_micros(row.get(1)?),
        sender: row.get(2)?,
        recipients: unlines(row.get(3)?),
        resolved: unlines(row.get(4)?),
        client_ip: row.get(5)?,
        client_helo: row.get(6)?,
        queue_id: row.get(7)?,
        verdict: row.get(8)?,
        virustest: u8::try_from(virustest).unwrap_or(u8::MAX),
        viruses: unlines(row.get(10)?),
        message_id: row.get(11)?,
        subject: row.get(12)?,
        from: row.get(13)?,
        size: u64::try_from(size).unwrap_or(0),
        backscatter: row.get(15)?,
        released_at: row.get::<_, Option<i64>>(16)?.map(from_micros),
        released_by: row.get(17)?,
        releases: releases_from(row.get::<_, Option<String>>(18)?.unwrap_or_default()),
    })
}

/// The inverse of the releases column of [`ENTRY_COLUMNS`]; a malformed line is skipped.
fn releases_from(text: String) -> Vec<RcptRelease> {
    let mut releases: Vec<RcptRelease> = unlines(text)
        .iter()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let rcpt = fields.next()?.to_string();
            let at = from_micros(fields.next()?.parse().ok()?);
            let by = fields.next()?.to_string();
            Some(RcptRelease { rcpt, at, by })
        })
        .collect();
    // group_concat's order is not guaranteed: order of release, then address.
    releases.sort_by(|a, b| (to_micros(a.at), &a.rcpt).cmp(&(to_micros(b.at), &b.rcpt)));
    releases
}

/// A recipient or user name as a field of the releases column: no tab or line end (a
/// recipient never holds one; a user name from `$SUDO_USER` might).
pub(super) fn release_field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `LIKE` pattern for a substring, with `\` as the escape character.
pub(super) fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn queued_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedMail> {
    let attempts: i64 = row.get(5)?;
    Ok(QueuedMail {
        id: row.get(0)?,
        kind: row.get(1)?,
        from: row.get(2)?,
        to: unlines(row.get(3)?),
        message: row.get(4)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt: from_micros(row.get(6)?),
        last_error: row.get(7)?,
        redirect: row
            .get::<_, Option<String>>(8)?
            .map(|rcpt| -> rusqlite::Result<RedirectOwner> {
                Ok(RedirectOwner {
                    rcpt,
                    inbox_copy: row.get::<_, i64>(9)? != 0,
                })
            })
            .transpose()?,
    })
}
