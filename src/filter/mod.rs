//! Sieve: script resolution (before → personal or default → after), a compile cache keyed by
//! file identity, and the chain runner that turns one recipient's run into a [`Plan`].
//! Nothing here touches a mailbox. What a [`Filter`] is built from is in `settings.rs`,
//! which scripts make up a recipient's chain in `resolve.rs`, the runner in `run.rs`.
//!
//! # How the chain runs: Pigeonhole's multiscript
//! The chain is the same as Pigeonhole's multiscript (`sieve_before` scripts, the personal
//! script or `sieve_default`, `sieve_after` scripts), as read in Pigeonhole 0.5.19:
//! `lda_sieve_execute_scripts` (plugins/lda-sieve), `sieve_multiscript_run` /
//! `sieve_multiscript_finish` (lib-sieve/sieve.c) and `sieve_result_execute` /
//! `sieve_result_implicit_keep_execute` (lib-sieve/sieve-result.c). Each script is its own
//! sieve-rs execution (`run::run_chain`); the rules:
//!
//! - **Next script only while the keep is pending.** After each script, the sequence goes on
//!   only if the keep is still pending (`sieve_multiscript_run`: `keep` → next script,
//!   otherwise "sequence ended"). So `fileinto`, `discard`, `redirect` or `reject` in a
//!   before script means the personal and after scripts do not run; `fileinto :copy` leaves
//!   the keep pending; after scripts run only while it is pending too.
//! - **`stop` ends the current script only**: the next one runs if the keep is pending.
//! - **An explicit `keep` is deferred**: it keeps the keep pending for the next script
//!   (`sieve_result_execute` merges the explicit keep into the implicit keep "for the next
//!   execution round"); a later `fileinto` cancels it, and at the end the keep stores with
//!   the flags of the last explicit keep (the "deferred keep action" found by
//!   `sieve_result_implicit_keep_execute`). Within one script, `keep; discard;` and
//!   `keep; fileinto "X";` keep the copy in INBOX (RFC 5228 §4.4 and §4.2).
//! - **Flags carry over**: the imap4flags internal variable lives in the result shared by all
//!   scripts, so a before script's `addflag` reaches the personal script's `fileinto` and the
//!   final keep. The implicit keep takes the variable's final value (RFC 5232 §3).
//! - **A store into INBOX is the keep**: when some action already stored into INBOX, the keep
//!   adds nothing ("equivalent action already executed").
//! - **Runtime errors** (including the CPU limit and the wall-clock limit): the failing
//!   script's actions are dropped, the earlier scripts' actions stand (they were executed
//!   and are committed by `sieve_multiscript_finish`), no later script runs, and the failure
//!   keep stores into INBOX without flags (RFC 5228 §2.10.6).
//! - **A script that exists but does not compile** (or cannot be read) ends the sequence
//!   where it stands (`lda_sieve_execute_scripts` breaks on any error but "not found"): the
//!   earlier scripts' actions stand and the keep applies if pending. A broken personal script
//!   is not replaced by the default script, and the after scripts do not run.
//! - **A missing script** is skipped (`SIEVE_ERROR_NOT_FOUND`); a missing personal script
//!   (or a dangling symlink) means the default script runs in its place.
//! - **At most `max_actions` (32) actions** per chain (`sieve_max_actions`): the script that
//!   adds the one past it ends in a runtime error ("total number of actions exceeds policy
//!   limit").
//! - **Redirects**: at most `[sieve] max_redirects` over the chain (sieve-rs bounds each
//!   script, `run::Sending` the chain), one per address; none to an address whose
//!   `Delivered-To` is already in the message, nor when this user's
//!   [`REDIRECTED_BY`] mark is (loops, `drop_looping_redirects`).
//! - **`duplicate` and vacation** ask the state store ([`memory`]); what to remember is
//!   carried in [`Plan::remember`] and written only after the delivery succeeded.
//! - **Includes** (RFC 6609) run inside the including script's execution: their actions are
//!   that script's, and an include that cannot be resolved (refused name, missing without
//!   `:optional`, broken, nested past `max_include_depth`) is that script's runtime error.
//!   Where names are looked up: [`include`](mod@include).
//! - **The user's errors** (compile and runtime errors of the personal script and its
//!   includes) also go to `<active script>.log` (Pigeonhole's `.dovecot.sieve.log`); the
//!   server log repeats one error at most once a minute (`userlog.rs`).
//! - Last, always: [`Plan::enforce_virus_policy`].
//!
//! What happens when a store of the Plan fails (every store aborted, the failsafe keep into
//! INBOX) is `delivery::execute`'s part of the same Pigeonhole behaviour. The differential
//! test `pigeonhole::sievegate_stores_like_pigeonhole` checks all of this against a real
//! Dovecot + Pigeonhole.

