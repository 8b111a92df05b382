//! The chain runner: each script of one recipient's chain runs as its own sieve-rs execution,
//! in order, while the keep is still pending; the actions of every script that finished are
//! collected into one [`Plan`]. This is Pigeonhole's multiscript (see the module doc of
//! [`super`] for the rules and where they come from).
//!
//! Nothing is sent and nothing is stored here: events are only recorded. Stalwart's ingest
//! works the same way (collect first, act afterwards).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use mail_parser::Message;
use sieve::runtime::{RuntimeError, Variable};
use sieve::{
    Context, Envelope, Event, Input, MessageOrigin, Recipient as SieveRecipient, Runtime, Script,
    Sieve,
};

use super::plan::{Action, Plan};
use super::FilterInput;
use crate::store::{Folder, SystemFlags};

/// Upper bound on events per script. Every event costs at least one instruction, so the CPU
/// limit already bounds this; the guard makes the loop's termination obvious on its own.
const MAX_EVENTS: usize = 10_000;

/// sieve-rs keeps the imap4flags internal variable (RFC 5232 §3) in this global variable.
/// Pigeonhole keeps it in the result shared by all scripts of the chain, so it is carried
/// from one execution to the next.
const FLAGS_VARIABLE: &str = "__flags";

/// One entry of a recipient's chain, in execution order.
#[derive(Debug, Clone)]
pub enum Slot {
    /// A compiled script to run.
    Run {
        /// What notes and logs call it: `before script /etc/…/x.sieve`.
        label: String,
        /// The compiled script.
        script: Arc<Sieve>,
    },
    /// A script that exists but cannot be used (unreadable, does not compile). Pigeonhole
    /// ends the sequence there (`lda_sieve_execute_scripts`): no later script runs, and the
    /// implicit keep applies if it is still pending. The problem is already logged and noted.
    Broken {
        /// Same as [`Slot::Run::label`].
        label: String,
    },
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
    chain: &[Slot],
    message: Message<'_>,
    input: &FilterInput<'_>,
    deadline: Instant,
) -> Plan {
    let mut state = ChainState::default();
    let mut message = message;
    let mut flags: Option<Variable> = None;
    for slot in chain {
        let (label, script) = match slot {
            Slot::Run { label, script } => (label, script),
            Slot::Broken { label } => {
                state.note(format!("{label} unusable: no later script runs"));
                break;
            }
        };
        let mut ctx = context(runtime, message, input, deadline);
        if let Some(flags) = flags.take() {
            ctx.set_global_variable(FLAGS_VARIABLE, flags);
        }
        let outcome = run_script(&mut ctx, script, &mut state.notes);
        flags = ctx.global_variable(FLAGS_VARIABLE).cloned();
        // Header edits stay visible to the next script, as Pigeonhole's shared message
        // context does (they are not applied to the stored copy yet).
        message = ctx.take_message();
        match outcome {
            Ok(outcome) => state.commit(outcome),
            Err(reason) => {
                state.fail(label, &reason);
                break;
            }
        }
        if !state.keep_pending {
            // `sieve_multiscript_run`: the sequence ends once the keep is cancelled.
            break;
        }
    }
    state.finish(flags.as_ref())
}

/// A fresh sieve-rs context for one script of the chain.
fn context<'x>(
    runtime: &'x Runtime,
    message: Message<'x>,
    input: &FilterInput<'x>,
    deadline: Instant,
) -> Context<'x> {
    let mut ctx = runtime
        .filter_parsed(message)
        .with_envelope(Envelope::From, input.mail_from)
        .with_envelope(Envelope::To, input.rcpt.original.as_str())
        .with_user_address(input.rcpt.user())
        .with_virus_status(virus_status(input.verdict.virustest()))
        .with_deadline(deadline);
    if let Some(ip) = input.remote_ip {
        ctx.set_env_variable("remote-ip", ip);
    }
    if let Some(host) = input.remote_host {
        ctx.set_env_variable("remote-host", host);
    }
    ctx
}

/// Runs one script to its end; `Err` is a runtime error (its actions are dropped).
fn run_script(
    ctx: &mut Context<'_>,
    script: &Arc<Sieve>,
    notes: &mut Vec<String>,
) -> Result<ScriptOutcome, String> {
    let mut collector = Collector {
        notes,
        outcome: ScriptOutcome::default(),
        created: HashMap::new(),
    };
    let mut next = Input::script(Script::Personal("sievegate:chain".into()), script.clone());
    let mut events = 0usize;
    while let Some(result) = ctx.run(next) {
        events += 1;
        if events > MAX_EVENTS {
            return Err(format!("more than {MAX_EVENTS} Sieve events"));
        }
        next = match result {
            Ok(event) => collector.on_event(event)?,
            Err(err) => return Err(describe(&err)),
        };
    }
    let outcome = collector.outcome;
    if outcome.rejects() && (outcome.stores() || outcome.explicit_keep.is_some()) {
        // reject refuses the message, keep/fileinto accept it: Pigeonhole reports the
        // conflict as a runtime error of that script.
        return Err("reject conflicts with keep/fileinto".into());
    }
    Ok(outcome)
}

