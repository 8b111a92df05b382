//! RFC 6609 `include`: which file a script name means, and refusing names that would leave
//! the directory they are looked up in.
//!
//! `:personal` names are looked up in the user's sieve directory (`[sieve] personal_dir`,
//! expanded per recipient), `:global` names in `[sieve] global_dir`. Nothing else is
//! reachable: the before/after/default scripts are files the administrator names by path,
//! never by an include name, and the chain script itself runs under a name no include can
//! produce (see `run::CHAIN_SCRIPT`). `:once` and the nesting limit are sieve-rs's part
//! (`Context::script_cache`, `Runtime::with_max_nested_includes`); an include loop ends at
//! that limit as a runtime error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sieve::{Compiler, Script, Sieve};

use super::cache::{Lookup, ScriptCache};

/// Why an include name was refused (RFC 6609 §3.2 leaves the name syntax to the
/// implementation; Pigeonhole's file storage refuses the same shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    /// Empty after removing `.sieve`.
    #[error("empty script name")]
    Empty,
    /// A `/` would name another directory.
    #[error("script name contains '/'")]
    Slash,
    /// NUL or another control character: cannot be a file name we would create.
    #[error("script name contains a control character")]
    Control,
    /// A leading dot: `..`, and hidden files such as `.dovecot.sieve` or `.dovecot.lda-dupes`.
    #[error("script name starts with '.'")]
    LeadingDot,
    /// Longer than a file name may be.
    #[error("script name longer than 255 bytes")]
    TooLong,
}

/// The file name of script `name`: `name.sieve`, as Pigeonhole's file storage (a name given
/// with its `.sieve` extension means the same script).
pub fn file_name(name: &str) -> Result<String, BadName> {
    let stem = name.strip_suffix(".sieve").unwrap_or(name);
    if stem.is_empty() {
        return Err(BadName::Empty);
    }
    if stem.contains('/') {
        return Err(BadName::Slash);
    }
    if stem.chars().any(char::is_control) {
        return Err(BadName::Control);
    }
    if stem.starts_with('.') {
        return Err(BadName::LeadingDot);
    }
    let file = format!("{stem}.sieve");
    if file.len() > 255 {
        return Err(BadName::TooLong);
    }
    Ok(file)
}

/// Where one recipient's includes are looked up, and how they compile.
pub(super) struct Includes<'a> {
    /// The user's sieve directory, expanded; `None` when `personal_dir` is not configured.
    pub(super) personal_dir: Option<PathBuf>,
    /// `[sieve] global_dir`.
    pub(super) global_dir: Option<&'a Path>,
    pub(super) cache: &'a ScriptCache,
    pub(super) compiler: &'a Compiler,
}

/// What an include event resolves to.
#[derive(Debug)]
pub(super) enum Resolved {
    /// Compiled and ready.
    Ready(Arc<Sieve>),
    /// No such script (an `:optional` include is skipped, otherwise a runtime error).
    Missing(String),
    /// A runtime error, whatever `:optional` says: a refused name, a script that does not
    /// compile or cannot be read.
    Error(String),
}

