//! [`StoreError`]: why a message could not be stored, and the errno classification the
//! caller's reply and INBOX fallback rest on.

use std::io;
use std::path::{Path, PathBuf};

use super::Folder;

/// The longest file name (one path component) Linux file systems accept: the `.A.B`
/// directory of a folder must fit, in modified UTF-7.
pub const NAME_MAX: usize = 255;

/// Why a message could not be stored. Every variant leaves nothing behind.
///
/// Errors say *where* they happened: a failure inside a sub-folder (its directory, its
/// creation, its subscription) is wrapped in [`StoreError::InFolder`], so the caller can
/// tell "this folder is unusable, store into INBOX instead" ([`StoreError::is_folder_problem`])
/// from "the Maildir itself is unusable, try again later".
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The sub-folder does not exist and the caller did not ask to create it.
    #[error("folder \"{0}\" does not exist")]
    FolderMissing(Folder),
    /// The folder's directory name (`.A.B`, modified UTF-7) is longer than `NAME_MAX` (255):
    /// no retry can ever create it.
    #[error("folder \"{0}\": directory name longer than {NAME_MAX} bytes")]
    FolderNameTooLong(Folder),
    /// Something failed inside a sub-folder (not INBOX, not the Maildir root).
    #[error("folder \"{folder}\": {source}")]
    InFolder {
        /// The sub-folder the store was for.
        folder: Folder,
        /// What failed there (an [`StoreError::Io`]).
        #[source]
        source: Box<StoreError>,
    },
    /// A file-system call failed; `op` names the call, `path` what it was called on.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The failed call (`create`, `write`, `fsync`, `rename`, `mkdir`, …).
        op: &'static str,
        /// The file or directory it was called on.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// [`super::Maildir::remove`] was handed a path that is not a message file of this Maildir.
    #[error("refusing to remove {}: not a message file below {}", path.display(), root.display())]
    OutsideRoot {
        /// The path that was refused.
        path: PathBuf,
        /// This Maildir's root.
        root: PathBuf,
    },
}

impl StoreError {
    /// Wraps an I/O error that happened inside `folder` as [`StoreError::InFolder`]; INBOX
    /// errors and errors that already say where they happened are returned unchanged.
    pub(crate) fn in_folder(folder: &Folder, error: StoreError) -> StoreError {
        match error {
            StoreError::Io { .. } if !folder.is_inbox() => StoreError::InFolder {
                folder: folder.clone(),
                source: Box::new(error),
            },
            other => other,
        }
    }

    /// True when the file system or the user's quota is full (`ENOSPC`, `EDQUOT`): worth its
    /// own enhanced status code (RFC 3463 4.2.2 / 4.3.1) and its own log wording. Also
    /// inside a folder: the disk is just as full for INBOX.
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => is_no_space_error(source),
            StoreError::InFolder { source, .. } => source.is_no_space(),
            _ => false,
        }
    }

    /// True when the user's quota (`EDQUOT`) rather than the whole file system is full.
    pub fn is_quota_exceeded(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.raw_os_error() == Some(libc::EDQUOT)
                    || source.kind() == io::ErrorKind::QuotaExceeded
            }
            StoreError::InFolder { source, .. } => source.is_quota_exceeded(),
            _ => false,
        }
    }

    /// True when this sub-folder cannot take the message and retrying will not change that:
    /// it does not exist (without `:create`), its name is too long, or a call inside it
    /// failed with a permanent errno (`is_permanent_error`). The caller stores into INBOX
    /// instead, as Dovecot/Pigeonhole do. False for anything at INBOX or the Maildir root,
    /// for a full disk or quota (INBOX is on the same disk) and for transient errors
    /// (`EIO`, `EMFILE`, a lock timeout, ...): those are worth a 4xx and a retry.
    pub fn is_folder_problem(&self) -> bool {
        match self {
            StoreError::FolderMissing(_) | StoreError::FolderNameTooLong(_) => true,
            StoreError::InFolder { source, .. } => match source.as_ref() {
                StoreError::Io { source, .. } => is_permanent_error(source),
                other => other.is_folder_problem(),
            },
            _ => false,
        }
    }
}

/// Errnos that say "this path can never work as it is" (permissions, a read-only mount of
/// that folder, a file where a directory belongs, a name too long or invalid for this file
/// system, a symlink loop, too many sub-directories). `ENOSPC`/`EDQUOT` are not among them.
fn is_permanent_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::EACCES
                | libc::EPERM
                | libc::EROFS
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::EEXIST
                | libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::ELOOP
                | libc::EMLINK
        )
    )
}

/// The classification behind [`StoreError::is_no_space`]: errno first (what the kernel said),
/// the portable kinds second (errors built without an errno).
pub(crate) fn is_no_space_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            err.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// Builds a `map_err` closure that records which call failed on which path.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}
