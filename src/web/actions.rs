//! What a signed link lets its recipient do, with no HTTP in it: the rules in one place,
//! the pages ([`super::entry`]) only show their outcome.
//!
//! - Mail held by policy (a Sieve `quarantine`, verdict not infected): the recipient
//!   releases it (through [`crate::delivery::release::release`], the CLI's path: rescan,
//!   then the full pipeline for that one recipient, recorded as released by `web:<rcpt>`)
//!   or deletes their copy.
//! - Infected mail: never released or deleted by a user; "request release" queues a short
//!   message to `[notify] postmaster` through the outbox, at most once per
//!   [`REQUEST_INTERVAL`] per entry and recipient.
//!
//! Deleting one recipient's copy is recorded like a release (the state store has one
//! record per recipient that is no longer held) with `by` ending in [`DELETED_MARK`], so
//! `quarantine show` tells both apart and no one gets the message later; when no recipient
//! is held any more and none was released, the entry and its bytes are removed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::delivery::release::release;
use crate::delivery::Services;
use crate::outbound::compose::{self, AutoSubmitted, Body, Generated, Mailbox};
use crate::quarantine::admin::{rfc3339, AdminError};
use crate::quarantine::link::{Action, Claims};
use crate::quarantine::{Quarantine, QuarantineError};
use crate::state::{QuarantineEntry, RateDecision};

use super::WebState;

/// Marks a recipient's record whose copy was deleted, not delivered (the end of its `by`).
pub const DELETED_MARK: &str = " (deleted, not delivered)";

/// Least time between two release requests for one entry and recipient.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest header text shown on the page.
pub const MAX_HEADERS_SHOWN: usize = 32 * 1024;

/// Where one recipient's copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Still in the quarantine for them.
    Held,
    /// Delivered to them at `at` by `by`.
    Released { at: SystemTime, by: String },
    /// Deleted (by them or an admin) at `at`.
    Deleted { at: SystemTime },
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Delivered to the recipient (its outcome's summary, for the log).
    Released { summary: String },
    /// The recipient's copy is gone.
    Deleted,
    /// The postmaster was asked.
    Requested,
}

/// Why an action did nothing (expected outcomes; each page says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such entry (deleted, purged, or never there), or the link's recipient is not one
    /// of its recipients.
    NotFound,
    /// The quarantine is not enabled here.
    NoQuarantine,
    /// A view link was posted: it does nothing.
    ViewOnly,
    /// A list link was posted, or used where an entry is needed: it names no entry and
    /// acts on nothing.
    ListOnly,
    /// Infected mail: a user never releases or deletes it.
    Infected,
    /// A release request for mail the user can release themselves.
    NotInfected,
    /// Already released to them.
    AlreadyReleased { at: SystemTime },
    /// Already deleted.
    AlreadyDeleted { at: SystemTime },
    /// The rescan before the release finds a virus now.
    StillInfected,
    /// A request for this entry was sent within [`REQUEST_INTERVAL`].
    AlreadyRequested,
    /// No `[notify] postmaster` to ask.
    NoPostmaster,
    /// Something failed on our side (logged); nothing changed, or the action can be
    /// tried again.
    Unavailable,
}

/// Whether the entry holds mail the scanner called infected (a virustest of 4 or 5):
/// then only the postmaster releases it.
pub fn is_infected(entry: &QuarantineEntry) -> bool {
    entry.verdict == "infected" || entry.virustest >= 4
}

/// The entry's own spelling (as given in RCPT TO) of the link's recipient, matched like
/// the CLI's `--rcpt`: the address as given or as resolved, case-insensitively.
pub fn recipient_of(entry: &QuarantineEntry, rcpt: &str) -> Option<String> {
    entry.recipient_matching(rcpt, |_| true).map(str::to_string)
}

