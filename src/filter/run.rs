//! The sieve-rs event loop for one recipient: runs the chain wrapper, answers its questions
//! (includes, mailbox existence, duplicates) and collects its actions into a [`Plan`].
//!
//! Nothing is sent and nothing is stored here: events are only recorded. Stalwart's ingest
//! works the same way (collect first, act afterwards).

use std::collections::HashMap;
use std::sync::Arc;

use mail_parser::Message;
use sieve::runtime::{RuntimeError, Variable};
use sieve::{Envelope, Event, Input, Recipient as SieveRecipient, Runtime, Script, Sieve};

use super::plan::Plan;
use super::FilterInput;
use crate::store::{Folder, SystemFlags};

/// Upper bound on events per run. Every event costs at least one instruction, so the CPU
/// limit already bounds this; the guard makes the loop's termination obvious on its own.
const MAX_EVENTS: usize = 10_000;

/// Name of the chain wrapper itself (never included by name).
const WRAPPER_NAME: &str = "sievegate:chain";
/// Name of the middle slot: the personal script, or the default script.
pub const MAIN_NAME: &str = "sievegate:main";

/// Name of the `index`th `before` script in the wrapper.
pub fn before_name(index: usize) -> String {
    format!("sievegate:before:{index}")
}

/// Name of the `index`th `after` script in the wrapper.
pub fn after_name(index: usize) -> String {
    format!("sievegate:after:{index}")
}

/// The wrapper script that runs the whole chain as one Sieve execution. RFC 6609 gives us the
/// semantics we need for free: `stop` in an included script ends the top-level script, and
/// all included scripts share one implicit keep and one action list (§3.2).
pub fn wrapper_source(before: usize, after: usize) -> String {
    let mut source = String::from("require \"include\";\r\n");
    for index in 0..before {
        source.push_str(&format!("include :global \"{}\";\r\n", before_name(index)));
    }
    // Optional: when the user has neither a usable personal script nor a default, the slot
    // is answered "missing" and the chain goes on to the after scripts.
    source.push_str(&format!("include :optional :global \"{MAIN_NAME}\";\r\n"));
    for index in 0..after {
        source.push_str(&format!("include :global \"{}\";\r\n", after_name(index)));
    }
    source
}

/// The compiled scripts for one recipient's run; `None` marks a slot that is skipped (its
/// problem has already been logged and noted).
#[derive(Debug, Default)]
pub struct Chain {
    /// `before` scripts in order.
    pub before: Vec<Option<Arc<Sieve>>>,
    /// Personal script, or the default script when the user has none.
    pub main: Option<Arc<Sieve>>,
    /// `after` scripts in order.
    pub after: Vec<Option<Arc<Sieve>>>,
}

impl Chain {
    /// The script to answer an include of `name` with: `Some(None)` for a chain slot that is
    /// skipped, `None` for a name that is not part of the chain.
    fn slot(&self, name: &str) -> Option<Option<Arc<Sieve>>> {
        if name == MAIN_NAME {
            return Some(self.main.clone());
        }
        let (list, index) = if let Some(index) = name.strip_prefix("sievegate:before:") {
            (&self.before, index)
        } else if let Some(index) = name.strip_prefix("sievegate:after:") {
            (&self.after, index)
        } else {
            return None;
        };
        let index: usize = index.parse().ok()?;
        list.get(index).cloned()
    }
}

/// Maps the RFC 5235 value to sieve-rs's status (0 unknown, 1 clean, 2 replaced, 3 cured,
/// 4 heuristic match, 5 virus).
pub fn virus_status(virustest: u8) -> sieve::VirusStatus {
    use sieve::VirusStatus;
    match virustest {
        1 => VirusStatus::Clean,
        2 => VirusStatus::Replaced,
        3 => VirusStatus::Cured,
        4 => VirusStatus::MaybeVirus,
        5 => VirusStatus::Virus,
        _ => VirusStatus::Unknown,
    }
}

/// Runs the chain for one recipient. Never fails: a runtime error gives the implicit keep.
/// The virus policy is not applied here; the caller applies it to whatever comes back.
pub fn run_chain(
    runtime: &Runtime,
    wrapper: &Arc<Sieve>,
    chain: &Chain,
    message: Message<'_>,
    input: &FilterInput<'_>,
) -> Plan {
    let mut ctx = runtime
        .filter_parsed(message)
        .with_envelope(Envelope::From, input.mail_from)
        .with_envelope(Envelope::To, input.rcpt.original.as_str())
        .with_user_address(input.rcpt.user())
        .with_virus_status(virus_status(input.verdict.virustest()));
    if let Some(ip) = input.remote_ip {
        ctx.set_env_variable("remote-ip", ip);
    }
    if let Some(host) = input.remote_host {
        ctx.set_env_variable("remote-host", host);
    }

    let mut collector = Collector::default();
    let mut next = Input::script(Script::Global(WRAPPER_NAME.into()), wrapper.clone());
    let mut events = 0usize;
    while let Some(result) = ctx.run(next) {
        events += 1;
        if events > MAX_EVENTS {
            return collector.abort(&format!("more than {MAX_EVENTS} Sieve events"));
        }
        next = match result {
            Ok(event) => match collector.on_event(event, chain) {
                Ok(answer) => answer,
                Err(reason) => return collector.abort(&reason),
            },
            Err(err) => return collector.abort(&describe(&err)),
        };
    }
    collector.finish()
}

