//! One recipient's [`Plan`] against its [`Maildir`] → one [`RcptOutcome`].
//!
//! All or nothing per recipient: when a copy cannot be stored, the copies already stored are
//! removed again, so neither the failsafe keep nor the MTA's retry after a 4xx duplicates
//! them.

use std::path::PathBuf;

use super::RcptOutcome;
use crate::filter::{Action, Plan};
use crate::store::{Folder, Maildir, StoreError, StoredMessage, SystemFlags};

/// The durable file of the message's unedited copy, shared by every later copy of the
/// same bytes as a hard link (`[mailbox] link_copies`): other recipients of one message
/// (whose trace headers are then the shared ones) and other folders of one recipient.
/// A copy whose `editheader` result differs is always written on its own.
#[derive(Debug, Default)]
pub struct SharedCopy {
    enabled: bool,
    source: Option<PathBuf>,
}

impl SharedCopy {
    /// Links copies when `enabled`; otherwise every copy is written.
    pub fn new(enabled: bool) -> Self {
        SharedCopy {
            enabled,
            source: None,
        }
    }
}

/// Carries out `plan` for one recipient: each stored copy is `header` (this recipient's
/// trace headers) followed by `body` (the message, scan headers already stripped).
///
/// Returns the outcome and the notes worth a log line that arose while executing (the
/// plan's own notes stay with the plan). A folder named twice gets one copy, with the flags
/// of its first action.
///
/// A `Store` into a missing folder without `:create` (Dovecot's `lda_mailbox_autocreate =
/// no`), or into a folder that can never take the message ([`StoreError::is_folder_problem`]:
/// name too long, no permission, a file in the way) does what Pigeonhole does: every copy
/// stored so far is removed and the failsafe keep stores the message once into INBOX without
/// flags; a retry would only fail the same way for five days and then bounce. Only a failure
/// at INBOX itself, or a transient one such as a full disk, fails the recipient (4xx).
pub fn execute(
    plan: &Plan,
    maildir: &Maildir,
    header: &[u8],
    body: &[u8],
) -> (RcptOutcome, Vec<String>) {
    execute_shared(plan, maildir, header, body, &mut SharedCopy::default())
}

/// [`execute`], with the unedited copies hard links of `shared`'s file when it has one
/// (else the first such copy written becomes it). `header` must then be the same for
/// every recipient that shares it.
pub fn execute_shared(
    plan: &Plan,
    maildir: &Maildir,
    header: &[u8],
    body: &[u8],
    shared: &mut SharedCopy,
) -> (RcptOutcome, Vec<String>) {
    let mut notes = Vec::new();

    // The filter emits a reject only for clean mail and never together with a store; if a
    // plan breaks that, refusing wins because the sender is told the message was refused.
    let reject = plan.actions.iter().find_map(|a| match a {
        Action::Reject { reason, extended } => Some((reason, *extended)),
        // The pipeline quarantines (once per message) before executing any plan, and
        // sends (`delivery::send`) after it.
        Action::Store { .. }
        | Action::Quarantine
        | Action::Redirect { .. }
        | Action::Send { .. } => None,
    });
    if let Some((reason, extended)) = reject {
        if plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
        {
            notes.push("reject together with a store action: nothing stored".to_string());
        }
        let outcome = RcptOutcome::Rejected {
            reason: reason.clone(),
            extended,
        };
        return (outcome, notes);
    }

    let mut stored: Vec<StoredMessage> = Vec::new();
    for action in &plan.actions {
        let Action::Store {
            folder,
            flags,
            keywords,
            create,
            edited,
        } = action
        else {
            continue;
        };
        let wanted = Wanted {
            flags: *flags,
            keywords,
            create: *create,
        };
        // editheader's result replaces the message, never the trace headers above it.
        let content = match edited.as_deref() {
            Some(edited) => Content::Edited(edited),
            None => Content::Unedited(&mut *shared),
        };
        match store_once(maildir, &stored, folder, wanted, header, body, content) {
            Ok(None) => {}
            Ok(Some(message)) => {
                if !message.dropped_keywords.is_empty() {
                    // Dovecot keeps keywords past the 26th of a folder in its index
                    // only, which is not ours to write.
                    notes.push(format!(
                        "folder \"{folder}\" has 26 keywords already: {} not set",
                        message.dropped_keywords.join(" ")
                    ));
                }
                stored.push(message)
            }
            Err(error) if error.is_folder_problem() => {
                // Pigeonhole: a store that fails aborts every store of this delivery
                // ("store into mailbox 'X' aborted"), then the failsafe keep stores the
                // message once into INBOX, without flags; the reply is 250.
                notes.push(fallback_note(&error));
                let aborted = std::mem::take(&mut stored);
                remove_all(maildir, &aborted, &mut notes);
                let inbox = Folder::inbox();
                let plain = Wanted {
                    flags: SystemFlags::default(),
                    keywords: &[],
                    create: false,
                };
                let content = Content::Unedited(shared);
                return match store_once(maildir, &[], &inbox, plain, header, body, content) {
                    Ok(message) => {
                        let stored = message.into_iter().collect();
                        (RcptOutcome::Delivered { stored }, notes)
                    }
                    Err(error) => (rollback(maildir, Vec::new(), error, &mut notes), notes),
                };
            }
            Err(error) => return (rollback(maildir, stored, error, &mut notes), notes),
        }
    }

    if stored.is_empty() {
        (RcptOutcome::Discarded, notes)
    } else {
        (RcptOutcome::Delivered { stored }, notes)
    }
}

