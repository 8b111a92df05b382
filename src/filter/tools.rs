//! The library part of `sievegate sieve check` (Pigeonhole's `sievec`): compile files with
//! the configured limits and return each problem with its position (`file:line:col:
//! message`). The command (`cli/sieve.rs` in the binary) prints them; `sieve test`'s logic
//! is [`crate::delivery::dry_run`].

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::cache::{compile_bytes, ScriptProblem};
use super::{compiler_for, ScriptSettings};

/// Compiles each file with the configured limits, and each constant `fileinto` folder
/// checked under `namespace_prefix` (`[mailbox] namespace_prefix`); the problems, in
/// argument order.
pub fn check_files(
    paths: &[PathBuf],
    settings: &ScriptSettings,
    namespace_prefix: &str,
) -> Vec<ScriptProblem> {
    let compiler = checking_compiler(settings, namespace_prefix);
    let mut problems = Vec::new();
    for path in paths {
        if let Err(problem) = check_file(path, settings, &compiler) {
            problems.push(problem);
        }
    }
    problems
}

fn check_file(
    path: &Path,
    settings: &ScriptSettings,
    compiler: &sieve::Compiler,
) -> Result<(), ScriptProblem> {
    let unreadable = |message: String| ScriptProblem::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    // The descriptor is checked, then read with a bound: a FIFO or a file that grows
    // meanwhile cannot hang or exhaust the tool.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| unreadable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(settings.max_script_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > settings.max_script_size {
        return Err(unreadable(format!(
            "script larger than {} bytes",
            settings.max_script_size
        )));
    }
    compile_bytes(path, &bytes, compiler).map(|_| ())
}

/// Compiles script text as delivery would (same compiler, same limits): for ManageSieve's
/// PUTSCRIPT and CHECKSCRIPT, so a script delivery would skip is refused at upload. `name`
/// is what a problem names; `namespace_prefix` as in [`check_files`].
pub fn check_bytes(
    name: &Path,
    bytes: &[u8],
    settings: &ScriptSettings,
    namespace_prefix: &str,
) -> Result<(), ScriptProblem> {
    if bytes.len() as u64 > settings.max_script_size {
        return Err(ScriptProblem::Unreadable {
            path: name.to_path_buf(),
            message: format!("script larger than {} bytes", settings.max_script_size),
        });
    }
    let script = compile_bytes(name, bytes, &checking_compiler(settings, namespace_prefix))?;
    unsupported_require(name, bytes, script)
}

/// Delivery's compiler, plus a check of every constant `fileinto` folder: a name the
/// Maildir++ store refuses under the namespace prefix (with `INBOX.`, `fileinto "Sub"`)
/// would be stored in INBOX instead at delivery, so a check refuses it at its line. Delivery
/// itself does not check: a script already installed keeps running.
fn checking_compiler(settings: &ScriptSettings, namespace_prefix: &str) -> sieve::Compiler {
    let prefix = namespace_prefix.to_string();
    compiler_for(settings).with_mailbox_check(std::sync::Arc::new(move |name: &str| {
        crate::mail::maildir::check_folder_name(name, &prefix)
            .map(|_| ())
            .map_err(|e| match e {
                crate::mail::maildir::FolderError::OutsideNamespace => {
                    format!("outside the namespace prefix {prefix:?} ([mailbox] namespace_prefix)")
                }
                other => other.to_string(),
            })
    }))
}

/// sieve-rs compiles a `require` of an extension it does not know (`vnd.dovecot.debug`)
/// and refuses it only when the script runs, so delivery would skip such a script. Its
/// `require` is the script's first instruction: running it against an empty message
/// answers that before anything else happens (whatever comes next is dropped unrun).
fn unsupported_require(
    name: &Path,
    bytes: &[u8],
    script: sieve::Sieve,
) -> Result<(), ScriptProblem> {
    let runtime = sieve::Runtime::new();
    let mut ctx = runtime.filter(b"");
    let first = ctx.run(sieve::Input::script(
        sieve::Script::Personal("check".into()),
        std::sync::Arc::new(script),
    ));
    let Some(Err(sieve::runtime::RuntimeError::CapabilityNotSupported(capability))) = first else {
        return Ok(());
    };
    // The line that names it, for the user's editor.
    let quoted = format!("\"{capability}\"");
    let line = String::from_utf8_lossy(bytes)
        .lines()
        .position(|l| l.contains(&quoted))
        .map_or(1, |i| i + 1);
    Err(ScriptProblem::Compile {
        path: name.to_path_buf(),
        line,
        column: 1,
        message: format!("extension {capability:?} is not supported by sievegate"),
    })
}