/// Where `given`'s copy of `entry` stands.
pub fn standing(entry: &QuarantineEntry, given: &str) -> Standing {
    match entry.releases.iter().find(|r| r.rcpt == given) {
        None => Standing::Held,
        Some(r) if r.by.ends_with(DELETED_MARK) => Standing::Deleted { at: r.at },
        Some(r) => Standing::Released {
            at: r.at,
            by: r.by.clone(),
        },
    }
}

/// One entry as the page shows it, for one recipient.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The index entry.
    pub entry: QuarantineEntry,
    /// The link's recipient as the entry spells it.
    pub rcpt: String,
    /// Where their copy stands.
    pub standing: Standing,
    /// The header section, as text (control characters but line ends removed), capped at
    /// [`MAX_HEADERS_SHOWN`]; `None` when the message cannot be read.
    pub headers: Option<String>,
}

/// The quarantine of the current services, or why not.
fn quarantine(services: &Services) -> Result<Quarantine, Refused> {
    services.quarantine.clone().ok_or(Refused::NoQuarantine)
}

/// Reads the entry (and, with `headers`, the message's header section) on a blocking
/// thread: the state store's calls block.
async fn load(
    services: &Arc<Services>,
    id: &str,
    rcpt: &str,
    headers: bool,
) -> Result<Shown, Refused> {
    let q = quarantine(services)?;
    let (id, rcpt) = (id.to_string(), rcpt.to_string());
    let task = tokio::task::spawn_blocking(move || {
        let entry = q.get(&id).map_err(|e| refused_by(&e))?;
        let given = recipient_of(&entry, &rcpt).ok_or(Refused::NotFound)?;
        let headers = headers.then(|| match q.raw(&id) {
            Ok(message) => Some(header_text(crate::mail::header::section(&message))),
            Err(e) => {
                tracing::warn!(quarantine_id = %id, error = %e, "web: cannot read the quarantined message");
                None
            }
        });
        Ok(Shown {
            standing: standing(&entry, &given),
            rcpt: given,
            headers: headers.flatten(),
            entry,
        })
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "web: entry lookup panicked");
        Err(Refused::Unavailable)
    })
}

/// The entry page's content for a valid link.
pub async fn show(state: &WebState, claims: &Claims) -> Result<Shown, Refused> {
    if !claims.action.names_entry() {
        return Err(Refused::ListOnly);
    }
    let services = state.current.get();
    load(&services, &claims.entry_id, &claims.rcpt, true).await
}

/// A quarantine error as the page's reason.
fn refused_by(e: &QuarantineError) -> Refused {
    match e {
        QuarantineError::NotFound(_) | QuarantineError::BadId(_) => Refused::NotFound,
        other => {
            tracing::error!(error = %other, "web: quarantine lookup failed");
            Refused::Unavailable
        }
    }
}

/// The header section as text for the page: invalid UTF-8 replaced, CR and other control
/// characters but LF and TAB removed, cut at [`MAX_HEADERS_SHOWN`] on a character boundary.
pub fn header_text(section: &[u8]) -> String {
    let text = String::from_utf8_lossy(section);
    let mut out = String::with_capacity(text.len().min(MAX_HEADERS_SHOWN));
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_HEADERS_SHOWN {
            out.push_str("\n[…]");
            break;
        }
        out.push(c);
    }
    out
}

