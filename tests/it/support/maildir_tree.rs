//! Reads a Maildir++ tree back as IMAP would show it: one [`StoredCopy`] per message file,
//! with the folder name decoded (Maildir++ `.Name`, modified UTF-7, RFC 3501 §5.1.3) and the
//! flags taken from the file name's `:2,` info (system flags as letters, keywords as `a`..`z`
//! indexing the folder's `dovecot-keywords`). Used on both sievegate's and Dovecot's trees, so
//! it depends on nothing but the on-disk format.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Where a message file sits inside its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subdir {
    New,
    Cur,
    /// A leftover in `tmp/`: never a delivered message.
    Tmp,
}

/// One message file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredCopy {
    /// `INBOX`, or the folder name as IMAP shows it (`Entwürfe`, `Work.Reports`).
    pub folder: String,
    /// IMAP flag names, sorted: system flags (`\Seen`) then keywords.
    pub flags: Vec<String>,
    /// The message's header fields in order, unfolded, without the trace and scan fields
    /// each side adds itself (see [`TRACE_FIELDS`]): what editheader changes.
    pub headers: Vec<String>,
    pub subdir: Subdir,
}

/// Every message file below `maildir` (INBOX and each `.Folder`), sorted. A missing
/// directory (nothing was ever delivered) gives an empty list.
pub fn read_tree(maildir: &Path) -> Vec<StoredCopy> {
    let mut copies = read_folder(maildir, "INBOX");
    if let Ok(entries) = fs::read_dir(maildir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let Some(encoded) = name.strip_prefix('.').filter(|n| is_dir && !n.is_empty()) {
                copies.extend(read_folder(&entry.path(), &decode_mutf7(encoded)));
            }
        }
    }
    copies.sort();
    copies
}

fn read_folder(dir: &Path, folder: &str) -> Vec<StoredCopy> {
    let keywords = read_keywords(dir);
    let mut copies = Vec::new();
    for (sub, subdir) in [
        ("new", Subdir::New),
        ("cur", Subdir::Cur),
        ("tmp", Subdir::Tmp),
    ] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            copies.push(StoredCopy {
                folder: folder.to_owned(),
                flags: flags_of(&name, &keywords),
                headers: fs::read(entry.path())
                    .map(|m| header_fields(&m))
                    .unwrap_or_default(),
                subdir,
            });
        }
    }
    copies
}

/// Fields the delivering side writes itself, which differ between Dovecot and sievegate.
pub const TRACE_FIELDS: [&str; 5] = [
    "return-path",
    "delivered-to",
    "received",
    "x-virus-scanned",
    "x-virus-status",
];

/// The header section's fields (`Name: value`, unfolded, CR and trailing blanks dropped),
/// without [`TRACE_FIELDS`].
pub fn header_fields(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.trim_end().to_owned());
        }
    }
    fields.retain(|f| {
        let name = f
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        !TRACE_FIELDS.contains(&name.as_str())
    });
    fields
}

/// `dovecot-keywords`: lines `N name`; keyword N is info letter `a` + N.
fn read_keywords(dir: &Path) -> BTreeMap<char, String> {
    let text = fs::read_to_string(dir.join("dovecot-keywords")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (index, name) = line.split_once(' ')?;
            let index: u8 = index.parse().ok().filter(|i| *i < 26)?;
            Some(((b'a' + index) as char, name.to_owned()))
        })
        .collect()
}

/// The flags in a file name's `:2,` info, as IMAP names, system flags first.
pub fn flags_of(file_name: &str, keywords: &BTreeMap<char, String>) -> Vec<String> {
    let Some((_, info)) = file_name.rsplit_once(":2,") else {
        return Vec::new();
    };
    let mut system = Vec::new();
    let mut user = Vec::new();
    for letter in info.chars() {
        match letter {
            'D' => system.push("\\Draft".to_owned()),
            'F' => system.push("\\Flagged".to_owned()),
            'R' => system.push("\\Answered".to_owned()),
            'S' => system.push("\\Seen".to_owned()),
            'T' => system.push("\\Deleted".to_owned()),
            // "Passed" (resent/forwarded) has no IMAP system flag.
            'P' => system.push("Passed".to_owned()),
            'a'..='z' => user.push(
                keywords
                    .get(&letter)
                    .cloned()
                    .unwrap_or_else(|| format!("keyword-{letter}?")),
            ),
            other => system.push(format!("info-{other}?")),
        }
    }
    system.sort();
    user.sort();
    system.extend(user);
    system
}

/// Decodes an IMAP modified UTF-7 mailbox name (`Entw&APw-rfe` → `Entwürfe`, `&-` → `&`).
/// Anything malformed stays as it is, visibly, rather than being guessed at.
pub fn decode_mutf7(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('-') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            match decode_modified_base64_utf16(encoded) {
                Some(text) => out.push_str(&text),
                None => out.push_str(&rest[start..start + end + 2]),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// RFC 3501's modified base64 (`,` for `/`, no padding) of UTF-16BE.
fn decode_modified_base64_utf16(encoded: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let (mut bits, mut count) = (0u32, 0u32);
    for c in encoded.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b',' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).ok()
}