mod cache;
mod collect;
pub mod include;
pub mod lookup;
pub mod memory;
pub mod plan;
mod resolve;
mod run;
mod settings;
pub mod tools;
mod userlog;

use std::path::{Path, PathBuf};
use std::time::Instant;

use mail_parser::{Message, MessageParser, MessagePart};
use sieve::{Compiler, Runtime};

use crate::mail::address::Recipient;
use crate::scan::Verdict;

pub use cache::ScriptProblem;
pub use lookup::{Mailboxes, SpamScore, DEFAULT_SPECIAL_USE};
pub use memory::{Memory, VacationPeriods};
pub use plan::{Action, Plan, Remember, SendKind, INFECTED_VIRUSTEST};
pub use settings::{FilterConfig, ScriptSettings};

use cache::{Lookup, ScriptCache};

/// `include` commands one script may contain (Pigeonhole's `sieve_include_max_includes`).
const MAX_INCLUDES_PER_SCRIPT: usize = 255;
/// Generated messages per script beside its redirects: one vacation reply and one
/// notification (sieve-rs counts redirects among its "out messages").
const MAX_OTHER_OUT_MESSAGES: usize = 2;
/// sieve-rs's default duplicate period when `duplicate` has no `:seconds` (Pigeonhole's
/// `sieve_duplicate_default_period`, 14 days).
const DUPLICATE_DEFAULT_SECS: u64 = 14 * 86_400;

/// The header that marks a copy we redirected: `X-Sievegate-Redirected-By: <user>`. A
/// message that already carries it for the same user has been around once: redirecting it
/// again would be a loop.
pub const REDIRECTED_BY: &str = "X-Sievegate-Redirected-By";

/// Header fields no script may add or delete (editheader, `mime` `enclose`).
pub const PROTECTED_HEADERS: [&str; 6] = [
    "Received",
    "Auto-Submitted",
    "Return-Path",
    "Delivered-To",
    // sieve-rs's own defaults, kept: they carry the original of an enclosed message.
    "Original-Subject",
    "Original-From",
];

/// Every header field starting with this is protected too (`X-Virus-Scanned`,
/// `X-Virus-Status`, ...).
pub const PROTECTED_HEADER_PREFIX: &str = "X-Virus-";

/// What one recipient's run sees.
#[derive(Debug, Clone, Copy)]
pub struct FilterInput<'a> {
    /// The raw message as received (CRLF).
    pub message: &'a [u8],
    /// Envelope sender; `""` for the null sender.
    pub mail_from: &'a str,
    /// The recipient: `to` in the envelope test, the user address, the personal script.
    pub rcpt: &'a Recipient,
    /// The scan result, seen by `virustest` and by the virus policy.
    pub verdict: &'a Verdict,
    /// Client IP from XFORWARD ADDR: the `remote-ip` environment item.
    pub remote_ip: Option<&'a str>,
    /// Client host name from XFORWARD NAME: the `remote-host` environment item.
    pub remote_host: Option<&'a str>,
    /// The recipient's Maildir root: `mailboxexists` and `:specialuse` look there. `None`
    /// (a dry run without a mailbox): only INBOX exists.
    pub maildir: Option<&'a Path>,
    /// Postfix's queue id (XFORWARD IDENT): the `vnd.sievegate.queue-id` environment item.
    pub queue_id: Option<&'a str>,
}

