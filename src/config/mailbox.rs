//! `[mailbox]`: which recipients are local and where their Maildir lives; [`RawMailbox`]
//! as written, [`MailboxConfig`] validated. The owner and modes of what the store creates
//! are validated in `ownership.rs`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ownership, resolve, resolve_template, RawSieve};

/// `[mailbox]`: which recipients are local and where their Maildir lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub domains: Vec<String>,
    /// Dovecot-style template: `%u` user@domain, `%n` local part, `%d` domain.
    pub maildir: String,
    #[serde(default = "defaults::recipient_delimiter")]
    pub recipient_delimiter: String,
    /// Dovecot passwd-file listing the users that exist; others get 550 5.1.1 (after the
    /// scan, or at RCPT: `unknown_users`). Without it every local part at `domains` is
    /// accepted. Its home field is `%h`.
    pub users_file: Option<String>,
    /// Special-use flag → folder, for Sieve `fileinto :specialuse` (RFC 8579). Dovecot keeps
    /// special use in its config, not in the Maildir: repeat its `special_use` settings here.
    /// Default: Dovecot's `\Drafts` Drafts, `\Junk` Junk, `\Sent` Sent, `\Trash` Trash.
    pub special_use: Option<std::collections::BTreeMap<String, String>>,
    /// Concurrent LMTP deliveries per user, across sessions (Dovecot's
    /// `lmtp_user_concurrency_limit`); more get 451 4.3.0 at RCPT. 0: unlimited.
    #[serde(default = "defaults::user_concurrency_limit")]
    pub user_concurrency_limit: usize,
    /// Copies with the same bytes are hard links of one file; several recipients then
    /// share trace headers without Delivered-To (as Dovecot's LMTP).
    #[serde(default = "defaults::link_copies")]
    pub link_copies: bool,
    /// Owner (user name or uid) of what the store creates; needs root. Default: ours.
    pub owner: Option<String>,
    /// Group (name or gid) of what the store creates. Default: the owner's primary group.
    pub group: Option<String>,
    /// Mode of created files (octal).
    #[serde(default = "ownership::defaults::file_mode")]
    pub file_mode: String,
    /// Mode of created directories (octal).
    #[serde(default = "ownership::defaults::dir_mode")]
    pub dir_mode: String,
    /// When a recipient that `users_file` does not list is refused: `"after-scan"` (the
    /// default: accepted at RCPT, scanned, then 550 5.1.1 after DATA only when the message
    /// is not infected, so infected mail never bounces) or `"at-rcpt"` (550 5.1.1 at RCPT,
    /// before the scan: the MTA bounces infected mail to its forged sender too).
    #[serde(default)]
    pub unknown_users: UnknownUsers,
    /// The prefix of Dovecot's (only, inbox) namespace: `""` (Dovecot's default: `INBOX.Sub`
    /// is a folder named `INBOX.Sub`, `.INBOX.Sub`) or `"INBOX."` (Courier style: `INBOX.Sub`
    /// is `.Sub`). Must match Dovecot's, or `fileinto` and Dovecot disagree on folders.
    #[serde(default)]
    pub namespace_prefix: String,
}

/// `[mailbox] unknown_users`: when a recipient missing from `users_file` is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownUsers {
    /// Accept at RCPT, scan, then refuse (550 5.1.1 after DATA) only mail that is not
    /// infected; infected mail to them is discarded with 250 (never a bounce).
    #[default]
    AfterScan,
    /// Refuse at RCPT (550 5.1.1), before anything is scanned.
    AtRcpt,
}

/// Validated `[mailbox]`.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Lowercased.
    pub domains: Vec<String>,
    /// Absolute template (or one starting with `%h`, the user's absolute home).
    pub maildir: String,
    pub recipient_delimiter: String,
    /// The passwd-file of existing users; `None`: every local part exists.
    pub users_file: Option<PathBuf>,
    /// True when `maildir` or `sieve.personal` uses `%h`: a user without a home in
    /// `users_file` cannot be delivered to.
    pub needs_home: bool,
    /// Concurrent LMTP deliveries per user; 0: unlimited.
    pub user_concurrency_limit: usize,
    /// `[mailbox] link_copies`: hard links for copies of the same bytes.
    pub link_copies: bool,
    /// Owner and modes of what the store creates.
    pub ownership: crate::mail::maildir::Ownership,
    /// When a recipient missing from `users_file` is refused.
    pub unknown_users: UnknownUsers,
    /// `namespace_prefix`: `""` or `"INBOX."` (see [`RawMailbox::namespace_prefix`]).
    pub namespace_prefix: String,
}

