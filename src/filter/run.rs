//! The chain runner: each script of one recipient's chain runs as its own sieve-rs execution,
//! in order, while the keep is still pending; the actions of every script that finished are
//! collected into one [`Plan`]. This is Pigeonhole's multiscript (see the module doc of
//! [`super`] for the rules and where they come from).
//!
//! Nothing is sent and nothing is stored here: events are only recorded ([`super::collect`]).
//! Stalwart's ingest works the same way (collect first, act afterwards).

use std::sync::Arc;
use std::time::Instant;

use mail_parser::Message;
use sieve::runtime::{RuntimeError, Variable};
use sieve::{Context, Envelope, Event, Input, Runtime, Script, Sieve, SpamStatus};

use super::collect::{split_flags, Collector, ScriptOutcome};
use super::include::{Includes, Resolved};
use super::memory::{Claim, Memory};
use super::plan::{Action, Plan, SendKind};
use super::{FilterInput, Mailboxes};
use crate::store::{Folder, SystemFlags};

/// Upper bound on events per script. Every event costs at least one instruction, so the CPU
/// limit already bounds this; the guard makes the loop's termination obvious on its own.
const MAX_EVENTS: usize = 10_000;

/// The name each chain script runs under in sieve-rs. sieve-rs caches the running script
/// under it and answers an include of the same name from that cache without asking us, so
/// it must be a name no include can produce: sieve-rs ignores an include of the empty name.
const CHAIN_SCRIPT: &str = "";

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

/// How one recipient's chain runs: where its includes are found, its limits.
pub(super) struct ChainEnv<'a> {
    pub(super) runtime: &'a Runtime,
    pub(super) includes: Includes<'a>,
    /// Pigeonhole's `sieve_max_actions`: the action past it is a runtime error of the script
    /// that adds it ("total number of actions exceeds policy limit"), so that script's
    /// actions are dropped and the keep applies.
    pub(super) max_actions: usize,
    pub(super) deadline: Instant,
    /// What scripts may look up beyond the message.
    pub(super) world: World<'a>,
}

/// What went wrong in the chain, for the per-user error log: the label and the reason.
pub(super) type Failure = Option<(String, String)>;

/// What the chain may look up beyond the message: computed once per recipient.
pub struct World<'w> {
    /// `spamtest`/`spamtestplus`, from the trusted header of the message as received.
    pub spam: SpamStatus,
    /// The recipient's folders.
    pub mailboxes: &'w Mailboxes,
}

/// Runs the chain for one recipient. Never fails: a runtime error gives the implicit keep.
/// The virus policy is not applied here; the caller applies it to whatever comes back.
pub(super) fn run_chain(
    env: &ChainEnv<'_>,
    chain: &[Slot],
    message: Message<'_>,
    input: &FilterInput<'_>,
    sending: &Sending<'_>,
) -> (Plan, Failure) {
    let (runtime, deadline) = (env.runtime, env.deadline);
    let mut failure = None;
    let mut state = ChainState {
        max_redirects: sending.max_redirects,
        ..ChainState::default()
    };
    let user = input.rcpt.user();
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
        let mut ctx = context(runtime, message, input, env.world.spam, deadline);
        if let Some(flags) = flags.take() {
            ctx.set_global_variable(FLAGS_VARIABLE, flags);
        }
        let base = state.current.clone();
        let outcome = run_script(
            &mut ctx,
            script,
            &env.includes,
            (&mut state.notes, &mut state.claims),
            (base, env.world.mailboxes),
            sending.memory,
            &user,
        );
        let outcome = outcome.map(|mut outcome| {
            // `quarantine` is an admin's policy: a user's script (or the default one, which
            // stands in for it) must not fill the quarantine.
            let global = label.starts_with("before ") || label.starts_with("after ");
            if !global && outcome.actions.contains(&Action::Quarantine) {
                outcome.actions.retain(|a| *a != Action::Quarantine);
                state.notes.push(format!(
                    "quarantine in {label} ignored: only global (before/after) scripts may quarantine"
                ));
            }
            outcome
        });
        flags = ctx.global_variable(FLAGS_VARIABLE).cloned();
        // Header edits stay visible to the next script, as Pigeonhole's shared message
        // context does; edits after the script's last action were never announced.
        let pending = ctx.build_edited_message().map(Arc::<[u8]>::from);
        message = ctx.take_message();
        if let Ok(outcome) = &outcome {
            if let Some(bytes) = pending.or_else(|| outcome.last_edited.clone()) {
                state.current = Some(bytes);
            }
        }
        let outcome = outcome.and_then(|outcome| {
            let total = state.plan.actions.len() + outcome.action_count();
            if total > env.max_actions {
                Err(format!(
                    "total number of actions exceeds policy limit ({total} > {})",
                    env.max_actions
                ))
            } else {
                Ok(outcome)
            }
        });
        match outcome {
            Ok(outcome) => state.commit(outcome),
            Err(reason) => {
                state.fail(label, &reason);
                failure = Some((label.clone(), reason));
                break;
            }
        }
        if !state.keep_pending {
            // `sieve_multiscript_run`: the sequence ends once the keep is cancelled.
            break;
        }
    }
    (state.finish(flags.as_ref()), failure)
}

