//! Sieve: script resolution (before → personal or default → after), a compile cache keyed by
//! file identity, and the sieve-rs event loop that turns one recipient's run into a [`Plan`].
//! Nothing here touches a mailbox.
//!
//! # How the chain runs
//! The whole chain is one Sieve execution: a generated wrapper script includes the `before`
//! scripts, then one middle slot (personal script, or the default script when the user has
//! none), then the `after` scripts (see [`run::wrapper_source`]). RFC 6609 include semantics
//! give Pigeonhole's `sieve_before`/`sieve_after` behaviour: `stop` anywhere ends the chain,
//! and an explicit action in one script cancels the implicit keep for all of them.
//!
//! # Failure rules
//! - A personal script that cannot be read or compiled is skipped (error log, Plan note);
//!   the default script does *not* run in its place, so a user's broken script yields the
//!   implicit keep at that point, as in Pigeonhole. A missing personal script (or a dangling
//!   symlink) means "no personal script": the default runs.
//! - A global script that is missing or broken at run time is skipped with an error log;
//!   [`Filter::check`] reports them at startup.
//! - A runtime error or the CPU limit gives the implicit keep; actions so far are dropped.
//! - Last, always: [`Plan::enforce_virus_policy`].

mod cache;
pub mod plan;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mail_parser::{Message, MessageParser, MessagePart};
use sieve::{Compiler, Runtime, Sieve};

use crate::address::Recipient;
use crate::scan::Verdict;

pub use cache::ScriptProblem;
pub use plan::{Action, Plan, INFECTED_VIRUSTEST};

use cache::{Lookup, ScriptCache};
use run::Chain;

/// sieve-rs's nesting bound, counted in scripts on its stack: the wrapper (1), a chain script
/// (2), one include from that script (3). Deeper includes are a runtime error → implicit keep,
/// which also ends `include` recursion.
const MAX_NESTED_INCLUDES: usize = 3;
/// At most one redirect per run. None is sent today, but the bound keeps a hostile script
/// from producing many events (and is what a later redirect implementation wants anyway).
const MAX_REDIRECTS: usize = 1;
/// At most two generated messages (redirects, vacation replies, notifications) per run.
const MAX_OUT_MESSAGES: usize = 2;

/// Which scripts run, and the limits they run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// Global scripts that run first, in order (Pigeonhole's `sieve_before`).
    pub before: Vec<PathBuf>,
    /// Template of the personal script path (`%u`, `%n`, `%d`), e.g.
    /// `/var/vmail/%d/%n/.dovecot.sieve`; a file or a symlink to one.
    pub personal: Option<String>,
    /// Global scripts that run last, in order (Pigeonhole's `sieve_after`).
    pub after: Vec<PathBuf>,
    /// Runs in the personal slot when the user has no personal script.
    pub default: Option<PathBuf>,
    /// This host's name: the `domain`/`host` environment items and generated Message-IDs.
    pub hostname: String,
    /// sieve-rs instruction budget for the whole chain, per recipient.
    pub cpu_limit: usize,
}

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

    /// The first `Message-ID` header's value, for logs: `<id>` as written, or `""`.
    pub fn message_id(&self) -> String {
        self.0
            .message_id()
            .map(|id| format!("<{}>", crate::lmtp::reply::sanitize(id, 253)))
            .unwrap_or_default()
    }
}

/// Runs Sieve for recipients. Built once from the configuration and shared (`Arc`) across
/// connections; compiled scripts are cached inside.
pub struct Filter {
    config: FilterConfig,
    /// Compiles every script file (sieve-rs default limits: 1 MiB script, 4 KiB strings,
    /// 15 nested blocks and tests).
    compiler: Compiler,
    /// Shared runtime settings: limits and the static environment items.
    runtime: Runtime,
    /// The chain wrapper, compiled once; `Err` only if our own generated text is rejected.
    wrapper: Result<Arc<Sieve>, ScriptProblem>,
    cache: ScriptCache,
}

// The LMTP server shares one Filter across connection tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
};

