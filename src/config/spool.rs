//! `[server] spool_threshold`, `spool_dir` and `max_parse_memory`: which messages are
//! spooled to disk while they arrive, and where (see [`crate::spool`]); how many bytes of
//! messages are parsed at once ([`crate::delivery::budget`]). Kept apart from `mod.rs` so
//! the memory rules read in one place. The plain [`SpoolConfig`] and the spool directory's
//! safety rule ([`check_dir`]) live here, below the spool that applies them at each file,
//! so the configuration imports no feature module.

use std::path::{Path, PathBuf};

/// Where and from which size messages are spooled (`[server] spool_threshold`,
/// `spool_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Messages larger than this many bytes go to a file; smaller ones stay in memory.
    pub threshold: usize,
    /// The directory of the spool files; created (0700) when missing.
    pub dir: PathBuf,
}

/// Why an existing spool directory is refused, like OpenSSH's `StrictModes`: message bytes
/// go there, so nobody but us (or root) may own it, and nobody else may add, rename or
/// remove entries in it. `/var/tmp/sievegate`, the fallback, sits in a world-writable
/// directory where any local user can create it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DirProblem {
    /// A symbolic link (it could point anywhere) or not a directory at all.
    #[error("not a directory (or a symbolic link); remove it or set [server] spool_dir")]
    NotADirectory,
    /// Owned by another user than ours and not by root.
    #[error(
        "owned by uid {owner}, not by us (uid {us}) or root; remove it or set [server] spool_dir"
    )]
    Owner {
        /// The directory's owner.
        owner: u32,
        /// Our effective uid.
        us: u32,
    },
    /// Group- or world-writable without the sticky bit: others could swap its entries.
    #[error("mode {mode:04o} is group- or world-writable without the sticky bit; chmod 0700 it")]
    Writable {
        /// The permission bits.
        mode: u32,
    },
}

/// Checks an existing spool directory's metadata (from `lstat`, so a link is seen as one)
/// for our effective uid `us`.
pub fn check_dir(meta: &std::fs::Metadata, us: u32) -> Result<(), DirProblem> {
    use std::os::unix::fs::MetadataExt;
    check_mode(meta.file_type().is_dir(), meta.uid(), meta.mode(), us)
}

/// [`check_dir`] on plain values (the table test's seam).
fn check_mode(is_dir: bool, owner: u32, mode: u32, us: u32) -> Result<(), DirProblem> {
    if !is_dir {
        return Err(DirProblem::NotADirectory);
    }
    if owner != us && owner != 0 {
        return Err(DirProblem::Owner { owner, us });
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(DirProblem::Writable { mode });
    }
    Ok(())
}

/// Checks `dir` when it exists ([`check_dir`] for this process's effective uid); a missing
/// directory is fine (it is created 0700, ours).
pub fn check_existing_dir(dir: &Path) -> Result<(), DirProblem> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => check_dir(&meta, nix::unistd::geteuid().as_raw()),
        Err(_) => Ok(()),
    }
}

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

/// Valid but self-defeating spool settings, for `check-config` and the startup log. The
/// directory's owner and mode are checked for the uid running this (the server refuses an
/// unsafe one at each spool file, [`check_existing_dir`]); a warning, not a
/// problem, since `check-config` may run as another user than the server.
pub(super) fn warnings(spool: &SpoolConfig, max_message_size: usize) -> Vec<String> {
    if spool.threshold >= max_message_size {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    if let Err(why) = check_existing_dir(&spool.dir) {
        warnings.push(format!(
            "server.spool_dir: {} is refused: {why}; messages above spool_threshold get 451 until it is fixed",
            spool.dir.display()
        ));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(fs @ ("tmpfs" | "ramfs")) = fs_type(&mountinfo, &spool.dir) {
        warnings.push(format!(
            "server.spool_dir: {} is on a {fs}: spooled messages stay in memory; put it on a disk",
            spool.dir.display()
        ));
    }
    warnings
}

/// The file system type of the mount holding `dir` (the longest mount point it is under),
/// from the text of `/proc/self/mountinfo` (proc(5): field 5 is the mount point, the type
/// follows the ` - ` separator).
fn fs_type<'a>(mountinfo: &'a str, dir: &Path) -> Option<&'a str> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            let mount_point = fields.split(' ').nth(4)?;
            let fs = rest.split(' ').next()?;
            // Spaces and the like are octal escapes there (\040); such mount points are
            // compared as written, which only ever misses a match.
            Path::new(mount_point)
                .is_absolute()
                .then_some((Path::new(mount_point), fs))
        })
        .filter(|(mount_point, _)| dir.starts_with(mount_point))
        .max_by_key(|(mount_point, _)| mount_point.components().count())
        .map(|(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_dir_modes_table() {
        let us = 1000;
        // (is a directory, owner, mode, verdict)
        let cases = [
            (true, us, 0o40700, Ok(())),
            (true, 0, 0o40755, Ok(())),
            (true, us, 0o41777, Ok(())),
            (true, us, 0o40770, Err(DirProblem::Writable { mode: 0o770 })),
            (true, us, 0o40702, Err(DirProblem::Writable { mode: 0o702 })),
            (
                true,
                1001,
                0o40700,
                Err(DirProblem::Owner { owner: 1001, us }),
            ),
            (false, us, 0o120777, Err(DirProblem::NotADirectory)),
        ];
        for (is_dir, owner, mode, want) in cases {
            assert_eq!(check_mode(is_dir, owner, mode, us), want, "{mode:o}");
        }
    }

    /// A spool directory someone else prepared (the `/var/tmp/sievegate` attack) is refused
    /// with a message that says why, and nothing is written into it.

    #[test]
    fn fs_type_table() {
        let mountinfo = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:22 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
26 22 0:23 / /var/tmp/ram rw shared:6 - ramfs none rw
27 22 0:24 / /tmpdisk rw shared:7 - xfs /dev/vdb rw
";
        let cases = [
            ("/var/tmp/sievegate", Some("ext4")),
            ("/tmp/spool", Some("tmpfs")),
            ("/tmp", Some("tmpfs")),
            ("/tmpdisk/spool", Some("xfs")),
            ("/var/tmp/ram/x", Some("ramfs")),
        ];
        for (dir, want) in cases {
            assert_eq!(fs_type(mountinfo, Path::new(dir)), want, "{dir}");
        }
        assert_eq!(fs_type("", Path::new("/x")), None);
    }

    #[test]
    fn an_unsafe_spool_dir_is_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("sievegate");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let spool = SpoolConfig {
            threshold: 1,
            dir: dir.clone(),
        };
        let warnings = warnings(&spool, 100);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("is refused") && w.contains("chmod 0700")),
            "{warnings:?}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(!super::warnings(&spool, 100)
            .iter()
            .any(|w| w.contains("is refused")));
    }

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