/// A message parsed once, for running several recipients without parsing it again.
#[derive(Debug, Clone)]
pub struct ParsedMessage<'a>(Message<'a>);

impl<'a> ParsedMessage<'a> {
    /// Parses `raw`. Input mail-parser cannot parse at all still gets a (headerless,
    /// single-part) message, so scripts run and the implicit keep applies.
    pub fn new(raw: &'a [u8]) -> Self {
        ParsedMessage(MessageParser::new().parse(raw).unwrap_or_else(|| Message {
            // sieve-rs indexes part 0 unconditionally; an empty part list would panic it.
            parts: vec![MessagePart::default()],
            raw_message: raw.into(),
            ..Default::default()
        }))
    }

    /// The parsed message, for callers that need more than Sieve does (quarantine metadata,
    /// [`crate::mail::bounce::is_bounce`]).
    pub fn message(&self) -> &Message<'a> {
        &self.0
    }

    /// The first `Message-ID` header's value, for logs: `<id>` as written, or `""`.
    pub fn message_id(&self) -> String {
        crate::mail::text::message_id(&self.0)
    }
}

/// Runs Sieve for recipients. Built once from the configuration and shared (`Arc`) across
/// connections; compiled scripts are cached inside.
pub struct Filter {
    config: FilterConfig,
    /// Compiles every script file (sieve-rs default limits: 4 KiB strings, 15 nested blocks
    /// and tests; `max_script_size` and `disabled_extensions` from the settings).
    compiler: Compiler,
    /// Shared runtime settings: limits and the static environment items.
    runtime: Runtime,
    cache: ScriptCache,
    /// Where `duplicate` and vacation records live; `None` (tools) answers "not seen".
    memory: Option<Memory>,
    /// Per-user error logs and the server log's rate limit for the same error.
    userlog: userlog::UserLog,
}

/// A compiler with the configured script size limit and disabled extensions.
pub fn compiler_for(settings: &ScriptSettings) -> Compiler {
    let size = usize::try_from(settings.max_script_size).unwrap_or(usize::MAX);
    // sieve-rs allows 6 `include` commands per script; Pigeonhole's
    // `sieve_include_max_includes` is 255, and scripts written for Dovecot (one include per
    // rule set, as ManageSieve clients do) must still compile.
    let mut compiler = Compiler::new()
        .with_max_script_size(size)
        .with_max_includes(MAX_INCLUDES_PER_SCRIPT);
    for name in &settings.disabled_extensions {
        compiler =
            compiler.with_disabled_capability(sieve::compiler::grammar::Capability::parse(name));
    }
    compiler
}

// The LMTP server shares one Filter across connection tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
};

impl Filter {
    /// Builds the filter; no file is read until [`Filter::check`] or [`Filter::plan`].
    pub fn new(config: FilterConfig) -> Self {
        let mut runtime = Runtime::new()
            .with_cpu_limit(config.cpu_limit)
            // sieve-rs counts the chain script itself on its include stack.
            .with_max_nested_includes(config.scripts.max_include_depth.saturating_add(1))
            .with_max_redirects(config.max_redirects)
            .with_max_out_messages(config.max_redirects + MAX_OTHER_OUT_MESSAGES)
            .with_default_vacation_expiry(config.vacation.default_days.saturating_mul(86_400))
            .with_default_duplicate_expiry(DUPLICATE_DEFAULT_SECS)
            .with_local_hostname(config.hostname.clone())
            // RFC 5436: mailto is the one method we send (through the outbox).
            .with_valid_notification_uri("mailto")
            // RFC 5183 §4.1 items that do not change per recipient.
            .with_env_variable("location", "MDA")
            .with_env_variable("phase", "during")
            .with_env_variable("domain", config.hostname.clone())
            .with_env_variable("host", config.hostname.clone())
            .with_env_variable("name", "sievegate")
            .with_env_variable("version", env!("CARGO_PKG_VERSION"))
            // RFC 5293 §7: fields a script must neither add nor delete. The trace fields
            // and Auto-Submitted (which loop protection reads) as Pigeonhole always
            // protects Received and Auto-Submitted; our scan headers, which a Dovecot reading
            // this Maildir may trust. sieve-rs ignores such an edit, as Pigeonhole does
            // ("modification denied", a warning only).
            .with_protected_headers(PROTECTED_HEADERS)
            .with_protected_header_prefix(PROTECTED_HEADER_PREFIX);
        // RFC 5463 §4: `ihave` answers from the runtime's capabilities, so a disabled
        // extension is "not available" there too, not only refused by `require`.
        for name in &config.scripts.disabled_extensions {
            runtime.unset_capability(sieve::compiler::grammar::Capability::parse(name));
        }
        let compiler = compiler_for(&config.scripts);
        Filter {
            cache: ScriptCache::new(config.scripts.max_script_size),
            userlog: userlog::UserLog::new(config.scripts.user_log_size),
            config,
            compiler,
            runtime,
            memory: None,
        }
    }

