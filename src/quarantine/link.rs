//! Signed links to one quarantine entry for one recipient: the token in a digest's or a
//! notice's URL that lets the person the mail was for look at it and act on it without
//! an account. One more kind names no entry: a [`Action::List`] token opens the list of
//! everything held for its recipient (the digest's "... and N more" link).
//!
//! A token is `base64url(payload ‖ HMAC-SHA-256(key, domain ‖ payload))`, no padding. The
//! payload holds a format version, then the entry id, the recipient and the action, each
//! prefixed with its length (so no two different field sets encode alike: `("ab", "c")`
//! and `("a", "bc")` differ), then the expiry in seconds since the Unix epoch. Nothing in
//! it is secret (the recipient already knows the entry is theirs); everything in it is
//! authenticated, and only the key's holder can mint one. A list token's entry id is empty
//! ([`LIST_ENTRY`]) and every other action's is not, checked when a token is read: a list
//! token never names an entry, and an entry token never opens a list. Verification caps the length
//! before decoding anything, checks the MAC in constant time ([`Mac::verify_slice`]), and
//! only then reads the fields and the expiry.
//!
//! This module does no I/O except [`LinkKey::load`]; the web layer and the digests build
//! on it.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest key accepted: HMAC-SHA-256's output size, so the key is never the weak part.
pub const MIN_KEY_LEN: usize = 32;

/// The longest key file read: a key is a few dozen bytes; anything much larger is the
/// wrong file.
const MAX_KEY_LEN: u64 = 4096;

/// The longest token [`verify`] decodes, in characters. An entry id (a few dozen bytes) and
/// an address (at most 256 octets, RFC 5321 section 4.5.3.1.3) fit well below it; anything
/// longer is refused before any work is done on it.
pub const MAX_TOKEN_LEN: usize = 1024;

/// The payload's format version, first byte of every token: a new format gets a new number
/// and old links fail cleanly as [`LinkError::Malformed`].
const VERSION: u8 = 1;

/// Prefixed to the payload under the MAC, so a MAC made for another purpose with the same
/// key (the form nonce of the web page) can never pass as a link.
const DOMAIN: &[u8] = b"sievegate link v1\0";

/// Prefixed to the token under the MAC of a form nonce ([`form_nonce`]).
const NONCE_DOMAIN: &[u8] = b"sievegate form v1\0";

/// The entry id field of a [`Action::List`] token: empty, which no quarantine id is, so a
/// list token can never name an entry (and [`verify`] refuses any other action with it).
pub const LIST_ENTRY: &str = "";

/// Length of the HMAC-SHA-256 output appended to the payload.
const MAC_LEN: usize = 32;

/// The secret the links are signed with (`[web] secret_file`). Every host that serves the
/// page or sends digests needs the same bytes.
#[derive(Clone)]
pub struct LinkKey {
    bytes: Vec<u8>,
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even in a debug log.
        f.write_str("LinkKey(..)")
    }
}

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot read the link key: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a regular file (a directory, a device...).
    #[error("{path}: the link key must be a regular file")]
    NotFile { path: PathBuf },
    /// Others than the owner may read or write it: like ssh with a private key, we refuse
    /// a secret that is not kept secret.
    #[error(
        "{path}: the link key is accessible by group or others (mode {mode:04o}); chmod 600 it"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    /// Shorter than [`MIN_KEY_LEN`].
    #[error("{path}: the link key has {len} bytes, at least {MIN_KEY_LEN} are needed (e.g. head -c 32 /dev/urandom | base64 > FILE)")]
    TooShort { path: PathBuf, len: usize },
    /// Larger than a key can reasonably be.
    #[error("{path}: the link key is larger than {MAX_KEY_LEN} bytes; is it the right file?")]
    TooLong { path: PathBuf },
}

