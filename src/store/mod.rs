//! The Maildir++ store: folder names, flags, and the durable writer.
//!
//! [`Folder`] and [`SystemFlags`] say *where* and *how* a message is stored; [`Maildir`]
//! does the durable write (see [`maildir`]), hard links for more copies of the same
//! bytes, and shares directory fsyncs among concurrent deliveries ([`dirsync`]); [`keywords`] keeps Dovecot's `dovecot-keywords`; `subscriptions` keeps Dovecot's subscription
//! file in step with the folders we create; [`cleanup`] removes `tmp/` files a crash left.

use std::fmt;

pub mod cleanup;
pub mod dirsync;
mod error;
mod fsio;
pub mod keywords;
pub mod maildir;
pub mod owner;
mod subscriptions;

pub use error::StoreError;
pub use maildir::{Maildir, StoredMessage};
pub use owner::Ownership;

/// A validated Maildir++ folder: `INBOX` (the Maildir root) or a sub-folder whose Sieve name
/// `Work.Projects` lives in the directory `.Work.Projects`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Folder {
    /// Hierarchy components, in IMAP modified UTF-7 as Dovecot stores them on disk; empty
    /// for INBOX.
    components: Vec<String>,
}

pub use crate::mail::maildir::FolderError;

impl Folder {
    /// The root folder.
    pub fn inbox() -> Self {
        Folder {
            components: Vec::new(),
        }
    }

    /// Parses a Sieve `fileinto` name under the namespace `prefix` (`[mailbox]
    /// namespace_prefix`, see [`crate::mail::maildir::check_folder_name`]). `.` separates
    /// hierarchy levels (Dovecot's Maildir++ separator); `INBOX` is the root. With the empty
    /// prefix `INBOX.Work` is `.INBOX.Work`, with `INBOX.` it is `.Work`, as Dovecot stores
    /// them. Non-ASCII names are stored in modified UTF-7 (RFC 3501 §5.1.3), like Dovecot.
    pub fn from_sieve(name: &str, prefix: &str) -> Result<Self, FolderError> {
        let levels = crate::mail::maildir::check_folder_name(name, prefix)?;
        let mut components: Vec<String> = levels.into_iter().map(encode_mutf7).collect();
        // Dovecot names the INBOX level in upper case whatever the script wrote.
        if let Some(first) = components.first_mut() {
            if first.eq_ignore_ascii_case("INBOX") {
                *first = "INBOX".to_string();
            }
        }
        Ok(Folder { components })
    }

    /// True for the root folder.
    pub fn is_inbox(&self) -> bool {
        self.components.is_empty()
    }

    /// The directory below the Maildir root: `None` for INBOX, else `.A.B`.
    pub fn dir_name(&self) -> Option<String> {
        (!self.is_inbox()).then(|| format!(".{}", self.components.join(".")))
    }

    /// The IMAP name as Dovecot lists it (`INBOX` or `A.B`, modified UTF-7): what the
    /// `subscriptions` file holds.
    pub fn imap_name(&self) -> String {
        if self.is_inbox() {
            "INBOX".to_string()
        } else {
            self.components.join(".")
        }
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.imap_name())
    }
}