fn describe(err: &RuntimeError) -> String {
    match err {
        RuntimeError::CPULimitReached => "CPU limit reached".to_string(),
        RuntimeError::TooManyIncludes => "too many nested includes".to_string(),
        other => other.to_string(),
    }
}

/// Which kind of message a `CreatedMessage` event carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Created {
    /// A vacation reply (`Auto-Submitted: auto-replied`, RFC 3834).
    AutoReply,
    /// An enotify mailto notification (`Auto-Submitted: auto-notified`, RFC 5436).
    Notification,
    /// The incoming message after editheader/mime changes.
    Edited,
}

impl Created {
    /// sieve-rs writes `Auto-Submitted` into the messages it generates; the incoming message
    /// after an edit keeps its own headers. Only the header section is looked at.
    fn classify(message: &[u8]) -> Self {
        let end = message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(message.len());
        let headers = String::from_utf8_lossy(&message[..end]);
        for line in headers.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("Auto-Submitted") {
                let value = value.trim().to_ascii_lowercase();
                if value.starts_with("auto-replied") {
                    return Created::AutoReply;
                }
                if value.starts_with("auto-notified") {
                    return Created::Notification;
                }
            }
        }
        Created::Edited
    }
}

/// Collects events into a Plan.
#[derive(Debug, Default)]
struct Collector {
    plan: Plan,
    created: HashMap<usize, Created>,
    /// A redirect was asked for: the message must not be lost because we cannot send it.
    redirected: bool,
    /// The stored message would differ from the original (editheader and friends).
    edited: bool,
}

impl Collector {
    fn note(&mut self, note: String) {
        if !self.plan.notes.contains(&note) {
            self.plan.notes.push(note);
        }
    }