impl LinkKey {
    /// The secret itself, for a signer of another purpose that derives its own key from it
    /// (the admin view's session cookies, `web::session`).
    pub fn secret(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads the key file: its bytes as they are (a trailing newline included), at least
    /// [`MIN_KEY_LEN`] of them, in a regular file no one but its owner can access.
    pub fn load(path: &Path) -> Result<LinkKey, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let meta = file.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(KeyError::NotFile {
                path: path.to_path_buf(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_KEY_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_KEY_LEN {
            return Err(KeyError::TooLong {
                path: path.to_path_buf(),
            });
        }
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                path: path.to_path_buf(),
                len: bytes.len(),
            });
        }
        Ok(LinkKey { bytes })
    }

    /// A key from bytes already in memory (tests, tools that mint links); `None` when
    /// shorter than [`MIN_KEY_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Option<LinkKey> {
        (bytes.len() >= MIN_KEY_LEN).then(|| LinkKey {
            bytes: bytes.to_vec(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length (longer ones are hashed first): cannot fail.
        match HmacSha256::new_from_slice(&self.bytes) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }
}

/// What a link lets its holder do. Each action has its own token, so a link to look at an
/// entry cannot delete it, and a link to the list acts on nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Show the entry page (the link in a digest).
    View,
    /// Deliver the entry to the recipient (mail held by policy, never a virus).
    Release,
    /// Remove the recipient's copy from the quarantine.
    Delete,
    /// Ask the postmaster to look at it (infected mail, which a user never releases).
    RequestRelease,
    /// Show the list of every entry still held for the recipient (the digest's "more"
    /// link); names no entry ([`LIST_ENTRY`]), changes nothing.
    List,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 5] = [
        Action::View,
        Action::Release,
        Action::Delete,
        Action::RequestRelease,
        Action::List,
    ];

    /// The actions on one entry: all but [`Action::List`].
    pub const ENTRY: [Action; 4] = [
        Action::View,
        Action::Release,
        Action::Delete,
        Action::RequestRelease,
    ];

    /// Whether a token of this action names one entry (every action but
    /// [`Action::List`]).
    pub fn names_entry(self) -> bool {
        self != Action::List
    }

    /// The stable name signed into tokens: changing one invalidates every link out there.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Release => "release",
            Action::Delete => "delete",
            Action::RequestRelease => "request-release",
            Action::List => "list",
        }
    }

    /// The action named `name` ([`Action::as_str`]).
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The quarantine entry; [`LIST_ENTRY`] (empty) for, and only for, [`Action::List`].
    pub entry_id: String,
    /// The recipient the link was sent to; it acts on that recipient's copy only.
    pub rcpt: String,
    /// The one thing the token allows.
    pub action: Action,
    /// When it stops working (whole seconds).
    pub expires: SystemTime,
}

/// Why a token is refused. Expected outcomes of hostile or old input, not failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token at all: too long, not base64url, truncated, unknown version.
    #[error("the link is not valid")]
    Malformed,
    /// Well-formed but not signed with our key: changed, or made up.
    #[error("the link's signature does not match")]
    BadSignature,
    /// Genuine but past its expiry.
    #[error("the link has expired")]
    Expired {
        /// When it expired.
        at: SystemTime,
    },
}

/// Seconds since the epoch, 0 for times before it (never produced by our clock).
fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends `field` with its length as four big-endian bytes in front.
fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Entry ids and addresses are far below 4 GiB; saturate rather than wrap (such a token
    // would be refused as too long anyway).
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// The signed payload of these claims.
fn payload(entry_id: &str, rcpt: &str, action: Action, expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 12 + entry_id.len() + rcpt.len() + 16 + 8);
    out.push(VERSION);
    push_field(&mut out, entry_id.as_bytes());
    push_field(&mut out, rcpt.as_bytes());
    push_field(&mut out, action.as_str().as_bytes());
    out.extend_from_slice(&expires.to_be_bytes());
    out
}