/// The log note for a folder that cannot take the message; the message goes to INBOX.
fn fallback_note(error: &StoreError) -> String {
    match error {
        StoreError::FolderMissing(missing) => {
            format!("folder \"{missing}\" does not exist and :create not given: kept in INBOX")
        }
        other => {
            // Unlike a missing folder (the script's choice), this needs an admin: a folder
            // the mail user may not write, a file in the way, a name too long.
            tracing::warn!(error = %other, "folder unusable: message stored in INBOX instead");
            format!("{other}: stored in INBOX instead")
        }
    }
}

/// How a copy is to be stored: the flag and `:create` part of an [`Action::Store`].
#[derive(Clone, Copy)]
struct Wanted<'a> {
    flags: SystemFlags,
    keywords: &'a [String],
    create: bool,
}

/// What one copy holds after the trace headers.
enum Content<'a, 's> {
    /// The message as received (scan headers stripped): may be a link of `SharedCopy`.
    Unedited(&'s mut SharedCopy),
    /// The recipient's `editheader` result: always its own file.
    Edited(&'a [u8]),
}

/// Stores into `folder` unless this delivery already has a copy there (`Ok(None)`).
fn store_once(
    maildir: &Maildir,
    stored: &[StoredMessage],
    folder: &Folder,
    wanted: Wanted<'_>,
    header: &[u8],
    body: &[u8],
    content: Content<'_, '_>,
) -> Result<Option<StoredMessage>, StoreError> {
    if stored.iter().any(|s| s.folder == *folder) {
        return Ok(None);
    }
    let (flags, keywords, create) = (wanted.flags, wanted.keywords, wanted.create);
    let shared = match content {
        Content::Edited(edited) => {
            let message =
                maildir.store_with_keywords(folder, flags, keywords, create, &[header, edited])?;
            return Ok(Some(message));
        }
        Content::Unedited(shared) => shared,
    };
    if let (true, Some(source)) = (shared.enabled, &shared.source) {
        if let Some(message) =
            maildir.link_with_keywords(source, folder, flags, keywords, create)?
        {
            return Ok(Some(message));
        }
        // Not linkable (another file system, the source removed by a rollback...): this
        // copy is written and becomes the source for the next ones.
    }
    let message = maildir.store_with_keywords(folder, flags, keywords, create, &[header, body])?;
    if shared.enabled {
        shared.source = Some(message.path.clone());
    }
    Ok(Some(message))
}

/// Removes this recipient's copies after `error`, so the retry starts from nothing. A copy
/// that cannot be removed is a possible duplicate later: it is named in the notes.
fn rollback(
    maildir: &Maildir,
    stored: Vec<StoredMessage>,
    error: StoreError,
    notes: &mut Vec<String>,
) -> RcptOutcome {
    remove_all(maildir, &stored, notes);
    RcptOutcome::Failed { error }
}

/// Removes copies already stored; a copy that cannot be removed is named in the notes.
fn remove_all(maildir: &Maildir, stored: &[StoredMessage], notes: &mut Vec<String>) {
    for message in stored {
        if let Err(e) = maildir.remove(message) {
            notes.push(format!(
                "rollback failed, a retry may duplicate the copy in \"{}\": {e}",
                message.folder
            ));
        }
    }
}

#[cfg(test)]
mod keyword_tests;
#[cfg(test)]
mod tests;
