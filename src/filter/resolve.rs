//! Script resolution: which scripts make up one recipient's chain (before → personal or
//! default → after), looked up in the compile cache, and where the user's own scripts and
//! error log are.

use std::path::{Path, PathBuf};

use crate::mail::address::Recipient;

use super::cache::Lookup;
use super::run::{self, Slot};
use super::{userlog, Filter, ScriptProblem};

impl Filter {
    /// The user's script directory (`personal_dir` expanded).
    pub(super) fn personal_dir(&self, rcpt: &Recipient) -> Option<PathBuf> {
        self.config
            .scripts
            .personal_dir
            .as_deref()
            .map(|t| rcpt.expand(t))
    }

    /// The user's active script path (the personal template expanded, symlink not
    /// followed): its `.log` sibling is the per-user error log.
    pub(super) fn active_script(&self, rcpt: &Recipient) -> Option<PathBuf> {
        self.config.personal.as_deref().map(|t| rcpt.expand(t))
    }

    /// Appends `text` to the user's own Sieve log (beside their active script, as for
    /// runtime errors), when they have an active script inside their own area; otherwise
    /// nothing. For what happened to their mail after the script ran (a redirect's failure
    /// keep). Blocking (a small append).
    pub fn note_to_user(&self, rcpt: &Recipient, text: &str) {
        let personal_dir = self.personal_dir(rcpt);
        if let Some(active) = self.active_script(rcpt).filter(|active| {
            active.symlink_metadata().is_ok()
                && userlog::inside_user_area(active, personal_dir.as_deref())
        }) {
            self.userlog.record(&active, text);
        }
    }

    /// Looks up and compiles this recipient's chain, in execution order. A missing script is
    /// left out; a broken one stays in as [`Slot::Broken`] because it ends the chain there.
    pub(super) fn resolve(&self, rcpt: &Recipient, notes: &mut Vec<String>) -> Vec<Slot> {
        let mut chain = Vec::new();
        for path in &self.config.before {
            chain.extend(self.global("before", path, notes));
        }
        let personal = self.config.personal.as_deref().map(|template| {
            let path = rcpt.expand(template);
            let lookup = self.cache.get(&path, &self.compiler);
            (path, lookup)
        });
        match personal {
            Some((path, Lookup::Ready(script))) => chain.push(Slot::Run {
                label: run::label("personal", &path),
                script,
            }),
            Some((path, Lookup::Broken(problem))) => {
                // Once per minute per problem: the same broken script is met by every
                // delivery to that user until the user fixes it.
                if self.userlog.server_may_log(&problem.to_string()) {
                    tracing::error!(user = %rcpt.user(), %problem, "personal Sieve script unusable");
                }
                let personal_dir = self.personal_dir(rcpt);
                let detail = if userlog::inside_user_area(&path, personal_dir.as_deref()) {
                    problem.to_string()
                } else {
                    "the active script is outside your directory".to_string()
                };
                self.userlog
                    .record(&path, &format!("script skipped: {detail}"));
                notes.push(format!("personal script skipped: {problem}"));
                chain.push(Slot::Broken {
                    label: run::label("personal", &path),
                });
            }
            Some((_, Lookup::Missing)) | None => {
                if let Some(path) = &self.config.default {
                    chain.extend(self.global("default", path, notes));
                }
            }
        }
        for path in &self.config.after {
            chain.extend(self.global("after", path, notes));
        }
        chain
    }

    /// A global script's slot, or `None` when it is missing (logged and noted, skipped).
    fn global(&self, kind: &str, path: &Path, notes: &mut Vec<String>) -> Option<Slot> {
        let label = run::label(kind, path);
        match self.cache.get(path, &self.compiler) {
            Lookup::Ready(script) => Some(Slot::Run { label, script }),
            Lookup::Missing => {
                let problem = ScriptProblem::Unreadable {
                    path: path.to_path_buf(),
                    message: "no such file".to_string(),
                };
                tracing::error!(%problem, "global Sieve script missing: skipped");
                notes.push(format!("global script skipped: {problem}"));
                None
            }
            Lookup::Broken(problem) => {
                tracing::error!(%problem, "global Sieve script unusable");
                notes.push(format!("global script skipped: {problem}"));
                Some(Slot::Broken { label })
            }
        }
    }
}

/// The outbox's failure keep writes its note through the filter, which knows where each
/// user's log is.
impl crate::outbound::UserNotes for Filter {
    fn note(&self, rcpt: &Recipient, text: &str) {
        self.note_to_user(rcpt, text);
    }
}
