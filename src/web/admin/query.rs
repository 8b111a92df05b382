//! The admin list's filters and paging: the query string of `GET /admin` → which entries,
//! newest first, one page at a time. What the state store can filter on (recipient, virus
//! name, the start of the date range) goes into its query (indexed); the rest (sender,
//! verdict, end date, held or released) is applied to the rows it returns.

use std::time::{Duration, SystemTime};

use crate::state::{QuarantineEntry, QuarantineFilter};

/// Entries per page.
pub const PAGE_SIZE: usize = 50;

/// The list's query string, as the filter form sends it (every field may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ListQuery {
    /// A recipient (as given or resolved), exact, case-insensitive.
    pub rcpt: String,
    /// Part of the envelope sender or the `From`, case-insensitive.
    pub sender: String,
    /// Part of a virus name or the verdict word, case-insensitive.
    pub virus: String,
    /// First day, `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    pub to: String,
    /// `held` (some recipient still held), `released` (none held), or empty for both.
    pub state: String,
    /// Page number, from 1.
    pub page: String,
}

/// Why a query cannot be run; the text is shown above the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A date field is not `YYYY-MM-DD`.
    #[error("{0:?} is not a date: use YYYY-MM-DD (UTC)")]
    BadDate(String),
    /// `state` is not `held`, `released` or empty.
    #[error("{0:?} is not a state: use held or released")]
    BadState(String),
}

/// One page of the list.
#[derive(Debug)]
pub struct Page {
    /// The entries on this page, newest first.
    pub entries: Vec<QuarantineEntry>,
    /// Entries matching in all.
    pub total: usize,
    /// This page's number, from 1.
    pub page: usize,
    /// Pages in all (at least 1).
    pub pages: usize,
}

impl ListQuery {
    /// The part the state store filters on.
    pub fn store_filter(&self) -> Result<QuarantineFilter, QueryError> {
        let nonempty = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        Ok(QuarantineFilter {
            since: day(&self.from)?,
            // The verdict word is matched below; a virus name in the store's query.
            virus: nonempty(&self.virus).filter(|v| !"infected".contains(&v.to_lowercase())),
            rcpt: nonempty(&self.rcpt),
            limit: None,
        })
    }

    /// `entries` (as the store returned them, oldest first) filtered by the rest and cut to
    /// the requested page, newest first.
    pub fn page(&self, mut entries: Vec<QuarantineEntry>) -> Result<Page, QueryError> {
        let until = day(&self.to)?.map(|d| d + Duration::from_secs(86_400));
        let held = match self.state.trim() {
            "" => None,
            "held" => Some(true),
            "released" => Some(false),
            other => return Err(QueryError::BadState(other.to_string())),
        };
        let sender = self.sender.trim().to_lowercase();
        let virus = self.virus.trim().to_lowercase();
        entries.retain(|e| {
            until.is_none_or(|u| e.received_at < u)
                && held.is_none_or(|h| e.held().is_empty() != h)
                && (sender.is_empty()
                    || e.sender.to_lowercase().contains(&sender)
                    || e.from.to_lowercase().contains(&sender))
                && (virus.is_empty()
                    || e.verdict.to_lowercase().contains(&virus)
                    || e.viruses.iter().any(|v| v.to_lowercase().contains(&virus)))
        });
        entries.reverse();
        let total = entries.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self
            .page
            .trim()
            .parse::<usize>()
            .unwrap_or(1)
            .clamp(1, pages);
        let entries = entries
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        Ok(Page {
            entries,
            total,
            page,
            pages,
        })
    }

    /// This query on another page, as a query string (for the paging links).
    pub fn with_page(&self, page: usize) -> String {
        let q = ListQuery {
            page: page.to_string(),
            ..self.clone()
        };
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

/// `YYYY-MM-DD` → midnight UTC; empty → `None`.
fn day(text: &str) -> Result<Option<SystemTime>, QueryError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() != 10 {
        return Err(QueryError::BadDate(t.to_string()));
    }
    humantime::parse_rfc3339(&format!("{t}T00:00:00Z"))
        .map(Some)
        .map_err(|_| QueryError::BadDate(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RcptRelease;
    use std::time::UNIX_EPOCH;

    fn entry(n: u64, sender: &str, virus: &str, released: bool) -> QuarantineEntry {
        QuarantineEntry {
            id: format!("e{n}"),
            received_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n * 86_400),
            sender: sender.to_string(),
            recipients: vec!["a@example.test".into()],
            resolved: vec!["a@example.test".into()],
            client_ip: None,
            client_helo: None,
            queue_id: None,
            verdict: "infected".into(),
            virustest: 5,
            viruses: vec![virus.to_string()],
            message_id: String::new(),
            subject: String::new(),
            from: String::new(),
            size: 1,
            backscatter: false,
            released_at: None,
            released_by: None,
            releases: if released {
                vec![RcptRelease {
                    rcpt: "a@example.test".into(),
                    at: UNIX_EPOCH,
                    by: "admin:x".into(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn filters_page_and_order() {
        let all: Vec<_> = (0..120)
            .map(|n| {
                entry(
                    n,
                    &format!("s{}@x.example", n % 3),
                    "Eicar-Signature",
                    n % 2 == 0,
                )
            })
            .collect();
        let q = ListQuery::default();
        let p = q.page(all.clone()).expect("page");
        assert_eq!((p.total, p.pages, p.page), (120, 3, 1));
        assert_eq!(p.entries[0].id, "e119", "newest first");
        let q = ListQuery {
            sender: "S1@".into(),
            state: "held".into(),
            page: "9".into(),
            ..Default::default()
        };
        let p = q.page(all.clone()).expect("page");
        assert!(p
            .entries
            .iter()
            .all(|e| e.sender == "s1@x.example" && !e.held().is_empty()));
        assert_eq!(p.page, p.pages, "clamped to the last page");
        let q = ListQuery {
            to: "2027-01-15".into(),
            ..Default::default()
        };
        let last = humantime::parse_rfc3339("2027-01-16T00:00:00Z").expect("date");
        let p = q.page(all).expect("page");
        assert!(p.entries.iter().all(|e| e.received_at < last));
        assert!(ListQuery {
            from: "15.1.2027".into(),
            ..Default::default()
        }
        .store_filter()
        .is_err());
    }
}
