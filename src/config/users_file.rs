//! `[mailbox] users_file`: Dovecot's passwd-file format parsed into a [`UserTable`]. Plain
//! data and its parser, read when the configuration is (so `check-config` reports a bad
//! line) and by `users::UsersFile`, which re-reads the file when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One user of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The home directory (absolute), when the 6th field is not empty: `%h` in templates.
    pub home: Option<PathBuf>,
    /// The password field (2nd), when not empty: `{SCHEME}hash` for logins
    /// (`auth::password`); its `Debug` never shows it.
    pub password: Option<StoredPassword>,
    /// The extra field `sievegate_digest=no` (8th field, Dovecot's space-separated
    /// `key=value` extra fields): no quarantine digest for this user. A user's opt-out
    /// lives here, beside the account, so the admin edits one file (Dovecot passes unknown
    /// extra fields on as harmless userdb settings).
    pub digest_opt_out: bool,
}

/// A passwd-file password field as written (`{SHA512-CRYPT}$6$...`). Kept out of `Debug`
/// output so that no log line or panic message carries a hash (or a `{PLAIN}` password).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword(String);

impl StoredPassword {
    /// Wraps a password field.
    pub fn new(field: impl Into<String>) -> StoredPassword {
        StoredPassword(field.into())
    }

    /// The field, for the one place that checks a password against it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredPassword(..)")
    }
}

/// The parsed file: lowercased `user@domain` or bare `user` → [`User`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserTable {
    users: HashMap<String, User>,
}

/// Why a users file cannot be used. The line number is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read (or is not UTF-8).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a passwd-file entry we can use.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl UserTable {
    /// Parses passwd-file `text` (from `path`, for messages). Every line is checked; the
    /// first bad one is the error, so a half-edited file is never half-used.
    pub fn parse(text: &str, path: &Path) -> Result<UserTable, UsersError> {
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let bad = |message: String| UsersError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split(':');
            // `split` always yields a first item.
            let name = fields.next().unwrap_or_default().trim().to_lowercase();
            if name.is_empty() {
                return Err(bad("empty user name".into()));
            }
            if let Some(problem) = name_problem(&name) {
                return Err(bad(format!("user name {name:?}: {problem}")));
            }
            let password = fields
                .next()
                .filter(|p| !p.is_empty())
                .map(StoredPassword::new);
            // uid, gid, gecos, then home.
            let home = fields.nth(3).map(str::trim).filter(|h| !h.is_empty());
            // Then the shell and the extra fields.
            // Extra fields may hold ':' themselves (`mail=maildir:~/Maildir`).
            let extra: Vec<&str> = fields.skip(1).collect();
            let digest_opt_out = digest_opt_out(&extra.join(":"));
            let home = match home {
                None => None,
                Some(h) if !h.starts_with('/') => {
                    return Err(bad(format!("home {h:?} of {name} is not an absolute path")))
                }
                Some(h) if h.contains('%') || h.chars().any(char::is_control) => {
                    return Err(bad(format!(
                        "home {h:?} of {name} contains '%' or a control character"
                    )))
                }
                Some(h) => Some(PathBuf::from(h)),
            };
            // Dovecot uses the first entry of a name; so do we.
            users.entry(name).or_insert(User {
                password,
                home,
                digest_opt_out,
            });
        }
        Ok(UserTable { users })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<UserTable, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        UserTable::parse(&text, path)
    }

    /// The entry for `local@domain` (both already lowercased): the full address first, then
    /// a bare `local` (which the caller only asks about for a served domain).
    pub fn get(&self, local: &str, domain: &str) -> Option<&User> {
        self.users
            .get(&format!("{local}@{domain}"))
            .or_else(|| self.users.get(local))
    }

    /// How many entries the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file has no entry.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Every entry: (`user@domain` or bare `user`, its entry). For walking the Maildirs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &User)> {
        self.users.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// True when the extra fields (`key=value` separated by white space) say
/// `sievegate_digest=no` (or `false`, `0`, `off`).
fn digest_opt_out(extra: &str) -> bool {
    extra.split_whitespace().any(|field| {
        field.split_once('=').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("sievegate_digest")
                && ["no", "false", "0", "off"]
                    .iter()
                    .any(|n| v.eq_ignore_ascii_case(n))
        })
    })
}

/// What is wrong with a user name, if anything: it must name one mailbox (at most one `@`,
/// with something on both sides) and be safe in a path like a recipient's local part.
fn name_problem(name: &str) -> Option<&'static str> {
    let (local, domain) = match name.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (name, None),
    };
    if local.is_empty() || domain.is_some_and(|d| d.is_empty() || d.contains('@')) {
        return Some("must be user or user@domain");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains white space or a control character");
    }
    None
}