    /// Answers `duplicate` and the vacation test from `state` (the server's state store).
    /// Without it every id is new: what `sieve test` wants, as it must not touch anything.
    pub fn with_state(mut self, state: std::sync::Arc<dyn crate::state::StateStore>) -> Self {
        self.memory = Some(Memory {
            state,
            vacation: self.config.vacation,
        });
        self
    }

    /// Compiles every global script (before, after, default, and each `*.sieve` in
    /// `global_dir`) and returns all problems, for `check-config`. A missing before, after or
    /// default script is a problem too.
    pub fn check(&self) -> Vec<ScriptProblem> {
        let mut problems = Vec::new();
        let globals = self
            .config
            .before
            .iter()
            .chain(&self.config.after)
            .chain(&self.config.default);
        for path in globals {
            match self.cache.get(path, &self.compiler) {
                Lookup::Ready(_) => {}
                Lookup::Missing => problems.push(ScriptProblem::Unreadable {
                    path: path.clone(),
                    message: "no such file".to_string(),
                }),
                Lookup::Broken(problem) => problems.push(problem),
            }
        }
        // The include-only global scripts too: a broken one would fail every script that
        // includes it, at delivery.
        if let Some(dir) = &self.config.scripts.global_dir {
            let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sieve"))
                .collect();
            scripts.sort();
            for path in scripts {
                if let Lookup::Broken(problem) = self.cache.get(&path, &self.compiler) {
                    problems.push(problem);
                }
            }
        }
        problems
    }

    /// Runs the chain for one recipient. Never fails: problems become notes and the implicit
    /// keep; the virus policy is applied last, whatever happened before.
    pub fn plan(&self, input: &FilterInput<'_>) -> Plan {
        let parsed = ParsedMessage::new(input.message);
        self.plan_parsed(input, &parsed)
    }

    /// [`Filter::plan`] with a message parsed once per transaction ([`ParsedMessage::new`]
    /// of the same bytes as `input.message`).
    pub fn plan_parsed(&self, input: &FilterInput<'_>, parsed: &ParsedMessage<'_>) -> Plan {
        let mut plan = self.decide(input, parsed.0.clone());
        drop_looping_redirects(&mut plan, &parsed.0, &input.rcpt.user());
        plan.enforce_virus_policy(input.verdict.virustest());
        plan
    }