/// The extensions a script may `require` with these settings, by their Sieve names: every
/// capability the compiler knows but the disabled ones (ManageSieve's `SIEVE` capability).
pub fn extensions(settings: &ScriptSettings) -> Vec<String> {
    use sieve::compiler::grammar::Capability;
    let disabled: Vec<Capability> = settings
        .disabled_extensions
        .iter()
        .map(|name| Capability::parse(name))
        .collect();
    Capability::all()
        .iter()
        .filter(|c| !disabled.contains(c))
        // A test comparator of sieve-rs, not something a script author wants listed.
        .filter(|c| {
            !matches!(
                c,
                Capability::Comparator(sieve::compiler::grammar::Comparator::Elbonia)
            )
        })
        .map(|c| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.sieve");
        let bad = dir.path().join("bad.sieve");
        let redirect = dir.path().join("redirect.sieve");
        std::fs::write(&good, "require \"fileinto\";\nfileinto \"X\";\n").expect("write");
        std::fs::write(&bad, "keep;\nif true {\n").expect("write");
        std::fs::write(&redirect, "keep;\nredirect \"a@b.example\";\n").expect("write");
        let settings = ScriptSettings::default();
        assert!(check_files(std::slice::from_ref(&good), &settings, "").is_empty());
        let problems = check_files(&[good.clone(), bad.clone()], &settings, "");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .starts_with(&format!("{}:", bad.display())),
            "{}",
            problems[0]
        );
        assert!(check_files(std::slice::from_ref(&redirect), &settings, "").is_empty());
        let disabled = ScriptSettings {
            disabled_extensions: vec!["redirect".into()],
            ..ScriptSettings::default()
        };
        let problems = check_files(std::slice::from_ref(&redirect), &disabled, "");
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(
            text.contains(":2:1:") && text.contains("disabled"),
            "{text}"
        );
        let small = ScriptSettings {
            max_script_size: 4,
            ..ScriptSettings::default()
        };
        assert_eq!(
            check_files(std::slice::from_ref(&good), &small, "").len(),
            1
        );
    }

    #[test]
    fn unknown_extensions_are_refused_for_upload() {
        let settings = ScriptSettings::default();
        let name = Path::new("rules");
        assert!(check_bytes(
            name,
            b"require \"fileinto\";\nfileinto \"X\";\n",
            &settings,
            ""
        )
        .is_ok());
        assert!(check_bytes(name, b"keep;\n", &settings, "").is_ok());
        let problem = check_bytes(
            name,
            b"# mine\nrequire [\"fileinto\", \"vnd.dovecot.debug\"];\nkeep;\n",
            &settings,
            "",
        )
        .expect_err("refused");
        assert!(
            problem
                .to_string()
                .starts_with("rules:2:1: extension \"vnd.dovecot.debug\""),
            "{problem}"
        );
    }

    /// `[mailbox] namespace_prefix`: a constant folder the store would refuse is refused at
    /// its line; with the empty prefix (Dovecot's default) `INBOX.Sub` is a folder of its own.
    #[test]
    fn a_folder_outside_the_namespace_is_refused_with_its_line() {
        let settings = ScriptSettings::default();
        let name = Path::new("rules");
        let script = b"require [\"fileinto\", \"variables\"];\nset \"f\" \"Sub\";\nfileinto \"INBOX.Sub\";\nfileinto \"${f}\";\nif true {\n  fileinto \"Sub\";\n}\n";
        assert!(check_bytes(name, script, &settings, "").is_ok());
        let problem = check_bytes(name, script, &settings, "INBOX.").expect_err("Sub is refused");
        let text = problem.to_string();
        assert!(
            text.starts_with("rules:6:")
                && text.contains("\"Sub\"")
                && text.contains("outside the namespace prefix \"INBOX.\""),
            "{text}"
        );
        // Names the store refuses whatever the prefix: each at its own line.
        let table: &[(&str, &str)] = &[
            ("../../etc", "starts with '.'"),
            ("a/b", "'/'"),
            ("a..b", "empty"),
            ("", "empty"),
        ];
        for (folder, why) in table {
            let script = format!("require \"fileinto\";\nkeep;\nfileinto \"{folder}\";\n");
            let problem = check_bytes(name, script.as_bytes(), &settings, "").expect_err(folder);
            let text = problem.to_string();
            assert!(
                text.starts_with("rules:3:") && text.contains(why),
                "{folder}: {text}"
            );
        }
        let files = [std::path::PathBuf::from("/nonexistent/x.sieve")];
        assert_eq!(check_files(&files, &settings, "INBOX.").len(), 1);
    }
}