fn describe(err: &RuntimeError) -> String {
    match err {
        RuntimeError::CPULimitReached => "CPU limit reached".to_string(),
        RuntimeError::TimeLimitReached => "time limit reached".to_string(),
        RuntimeError::TooManyIncludes => "too many nested includes".to_string(),
        other => other.to_string(),
    }
}

/// What one script decided, before it is merged into the chain's Plan.
#[derive(Debug, Default)]
struct ScriptOutcome {
    /// fileinto stores and rejects, in script order.
    actions: Vec<Action>,
    /// The flags of the last explicit `keep`, if there was one. Pigeonhole defers an explicit
    /// keep to the end of the chain (`sieve_result_execute`: "merge explicit keep status into
    /// implicit keep for the next execution round"), so it only keeps the keep pending.
    explicit_keep: Option<SystemFlags>,
    /// sieve-rs reported the implicit keep at the end: nothing cancelled it.
    implicit_keep: bool,
    /// A redirect was asked for (not sent today).
    redirected: bool,
    /// The message the script acted on had been edited (editheader and friends).
    edited: bool,
}

impl ScriptOutcome {
    fn stores(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Store { .. }))
    }

    fn rejects(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
    }
}

/// Turns one script's events into a [`ScriptOutcome`] and gives sieve-rs its answers.
struct Collector<'n> {
    /// The chain's notes: they survive a runtime error, unlike the actions.
    notes: &'n mut Vec<String>,
    outcome: ScriptOutcome,
    /// What produced each message id sieve-rs announced (`CreatedMessage`). sieve-rs says so
    /// itself (patch #2), so a sender cannot make its message pass for a generated one.
    created: HashMap<usize, MessageOrigin>,
}

