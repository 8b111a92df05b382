//! `sievegate sieve check|test`: the command line around `sievegate::filter::tools` and
//! `sievegate::sievetool`.

use std::process::ExitCode;

use sievegate::config::Config;

use crate::SieveAction;

/// `sievegate sieve check|test`: problems on stderr, the result on stdout.
pub fn sieve(action: SieveAction) -> ExitCode {
    use sievegate::filter::{tools, ScriptSettings};
    match action {
        SieveAction::Check { config, files } => {
            let settings = match config {
                Some(path) => match Config::load(&path) {
                    Ok(config) => config.sieve.scripts,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => ScriptSettings::default(),
            };
            let problems = tools::check_files(&files, &settings);
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
            let request = sievegate::sievetool::TestRequest {
                script,
                user,
                from,
                to,
                virus_status,
                spam_score,
                message,
            };
            match sievegate::sievetool::run(&config, &request) {
                Ok(report) if json => {
                    println!("{}", report.json());
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    print!("{report}");
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
