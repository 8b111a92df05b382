//! The runtime objects a validated `Config` describes. The composition root: here, and
//! only here, configuration values become feature objects, so `config` imports no feature
//! module and `scan` and `filter` import no `config`.

use crate::config::{ScannerConfig, SieveConfig};
use crate::filter::{FilterConfig, VacationPeriods};
use crate::scan::Scanner;

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
        max_redirects: sieve.max_redirects,
        vacation: VacationPeriods {
            min_days: sieve.vacation_days.0,
            default_days: sieve.vacation_days.1,
            max_days: sieve.vacation_days.2,
        },
        scripts: sieve.scripts.clone(),
    }
}