    /// Everything but the virus policy.
    fn decide(&self, input: &FilterInput<'_>, message: Message<'_>) -> Plan {
        // The budget starts before resolution: a slow script lookup counts too.
        let deadline = Instant::now() + self.config.max_run_time;
        let mut notes = Vec::new();
        let chain = self.resolve(input.rcpt, &mut notes);
        // Sieve parsed a bounded view (see `delivery::view`): a message built from a cut view
        // would lose the cut part, so edits of such a message are not stored.
        let whole = message.raw_message.len() == input.message.len();
        // From the message as received, before any script could edit the header.
        let spam = self
            .config
            .spam_score
            .as_ref()
            .map_or(sieve::SpamStatus::Unknown, |s| {
                lookup::spam_status(s, &message)
            });
        let mailboxes = Mailboxes {
            root: input.maildir.map(Path::to_path_buf),
            special_use: self.config.special_use.clone(),
            namespace_prefix: self.config.namespace_prefix.clone(),
        };
        let world = run::World {
            spam,
            mailboxes: &mailboxes,
        };
        let sending = run::Sending {
            memory: self.memory.as_ref(),
            max_redirects: self.config.max_redirects,
        };
        let env = run::ChainEnv {
            runtime: &self.runtime,
            includes: include::Includes {
                personal_dir: self.personal_dir(input.rcpt),
                global_dir: self.config.scripts.global_dir.as_deref(),
                cache: &self.cache,
                compiler: &self.compiler,
            },
            max_actions: self.config.scripts.max_actions,
            deadline,
            world,
        };
        let (mut plan, failure) = run::run_chain(&env, &chain, message, input, &sending);
        if let Some((label, reason)) = failure {
            // Once a minute per script and error: a script that fails on every message
            // must not flood the server log (the delivery line still carries the note).
            if self.userlog.server_may_log(&format!("{label}\0{reason}")) {
                tracing::error!(script = %label, error = %reason, "Sieve runtime error: implicit keep");
            }
            // Only the user's own script's errors go to the user's log: a global script's
            // problem is the administrator's, and may name paths the user must not see.
            let personal_dir = self.personal_dir(input.rcpt);
            if let Some(active) = self.active_script(input.rcpt).filter(|active| {
                label.starts_with("personal ")
                    && userlog::inside_user_area(active, personal_dir.as_deref())
            }) {
                self.userlog
                    .record(&active, &format!("runtime error: {reason}"));
            }
        }
        if !whole && plan.drop_edits() {
            notes.push(
                "message edits not stored: the message is larger than what Sieve parses".into(),
            );
        }
        notes.append(&mut plan.notes);
        plan.notes = notes;
        plan
    }
}

/// Loop protection for redirects: no redirect to an address the message was already
/// delivered to (its `Delivered-To` fields, which every delivery adds, ours included), and
/// none when the message already carries our [`REDIRECTED_BY`] mark for this user (it came
/// back after we sent it on). A plan whose only redirects are dropped keeps the message in
/// INBOX instead: nothing is lost.
fn drop_looping_redirects(plan: &mut Plan, message: &Message<'_>, user: &str) {
    if plan.redirects().next().is_none() {
        return;
    }
    let values = |name: &str| -> Vec<String> {
        message
            .header_values(name)
            .filter_map(|v| v.as_text())
            .map(|v| v.trim().trim_matches(['<', '>']).to_ascii_lowercase())
            .collect()
    };
    let delivered = values("Delivered-To");
    let came_back = values(REDIRECTED_BY)
        .iter()
        .any(|u| u.eq_ignore_ascii_case(user));
    let mut dropped = false;
    let mut notes = Vec::new();
    plan.actions.retain(|a| match a {
        Action::Redirect { to, .. } => {
            let looping = came_back || delivered.iter().any(|d| d.eq_ignore_ascii_case(to));
            if looping {
                tracing::warn!(%user, %to, "redirect loop: not redirected");
                notes.push(format!("redirect to <{to}> not sent: mail loop detected"));
                dropped = true;
            }
            !looping
        }
        _ => true,
    });
    plan.notes.extend(notes);
    if dropped && !plan.stores() && !plan.rejects() && plan.redirects().next().is_none() {
        plan.add_store(
            crate::store::Folder::inbox(),
            crate::store::SystemFlags::default(),
            Vec::new(),
            false,
            None,
        );
        plan.notes
            .push("no redirect left: kept in INBOX".to_string());
    }
}

#[cfg(test)]
mod tests;
