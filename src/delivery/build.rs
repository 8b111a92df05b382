//! The runtime objects a validated `Config` describes. The composition root: here, and
//! only here, configuration values become feature objects, so `config` imports no feature
//! module and `scan` and `filter` import no `config`.

use std::sync::Arc;

use crate::config::{Config, PostgresConfig, ScannerConfig, SieveConfig};
use crate::filter::{FilterConfig, VacationPeriods};
use crate::scan::Scanner;
use crate::state::{
    MemoryState, PostgresOptions, PostgresState, SqliteState, StateError, StateStore,
};

/// The state store `[state]` describes: PostgreSQL with `backend = "postgres"` (the schema
/// migrated, or checked again at first use when the server cannot be reached now), SQLite
/// in `dir`, or memory without either.
pub fn state(config: &Config) -> Result<Arc<dyn StateStore>, StateError> {
    Ok(match (&config.state.postgres, &config.state.dir) {
        (Some(pg), _) => Arc::new(PostgresState::open(&postgres_options(pg))?),
        (None, Some(dir)) => Arc::new(SqliteState::open(dir)?),
        (None, None) => Arc::new(MemoryState::bounded(
            config.state.memory_max_entries,
            config.rate_keep(),
        )),
    })
}

/// The driver's options from the validated `[state]` keys.
pub fn postgres_options(pg: &PostgresConfig) -> PostgresOptions {
    PostgresOptions {
        url: pg.url.clone(),
        pool_size: pg.pool_size,
        connect_timeout: pg.connect_timeout,
        statement_timeout: pg.statement_timeout,
    }
}

/// The scanner `[scanner]` describes (address, timeout, prefixes, size limit, enabled,
/// FILDES).
pub fn scanner(config: &ScannerConfig) -> Scanner {
    Scanner::new(
        config.clamd.clone(),
        config.timeout,
        config.heuristic_prefixes.clone(),
    )
    .with_max_scan_size(config.max_scan_size)
    .with_enabled(config.enabled)
    .with_pass_fd(config.pass_fd)
}

/// The filter settings of a validated `[sieve]` section, with `hostname` for the
/// environment items and generated Message-IDs.
pub fn filter_config(sieve: &SieveConfig, hostname: &str) -> FilterConfig {
    FilterConfig {
        before: sieve.before.clone(),
        personal: sieve.personal.clone(),
        after: sieve.after.clone(),
        default: sieve.default.clone(),
        hostname: hostname.to_string(),
        cpu_limit: sieve.cpu_limit,
        max_run_time: sieve.max_run_time,
        spam_score: sieve.spam_score.clone(),
        special_use: sieve.special_use.clone(),
        namespace_prefix: sieve.namespace_prefix.clone(),
        max_redirects: sieve.max_redirects,
        vacation: VacationPeriods {
            min_days: sieve.vacation_days.0,
            default_days: sieve.vacation_days.1,
            max_days: sieve.vacation_days.2,
        },
        scripts: sieve.scripts.clone(),
    }
}