impl RawMailbox {
    /// Checks `[mailbox]`, and the `%h` of `[sieve]`'s personal templates (the homes come
    /// from `users_file`). Returns the section and the special-use map (Dovecot's default
    /// when unset), which `[sieve]` takes.
    pub(super) fn validate(
        self,
        base: &Path,
        sieve: &RawSieve,
        problems: &mut Vec<String>,
    ) -> (MailboxConfig, Vec<(String, String)>) {
        let m = self;
        if m.domains.is_empty() {
            problems.push("mailbox.domains: at least one domain is needed".to_string());
        }
        let special_use: Vec<(String, String)> = match &m.special_use {
            Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            // Dovecot's defaults, named inside the namespace (`INBOX.Junk` with `INBOX.`).
            None => crate::mail::sieve::DEFAULT_SPECIAL_USE
                .iter()
                .map(|(k, v)| (k.to_string(), format!("{}{v}", m.namespace_prefix)))
                .collect(),
        };
        for (flag, folder) in &special_use {
            // RFC 6154 §2: special-use attributes are `\` flags.
            if !flag.starts_with('\\') || flag.len() < 2 {
                problems.push(format!(
                    "mailbox.special_use: {flag:?} is not a special-use flag such as \"\\\\Junk\""
                ));
            }
            if let Err(e) = crate::mail::maildir::check_folder_name(folder, &m.namespace_prefix) {
                problems.push(format!("mailbox.special_use: {folder:?}: {e}"));
            }
        }
        if !m.namespace_prefix.is_empty() && !m.namespace_prefix.eq_ignore_ascii_case("INBOX.") {
            problems.push(format!(
                "mailbox.namespace_prefix: {:?}: only \"\" (Dovecot's default) and \"INBOX.\" are supported",
                m.namespace_prefix
            ));
        }
        for d in &m.domains {
            if d.is_empty() || d.contains(['/', '@', ' ']) || d.starts_with('.') || d.contains("..")
            {
                problems.push(format!("mailbox.domains: {d:?} is not a domain name"));
            }
        }
        let uses = crate::mail::address::template_uses;
        if !uses(&m.maildir, 'n') && !uses(&m.maildir, 'u') && !uses(&m.maildir, 'h') {
            problems.push(format!(
                "mailbox.maildir: {:?} must contain %n, %u or %h, or every user would share one Maildir",
                m.maildir
            ));
        }
        let maildir = resolve_template(base, &m.maildir);
        let users_file = m.users_file.as_deref().map(|p| resolve(base, p));
        if let Some(path) = &users_file {
            if let Err(e) = super::users_file::UserTable::load(path) {
                problems.push(format!("mailbox.users_file: {e}"));
            }
        }
        let personal_home = [&sieve.personal, &sieve.personal_dir]
            .iter()
            .any(|t| t.as_deref().is_some_and(|p| uses(p, 'h')));
        let needs_home = uses(&m.maildir, 'h') || personal_home;
        if needs_home && users_file.is_none() {
            for (key, template) in [
                ("mailbox.maildir", Some(m.maildir.as_str())),
                ("sieve.personal", sieve.personal.as_deref()),
                ("sieve.personal_dir", sieve.personal_dir.as_deref()),
            ] {
                if template.is_some_and(|t| uses(t, 'h')) {
                    problems.push(format!(
                        "{key}: %h (the user's home) needs mailbox.users_file, which gives the homes"
                    ));
                }
            }
        }

        let ownership = ownership::ownership(
            m.owner.as_deref(),
            m.group.as_deref(),
            &m.file_mode,
            &m.dir_mode,
            problems,
        );
        let mailbox = MailboxConfig {
            domains: m.domains.iter().map(|d| d.to_lowercase()).collect(),
            maildir,
            recipient_delimiter: m.recipient_delimiter,
            users_file,
            needs_home,
            user_concurrency_limit: m.user_concurrency_limit,
            link_copies: m.link_copies,
            ownership,
            unknown_users: m.unknown_users,
            namespace_prefix: m.namespace_prefix.clone(),
        };
        (mailbox, special_use)
    }
}

/// Defaults of the `[mailbox]` keys (`file_mode`, `dir_mode`: `ownership.rs`).
mod defaults {
    /// Dovecot's `lmtp_user_concurrency_limit` default.
    pub fn user_concurrency_limit() -> usize {
        10
    }
    pub fn link_copies() -> bool {
        true
    }
    pub fn recipient_delimiter() -> String {
        "+".into()
    }
}
