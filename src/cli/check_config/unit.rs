//! The systemd unit `serve` runs under, as far as file access goes: `User=`, `Group=`,
//! `SupplementaryGroups=` and the directories systemd creates for it (`RuntimeDirectory=`,
//! `StateDirectory=`), from the unit file and its drop-ins (`systemctl edit` writes
//! `/etc/systemd/system/sievegate.service.d/override.conf`).

use std::path::{Path, PathBuf};

/// The unit's name, as `systemctl edit` takes it.
pub const UNIT_NAME: &str = "sievegate.service";

/// Where systemd looks for units, most important first (systemd.unit(5)).
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// What the unit says about who runs `serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// The unit file read.
    pub path: PathBuf,
    /// Its drop-ins, in the order applied.
    pub dropins: Vec<PathBuf>,
    /// The unit's name (`sievegate.service`): for `systemctl edit NAME`.
    pub name: String,
    /// `User=`.
    pub user: Option<String>,
    /// `Group=`.
    pub group: Option<String>,
    /// `SupplementaryGroups=`.
    pub supplementary: Vec<String>,
    /// Directories systemd creates for the unit's user at start: `/run/X` of
    /// `RuntimeDirectory=X`, `/var/lib/X` of `StateDirectory=X`.
    pub created: Vec<PathBuf>,
    /// The configuration file of `ExecStart=` (`-c FILE`).
    pub config: Option<PathBuf>,
    /// `ProtectSystem=` (`strict`: everything read-only but the writable paths).
    pub protect_system: String,
    /// `ProtectHome=` (`yes`, `tmpfs`: `/home`, `/root`, `/run/user` hidden; `read-only`).
    pub protect_home: String,
    /// `PrivateTmp=yes`: `/tmp` and `/var/tmp` are the unit's own.
    pub private_tmp: bool,
    /// `ReadWritePaths=`.
    pub read_write: Vec<PathBuf>,
}

impl Unit {
    /// The installed `sievegate.service` and its drop-ins; `None` when none is installed.
    pub fn installed() -> Option<Unit> {
        let path = UNIT_DIRS
            .iter()
            .map(|d| Path::new(d).join(UNIT_NAME))
            .find(|p| p.is_file())?;
        Some(Unit::read(
            &path,
            UNIT_DIRS.iter().map(PathBuf::from).collect(),
        ))
    }

    /// The unit file at `path` with the drop-ins of `<path>.d/` and of systemd's own
    /// directories for its name.
    pub fn from_file(path: &Path) -> Unit {
        let mut dirs: Vec<PathBuf> = UNIT_DIRS.iter().map(PathBuf::from).collect();
        if let Some(parent) = path.parent() {
            dirs.insert(0, parent.to_path_buf());
        }
        Unit::read(path, dirs)
    }