/// Does what `claims` names, only that, for its recipient; the action lock is held from
/// the check of the recipient's standing to its record. Across processes and hosts the
/// release claim in the state store ([`crate::delivery::release::claim`]) is what keeps a
/// recipient from being delivered twice; this process's lock only makes a second click
/// here wait and read "already released" rather than "try again". It runs in its own task: a client
/// that goes away (or the request timeout) cannot stop a release between the delivery and
/// its record.
pub async fn perform(state: Arc<WebState>, claims: Claims) -> Result<Done, Refused> {
    if !claims.action.names_entry() {
        return Err(Refused::ListOnly);
    }
    let task = tokio::spawn(async move {
        let _one_at_a_time = state.actions.lock().await;
        let services = state.current.get();
        let shown = load(&services, &claims.entry_id, &claims.rcpt, false).await?;
        match (claims.action, &shown.standing) {
            (Action::View, _) => return Err(Refused::ViewOnly),
            (_, Standing::Released { at, .. }) => return Err(Refused::AlreadyReleased { at: *at }),
            (_, Standing::Deleted { at }) => return Err(Refused::AlreadyDeleted { at: *at }),
            (_, Standing::Held) => {}
        }
        let infected = is_infected(&shown.entry);
        match claims.action {
            Action::View => Err(Refused::ViewOnly),
            Action::List => Err(Refused::ListOnly),
            Action::Release | Action::Delete if infected => Err(Refused::Infected),
            Action::RequestRelease if !infected => Err(Refused::NotInfected),
            Action::Release => release_one(&services, &shown).await,
            Action::Delete => delete_one(&services, &shown).await,
            Action::RequestRelease => request(&services, &shown).await,
        }
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "web: action panicked");
        Err(Refused::Unavailable)
    })
}

/// Who did it, for the record: `web:<rcpt>`.
fn by(rcpt: &str) -> String {
    format!("web:{rcpt}")
}

async fn release_one(services: &Arc<Services>, shown: &Shown) -> Result<Done, Refused> {
    let q = quarantine(services)?;
    let id = &shown.entry.id;
    let rcpt = &shown.rcpt;
    match release(
        services,
        &q,
        id,
        std::slice::from_ref(rcpt),
        false,
        &by(rcpt),
    )
    .await
    {
        Ok(released) => {
            let summary = released
                .first()
                .map(|r| r.outcome.summary())
                .unwrap_or_default();
            tracing::info!(quarantine_id = %id, to = %rcpt, outcome = %summary, "web: released to its recipient");
            Ok(Done::Released { summary })
        }
        Err(AdminError::StillInfected { verdict, .. }) => {
            tracing::warn!(quarantine_id = %id, to = %rcpt, %verdict, "web: release refused, the rescan finds the message not clean");
            Err(Refused::StillInfected)
        }
        Err(AdminError::AlreadyReleased(_)) => Err(Refused::AlreadyReleased {
            at: SystemTime::now(),
        }),
        Err(AdminError::Quarantine(QuarantineError::NotFound(_))) => Err(Refused::NotFound),
        Err(AdminError::InProgress(_)) => Err(Refused::Unavailable),
        Err(e) => {
            tracing::error!(quarantine_id = %id, to = %rcpt, error = %e, "web: release failed");
            Err(Refused::Unavailable)
        }
    }
}

async fn delete_one(services: &Arc<Services>, shown: &Shown) -> Result<Done, Refused> {
    let q = quarantine(services)?;
    let entry = shown.entry.clone();
    let rcpt = shown.rcpt.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<(), Refused> {
        // Not while a release of this recipient runs elsewhere (another host, the CLI),
        // and not after one finished there.
        let _claim = crate::delivery::release::claim(&q, &entry.id, std::slice::from_ref(&rcpt))
            .map_err(|e| match e {
                AdminError::InProgress(_) => Refused::Unavailable,
                AdminError::Quarantine(QuarantineError::NotFound(_)) => Refused::NotFound,
                other => {
                    tracing::error!(quarantine_id = %entry.id, error = %other, "web: delete failed");
                    Refused::Unavailable
                }
            })?;
        let failed = |e: QuarantineError| match e {
            QuarantineError::NotFound(_) => Refused::NotFound,
            e => {
                tracing::error!(quarantine_id = %entry.id, error = %e, "web: delete failed");
                Refused::Unavailable
            }
        };
        let now_entry = q.get(&entry.id).map_err(failed)?;
        if let Some(r) = now_entry.releases.iter().find(|r| r.rcpt == rcpt) {
            return Err(if r.by.ends_with(DELETED_MARK) {
                Refused::AlreadyDeleted { at: r.at }
            } else {
                Refused::AlreadyReleased { at: r.at }
            });
        }
        let mark = format!("{}{DELETED_MARK}", by(&rcpt));
        q.state()
            .quarantine_release_rcpts(
                &entry.id,
                std::slice::from_ref(&rcpt),
                SystemTime::now(),
                &mark,
            )
            .map_err(|e| failed(e.into()))?;
        // Nothing held and nothing delivered: no one needs the bytes any more.
        let entry = q.get(&entry.id).map_err(failed)?;
        let all_deleted = entry.releases.iter().all(|r| r.by.ends_with(DELETED_MARK));
        if entry.held().is_empty() && all_deleted {
            q.delete(&entry.id).map_err(failed)?;
        }
        tracing::info!(quarantine_id = %entry.id, to = %rcpt, "web: deleted by its recipient");
        Ok(())
    });
    match task.await {
        Ok(Ok(())) => Ok(Done::Deleted),
        Ok(Err(refused)) => Err(refused),
        Err(e) => {
            tracing::error!(error = %e, "web: delete panicked");
            Err(Refused::Unavailable)
        }
    }
}

