//! One script's events → a [`ScriptOutcome`]: what the script decided, and the answers
//! sieve-rs waits for (includes, mailbox existence, duplicates). Nothing is sent or stored.

use std::collections::HashMap;
use std::sync::Arc;

use sieve::runtime::Variable;
use sieve::{Event, GeneratedMessage, Input, Mailbox, MessageOrigin, Recipient as SieveRecipient};

use super::memory::Memory;
use super::plan::{Action, Remember, SendKind};
use super::Mailboxes;
use crate::outbound::compose;
use crate::store::{keywords, Folder, SystemFlags};

/// What one script decided, before it is merged into the chain's Plan.
#[derive(Debug, Default)]
pub(super) struct ScriptOutcome {
    /// fileinto stores and rejects, in script order.
    pub(super) actions: Vec<Action>,
    /// The flags of the last explicit `keep`, if there was one. Pigeonhole defers an explicit
    /// keep to the end of the chain (`sieve_result_execute`: "merge explicit keep status into
    /// implicit keep for the next execution round"), so it only keeps the keep pending.
    pub(super) explicit_keep: Option<(SystemFlags, Vec<String>)>,
    /// What that keep stores: the message as it was when `keep` ran (`None` inside: the
    /// original). Pigeonhole stores the deferred keep with that snapshot, not with edits
    /// made afterwards.
    pub(super) explicit_keep_content: Option<Option<Arc<[u8]>>>,
    /// sieve-rs reported the implicit keep at the end: nothing cancelled it.
    pub(super) implicit_keep: bool,
    /// A redirect we cannot carry out (to a list) cancelled the keep: the chain keeps the
    /// message instead, so it is never lost.
    pub(super) redirected: bool,
    /// The last edited message this script announced (`CreatedMessage` with origin
    /// `Edited`): what the next script of the chain starts from, unless later edits follow.
    pub(super) last_edited: Option<Arc<[u8]>>,
    /// Duplicate ids and vacation records to remember once the delivery succeeded.
    pub(super) remember: Vec<Remember>,
}

impl ScriptOutcome {
    /// True when the script stored a copy (fileinto).
    pub(super) fn stores(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
    }

    /// Actions counted against `[sieve] max_actions`: stores, rejects, an explicit keep.
    pub(super) fn action_count(&self) -> usize {
        self.actions.len() + usize::from(self.explicit_keep.is_some())
    }

    /// True when the script refused the message.
    pub(super) fn rejects(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
    }
}

/// Turns one script's events into a [`ScriptOutcome`] and gives sieve-rs its answers.
pub(super) struct Collector<'n, 'm> {
    /// The recipient's folders: `mailboxexists`, `:specialuse`.
    mailboxes: &'m Mailboxes,
    /// The chain's notes: they survive a runtime error, unlike the actions.
    notes: &'n mut Vec<String>,
    outcome: ScriptOutcome,
    /// What produced each message id sieve-rs announced (`CreatedMessage`). sieve-rs says so
    /// itself (patch #2), so a sender cannot make its message pass for a generated one.
    created: HashMap<usize, MessageOrigin>,
    /// The bytes of each edited message id; only edited messages are kept (generated ones
    /// are not stored), and only until the script ends.
    edited: HashMap<usize, Arc<[u8]>>,
    /// Message id 0: the message this script started with (`None`: the original; an
    /// edited one when an earlier script of the chain edited it).
    base: Option<Arc<[u8]>>,
    /// The parts of each generated message (vacation reply, notification), by id; the bytes
    /// we send are built from them by `outbound::compose`, never taken from sieve-rs.
    generated: HashMap<usize, Box<GeneratedMessage>>,
    /// The state store's answers for `duplicate` and vacation; `None` answers "not seen"
    /// (tools that must not touch the store).
    memory: Option<&'n Memory>,
    /// The `duplicate` claims this delivery holds, over the whole chain (a script's
    /// runtime error drops its actions, not its claims: they are released all the same).
    claims: &'n mut Vec<String>,
    /// The user the memory is kept for (`user@domain`).
    user: &'n str,
}

