//! `sievegate quarantine ...`: the command line around `sievegate::quarantine::cli`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::quarantine::cli as qcli;

use crate::QuarantineAction;

/// `sievegate quarantine ...`: every failure is one message on stderr and exit status 1.
pub fn quarantine(config: Option<PathBuf>, action: QuarantineAction) -> ExitCode {
    use std::io::IsTerminal;
    use std::io::Write;
    let Some(path) = config else {
        eprintln!("sievegate quarantine: -c/--config FILE is required");
        return ExitCode::FAILURE;
    };
    // Release runs the delivery pipeline, whose log lines (who released what, where it
    // went) belong on stderr like the server's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let services = match Services::open(config) {
        Ok(services) => Arc::new(services),
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = (|| -> Result<(), qcli::CliError> {
        let q = qcli::open(&services)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match action {
            QuarantineAction::List {
                json,
                since,
                virus,
                rcpt,
            } => {
                let filter = sievegate::state::QuarantineFilter {
                    since: since.as_deref().map(qcli::parse_date).transpose()?,
                    virus,
                    rcpt,
                    limit: None,
                };
                qcli::list(&q, &filter, json, &mut out)?;
            }
            QuarantineAction::Show { id, raw } => qcli::show(&q, &id, raw, &mut out)?,
            QuarantineAction::Release { id, rcpts, force } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(qcli::CliError::Runtime)?;
                let user = qcli::invoking_user();
                let released =
                    runtime.block_on(qcli::release(&services, &q, &id, &rcpts, force, &user))?;
                for r in &released {
                    writeln!(out, "{}: {}", r.rcpt, r.outcome.summary())?;
                }
                writeln!(out, "{id}: released by {user}")?;
            }
            QuarantineAction::Delete { id } => {
                qcli::delete(&q, &id)?;
                writeln!(out, "{id}: deleted")?;
            }
            QuarantineAction::Purge { older_than } => {
                let tty = std::io::stderr().is_terminal();
                let summary = qcli::purge(
                    &q,
                    older_than,
                    std::time::SystemTime::now(),
                    services.config.rate_keep(),
                    |done, total| {
                        if tty && (done % 100 == 0 || done == total) {
                            eprint!("\rpurging: {done}/{total}");
                            if done == total {
                                eprintln!();
                            }
                        }
                    },
                )?;
                writeln!(out, "{} entries purged", summary.purged.removed)?;
                let swept = summary.swept;
                if swept.orphan_files > 0 || swept.dangling_entries > 0 {
                    writeln!(
                        out,
                        "{} orphaned files and {} index entries without a file removed",
                        swept.orphan_files, swept.dangling_entries
                    )?;
                }
                writeln!(
                    out,
                    "{} cache and {} rate rows expired",
                    summary.expired.cache, summary.expired.rate
                )?;
                for (id, error) in &summary.purged.failed {
                    eprintln!(
                        "sievegate quarantine: cannot purge {}: {}",
                        qcli::terminal(id),
                        qcli::terminal(error)
                    );
                }
                let failures = summary.purged.failed.len() + swept.failed;
                if failures > 0 {
                    return Err(qcli::CliError::Incomplete(failures));
                }
            }
        }
        out.flush()?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            ExitCode::FAILURE
        }
    }
}