/// A fresh sieve-rs context for one script of the chain.
fn context<'x>(
    runtime: &'x Runtime,
    message: Message<'x>,
    input: &FilterInput<'x>,
    spam: SpamStatus,
    deadline: Instant,
) -> Context<'x> {
    let mut ctx = runtime
        .filter_parsed(message)
        .with_envelope(Envelope::From, input.mail_from)
        .with_envelope(Envelope::To, input.rcpt.original.as_str())
        .with_user_address(input.rcpt.user())
        .with_virus_status(virus_status(input.verdict.virustest()))
        .with_spam_status(spam)
        .with_deadline(deadline)
        // The size of the message as received: Sieve may have parsed only a bounded view.
        .with_message_size(input.message.len());
    if let Some(ip) = input.remote_ip {
        ctx.set_env_variable("remote-ip", ip);
    }
    if let Some(host) = input.remote_host {
        ctx.set_env_variable("remote-host", host);
    }
    // RFC 5183 §4.2: vendor items. Empty when there is nothing to tell (clean mail, no
    // XFORWARD IDENT); sieve-rs takes an empty item for an unavailable one, so every
    // test of it is false then (`not environment :matches "vnd.sievegate.queue-id" "?*"`
    // asks "none").
    ctx.set_env_variable(
        "vnd.sievegate.virus-name",
        input.verdict.virus_name().unwrap_or_default().to_string(),
    );
    ctx.set_env_variable(
        "vnd.sievegate.queue-id",
        input.queue_id.unwrap_or_default().to_string(),
    );
    ctx
}