async fn request(services: &Arc<Services>, shown: &Shown) -> Result<Done, Refused> {
    let Some(postmaster) = services.config.notify.postmaster.clone() else {
        return Err(Refused::NoPostmaster);
    };
    let message = request_message(services, shown, &postmaster).map_err(|e| {
        tracing::error!(quarantine_id = %shown.entry.id, error = %e, "web: cannot build the release request");
        Refused::Unavailable
    })?;
    let state = Arc::clone(&services.state);
    let outbox = services.outbox.clone();
    let from = services.config.notify.from.clone();
    let key = format!(
        "web-request:{}:{}",
        shown.entry.id,
        shown.rcpt.to_ascii_lowercase()
    );
    let (id, rcpt) = (shown.entry.id.clone(), shown.rcpt.clone());
    let task = tokio::task::spawn_blocking(move || {
        match state.rate_check(&key, REQUEST_INTERVAL, SystemTime::now()) {
            Ok(RateDecision::Send { .. }) => {}
            Ok(RateDecision::Suppress) => return Err(Refused::AlreadyRequested),
            Err(e) => {
                tracing::error!(error = %e, "web: rate check failed");
                return Err(Refused::Unavailable);
            }
        }
        outbox
            .enqueue("release-request", &from, &[postmaster], message)
            .map_err(|e| {
                tracing::error!(quarantine_id = %id, error = %e, "web: cannot queue the release request");
                Refused::Unavailable
            })?;
        tracing::info!(quarantine_id = %id, from = %rcpt, "web: release requested from the postmaster");
        Ok(Done::Requested)
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "web: release request panicked");
        Err(Refused::Unavailable)
    })
}

