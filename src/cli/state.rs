//! `sievegate state status|migrate`: the state store's schema version (found and known)
//! and its rows, and the migration the server otherwise runs at startup.

use std::path::PathBuf;
use std::process::ExitCode;

use sievegate::config::Config;
use sievegate::state::{PostgresState, SqliteState, StateError, StateStore};

use crate::StateAction;

/// `sievegate state ...`: one report on stdout, or one message on stderr and exit 1.
pub fn state(config: Option<PathBuf>, action: StateAction) -> ExitCode {
    let Some(path) = config else {
        eprintln!("sievegate state: -c/--config FILE is required");
        return ExitCode::FAILURE;
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&config, action) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sievegate state: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The report, as printed: `key: value` lines.
fn run(config: &Config, action: StateAction) -> Result<String, StateError> {
    let mut out = String::new();
    let (store, found, known): (Box<dyn StateStore>, i64, i64) =
        match (&config.state.postgres, &config.state.dir) {
            (Some(pg), _) => {
                let options = sievegate::delivery::build::postgres_options(pg);
                let store = PostgresState::connect(&options)?;
                out.push_str(&format!(
                    "backend: postgres\nlocation: {}\n",
                    store.location()
                ));
                let status = match action {
                    StateAction::Status => store.schema_status()?,
                    StateAction::Migrate => {
                        let before = store.migrate()?;
                        out.push_str(&format!(
                            "migrated: from {} to {}\n",
                            before.found, before.known
                        ));
                        store.schema_status()?
                    }
                };
                if status.found > status.known {
                    return Err(StateError::SchemaTooNew {
                        path: store.location().to_string(),
                        found: status.found,
                        known: status.known,
                    });
                }
                (Box::new(store), status.found, status.known)
            }
            (None, Some(dir)) => {
                // SQLite migrates as it opens (one exclusive transaction); a newer file is
                // refused there.
                let store = SqliteState::open(dir)?;
                out.push_str(&format!(
                    "backend: sqlite\nlocation: {}\n",
                    store.path().display()
                ));
                let found = store.schema_version()?;
                (
                    Box::new(store),
                    found,
                    sievegate::state::sqlite::KNOWN_SCHEMA,
                )
            }
            (None, None) => {
                out.push_str(
                "backend: memory (no [state] dir nor backend = \"postgres\": nothing is kept)\n",
            );
                return Ok(out);
            }
        };
    out.push_str(&format!("schema: {found} (this sievegate: {known})\n"));
    if found < known {
        out.push_str(
            "pending: run `sievegate state migrate` (the server also migrates at startup)\n",
        );
        return Ok(out);
    }
    let sizes = store.sizes()?;
    out.push_str(&format!(
        "rows: cache {} rate {} queue {} quarantine {}\n",
        sizes.cache, sizes.rate, sizes.queue, sizes.quarantine
    ));
    Ok(out)
}
