//! Who owns what the store creates, like Dovecot's `mail_uid`/`mail_gid` (the usual
//! `vmail` user): with `[mailbox] owner`/`group` set and sievegate running as root, every
//! directory and file the store creates (Maildir root, `cur`/`new`/`tmp`, folders,
//! `maildirfolder`, messages, `dovecot-keywords`, `subscriptions`) gets that owner and the
//! configured mode. Without them, files belong to sievegate's own user, with 0600/0700.

use std::fs::File;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub use crate::mail::maildir::{Ownership, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};

/// What the store does with an [`Ownership`]: give what it just created its owner and mode.
pub(crate) trait Apply {
    /// See [`Ownership`]'s file mode.
    fn apply_file(&self, file: &File) -> io::Result<()>;
    /// See [`Ownership`]'s directory mode.
    fn apply_dir(&self, path: &Path) -> io::Result<()>;
}

impl Apply for Ownership {
    /// Gives a file this call just created its owner and mode (`fchown`, `fchmod`): on the
    /// descriptor, so a rename or symlink swapped in meanwhile cannot redirect it.
    fn apply_file(&self, file: &File) -> io::Result<()> {
        if !self.is_custom() {
            return Ok(());
        }
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::fchown(file, self.uid, self.gid)?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.file_mode))
    }

    /// Gives a directory this call just created its owner and mode. `lchown` so that a
    /// symlink put in its place is never followed.
    fn apply_dir(&self, path: &Path) -> io::Result<()> {
        if !self.is_custom() {
            return Ok(());
        }
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::lchown(path, self.uid, self.gid)?;
        }
        // Opened as a directory without following a symlink, then fchmod on it.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)?;
        dir.set_permissions(std::fs::Permissions::from_mode(self.dir_mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn default_ownership_touches_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f");
        let file = File::create(&path).expect("create");
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        Ownership::default().apply_file(&file).expect("apply");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o644, "left as it was");
    }

    #[test]
    fn custom_modes_are_applied_exactly() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let own = Ownership {
            file_mode: 0o660,
            dir_mode: 0o2770,
            ..Ownership::default()
        };
        let path = tmp.path().join("f");
        let file = File::create(&path).expect("create");
        own.apply_file(&file).expect("apply file");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        own.apply_dir(&dir).expect("apply dir");
        assert_eq!(
            std::fs::metadata(&path).expect("stat").mode() & 0o7777,
            0o660
        );
        assert_eq!(
            std::fs::metadata(&dir).expect("stat").mode() & 0o7777,
            0o2770
        );
        // A symlink in a directory's place is refused, not followed.
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        assert!(own.apply_dir(&link).is_err());
    }
}