/// Mints the token for `action` on `rcpt`'s copy of entry `entry_id`, valid until
/// `expires` (rounded down to the second). URL-safe as it is. An entry action with an empty
/// `entry_id`, or [`Action::List`] with another one than [`LIST_ENTRY`] (use [`sign_list`]),
/// makes a token [`verify`] refuses as [`LinkError::Malformed`].
pub fn sign(
    key: &LinkKey,
    entry_id: &str,
    rcpt: &str,
    action: Action,
    expires: SystemTime,
) -> String {
    let mut bytes = payload(entry_id, rcpt, action, epoch_secs(expires));
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(&bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Mints the [`Action::List`] token of `rcpt`: the list of every entry held for them,
/// valid until `expires`.
pub fn sign_list(key: &LinkKey, rcpt: &str, expires: SystemTime) -> String {
    sign(key, LIST_ENTRY, rcpt, Action::List, expires)
}

/// Reads one length-prefixed field off the front of `rest`.
fn take_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if tail.len() < len {
        return None;
    }
    let (field, tail) = tail.split_at(len);
    *rest = tail;
    Some(field)
}

/// Checks `token` and returns what it allows. Refused: longer than [`MAX_TOKEN_LEN`] or not
/// base64url ([`LinkError::Malformed`]), a MAC that does not match, compared in constant
/// time ([`LinkError::BadSignature`]), or `now` at or past its expiry
/// ([`LinkError::Expired`]).
pub fn verify(key: &LinkKey, token: &str, now: SystemTime) -> Result<Claims, LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkError::Malformed)?;
    let Some(split) = bytes.len().checked_sub(MAC_LEN) else {
        return Err(LinkError::Malformed);
    };
    let (body, tag) = bytes.split_at(split);
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| LinkError::BadSignature)?;
    // Authenticated from here on: only our own `sign` wrote these bytes.
    let claims = parse(body).ok_or(LinkError::Malformed)?;
    if now >= claims.expires {
        return Err(LinkError::Expired { at: claims.expires });
    }
    Ok(claims)
}

/// The claims in a payload, `None` if it is not one `sign` writes, or names an entry
/// when its action is [`Action::List`] or none when it is another.
fn parse(body: &[u8]) -> Option<Claims> {
    let (&version, mut rest) = body.split_first()?;
    if version != VERSION {
        return None;
    }
    let entry_id = std::str::from_utf8(take_field(&mut rest)?).ok()?;
    let rcpt = std::str::from_utf8(take_field(&mut rest)?).ok()?;
    let action = Action::parse(std::str::from_utf8(take_field(&mut rest)?).ok()?)?;
    if action.names_entry() == (entry_id == LIST_ENTRY) {
        return None;
    }
    let expires: [u8; 8] = rest.try_into().ok()?;
    let expires = UNIX_EPOCH.checked_add(Duration::from_secs(u64::from_be_bytes(expires)))?;
    Some(Claims {
        entry_id: entry_id.to_string(),
        rcpt: rcpt.to_string(),
        action,
        expires,
    })
}

/// The page's address for `token`: `<base_url>/q/<token>` (one slash between them however
/// `base_url` ends).
pub fn url(base_url: &str, token: &str) -> String {
    format!("{}/q/{token}", base_url.trim_end_matches('/'))
}

/// A nonce for the web form that posts `token`: an HMAC of the token under its own
/// domain, so it cannot be computed without the key and a page served by us carries it.
/// A cross-site form that copies a leaked token still lacks it (see the web layer's CSRF
/// notes).
pub fn form_nonce(key: &LinkKey, token: &str) -> String {
    let mut mac = key.mac();
    mac.update(NONCE_DOMAIN);
    mac.update(token.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `nonce` is [`form_nonce`] of `token`, compared in constant time.
pub fn verify_form_nonce(key: &LinkKey, token: &str, nonce: &str) -> bool {
    if nonce.len() > 64 {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(nonce) else {
        return false;
    };
    let mut mac = key.mac();
    mac.update(NONCE_DOMAIN);
    mac.update(token.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