impl Filter {
    /// Builds the filter; no file is read until [`Filter::check`] or [`Filter::plan`].
    pub fn new(config: FilterConfig) -> Self {
        let runtime = Runtime::new()
            .with_cpu_limit(config.cpu_limit)
            .with_max_nested_includes(MAX_NESTED_INCLUDES)
            .with_max_redirects(MAX_REDIRECTS)
            .with_max_out_messages(MAX_OUT_MESSAGES)
            .with_local_hostname(config.hostname.clone())
            // mailto notifications are recognised so that they show up as notes; nothing is
            // ever sent.
            .with_valid_notification_uri("mailto")
            // RFC 5183 §4.1 items that do not change per recipient.
            .with_env_variable("location", "MDA")
            .with_env_variable("phase", "during")
            .with_env_variable("domain", config.hostname.clone())
            .with_env_variable("host", config.hostname.clone())
            .with_env_variable("name", "sievegate")
            .with_env_variable("version", env!("CARGO_PKG_VERSION"));
        let source = run::wrapper_source(config.before.len(), config.after.len());
        let wrapper_compiler =
            Compiler::new().with_max_includes(config.before.len() + config.after.len() + 1);
        let wrapper =
            cache::compile_bytes(Path::new("<chain>"), source.as_bytes(), &wrapper_compiler)
                .map(Arc::new);
        Filter {
            config,
            compiler: Compiler::new(),
            runtime,
            wrapper,
            cache: ScriptCache::default(),
        }
    }

    /// Compiles every global script (before, after, default) and returns all problems, for
    /// `check-config`. A missing global script is a problem too.
    pub fn check(&self) -> Vec<ScriptProblem> {
        let mut problems = Vec::new();
        if let Err(problem) = &self.wrapper {
            problems.push(problem.clone());
        }
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
        plan.enforce_virus_policy(input.verdict.virustest());
        plan
    }

    /// Everything but the virus policy.
    fn decide(&self, input: &FilterInput<'_>, message: Message<'_>) -> Plan {
        let wrapper = match &self.wrapper {
            Ok(wrapper) => wrapper,
            Err(problem) => {
                tracing::error!(%problem, "Sieve chain wrapper does not compile");
                let mut plan = Plan::implicit_keep();
                plan.notes.push(format!(
                    "Sieve chain unavailable ({problem}): implicit keep"
                ));
                return plan;
            }
        };
        let mut notes = Vec::new();
        let chain = self.resolve(input.rcpt, &mut notes);
        let mut plan = run::run_chain(&self.runtime, wrapper, &chain, message, input);
        notes.append(&mut plan.notes);
        plan.notes = notes;
        plan
    }

    /// Looks up and compiles this recipient's chain.
    fn resolve(&self, rcpt: &Recipient, notes: &mut Vec<String>) -> Chain {
        let mut global = |path: &PathBuf| self.global(path, notes);
        let before = self.config.before.iter().map(&mut global).collect();
        let after = self.config.after.iter().map(&mut global).collect();
        let personal = self.config.personal.as_deref().map(|template| {
            let path = rcpt.expand(template);
            let lookup = self.cache.get(&path, &self.compiler);
            (path, lookup)
        });
        let main = match personal {
            Some((_, Lookup::Ready(script))) => Some(script),
            Some((_, Lookup::Broken(problem))) => {
                tracing::error!(user = %rcpt.user(), %problem, "personal Sieve script skipped");
                notes.push(format!("personal script skipped: {problem}"));
                None
            }
            Some((_, Lookup::Missing)) | None => self
                .config
                .default
                .as_ref()
                .and_then(|path| self.global(path, notes)),
        };
        Chain {
            before,
            main,
            after,
        }
    }

    /// A global script, or `None` (logged and noted) when it is missing or broken.
    fn global(&self, path: &Path, notes: &mut Vec<String>) -> Option<Arc<Sieve>> {
        let problem = match self.cache.get(path, &self.compiler) {
            Lookup::Ready(script) => return Some(script),
            Lookup::Missing => ScriptProblem::Unreadable {
                path: path.to_path_buf(),
                message: "no such file".to_string(),
            },
            Lookup::Broken(problem) => problem,
        };
        tracing::error!(%problem, "global Sieve script skipped");
        notes.push(format!("global script skipped: {problem}"));
        None
    }
}

#[cfg(test)]
mod tests;