    /// Reads `path`, then the `*.conf` drop-ins in `<dir>/<name>.d/` of `dirs` (most
    /// important first: a drop-in's file name in an earlier directory hides the same name
    /// in a later one), applied in file-name order, as systemd does.
    fn read(path: &Path, dirs: Vec<PathBuf>) -> Unit {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| UNIT_NAME.to_string());
        let mut unit = Unit {
            path: path.to_path_buf(),
            name: name.clone(),
            ..Unit::default()
        };
        unit.apply(&std::fs::read_to_string(path).unwrap_or_default());
        let mut dropins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> =
            std::collections::BTreeMap::new();
        for dir in dirs.iter().rev() {
            let Ok(entries) = std::fs::read_dir(dir.join(format!("{name}.d"))) else {
                continue;
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "conf") {
                    dropins.insert(entry.file_name(), p);
                }
            }
        }
        for p in dropins.into_values() {
            unit.apply(&std::fs::read_to_string(&p).unwrap_or_default());
            unit.dropins.push(p);
        }
        unit
    }

    /// Applies one file's `[Service]` settings (an empty list assignment resets the list).
    fn apply(&mut self, text: &str) {
        let mut service = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                service = line == "[Service]";
                continue;
            }
            if !service || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let words = || value.split_whitespace().map(str::to_string);
            match key.trim() {
                "User" => self.user = (!value.is_empty()).then(|| value.to_string()),
                "Group" => self.group = (!value.is_empty()).then(|| value.to_string()),
                "SupplementaryGroups" if value.is_empty() => self.supplementary.clear(),
                "SupplementaryGroups" => self.supplementary.extend(words()),
                "RuntimeDirectory" => self
                    .created
                    .extend(words().map(|w| Path::new("/run").join(w))),
                "ExecStart" if !value.is_empty() => self.config = exec_config(value),
                "ProtectSystem" => self.protect_system = value.to_string(),
                "ProtectHome" => self.protect_home = value.to_string(),
                "PrivateTmp" => self.private_tmp = matches!(value, "yes" | "true" | "1" | "on"),
                "ReadWritePaths" if value.is_empty() => self.read_write.clear(),
                "ReadWritePaths" => self
                    .read_write
                    .extend(words().map(|w| PathBuf::from(w.trim_start_matches(['-', '+'])))),
                "StateDirectory" => self
                    .created
                    .extend(words().map(|w| Path::new("/var/lib").join(w))),
                _ => {}
            }
        }
    }

    /// `systemctl edit NAME`, with the unit's name.
    pub fn edit_command(&self) -> String {
        match self.name.strip_suffix(".service") {
            Some(short) => format!("systemctl edit {short}"),
            None => format!("systemctl edit {}", self.name),
        }
    }

    /// True when the unit's `serve` reads `config` (the same file, however named).
    pub fn runs(&self, config: &Path) -> bool {
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        self.config
            .as_deref()
            .is_some_and(|c| canonical(c) == canonical(config))
    }

    /// Why the unit's sandbox keeps `serve` from writing `path` (`write`) or from seeing it
    /// at all; `None` when it does not. systemd.exec(5): `ProtectHome=` hides (or, with
    /// `read-only`, protects) `/home`, `/root` and `/run/user`; `ProtectSystem=strict`
    /// makes everything read-only but `ReadWritePaths=`, the unit's own directories and,
    /// with `PrivateTmp=`, `/tmp` and `/var/tmp`; `full`/`yes` protect `/usr`, `/boot`,
    /// `/efi` (and `/etc` for `full`).
    pub fn sandbox(&self, path: &Path, write: bool) -> Option<String> {
        let under = |roots: &[&str]| roots.iter().any(|r| path.starts_with(r));
        let home = ["/home", "/root", "/run/user"];
        match self.protect_home.as_str() {
            "yes" | "true" | "tmpfs" if under(&home) => {
                return Some(format!(
                    "ProtectHome={} hides /home, /root and /run/user from the unit",
                    self.protect_home
                ))
            }
            "read-only" if write && under(&home) => {
                return Some(
                    "ProtectHome=read-only makes /home, /root and /run/user read-only for the unit"
                        .to_string(),
                )
            }
            _ => {}
        }
        if !write
            || self
                .read_write
                .iter()
                .chain(&self.created)
                .any(|w| path.starts_with(w))
        {
            return None;
        }
        let read_only = match self.protect_system.as_str() {
            "strict" => {
                let tmp = self.private_tmp && under(&["/tmp", "/var/tmp"]);
                !tmp && !under(&["/dev", "/proc", "/sys"])
            }
            "full" => under(&["/usr", "/boot", "/efi", "/etc"]),
            "yes" | "true" => under(&["/usr", "/boot", "/efi"]),
            _ => false,
        };
        read_only.then(|| {
            format!(
                "ProtectSystem={} makes it read-only for the unit",
                self.protect_system
            )
        })
    }

    /// True when `path` lies in the unit's private `/tmp` or `/var/tmp` (`PrivateTmp=`):
    /// what the unit puts there no other process sees, and it does not see theirs.
    pub fn private(&self, path: &Path) -> bool {
        self.private_tmp && (path.starts_with("/tmp") || path.starts_with("/var/tmp"))
    }

    /// True when systemd creates `dir` for the unit's user at start.
    pub fn creates(&self, dir: &Path) -> bool {
        self.created.iter().any(|c| c == dir)
    }
}

/// The `-c FILE`, `--config FILE` or `--config=FILE` of an `ExecStart=` command line.
fn exec_config(command: &str) -> Option<PathBuf> {
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        if word == "-c" || word == "--config" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_unit_and_a_dropin() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("sievegate.service");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/sievegate.service"),
            &path,
        )
        .expect("copy");
        let unit = Unit::from_file(&path);
        assert_eq!(unit.user.as_deref(), Some("sievegate"));
        assert_eq!(unit.group.as_deref(), Some("sievegate"));
        assert!(unit.supplementary.is_empty());
        assert!(unit.creates(Path::new("/run/sievegate")));
        assert!(unit.creates(Path::new("/var/lib/sievegate")));
        assert_eq!(unit.edit_command(), "systemctl edit sievegate");
        // (path, write, refused)
        for (path, write, refused) in [
            ("/var/vmail/example.test/a/Maildir", true, false),
            ("/var/lib/sievegate/spool", true, false),
            ("/run/sievegate", true, false),
            ("/var/tmp/sievegate", true, false),
            ("/srv/mail/a", true, true),
            ("/srv/mail/a", false, false),
            ("/etc/dovecot/users", false, false),
            ("/home/alice/Maildir", true, true),
            ("/home/alice/.dovecot.sieve", false, true),
        ] {
            assert_eq!(
                unit.sandbox(Path::new(path), write).is_some(),
                refused,
                "{path}"
            );
        }
        assert_eq!(
            unit.config.as_deref(),
            Some(Path::new("/etc/sievegate/sievegate.toml"))
        );

        let dropins = tmp.path().join("sievegate.service.d");
        std::fs::create_dir(&dropins).expect("mkdir");
        std::fs::write(
            dropins.join("a.conf"),
            "[Service]\nSupplementaryGroups=postfix\nSupplementaryGroups=clamav dovecot\n",
        )
        .expect("write");
        std::fs::write(
            dropins.join("b.conf"),
            "[Unit]\nUser=nobody\n[Service]\nSupplementaryGroups=\nSupplementaryGroups=postfix\n",
        )
        .expect("write");
        std::fs::write(dropins.join("c.txt"), "[Service]\nUser=nobody\n").expect("write");
        let unit = Unit::from_file(&path);
        assert_eq!(unit.supplementary, vec!["postfix".to_string()]);
        assert_eq!(
            unit.user.as_deref(),
            Some("sievegate"),
            "[Unit] and .txt ignored"
        );
        assert_eq!(unit.dropins.len(), 2);
    }
}
