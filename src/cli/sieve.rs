//! `sievegate sieve check|test`: the command line around `sievegate::filter::tools`
//! (compiling scripts) and `sievegate::delivery::dry_run` (the chain to a Plan), and how
//! their results are printed: problems as `file:line:col: message`, a Plan as text or as
//! one JSON object.

use std::process::ExitCode;

use serde_json::{json, Value};
use sievegate::config::Config;
use sievegate::delivery::dry_run::{self, TestReport, TestRequest};
use sievegate::filter::{Action, Plan};

use crate::SieveAction;

/// `sievegate sieve check|test`: problems on stderr, the result on stdout.
pub fn sieve(action: SieveAction) -> ExitCode {
    use sievegate::filter::{tools, ScriptSettings};
    match action {
        SieveAction::Check { config, files } => {
            let (settings, prefix) = match config {
                Some(path) => match Config::load(&path) {
                    Ok(config) => (config.sieve.scripts, config.mailbox.namespace_prefix),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => (ScriptSettings::default(), String::new()),
            };
            let problems = tools::check_files(&files, &settings, &prefix);
            for problem in &problems {
                eprintln!("{problem}");
            }
            if problems.is_empty() {
                println!("OK: {} script(s) compiled", files.len());
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        SieveAction::Test {
            config,
            script,
            user,
            from,
            to,
            virus_status,
            spam_score,
            json,
            message,
        } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let message = match std::fs::read(&message) {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("sievegate sieve test: {}: {e}", message.display());
                    return ExitCode::FAILURE;
                }
            };
            let request = TestRequest {
                script,
                user,
                from,
                to,
                virus_status,
                spam_score,
                message,
            };
            match dry_run::run(&config, &request) {
                Ok(report) if json => {
                    println!("{}", report_json(&report));
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    print!("{}", report_text(&report));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sievegate sieve test: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The report as text: a comment line naming the user and the verdict, then the Plan.
fn report_text(report: &TestReport) -> String {
    format!(
        "# user {}, virustest {} ({})\n{}",
        report.user, report.virustest, report.verdict, report.plan
    )
}

/// The report as one JSON object: the Plan's fields ([`plan_json`]) with `user`,
/// `virustest` and `verdict`.
fn report_json(report: &TestReport) -> Value {
    let mut value = plan_json(&report.plan);
    if let Some(object) = value.as_object_mut() {
        object.insert("user".into(), json!(report.user));
        object.insert("virustest".into(), json!(report.virustest));
        object.insert("verdict".into(), json!(report.verdict));
    }
    value
}

/// A Plan as one JSON object: `actions` (each with `type`: `store`, `reject`, `ereject`,
/// `quarantine`, `redirect`, `vacation`, `notify`), `discard`, `suppressed`, `notes`.
fn plan_json(plan: &Plan) -> Value {
    json!({
        "actions": plan.actions.iter().map(action_json).collect::<Vec<_>>(),
        "discard": plan.actions.is_empty(),
        "suppressed": plan.suppressed.iter().map(action_json).collect::<Vec<_>>(),
        "notes": plan.notes,
    })
}

fn action_json(action: &Action) -> Value {
    match action {
        Action::Store {
            folder,
            flags,
            keywords,
            create,
            edited,
        } => json!({
            "type": "store",
            "folder": folder.to_string(),
            "flags": flags.imap_names(),
            "keywords": keywords,
            "create": create,
            "edited": edited.is_some(),
        }),
        Action::Reject { reason, extended } => json!({
            "type": if *extended { "ereject" } else { "reject" },
            "reason": reason,
        }),
        Action::Quarantine => json!({ "type": "quarantine" }),
        Action::Redirect { to, edited } => json!({
            "type": "redirect",
            "to": to,
            "edited": edited.is_some(),
        }),
        // The generated message as text, so a reviewer sees the reply itself.
        Action::Send { kind, to, message } => json!({
            "type": kind.as_str(),
            "to": to,
            "message": String::from_utf8_lossy(message),
        }),
    }
}