impl<'n, 'm> Collector<'n, 'm> {
    /// A collector for one script; notes go straight into the chain's notes. `base` is the
    /// message the script starts with (`None`: the original as received).
    pub(super) fn new(
        notes: &'n mut Vec<String>,
        claims: &'n mut Vec<String>,
        base: Option<Arc<[u8]>>,
        mailboxes: &'m Mailboxes,
    ) -> Self {
        Collector {
            mailboxes,
            notes,
            outcome: ScriptOutcome::default(),
            created: HashMap::new(),
            edited: HashMap::new(),
            base,
            generated: HashMap::new(),
            memory: None,
            claims,
            user: "",
        }
    }

    /// The content of message `id` when it is the incoming message (edited or not).
    fn content(&self, message_id: usize) -> Option<Arc<[u8]>> {
        match self.edited.get(&message_id) {
            Some(bytes) => Some(bytes.clone()),
            None => self.base.clone(),
        }
    }

    /// Answers `duplicate` and vacation from `memory` for `user`.
    pub(super) fn with_memory(mut self, memory: Option<&'n Memory>, user: &'n str) -> Self {
        self.memory = memory;
        self.user = user;
        self
    }

    /// What the script decided.
    pub(super) fn finish(self) -> ScriptOutcome {
        self.outcome
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn origin(&self, message_id: usize) -> Option<MessageOrigin> {
        self.created.get(&message_id).copied()
    }

    /// Records one event and gives sieve-rs its answer; `Err` is a runtime error.
    pub(super) fn on_event(&mut self, event: Event) -> Result<Input, String> {
        Ok(match event {
            Event::IncludeScript { name, .. } => {
                // `run::run_script` answers includes before events reach the collector
                // (include.rs knows the directories); this arm only keeps the match total.
                return Err(format!(
                    "include of {:?} outside the chain runner",
                    name.as_str()
                ));
            }
            Event::MailboxExists {
                mailboxes,
                special_use,
            } => {
                let names: Vec<&str> = mailboxes
                    .iter()
                    .filter_map(|m| match m {
                        Mailbox::Name(name) => Some(name.as_str()),
                        // No mailbox ids in a Maildir++ without Dovecot's index.
                        Mailbox::Id(_) => None,
                    })
                    .collect();
                let ids = names.len() < mailboxes.len();
                let answer = if !special_use.is_empty() {
                    // RFC 8579 §5: specialuse_exists [mailbox] flags.
                    self.mailboxes
                        .special_use_exists(names.first().copied(), &special_use)
                } else {
                    // RFC 5490 §3.1: true only when every named mailbox exists.
                    !ids && names.iter().all(|name| self.mailboxes.exists(name))
                };
                answer.into()
            }
            Event::ListContains { .. } => {
                self.note("extlists not supported: answered false".into());
                Input::False
            }
            Event::DuplicateId { id, expiry, last } => self.duplicate(&id, expiry, last),
            Event::SetEnvelope { envelope, .. } => {
                self.note(format!("set envelope {envelope:?} ignored"));
                Input::True
            }
            Event::Function { .. } => {
                // No external functions are registered; a neutral value keeps the expression
                // stack balanced.
                Input::result(Variable::default())
            }
            Event::Keep {
                flags,
                message_id,
                implicit,
            } => {
                if implicit {
                    // Its flags and content are decided when the whole chain has run.
                    self.outcome.implicit_keep = true;
                } else {
                    self.outcome.explicit_keep = Some(self.flags(&flags));
                    self.outcome.explicit_keep_content = Some(self.content(message_id));
                }
                Input::True
            }
            // Discard only cancels the implicit keep, which sieve-rs already accounts for.
            Event::Discard => Input::True,
            Event::Quarantine => {
                // Once is enough: the message is quarantined once however often it is asked.
                if !self.outcome.actions.contains(&Action::Quarantine) {
                    self.outcome.actions.push(Action::Quarantine);
                }
                Input::True
            }
            Event::Reject { extended, reason } => {
                if self.outcome.rejects() {
                    self.note("second reject ignored".into());
                } else {
                    self.outcome
                        .actions
                        .push(Action::Reject { reason, extended });
                }
                Input::True
            }
            Event::FileInto {
                folder,
                flags,
                mailbox_id,
                special_use,
                create,
                message_id,
            } => {
                match self.origin(message_id) {
                    Some(MessageOrigin::Vacation | MessageOrigin::Notification) => {
                        self.note(format!(
                            "copy of a generated message into {folder:?} not supported: skipped"
                        ));
                        return Ok(Input::True);
                    }
                    Some(MessageOrigin::Edited) | None => {}
                }
                if mailbox_id.is_some() {
                    self.note("fileinto :mailboxid ignored: Maildir++ has no mailbox ids".into());
                }
                // RFC 8579 §4: the folder with that special use when there is one, else the
                // named folder.
                let folder = match special_use.as_deref() {
                    Some(flag) => match self.mailboxes.resolve_special_use(flag) {
                        Some(found) => found.to_string(),
                        None => folder,
                    },
                    None => folder,
                };
                let target = match self.mailboxes.folder(&folder) {
                    Ok(target) => target,
                    Err(err) => {
                        self.note(format!(
                            "fileinto {folder:?} refused ({err}): stored in INBOX"
                        ));
                        Folder::inbox()
                    }
                };
                let (flags, keywords) = self.flags(&flags);
                let edited = self.content(message_id);
                self.outcome.actions.push(Action::Store {
                    folder: target,
                    flags,
                    keywords,
                    create,
                    edited,
                });
                Input::True
            }
            Event::SendMessage {
                recipient,
                message_id,
                ..
            } => {
                let to = recipient_text(&recipient);
                match self.origin(message_id) {
                    Some(origin @ (MessageOrigin::Vacation | MessageOrigin::Notification)) => {
                        let kind = if origin == MessageOrigin::Vacation {
                            SendKind::Vacation
                        } else {
                            SendKind::Notify
                        };
                        let built = match (addresses(&recipient), self.generated.get(&message_id)) {
                            (Some(to), Some(parts)) => build_generated(kind, &to, parts),
                            _ => Err("no usable address or message".to_string()),
                        };
                        match built {
                            Ok((to, message, dropped)) => {
                                if !dropped.is_empty() {
                                    self.note(format!(
                                        "{} not sent to {}: not a plain address",
                                        kind.as_str(),
                                        dropped.join(", ")
                                    ));
                                }
                                self.outcome
                                    .actions
                                    .push(Action::Send { kind, to, message })
                            }
                            Err(why) => self.note(format!(
                                "{} to {} not sent: {why}",
                                kind.as_str(),
                                crate::mail::text::sanitize(
                                    &to,
                                    200,
                                    crate::mail::text::Charset::Utf8
                                )
                            )),
                        }
                    }
                    Some(MessageOrigin::Edited) | None => match recipient {
                        // A redirect target becomes an SMTP command: only a plain addr-spec.
                        // Anything else is refused and the message kept, as Pigeonhole keeps
                        // on a failing action.
                        SieveRecipient::Address(address)
                            if !crate::mail::address::is_addr_spec(&address) =>
                        {
                            self.outcome.redirected = true;
                            self.note(format!(
                                "redirect to {:?} refused: not a plain address: kept",
                                crate::mail::text::sanitize(
                                    &address,
                                    200,
                                    crate::mail::text::Charset::Utf8
                                )
                            ));
                        }
                        SieveRecipient::Address(address) => {
                            let edited = self.content(message_id);
                            self.outcome.actions.push(Action::Redirect {
                                to: address,
                                edited,
                            })
                        }
                        _ => {
                            self.outcome.redirected = true;
                            self.note(format!("redirect to {to} not supported: kept"));
                        }
                    },
                }
                Input::True
            }
            Event::Notify { method, .. } => {
                // sieve-rs sends `mailto:` itself (CreatedMessage + SendMessage); this event
                // is any other method, which we do not offer.
                self.note(format!(
                    "notify method {method:?} not supported: nothing sent"
                ));
                Input::True
            }
            Event::CreatedMessage {
                message_id,
                origin,
                message,
                parts,
            } => {
                self.created.insert(message_id, origin);
                if origin == MessageOrigin::Edited {
                    let bytes: Arc<[u8]> = message.into();
                    self.outcome.last_edited = Some(bytes.clone());
                    self.edited.insert(message_id, bytes);
                } else if let Some(parts) = parts {
                    // sieve-rs's own bytes of a generated message are never sent.
                    self.generated.insert(message_id, parts);
                }
                Input::True
            }
        })
    }

    /// System flags and IMAP keywords from a Sieve flag list; see [`split_flags`].
    fn flags(&mut self, flags: &[String]) -> (SystemFlags, Vec<String>) {
        split_flags(flags, self.notes)
    }

    /// Answers one `DuplicateId` (the `duplicate` test, or the vacation test's own check):
    /// true when seen before. Without a memory every id is new.
    fn duplicate(&mut self, id: &str, expiry: u64, last: bool) -> Input {
        let Some(memory) = self.memory else {
            self.note("duplicate/vacation memory not available: answered not seen".into());
            return Input::False;
        };
        let now = std::time::SystemTime::now();
        let lookup = memory.lookup(self.user, id, expiry, last, now, self.claims);
        if let Some((key, ttl)) = lookup.remember {
            if !self.outcome.remember.iter().any(|r| r.key == key) {
                self.outcome.remember.push(Remember { key, ttl });
            }
        }
        if let Some(claim) = lookup.claim {
            self.claims.push(claim);
        }
        lookup.seen.into()
    }
}

/// Splits a Sieve flag list into system flags and valid IMAP keywords. Names that cannot
/// be IMAP keywords (an unknown `\\System` flag, `(`, `]`, non-ASCII, ...) are dropped with a
/// note, as Pigeonhole ignores invalid flags with a warning (RFC 5232 §3 leaves it to the
/// implementation).
pub(super) fn split_flags<S: AsRef<str>>(
    flags: &[S],
    notes: &mut Vec<String>,
) -> (SystemFlags, Vec<String>) {
    let (system, names) = SystemFlags::from_sieve(flags);
    let (keywords, invalid): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|k| keywords::is_valid(k));
    if !invalid.is_empty() {
        let note = format!("invalid IMAP flags ignored: {}", invalid.join(" "));
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    (system, keywords)
}

/// A generated message ready to queue: envelope recipients, bytes, refused recipients.
type Built = (Vec<String>, Vec<u8>, Vec<String>);

/// Builds the message sievegate sends for a generated message from its `parts`
/// (`outbound::compose`): the envelope recipients that are plain addresses, the bytes, and
/// the recipients refused (sanitised, for a note). `Err` when the `From` is not a plain
/// address or no recipient is left.
fn build_generated(
    kind: SendKind,
    envelope_to: &[String],
    parts: &GeneratedMessage,
) -> Result<Built, String> {
    let (to, dropped): (Vec<&String>, Vec<&String>) = envelope_to
        .iter()
        .partition(|a| crate::mail::address::is_addr_spec(a.trim()));
    let to: Vec<String> = to.into_iter().map(|a| a.trim().to_string()).collect();
    let dropped: Vec<String> = dropped
        .into_iter()
        .map(|a| {
            format!(
                "{:?}",
                crate::mail::text::sanitize(a, 100, crate::mail::text::Charset::Utf8)
            )
        })
        .collect();
    if to.is_empty() {
        return Err("no plain recipient address".into());
    }
    let from = compose::Mailbox::parse(&parts.from).map_err(|e| format!("From: {e}"))?;
    // Shown recipients: those that are valid; the vacation reply names its one recipient.
    let shown = |list: &[String]| -> Vec<compose::Mailbox> {
        list.iter()
            .filter_map(|a| compose::Mailbox::parse(a).ok())
            .collect()
    };
    let mut shown_to = match (&parts.to_name, parts.to.first()) {
        (Some(name), Some(address)) => compose::Mailbox::new(address, Some(name))
            .ok()
            .into_iter()
            .collect(),
        _ => shown(&parts.to),
    };
    if shown_to.is_empty() {
        // mailto with only cc/bcc, or refused `To` values: name the envelope recipients.
        shown_to = to
            .iter()
            .filter_map(|a| compose::Mailbox::new(a, None).ok())
            .collect();
    }
    let (auto_submitted, body) = match kind {
        SendKind::Vacation => (
            compose::AutoSubmitted::Replied,
            if parts.mime {
                compose::Body::from_mime(&parts.body)
            } else {
                compose::Body::text(&parts.body)
            },
        ),
        SendKind::Notify => (
            compose::AutoSubmitted::Notified,
            compose::Body::text(&parts.body),
        ),
    };
    let message = compose::Generated {
        from,
        to: shown_to,
        cc: shown(&parts.cc),
        subject: parts.subject.clone(),
        in_reply_to: parts.in_reply_to.as_deref().and_then(compose::MsgId::parse),
        references: parts
            .references
            .iter()
            .filter_map(|r| compose::MsgId::parse(r))
            .collect(),
        auto_submitted,
        importance: parts.importance.map(|i| match i {
            sieve::Importance::High => compose::Importance::High,
            sieve::Importance::Normal => compose::Importance::Normal,
            sieve::Importance::Low => compose::Importance::Low,
        }),
        body,
        hostname: parts.hostname.clone(),
    };
    let bytes = message.build().map_err(|e| e.to_string())?;
    Ok((to, bytes, dropped))
}

/// The plain addresses of a generated message's recipient; `None` for a list.
fn addresses(recipient: &SieveRecipient) -> Option<Vec<String>> {
    match recipient {
        SieveRecipient::Address(address) => Some(vec![address.clone()]),
        SieveRecipient::Group(group) => Some(group.clone()),
        SieveRecipient::List(_) => None,
    }
}

fn recipient_text(recipient: &SieveRecipient) -> String {
    match recipient {
        SieveRecipient::Address(address) => format!("<{address}>"),
        SieveRecipient::List(list) => format!("list {list}"),
        SieveRecipient::Group(group) => group
            .iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(message_id: usize, origin: MessageOrigin) -> Event {
        Event::CreatedMessage {
            message_id,
            // Content a sender controls: it must not matter.
            message: b"Auto-Submitted: auto-replied\r\n\r\nhi".to_vec(),
            origin,
            parts: (origin != MessageOrigin::Edited).then(|| {
                Box::new(GeneratedMessage {
                    from: "bob@example.test".into(),
                    to: vec!["carol@example.net".into()],
                    subject: "s".into(),
                    body: "b".into(),
                    ..GeneratedMessage::default()
                })
            }),
        }
    }

    fn fileinto(folder: &str, message_id: usize) -> Event {
        Event::FileInto {
            folder: folder.to_string(),
            flags: vec![],
            mailbox_id: None,
            special_use: None,
            create: false,
            message_id,
        }
    }

    fn send(message_id: usize) -> Event {
        send_to(message_id, "carol@example.net")
    }

    fn send_to(message_id: usize, to: &str) -> Event {
        Event::SendMessage {
            recipient: SieveRecipient::Address(to.into()),
            notify: sieve::compiler::grammar::actions::action_redirect::Notify::Never,
            return_of_content: sieve::compiler::grammar::actions::action_redirect::Ret::Default,
            by_time: sieve::compiler::grammar::actions::action_redirect::ByTime::None,
            message_id,
        }
    }

    /// Name, events, actions (folder names or the action's line), unsent redirect kept,
    /// edited, a note some note must contain.
    type OriginCase = (
        &'static str,
        Vec<Event>,
        Vec<&'static str>,
        bool,
        bool,
        &'static str,
    );

    /// Events → (stored folders, redirected, edited, notes): messages are told apart by what
    /// created them, never by their headers.
    #[test]
    fn messages_are_told_apart_by_origin() {
        let cases: Vec<OriginCase> = vec![
            (
                "edited incoming message with an auto-reply header is filed",
                vec![created(1, MessageOrigin::Edited), fileinto("Tagged", 1)],
                vec!["Tagged"],
                false,
                true,
                "",
            ),
            (
                "original message is filed",
                vec![fileinto("Tagged", 0)],
                vec!["Tagged"],
                false,
                false,
                "",
            ),
            (
                "vacation copy is skipped",
                vec![created(1, MessageOrigin::Vacation), fileinto("Sent", 1)],
                vec![],
                false,
                false,
                "copy of a generated message",
            ),
            (
                "notification copy is skipped",
                vec![created(1, MessageOrigin::Notification), fileinto("Sent", 1)],
                vec![],
                false,
                false,
                "copy of a generated message",
            ),
            (
                "vacation reply is not a redirect",
                vec![created(1, MessageOrigin::Vacation), send(1)],
                vec!["vacation to carol@example.net"],
                false,
                false,
                "",
            ),
            (
                "notification is not a redirect",
                vec![created(1, MessageOrigin::Notification), send(1)],
                vec!["notify to carol@example.net"],
                false,
                false,
                "",
            ),
            (
                "edited message sent on is a redirect of the edited message",
                vec![created(1, MessageOrigin::Edited), send(1)],
                vec!["redirect <carol@example.net> (edited)"],
                false,
                false,
                "",
            ),
            (
                "redirect to a quoted local part with line ends is refused and kept",
                vec![send_to(
                    0,
                    "\"a\r\nRCPT TO:<injected@remote.test>\r\n\"@remote.test",
                )],
                vec![],
                true,
                false,
                "refused: not a plain address: kept",
            ),
            (
                "vacation to an address with a line end is not sent",
                vec![
                    created(1, MessageOrigin::Vacation),
                    send_to(1, "carol@example.net\r\nBcc: x@y"),
                ],
                vec![],
                false,
                false,
                "not sent",
            ),
            (
                "original message sent on is a redirect",
                vec![send(0)],
                vec!["redirect <carol@example.net>"],
                false,
                false,
                "",
            ),
        ];
        for (name, events, folders, redirected, edited, note) in cases {
            let (mut notes, mut claims) = (Vec::new(), Vec::new());
            let mailboxes = Mailboxes::default();
            let mut collector = Collector::new(&mut notes, &mut claims, None, &mailboxes);
            for event in events {
                assert_eq!(collector.on_event(event), Ok(Input::True), "{name}");
            }
            let outcome = collector.outcome;
            let stored: Vec<String> = outcome
                .actions
                .iter()
                .map(|a| match a {
                    Action::Store { folder, .. } => folder.to_string(),
                    // The first line: the generated text follows on the next ones.
                    other => other.to_string().lines().next().unwrap_or("").to_string(),
                })
                .collect();
            assert_eq!(stored, folders, "{name}");
            assert_eq!(outcome.redirected, redirected, "{name}");
            let stored_edited = outcome.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Store {
                        edited: Some(_),
                        ..
                    }
                )
            });
            assert_eq!(stored_edited, edited, "{name}");
            assert!(
                note.is_empty() || notes.iter().any(|n| n.contains(note)),
                "{name}: {notes:?}"
            );
        }
    }
}