/// The message to the postmaster: which entry, who asks, what it is, and the commands that
/// release it. Every value from the held message passes the one sanitiser (one line, no
/// control characters); the builder does the rest.
fn request_message(
    services: &Services,
    shown: &Shown,
    postmaster: &str,
) -> Result<Vec<u8>, compose::ComposeError> {
    let line = |text: &str| {
        crate::mail::text::sanitize(text, 400, crate::mail::text::Charset::Utf8).into_owned()
    };
    let e = &shown.entry;
    let rcpt = line(&shown.rcpt);
    let viruses = if e.viruses.is_empty() {
        String::new()
    } else {
        format!(" ({})", line(&e.viruses.join(", ")))
    };
    let body = format!(
        "{rcpt} asks for the release of a message held in the quarantine.\n\
         A user cannot release infected mail; it stays held until you decide.\n\
         \n\
         Quarantine id: {id}\n\
         Received:      {received}\n\
         Sender:        {sender}\n\
         From:          {from}\n\
         Subject:       {subject}\n\
         Verdict:       {verdict}{viruses}, virustest {virustest}\n\
         Size:          {size} bytes\n\
         \n\
         To look at it and release it to {rcpt} (still infected: --force stores it into\n\
         the INBOX without Sieve):\n\
         \n\
         \x20 sievegate quarantine show {id}\n\
         \x20 sievegate quarantine release {id} --rcpt {rcpt}\n",
        id = e.id,
        received = rfc3339(e.received_at),
        sender = if e.sender.is_empty() {
            "<>".to_string()
        } else {
            line(&e.sender)
        },
        from = line(&e.from),
        subject = line(&e.subject),
        verdict = line(&e.verdict),
        virustest = e.virustest,
        size = e.size,
    );
    Generated {
        from: Mailbox::new(&services.config.notify.from, Some("sievegate quarantine"))?,
        to: vec![Mailbox::new(postmaster, None)?],
        cc: Vec::new(),
        subject: format!("Release requested: quarantine {}", e.id),
        in_reply_to: None,
        references: Vec::new(),
        auto_submitted: AutoSubmitted::Notified,
        importance: None,
        body: Body::text(&body),
        hostname: services.config.server.hostname.clone(),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RcptRelease;

    fn entry(verdict: &str, virustest: u8) -> QuarantineEntry {
        QuarantineEntry {
            id: "q1".into(),
            received_at: SystemTime::UNIX_EPOCH,
            sender: "s@example.net".into(),
            recipients: vec!["Alice+x@example.test".into(), "bob@example.test".into()],
            resolved: vec!["alice@example.test".into(), "bob@example.test".into()],
            client_ip: None,
            client_helo: None,
            queue_id: None,
            verdict: verdict.into(),
            virustest,
            viruses: Vec::new(),
            message_id: String::new(),
            subject: String::new(),
            from: String::new(),
            size: 1,
            backscatter: false,
            released_at: None,
            released_by: None,
            releases: Vec::new(),
        }
    }

    #[test]
    fn infected_means_the_scanner_said_so() {
        assert!(is_infected(&entry("infected", 5)));
        assert!(is_infected(&entry("infected", 4)));
        assert!(!is_infected(&entry("clean", 1)));
        assert!(!is_infected(&entry("unscanned", 0)));
    }

    #[test]
    fn recipients_match_as_given_or_resolved() {
        let e = entry("clean", 1);
        assert_eq!(
            recipient_of(&e, "alice@EXAMPLE.test").as_deref(),
            Some("Alice+x@example.test")
        );
        assert_eq!(
            recipient_of(&e, "alice+x@example.test").as_deref(),
            Some("Alice+x@example.test")
        );
        assert_eq!(
            recipient_of(&e, "bob@example.test").as_deref(),
            Some("bob@example.test")
        );
        assert_eq!(recipient_of(&e, "carol@example.test"), None);
    }

    #[test]
    fn standing_tells_released_from_deleted() {
        let mut e = entry("clean", 1);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        e.releases.push(RcptRelease {
            rcpt: "bob@example.test".into(),
            at,
            by: format!("web:bob@example.test{DELETED_MARK}"),
        });
        e.releases.push(RcptRelease {
            rcpt: "Alice+x@example.test".into(),
            at,
            by: "root".into(),
        });
        assert_eq!(standing(&e, "bob@example.test"), Standing::Deleted { at });
        assert_eq!(
            standing(&e, "Alice+x@example.test"),
            Standing::Released {
                at,
                by: "root".into()
            }
        );
    }

    #[test]
    fn header_text_is_capped_and_has_no_control_characters() {
        let text = header_text(b"Subject: a\x1b[31mb\r\nX: \xff\r\n");
        assert_eq!(text, "Subject: a[31mb\nX: \u{fffd}\n");
        let long = vec![b'a'; MAX_HEADERS_SHOWN * 2];
        let text = header_text(&long);
        assert!(text.len() <= MAX_HEADERS_SHOWN + 8, "{}", text.len());
        assert!(text.ends_with("[…]"));
    }
}