impl Collector<'_> {
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn origin(&self, message_id: usize) -> Option<MessageOrigin> {
        self.created.get(&message_id).copied()
    }

    /// Records one event and gives sieve-rs its answer; `Err` is a runtime error.
    fn on_event(&mut self, event: Event) -> Result<Input, String> {
        Ok(match event {
            Event::IncludeScript { name, optional } => {
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
            Event::Keep {
                flags,
                message_id,
                implicit,
            } => {
                self.outcome.edited |= self.origin(message_id) == Some(MessageOrigin::Edited);
                if implicit {
                    // Its flags are decided when the whole chain has run.
                    self.outcome.implicit_keep = true;
                } else {
                    self.outcome.explicit_keep = Some(self.flags(&flags));
                }
                Input::True
            }
            // Discard only cancels the implicit keep, which sieve-rs already accounts for.
            Event::Discard => Input::True,
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
                    Some(MessageOrigin::Edited) => self.outcome.edited = true,
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
                let flags = self.flags(&flags);
                self.outcome.actions.push(Action::Store {
                    folder: target,
                    flags,
                    create,
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
                    Some(MessageOrigin::Vacation) => {
                        self.note(format!("vacation not yet supported: no reply sent to {to}"))
                    }
                    Some(MessageOrigin::Notification) => self.note(format!(
                        "notify not yet supported: no notification sent to {to}"
                    )),
                    Some(MessageOrigin::Edited) | None => {
                        self.outcome.redirected = true;
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
                message_id, origin, ..
            } => {
                self.created.insert(message_id, origin);
                Input::True
            }
        })
    }

    /// System flags from a Sieve flag list; keywords are noted and dropped.
    fn flags(&mut self, flags: &[String]) -> SystemFlags {
        let (flags, keywords) = SystemFlags::from_sieve(flags);
        if !keywords.is_empty() {
            self.note(format!(
                "keywords not supported yet, ignored: {}",
                keywords.join(" ")
            ));
        }
        flags
    }
}

/// The chain's result so far: Pigeonhole's one `sieve_result` shared by all scripts.
#[derive(Debug)]
struct ChainState {
    /// Actions of the scripts that finished without error.
    plan: Plan,
    notes: Vec<String>,
    /// The keep (implicit, or an explicit keep deferred to the end) is still pending.
    keep_pending: bool,
    /// Flags of the most recent explicit keep: the deferred keep Pigeonhole finds at the end
    /// (`sieve_result_implicit_keep_execute`, "found deferred keep action").
    explicit_keep: Option<SystemFlags>,
    /// A script ended in a runtime error: the failure keep (INBOX, no flags) applies.
    failed: bool,
    redirected: bool,
    edited: bool,
}

impl Default for ChainState {
    fn default() -> Self {
        ChainState {
            plan: Plan::default(),
            notes: Vec::new(),
            keep_pending: true,
            explicit_keep: None,
            failed: false,
            redirected: false,
            edited: false,
        }
    }
}

impl ChainState {
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// A script finished: its actions become part of the result, and the keep stays pending
    /// only if the script kept it (implicitly or explicitly).
    fn commit(&mut self, outcome: ScriptOutcome) {
        for action in outcome.actions {
            match action {
                Action::Store {
                    folder,
                    flags,
                    create,
                } => self.plan.add_store(folder, flags, create),
                reject @ Action::Reject { .. } => self.plan.actions.push(reject),
            }
        }
        if let Some(flags) = outcome.explicit_keep {
            self.explicit_keep = Some(flags);
        }
        self.keep_pending = outcome.implicit_keep || outcome.explicit_keep.is_some();
        self.redirected |= outcome.redirected;
        self.edited |= outcome.edited;
    }

    /// A script hit a runtime error (RFC 5228 §2.10.6): its own actions are dropped, the
    /// earlier scripts' actions stand, no later script runs, and the failure keep applies.
    fn fail(&mut self, label: &str, reason: &str) {
        tracing::error!(script = %label, error = %reason, "Sieve runtime error: implicit keep");
        self.note(format!(
            "Sieve runtime error in {label} ({reason}): implicit keep"
        ));
        self.failed = true;
    }

    /// Adds the keep if it is due; `flags` is the imap4flags variable's final value.
    fn finish(mut self, flags: Option<&Variable>) -> Plan {
        let keep = if self.failed {
            // Pigeonhole's failure keep carries no side effects (no flags).
            Some(SystemFlags::default())
        } else if self.keep_pending {
            let variable = flags
                .map(|v| v.to_string().into_owned())
                .unwrap_or_default();
            let implicit = SystemFlags::from_sieve(&variable.split(' ').collect::<Vec<_>>()).0;
            Some(
                self.explicit_keep
                    .filter(|f| !f.is_empty())
                    .unwrap_or(implicit),
            )
        } else if self.redirected && !self.plan.stores() && !self.plan.rejects() {
            // The redirect cancelled the keep, but we send nothing: never lose the message.
            Some(SystemFlags::default())
        } else {
            None
        };
        if let Some(flags) = keep {
            // A store into INBOX that already ran is the keep ("equivalent action already
            // executed"): the keep adds nothing, not even its flags.
            let inbox_stored =
                self.plan.actions.iter().any(
                    |a| matches!(a, Action::Store { folder, .. } if *folder == Folder::inbox()),
                );
            if !inbox_stored {
                self.plan.add_store(Folder::inbox(), flags, false);
            }
        }
        if self.plan.rejects() && self.plan.stores() {
            // A reject after an earlier script stored a copy: no consistent LMTP reply.
            // Keeping loses nothing.
            self.plan
                .actions
                .retain(|a| !matches!(a, Action::Reject { .. }));
            self.note("reject conflicts with an earlier keep/fileinto: reject dropped".into());
        }
        if self.edited {
            self.note("message edits (editheader, mime) not applied: original stored".into());
        }
        self.plan.notes = self.notes;
        self.plan
    }
}

/// A script label for notes and logs.
pub fn label(kind: &str, path: &std::path::Path) -> String {
    format!("{kind} script {}", path.display())
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
        Event::SendMessage {
            recipient: SieveRecipient::Address("carol@example.net".into()),
            notify: sieve::compiler::grammar::actions::action_redirect::Notify::Never,
            return_of_content: sieve::compiler::grammar::actions::action_redirect::Ret::Default,
            by_time: sieve::compiler::grammar::actions::action_redirect::ByTime::None,
            message_id,
        }
    }

    /// Name, events, stored folders, redirected, edited, a note some note must contain.
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
                vec![],
                false,
                false,
                "vacation not yet supported",
            ),
            (
                "notification is not a redirect",
                vec![created(1, MessageOrigin::Notification), send(1)],
                vec![],
                false,
                false,
                "notify not yet supported",
            ),
            (
                "edited message sent on is a redirect",
                vec![created(1, MessageOrigin::Edited), send(1)],
                vec![],
                true,
                false,
                "redirect to <carol@example.net>",
            ),
        ];
        for (name, events, folders, redirected, edited, note) in cases {
            let mut notes = Vec::new();
            let mut collector = Collector {
                notes: &mut notes,
                outcome: ScriptOutcome::default(),
                created: HashMap::new(),
            };
            for event in events {
                assert_eq!(collector.on_event(event), Ok(Input::True), "{name}");
            }
            let outcome = collector.outcome;
            let stored: Vec<String> = outcome
                .actions
                .iter()
                .map(|a| match a {
                    Action::Store { folder, .. } => folder.to_string(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(stored, folders, "{name}");
            assert_eq!(outcome.redirected, redirected, "{name}");
            assert_eq!(outcome.edited, edited, "{name}");
            assert!(
                note.is_empty() || notes.iter().any(|n| n.contains(note)),
                "{name}: {notes:?}"
            );
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
}