/// Runs one script to its end; `Err` is a runtime error (its actions are dropped).
fn run_script(
    ctx: &mut Context<'_>,
    script: &Arc<Sieve>,
    includes: &Includes<'_>,
    (notes, claims): (&mut Vec<String>, &mut Vec<Claim>),
    start: (Option<Arc<[u8]>>, &Mailboxes),
    memory: Option<&Memory>,
    user: &str,
) -> Result<ScriptOutcome, String> {
    // Notes about skipped `:optional` includes; the collector holds `notes` meanwhile.
    let mut skipped = Vec::new();
    let (base, mailboxes) = start;
    let mut collector = Collector::new(notes, claims, base, mailboxes).with_memory(memory, user);
    let mut next = Input::script(Script::Personal(CHAIN_SCRIPT.into()), script.clone());
    let mut events = 0usize;
    while let Some(result) = ctx.run(next) {
        events += 1;
        if events > MAX_EVENTS {
            return Err(format!("more than {MAX_EVENTS} Sieve events"));
        }
        next = match result {
            // Includes are answered here, where the directories are known (include.rs).
            Ok(Event::IncludeScript { name, optional }) => match includes.resolve(&name) {
                Resolved::Ready(script) => Input::script(name, script),
                // RFC 6609 §3.2: a missing `:optional` script is skipped.
                Resolved::Missing(reason) if optional => {
                    skipped.push(format!("{reason}: :optional, skipped"));
                    Input::False
                }
                Resolved::Missing(reason) | Resolved::Error(reason) => return Err(reason),
            },
            Ok(event) => collector.on_event(event)?,
            Err(err) => return Err(describe(&err)),
        };
    }
    let outcome = collector.finish();
    for note in skipped {
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
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
        // sieve-rs cannot tell a loop from deep nesting: it only counts the include stack.
        RuntimeError::TooManyIncludes => {
            "include nesting limit reached (an include loop, or includes nested too deep)"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// What the chain needs for the actions that send: the memory behind `duplicate` and
/// vacation, and the redirect limit of the whole chain.
pub struct Sending<'a> {
    /// `None`: every id is new and nothing is looked up (tools).
    pub memory: Option<&'a Memory>,
    /// Redirects per message over the whole chain (`[sieve] max_redirects`).
    pub max_redirects: usize,
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
    explicit_keep: Option<(SystemFlags, Vec<String>)>,
    /// The content of that keep: the message when `keep` ran.
    explicit_keep_content: Option<Option<Arc<[u8]>>>,
    /// A script ended in a runtime error: the failure keep (INBOX, no flags) applies.
    failed: bool,
    redirected: bool,
    /// The message as the scripts so far left it (editheader); `None`: as received.
    current: Option<Arc<[u8]>>,
    /// Redirects allowed over the whole chain; sieve-rs counts only within one script.
    max_redirects: usize,
    /// `duplicate` claims taken by any script of the chain ([`Plan::claims`]).
    claims: Vec<Claim>,
}

impl Default for ChainState {
    fn default() -> Self {
        ChainState {
            plan: Plan::default(),
            notes: Vec::new(),
            keep_pending: true,
            explicit_keep: None,
            explicit_keep_content: None,
            failed: false,
            redirected: false,
            current: None,
            max_redirects: usize::MAX,
            claims: Vec::new(),
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
                    keywords,
                    create,
                    edited,
                } => self.plan.add_store(folder, flags, keywords, create, edited),
                reject @ Action::Reject { .. } => self.plan.actions.push(reject),
                Action::Quarantine => {
                    if !self.plan.quarantines() {
                        self.plan.actions.push(Action::Quarantine);
                    }
                }
                Action::Redirect { to, edited } => {
                    let count = self.plan.redirects().count();
                    if self.plan.redirects().any(|r| r.eq_ignore_ascii_case(&to)) {
                        // Pigeonhole sends one copy per address and delivery.
                        self.note(format!("second redirect to <{to}> ignored"));
                    } else if count >= self.max_redirects {
                        // sieve-rs ignores redirects past the limit within a script; the
                        // same for the chain, logged.
                        self.note(format!(
                            "redirect to <{to}> ignored: more than {} redirects",
                            self.max_redirects
                        ));
                    } else {
                        self.plan.actions.push(Action::Redirect { to, edited });
                    }
                }
                send @ Action::Send { .. } => {
                    // RFC 5230 §4.7: one vacation response per message, even when several
                    // scripts of the chain ask.
                    let vacation = |a: &Action| {
                        matches!(
                            a,
                            Action::Send {
                                kind: SendKind::Vacation,
                                ..
                            }
                        )
                    };
                    if vacation(&send) && self.plan.actions.iter().any(vacation) {
                        self.note("second vacation response ignored".into());
                    } else {
                        self.plan.actions.push(send);
                    }
                }
            }
        }
        for remember in outcome.remember {
            if !self.plan.remember.iter().any(|r| r.key == remember.key) {
                self.plan.remember.push(remember);
            }
        }

        self.keep_pending = outcome.implicit_keep || outcome.explicit_keep.is_some();
        if let Some(flags) = outcome.explicit_keep {
            self.explicit_keep = Some(flags);
            self.explicit_keep_content = outcome.explicit_keep_content;
        }
        self.redirected |= outcome.redirected;
    }

    /// A script hit a runtime error (RFC 5228 §2.10.6): its own actions are dropped, the
    /// earlier scripts' actions stand, no later script runs, and the failure keep applies.
    fn fail(&mut self, label: &str, reason: &str) {
        // The server log line is written by the caller (`Filter::decide`), rate-limited.
        self.note(format!(
            "Sieve runtime error in {label} ({reason}): implicit keep"
        ));
        self.failed = true;
    }

    /// Adds the keep if it is due; `flags` is the imap4flags variable's final value.
    fn finish(mut self, flags: Option<&Variable>) -> Plan {
        // Pigeonhole's failure keep stores the message as received; a deferred explicit keep
        // the message as it was when `keep` ran; the implicit keep the message as the chain
        // left it.
        let keep_content = if self.failed {
            None
        } else if let Some(content) = self.explicit_keep_content.take() {
            content
        } else {
            self.current.take()
        };
        let keep = if self.failed {
            // Pigeonhole's failure keep carries no side effects (no flags).
            Some((SystemFlags::default(), Vec::new()))
        } else if self.keep_pending {
            let variable = flags
                .map(|v| v.to_string().into_owned())
                .unwrap_or_default();
            let words: Vec<&str> = variable.split(' ').collect();
            let implicit = split_flags(&words, &mut self.notes);
            Some(
                self.explicit_keep
                    .take()
                    .filter(|(f, k)| !f.is_empty() || !k.is_empty())
                    .unwrap_or(implicit),
            )
        } else if self.redirected
            && !self.plan.stores()
            && !self.plan.rejects()
            && self.plan.redirects().next().is_none()
        {
            // A redirect we cannot send cancelled the keep: never lose the message.
            Some((SystemFlags::default(), Vec::new()))
        } else {
            None
        };
        if let Some((flags, keywords)) = keep {
            // A store into INBOX that already ran is the keep ("equivalent action already
            // executed"): the keep adds nothing, not even its flags.
            let inbox_stored =
                self.plan.actions.iter().any(
                    |a| matches!(a, Action::Store { folder, .. } if *folder == Folder::inbox()),
                );
            if !inbox_stored {
                self.plan
                    .add_store(Folder::inbox(), flags, keywords, false, keep_content);
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
        self.plan.notes = self.notes;
        self.plan.claims = self.claims;
        self.plan
    }
}

/// A script label for notes and logs.
pub fn label(kind: &str, path: &std::path::Path) -> String {
    format!("{kind} script {}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

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