    /// Records one event and gives sieve-rs its answer; `Err` aborts the run (implicit keep).
    fn on_event(&mut self, event: Event, chain: &Chain) -> Result<Input, String> {
        Ok(match event {
            Event::IncludeScript { name, optional } => {
                if let Some(slot) = chain.slot(name.as_str()) {
                    match slot {
                        Some(script) => Input::script(name, script),
                        // Skipped chain slot: logged and noted when the chain was resolved.
                        None => Input::False,
                    }
                } else {
                    let location = match name {
                        Script::Personal(_) => "personal",
                        Script::Global(_) => "global",
                    };
                    self.note(format!(
                        "include of {location} script {:?} not supported: treated as missing",
                        name.as_str()
                    ));
                    if !optional {
                        // RFC 6609 §3.2: a missing non-optional include is a runtime error.
                        return Err(format!("included script {:?} not found", name.as_str()));
                    }
                    Input::False
                }
            }
            Event::MailboxExists { .. } => {
                self.note("mailboxexists not supported yet: answered false".into());
                Input::False
            }
            Event::ListContains { .. } => {
                self.note("extlists not supported: answered false".into());
                Input::False
            }
            Event::DuplicateId { .. } => {
                // For both the duplicate test and vacation's own check, false means "not
                // seen before".
                self.note("duplicate tracking not supported yet: answered not a duplicate".into());
                Input::False
            }
            Event::SetEnvelope { envelope, .. } => {
                self.note(format!("set envelope {envelope:?} ignored"));
                Input::True
            }
            Event::Function { .. } => {
                // No external functions are registered; a neutral value keeps the expression
                // stack balanced.
                Input::result(Variable::default())
            }
            Event::Keep { flags, message_id } => {
                self.edited |= message_id != 0;
                self.store(Folder::inbox(), &flags, false);
                Input::True
            }
            Event::Discard => Input::True,
            Event::Reject { extended, reason } => {
                if self.plan.rejects() {
                    self.note("second reject ignored".into());
                } else {
                    self.plan
                        .actions
                        .push(super::Action::Reject { reason, extended });
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
                match self.created.get(&message_id) {
                    Some(Created::AutoReply | Created::Notification) => {
                        self.note(format!(
                            "copy of a generated reply into {folder:?} not supported: skipped"
                        ));
                        return Ok(Input::True);
                    }
                    Some(Created::Edited) => self.edited = true,
                    None => {}
                }
                if mailbox_id.is_some() || special_use.is_some() {
                    self.note("fileinto :mailboxid/:specialuse ignored".into());
                }
                let target = match Folder::from_sieve(&folder) {
                    Ok(target) => target,
                    Err(err) => {
                        self.note(format!(
                            "fileinto {folder:?} refused ({err}): stored in INBOX"
                        ));
                        Folder::inbox()
                    }
                };
                self.store(target, &flags, create);
                Input::True
            }
            Event::SendMessage {
                recipient,
                message_id,
                ..
            } => {
                let to = recipient_text(&recipient);
                match self.created.get(&message_id) {
                    Some(Created::AutoReply) => {
                        self.note(format!("vacation not yet supported: no reply sent to {to}"))
                    }
                    Some(Created::Notification) => self.note(format!(
                        "notify not yet supported: no notification sent to {to}"
                    )),
                    _ => {
                        self.redirected = true;
                        self.note(format!("redirect to {to} not yet supported: kept"));
                    }
                }
                Input::True
            }
            Event::Notify { method, .. } => {
                self.note(format!(
                    "notify not yet supported: nothing sent to {method:?}"
                ));
                Input::True
            }
            Event::CreatedMessage {
                message_id,
                message,
            } => {
                let kind = Created::classify(&message);
                self.created.insert(message_id, kind);
                Input::True
            }
        })
    }

    fn store(&mut self, folder: Folder, flags: &[String], create: bool) {
        let (flags, keywords) = SystemFlags::from_sieve(flags);
        if !keywords.is_empty() {
            self.note(format!(
                "keywords not supported yet, ignored: {}",
                keywords.join(" ")
            ));
        }
        self.plan.add_store(folder, flags, create);
    }

    /// The implicit keep after a runtime error (RFC 5228 §2.10.6): actions collected so far
    /// are dropped, notes are kept for the log.
    fn abort(self, reason: &str) -> Plan {
        tracing::error!(error = %reason, "Sieve runtime error: implicit keep");
        let mut plan = Plan::implicit_keep();
        plan.notes = self.plan.notes;
        plan.notes
            .push(format!("Sieve runtime error ({reason}): implicit keep"));
        plan
    }

    fn finish(mut self) -> Plan {
        if self.plan.rejects() && self.plan.stores() {
            // reject refuses the message, keep/fileinto accept it: no consistent LMTP reply.
            // Pigeonhole treats the pair as an action conflict; keeping loses nothing.
            return self.abort("reject conflicts with keep/fileinto");
        }
        if self.redirected && !self.plan.stores() && !self.plan.rejects() {
            // The redirect cancelled the implicit keep, but we send nothing: never lose it.
            self.plan
                .add_store(Folder::inbox(), SystemFlags::default(), false);
        }
        if self.edited {
            self.note("message edits (editheader, mime) not applied: original stored".into());
        }
        self.plan
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

    #[test]
    fn classify_table() {
        let cases: &[(&[u8], Created)] = &[
            (
                b"From: a\r\nAuto-Submitted: auto-replied\r\n\r\nbody",
                Created::AutoReply,
            ),
            (
                b"auto-submitted:Auto-Notified\r\n\r\n",
                Created::Notification,
            ),
            (
                b"From: a\r\nSubject: x\r\n\r\nAuto-Submitted: auto-replied",
                Created::Edited,
            ),
            (b"Auto-Submitted: no\r\n\r\n", Created::Edited),
            (b"", Created::Edited),
        ];
        for (message, want) in cases {
            assert_eq!(Created::classify(message), *want, "{message:?}");
        }
    }

    #[test]
    fn virus_status_table() {
        use sieve::VirusStatus::*;
        for (value, want) in [
            (0, Unknown),
            (1, Clean),
            (2, Replaced),
            (3, Cured),
            (4, MaybeVirus),
            (5, Virus),
            (9, Unknown),
        ] {
            assert_eq!(virus_status(value), want, "{value}");
        }
    }

    #[test]
    fn chain_slots() {
        let chain = Chain {
            before: vec![None],
            main: None,
            after: vec![],
        };
        assert_eq!(chain.slot(&before_name(0)), Some(None));
        assert_eq!(chain.slot(&before_name(1)), None);
        assert_eq!(chain.slot(&after_name(0)), None);
        assert_eq!(chain.slot(MAIN_NAME), Some(None));
        assert_eq!(chain.slot("sievegate:before:x"), None);
        assert_eq!(chain.slot("other"), None);
    }
}
