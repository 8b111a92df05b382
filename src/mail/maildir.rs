//! Maildir notions the configuration and the store share, as plain values: who owns what
//! the store creates ([`Ownership`], applied by `store::owner`), and which Sieve folder
//! names can be Maildir++ folders ([`check_folder_name`], used by `store::Folder`).

use std::fmt;

/// The owner and modes for everything the store creates, like Dovecot's
/// `mail_uid`/`mail_gid`. `Default`: the process's own user and group, files 0600,
/// directories 0700 (Dovecot's defaults too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Owner uid; `None`: leave it to the creating process.
    pub uid: Option<u32>,
    /// Group gid; `None`: leave it to the creating process.
    pub gid: Option<u32>,
    /// Permission bits of files (messages, marker and Dovecot's control files).
    pub file_mode: u32,
    /// Permission bits of directories.
    pub dir_mode: u32,
}

/// Mail is private: Dovecot creates its files 0600 and directories 0700 by default too.
pub const DEFAULT_FILE_MODE: u32 = 0o600;
/// See [`DEFAULT_FILE_MODE`].
pub const DEFAULT_DIR_MODE: u32 = 0o700;

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            uid: None,
            gid: None,
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
        }
    }
}

impl Ownership {
    /// True when something differs from the defaults, so created entries need a chown or
    /// chmod after creation (the umask may have taken bits off a wider mode).
    pub fn is_custom(&self) -> bool {
        *self != Ownership::default()
    }
}

/// Why a Sieve folder name cannot be a Maildir++ folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderError {
    /// Empty name or an empty hierarchy level (`a..b`, trailing `.`).
    Empty,
    /// A leading `.`: would name a hidden directory or escape the `.Name` scheme.
    LeadingDot,
    /// `/`, `\`, NUL or a control character.
    BadCharacter,
    /// Not `INBOX` and not under the namespace prefix (`INBOX.`): Dovecot has no namespace
    /// for it and refuses it.
    OutsideNamespace,
}

impl fmt::Display for FolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FolderError::Empty => "empty folder name or hierarchy level",
            FolderError::LeadingDot => "folder name starts with '.'",
            FolderError::BadCharacter => "folder name contains '/', '\\' or a control character",
            FolderError::OutsideNamespace => "folder name is outside the namespace prefix",
        })
    }
}

impl std::error::Error for FolderError {}

/// The hierarchy levels of a Sieve folder name (`.` is the separator) under the namespace
/// `prefix` (`[mailbox] namespace_prefix`), checked so that no level can leave the Maildir
/// (no `/`, `\`, control character, empty level or leading `.`). `INBOX` (any case) is the
/// root (no levels). As in Dovecot's namespace: with the empty prefix (Dovecot's default)
/// `INBOX.Sub` is a folder of its own, named `INBOX.Sub` (levels `INBOX`, `Sub`, stored in
/// `.INBOX.Sub`); with `INBOX.` (Courier style) the prefix is not part of the folder name,
/// so `INBOX.Sub` is `Sub` (`.Sub`), and a name without the prefix belongs to no namespace
/// and is refused, as Dovecot refuses it.
pub fn check_folder_name<'a>(name: &'a str, prefix: &str) -> Result<Vec<&'a str>, FolderError> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok(Vec::new());
    }
    let name = match name.get(..prefix.len()) {
        Some(head) if !prefix.is_empty() && head.eq_ignore_ascii_case(prefix) => {
            &name[prefix.len()..]
        }
        _ if !prefix.is_empty() => return Err(FolderError::OutsideNamespace),
        _ => name,
    };
    if name.is_empty() {
        return Err(FolderError::Empty);
    }
    if name.starts_with('.') {
        return Err(FolderError::LeadingDot);
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(FolderError::BadCharacter);
    }
    let levels: Vec<&str> = name.split('.').collect();
    if levels.iter().any(|l| l.is_empty()) {
        return Err(FolderError::Empty);
    }
    Ok(levels)
}
