//! `[server] spool_threshold`, `spool_dir` and `max_parse_memory`: which messages are
//! spooled to disk while they arrive, and where (see [`crate::spool`]); how many bytes of
//! messages are parsed at once ([`crate::delivery::budget`]). Kept apart from `mod.rs` so
//! the memory rules read in one place.

use std::path::Path;

use crate::spool::SpoolConfig;

/// 1 MiB: most mail stays in memory; what could add up (attachments) goes to disk.
pub(super) fn default_threshold() -> u64 {
    1024 * 1024
}

/// 256 MiB: two 50 MB messages (or sixty 2 MB ones) parsed at once; more wait their turn.
pub(super) fn default_max_parse_memory() -> u64 {
    256 * 1024 * 1024
}

/// Where spool files go without `spool_dir`: under the state directory when there is one
/// (it is ours and on a disk), else `/var/tmp/sievegate` (`/var/tmp`, unlike `/tmp`, is
/// not a tmpfs on common systems: a tmpfs would keep the spool in memory again).
const FALLBACK_DIR: &str = "/var/tmp/sievegate";

/// The validated spool settings; problems are added to `problems`.
pub(super) fn validate(
    threshold: u64,
    dir: Option<&str>,
    base: &Path,
    state_dir: Option<&Path>,
    problems: &mut Vec<String>,
) -> SpoolConfig {
    let dir = match dir {
        Some("") => {
            problems.push("server.spool_dir: must not be empty".to_string());
            FALLBACK_DIR.into()
        }
        Some(dir) => super::resolve(base, dir),
        None => match state_dir {
            Some(state) => state.join("spool"),
            None => FALLBACK_DIR.into(),
        },
    };
    SpoolConfig {
        threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
        dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_dir_table() {
        let base = Path::new("/etc/sievegate");
        let state = Path::new("/var/lib/sievegate");
        // (spool_dir, state dir, expected dir, problem)
        let cases: [(Option<&str>, Option<&Path>, &str, bool); 5] = [
            (None, None, "/var/tmp/sievegate", false),
            (None, Some(state), "/var/lib/sievegate/spool", false),
            (Some("/srv/spool"), Some(state), "/srv/spool", false),
            (Some("spool"), None, "/etc/sievegate/spool", false),
            (Some(""), None, "/var/tmp/sievegate", true),
        ];
        for (dir, state_dir, want, problem) in cases {
            let mut problems = Vec::new();
            let got = validate(42, dir, base, state_dir, &mut problems);
            assert_eq!(got.dir, Path::new(want), "{dir:?}");
            assert_eq!(got.threshold, 42);
            assert_eq!(!problems.is_empty(), problem, "{dir:?}: {problems:?}");
        }
    }
}