impl Includes<'_> {
    /// An `Includes` that finds nothing (tests, and callers without a recipient).
    #[cfg(test)]
    pub(super) fn none<'a>(cache: &'a ScriptCache, compiler: &'a Compiler) -> Includes<'a> {
        Includes {
            personal_dir: None,
            global_dir: None,
            cache,
            compiler,
        }
    }

    /// Resolves and compiles the script an include names.
    pub(super) fn resolve(&self, name: &Script) -> Resolved {
        let (location, dir, raw) = match name {
            Script::Personal(raw) => ("personal", self.personal_dir.as_deref(), raw),
            Script::Global(raw) => ("global", self.global_dir, raw),
        };
        let file = match file_name(raw) {
            Ok(file) => file,
            Err(bad) => {
                return Resolved::Error(format!(
                    "include of {location} script {raw:?} refused: {bad}"
                ))
            }
        };
        let Some(dir) = dir else {
            return Resolved::Missing(format!(
                "included {location} script {raw:?} not found (no {location} script directory configured)"
            ));
        };
        let path = dir.join(&file);
        // The name stays in the directory, but a symlink placed there could still point
        // anywhere sievegate may read (its config, another user's scripts); a compile error
        // would then show that file's first token in the user's log. Only scripts whose
        // real path is inside the real directory are used.
        match (std::fs::canonicalize(&path), std::fs::canonicalize(dir)) {
            (Ok(real), Ok(real_dir)) if !real.starts_with(&real_dir) => {
                return Resolved::Error(format!(
                    "include of {location} script {raw:?} refused: it resolves outside the {location} script directory"
                ));
            }
            _ => {}
        }
        match self.cache.get(&path, self.compiler) {
            Lookup::Ready(script) => Resolved::Ready(script),
            Lookup::Missing => {
                Resolved::Missing(format!("included {location} script {raw:?} not found"))
            }
            Lookup::Broken(problem) => {
                Resolved::Error(format!("included {location} script unusable: {problem}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table() {
        let cases: &[(&str, Result<&str, BadName>)] = &[
            ("rules", Ok("rules.sieve")),
            ("rules.sieve", Ok("rules.sieve")),
            ("my rules", Ok("my rules.sieve")),
            ("rules.sieve.sieve", Ok("rules.sieve.sieve")),
            ("a.b", Ok("a.b.sieve")),
            ("", Err(BadName::Empty)),
            (".sieve", Err(BadName::Empty)),
            ("../secret", Err(BadName::Slash)),
            ("..", Err(BadName::LeadingDot)),
            ("../../etc/passwd", Err(BadName::Slash)),
            ("/etc/sievegate/before", Err(BadName::Slash)),
            ("sub/dir", Err(BadName::Slash)),
            (".dovecot", Err(BadName::LeadingDot)),
            (".dovecot.sieve", Err(BadName::LeadingDot)),
            ("a\0b", Err(BadName::Control)),
            ("a\nb", Err(BadName::Control)),
            ("a\u{7f}", Err(BadName::Control)),
        ];
        for (name, want) in cases {
            let got = file_name(name);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                want.as_ref().map(|s| *s).map_err(|e| *e),
                "{name:?}"
            );
        }
        assert_eq!(file_name(&"x".repeat(300)), Err(BadName::TooLong));
    }

    #[test]
    fn includes_stay_in_their_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let personal = dir.path().join("user");
        let global = dir.path().join("global");
        std::fs::create_dir_all(&personal).expect("mkdir");
        std::fs::create_dir_all(&global).expect("mkdir");
        std::fs::write(personal.join("mine.sieve"), "keep;").expect("write");
        std::fs::write(global.join("spam.sieve"), "keep;").expect("write");
        std::fs::write(dir.path().join("outside.sieve"), "keep;").expect("write");
        std::fs::write(personal.join("broken.sieve"), "if {").expect("write");
        let cache = ScriptCache::default();
        let compiler = Compiler::new();
        let includes = Includes {
            personal_dir: Some(personal.clone()),
            global_dir: Some(&global),
            cache: &cache,
            compiler: &compiler,
        };
        let p = |n: &str| Script::Personal(n.to_string());
        let g = |n: &str| Script::Global(n.to_string());
        assert!(matches!(includes.resolve(&p("mine")), Resolved::Ready(_)));
        assert!(matches!(
            includes.resolve(&p("mine.sieve")),
            Resolved::Ready(_)
        ));
        assert!(matches!(includes.resolve(&g("spam")), Resolved::Ready(_)));
        // :personal never sees global scripts, :global never sees personal ones.
        assert!(matches!(includes.resolve(&p("spam")), Resolved::Missing(_)));
        assert!(matches!(includes.resolve(&g("mine")), Resolved::Missing(_)));
        assert!(matches!(
            includes.resolve(&p("../outside")),
            Resolved::Error(_)
        ));
        assert!(matches!(
            includes.resolve(&g("../outside")),
            Resolved::Error(_)
        ));
        assert!(matches!(includes.resolve(&p("broken")), Resolved::Error(_)));
        // A symlink out of the directory is refused; one inside it is followed.
        std::os::unix::fs::symlink("../outside.sieve", personal.join("escape.sieve"))
            .expect("symlink");
        std::os::unix::fs::symlink("mine.sieve", personal.join("alias.sieve")).expect("symlink");
        assert!(matches!(includes.resolve(&p("escape")), Resolved::Error(_)));
        assert!(matches!(includes.resolve(&p("alias")), Resolved::Ready(_)));
        let none = Includes::none(&cache, &compiler);
        assert!(matches!(none.resolve(&p("mine")), Resolved::Missing(_)));
    }
}