/// IMAP modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as is (`&` as `&-`), anything
/// else as `&` + modified base64 of its UTF-16 + `-`.
///
/// Our own 40 lines rather than a crate: the candidate on crates.io, `utf7-imap` 0.3.2,
/// passes DEL (0x7f) through unencoded (RFC 3501 allows 0x20–0x7e only), its decoder
/// `unwrap`s a base64 error (a panic on a malformed name), and it pulls in `regex`,
/// `encoding_rs` and an old `base64` for this. The tests check this encoder against
/// Dovecot's own output and round-trip every Unicode scalar of the BMP.
fn encode_mutf7(name: &str) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(B64[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// IMAP system flags, stored in the Maildir info part (`:2,DFRST`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemFlags {
    /// `\Draft`, info letter `D`.
    pub draft: bool,
    /// `\Flagged`, info letter `F`.
    pub flagged: bool,
    /// `\Answered`, info letter `R` (replied).
    pub answered: bool,
    /// `\Seen`, info letter `S`.
    pub seen: bool,
    /// `\Deleted`, info letter `T` (trashed).
    pub deleted: bool,
}

impl SystemFlags {
    /// Splits Sieve imap4flags (RFC 5232) into system flags and the keywords left over.
    /// Flag names are case-insensitive; a list item may hold several space-separated flags.
    pub fn from_sieve<S: AsRef<str>>(flags: &[S]) -> (Self, Vec<String>) {
        let mut out = SystemFlags::default();
        let mut keywords = Vec::new();
        for flag in flags.iter().flat_map(|f| f.as_ref().split_whitespace()) {
            match flag.to_ascii_lowercase().as_str() {
                "\\seen" => out.seen = true,
                "\\answered" => out.answered = true,
                "\\flagged" => out.flagged = true,
                "\\deleted" => out.deleted = true,
                "\\draft" => out.draft = true,
                _ => {
                    if !keywords
                        .iter()
                        .any(|k: &String| k.eq_ignore_ascii_case(flag))
                    {
                        keywords.push(flag.to_string());
                    }
                }
            }
        }
        (out, keywords)
    }

    /// True when no flag is set: the message goes to `new/`.
    pub fn is_empty(&self) -> bool {
        *self == SystemFlags::default()
    }

    /// Each flag with its Maildir info letter and IMAP name, in the Maildir (ASCII) order.
    fn table(&self) -> [(bool, char, &'static str); 5] {
        [
            (self.draft, 'D', "\\Draft"),
            (self.flagged, 'F', "\\Flagged"),
            (self.answered, 'R', "\\Answered"),
            (self.seen, 'S', "\\Seen"),
            (self.deleted, 'T', "\\Deleted"),
        ]
    }

    /// The Maildir info letters in ASCII order, as the Maildir spec requires: `DFRST`.
    pub fn info(&self) -> String {
        self.table().iter().filter(|f| f.0).map(|f| f.1).collect()
    }

    /// The IMAP names of the flags set (`\Seen`, ...), in the same order as [`Self::info`].
    pub fn imap_names(&self) -> Vec<&'static str> {
        self.table().iter().filter(|f| f.0).map(|f| f.2).collect()
    }

    /// The flags set in either.
    pub fn union(self, other: SystemFlags) -> SystemFlags {
        SystemFlags {
            draft: self.draft || other.draft,
            flagged: self.flagged || other.flagged,
            answered: self.answered || other.answered,
            seen: self.seen || other.seen,
            deleted: self.deleted || other.deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_table() {
        let cases: &[(&str, Result<Option<&str>, FolderError>)] = &[
            ("INBOX", Ok(None)),
            ("inbox", Ok(None)),
            ("Work", Ok(Some(".Work"))),
            ("Work.Projects", Ok(Some(".Work.Projects"))),
            // Dovecot's default empty namespace prefix: INBOX.Work is a folder of its own.
            ("INBOX.Work", Ok(Some(".INBOX.Work"))),
            ("inbox.Work", Ok(Some(".INBOX.Work"))),
            ("INBOXES", Ok(Some(".INBOXES"))),
            ("Spam & Co", Ok(Some(".Spam &- Co"))),
            ("Entwürfe", Ok(Some(".Entw&APw-rfe"))),
            ("日本語", Ok(Some(".&ZeVnLIqe-"))),
            ("", Err(FolderError::Empty)),
            ("a..b", Err(FolderError::Empty)),
            ("a.", Err(FolderError::Empty)),
            ("..", Err(FolderError::LeadingDot)),
            (".hidden", Err(FolderError::LeadingDot)),
            ("../../etc", Err(FolderError::LeadingDot)),
            ("a/../../b", Err(FolderError::BadCharacter)),
            ("a/b", Err(FolderError::BadCharacter)),
            ("a\\b", Err(FolderError::BadCharacter)),
            ("a\0b", Err(FolderError::BadCharacter)),
            ("a\nb", Err(FolderError::BadCharacter)),
        ];
        for (name, want) in cases {
            let got = Folder::from_sieve(name, "").map(|f| f.dir_name());
            let want = want.clone().map(|d| d.map(str::to_string));
            assert_eq!(got, want, "{name:?}");
        }
    }

    /// `namespace_prefix = "INBOX."` (Courier style): the prefix is not part of the name.
    #[test]
    fn folder_table_with_the_inbox_prefix() {
        let cases: &[(&str, Result<Option<&str>, FolderError>)] = &[
            ("INBOX", Ok(None)),
            ("INBOX.Work", Ok(Some(".Work"))),
            ("inbox.Work.Sub", Ok(Some(".Work.Sub"))),
            ("Work", Err(FolderError::OutsideNamespace)),
            ("INBOXWork", Err(FolderError::OutsideNamespace)),
            ("INBOX.", Err(FolderError::Empty)),
            ("INBOX..x", Err(FolderError::LeadingDot)),
            ("INBOX.a/b", Err(FolderError::BadCharacter)),
        ];
        for (name, want) in cases {
            let got = Folder::from_sieve(name, "INBOX.").map(|f| f.dir_name());
            let want = want.clone().map(|d| d.map(str::to_string));
            assert_eq!(got, want, "{name:?}");
        }
    }

    /// Modified UTF-7 against the reference: every expected value below is the output of
    /// `doveadm mailbox mutf7 -8 NAME` (Dovecot 2.3.19). They cover 1 to 5 UTF-16 units (each
    /// base64 padding case), surrogate pairs, the edges of the UTF-8 length classes, `&`
    /// next to encoded runs, and characters of the modified base64 alphabet (`,`, `+`).
    #[test]
    fn mutf7_matches_dovecot() {
        let cases = [
            ("\u{80}", "&AIA-"),
            ("\u{ff}", "&AP8-"),
            ("\u{7ff}", "&B,8-"),
            ("\u{800}", "&CAA-"),
            ("\u{fffd}", "&,,0-"),
            ("\u{ffff}", "&,,8-"),
            ("\u{10000}", "&2ADcAA-"),
            ("\u{10ffff}", "&2,,f,w-"),
            ("é", "&AOk-"),
            ("éé", "&AOkA6Q-"),
            ("ééé", "&AOkA6QDp-"),
            ("éééé", "&AOkA6QDpAOk-"),
            ("ééééé", "&AOkA6QDpAOkA6Q-"),
            ("aébéc", "a&AOk-b&AOk-c"),
            ("é&é", "&AOk-&-&AOk-"),
            ("&é", "&-&AOk-"),
            ("é&", "&AOk-&-"),
            ("Spam & Co", "Spam &- Co"),
            ("~", "~"),
            ("Привет мир", "&BB8EQAQ4BDIENQRC- &BDwEOARA-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("😀😀", "&2D3eANg93gA-"),
            ("a😀", "a&2D3eAA-"),
            ("😀é", "&2D3eAADp-"),
            ("中文 folder", "&Ti1lhw- folder"),
            ("-", "-"),
            ("&-", "&--"),
            ("é-", "&AOk--"),
            ("+", "+"),
            (",", ","),
            ("é,é", "&AOk-,&AOk-"),
        ];
        for (name, want) in cases {
            assert_eq!(encode_mutf7(name), want, "{name:?}");
        }
    }

    /// A decoder written for the test only, straight from RFC 3501 §5.1.3, to check the
    /// encoder on every character rather than on examples.
    fn decode_mutf7(encoded: &str) -> Option<String> {
        const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
        let mut out = String::new();
        let mut rest = encoded;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let end = rest[amp..].find('-')? + amp;
            let run = &rest[amp + 1..end];
            if run.is_empty() {
                out.push('&');
            } else {
                let mut bits: u32 = 0;
                let mut nbits = 0;
                let mut units = Vec::new();
                for c in run.chars() {
                    bits = (bits << 6) | B64.find(c)? as u32;
                    nbits += 6;
                    if nbits >= 16 {
                        nbits -= 16;
                        units.push((bits >> nbits) as u16);
                        bits &= (1 << nbits) - 1;
                    }
                }
                // Leftover bits must be zero padding, shorter than one base64 digit's worth.
                if bits != 0 || nbits >= 6 {
                    return None;
                }
                out.push_str(&String::from_utf16(&units).ok()?);
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    #[test]
    fn mutf7_round_trips_every_character() {
        let printable = |s: &str| s.chars().all(|c| (' '..='~').contains(&c));
        // Every non-ASCII scalar value of the BMP, alone and between ASCII letters, and a
        // spread of the supplementary planes (surrogate pairs).
        let scalars = (0x80u32..=0xFFFF).chain((0x10000..=0x10FFFF).step_by(97));
        for cp in scalars.filter_map(char::from_u32) {
            for name in [cp.to_string(), format!("a{cp}b{cp}{cp}&")] {
                let encoded = encode_mutf7(&name);
                assert!(printable(&encoded), "{name:?} → {encoded:?}");
                assert_eq!(
                    decode_mutf7(&encoded).as_deref(),
                    Some(name.as_str()),
                    "{name:?}"
                );
            }
        }
        // Printable ASCII stays as it is, except '&'.
        let ascii: String = (' '..='~').collect();
        assert_eq!(encode_mutf7(&ascii), ascii.replace('&', "&-"));
    }

    #[test]
    fn flags_table() {
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&[], "", &[]),
            (&["\\Seen"], "S", &[]),
            (&["\\seen \\FLAGGED"], "FS", &[]),
            (&["\\Deleted", "\\Draft", "\\Answered"], "DRT", &[]),
            (&["$Label1", "\\Seen", "$label1"], "S", &["$Label1"]),
        ];
        for (input, info, keywords) in cases {
            let (flags, kw) = SystemFlags::from_sieve(input);
            assert_eq!(flags.info(), *info, "{input:?}");
            assert_eq!(kw, *keywords, "{input:?}");
        }
    }
}
