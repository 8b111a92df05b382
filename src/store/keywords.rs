//! IMAP keywords (RFC 3501 §2.3.2) in a Maildir folder, the way Dovecot keeps them, so that
//! Dovecot shows them to IMAP clients.
//!
//! Each folder has a `dovecot-keywords` file of lines `N name`; keyword N is the letter
//! `'a' + N` in a message file name's `:2,` info, after the system flag letters. Only 26
//! letters exist: Dovecot keeps further keywords in its index files only, which we do not
//! write, so a 27th keyword of a folder is dropped with a note.
//!
//! Dovecot adds keywords to the file while it holds the folder's uidlist dotlock
//! (`dovecot-uidlist.lock`), and replaces the file through its own dotlock
//! (`dovecot-keywords.lock`: write, then rename over the file). We do the same, under the same
//! two dotlocks, so neither of us loses the other's keywords. Our own writers first take the
//! folder directory's `flock`, like `subscriptions` does for the root.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use super::error::io_err;
use super::fsio::sync_dir;
use super::subscriptions::{Lock, WriterLock, LOCK_TIMEOUT};
use super::{Ownership, StoreError};

/// The folder's keyword list.
pub(crate) const FILE_NAME: &str = "dovecot-keywords";
/// Dovecot's uidlist lock: held while keywords are added.
pub(crate) const UIDLIST_LOCK: &str = "dovecot-uidlist.lock";
/// Dovecot's dotlock for replacing `dovecot-keywords`.
const KEYWORDS_LOCK: &str = "dovecot-keywords.lock";
/// Letters `a`..`z`: Dovecot's `MAILDIR_MAX_KEYWORDS`.
pub const MAX_KEYWORDS: usize = 26;

/// The folder's keywords by index; `None` where a line is missing or unreadable.
fn parse(text: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for line in text.lines() {
        let Some((index, name)) = line.split_once(' ') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if index >= MAX_KEYWORDS || name.is_empty() {
            continue;
        }
        if out.len() <= index {
            out.resize(index + 1, None);
        }
        out[index] = Some(name.to_string());
    }
    out
}

/// The file's content for `list`: one `N name` line per known keyword, in index order.
fn render(list: &[Option<String>]) -> String {
    list.iter()
        .enumerate()
        .filter_map(|(i, name)| name.as_ref().map(|n| format!("{i} {n}\n")))
        .collect()
}

/// Index of `keyword` in `list`; IMAP keywords compare case-insensitively, as Dovecot's
/// keyword table does.
fn find(list: &[Option<String>], keyword: &str) -> Option<usize> {
    list.iter().position(|n| {
        n.as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(keyword))
    })
}

/// Appends the keywords missing from `list` after the highest index in use, as Dovecot does
/// (it never reuses an index: old file names may still carry its letter); returns the names
/// that did not fit.
fn add_missing(list: &mut Vec<Option<String>>, keywords: &[String]) -> Vec<String> {
    let mut dropped = Vec::new();
    for keyword in keywords {
        if find(list, keyword).is_some() {
            continue;
        }
        if list.len() < MAX_KEYWORDS {
            list.push(Some(keyword.clone()));
        } else {
            dropped.push(keyword.clone());
        }
    }
    dropped
}

/// The info letters for `keywords` in `list`, sorted (`a` first), each once.
fn letters(list: &[Option<String>], keywords: &[String]) -> String {
    let mut idx: Vec<usize> = keywords.iter().filter_map(|k| find(list, k)).collect();
    idx.sort_unstable();
    idx.dedup();
    // `idx < MAX_KEYWORDS` (26), so the letter stays within `a..=z`.
    idx.iter().map(|i| char::from(b'a' + *i as u8)).collect()
}

/// True when `name` may be an IMAP keyword (RFC 3501 `flag-keyword` = `atom`): no space,
/// control character, `(){%*"\]`, and not a system flag (`\` prefix).
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b))
}

/// What `assign` decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// The info letters to append after the system flag letters.
    pub letters: String,
    /// Keywords that did not fit in the folder's 26 letters.
    pub dropped: Vec<String>,
}

fn read(path: &Path) -> Result<String, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Finds or adds `keywords` in the folder `dir`'s `dovecot-keywords` and returns their info
/// letters. The common case (every keyword already known) only reads the file; a new
/// keyword is added under Dovecot's locks and made durable (file, then directory) before
/// its letter is used in a file name.
pub(crate) fn assign(
    dir: &Path,
    keywords: &[String],
    owner: &Ownership,
) -> Result<Assigned, StoreError> {
    if keywords.is_empty() {
        return Ok(Assigned::default());
    }
    let path = dir.join(FILE_NAME);
    let list = parse(&read(&path)?);
    if keywords.iter().all(|k| find(&list, k).is_some()) {
        return Ok(Assigned {
            letters: letters(&list, keywords),
            dropped: Vec::new(),
        });
    }

    let deadline = Instant::now() + LOCK_TIMEOUT;
    let writers = WriterLock::acquire(dir, deadline)?;
    let uidlist_path = dir.join(UIDLIST_LOCK);
    // Held (never renamed) until the end of this function: it keeps Dovecot from adding
    // keywords of its own meanwhile; dropping it removes it.
    let _uidlist = Lock::acquire(&uidlist_path, deadline, writers, owner)?;
    // Read again: another writer may have added keywords before we got the lock.
    let mut list = parse(&read(&path)?);
    let dropped = add_missing(&mut list, keywords);
    let letters = letters(&list, keywords);
    let content = render(&list);
    if content.as_bytes() != read(&path)?.as_bytes() {
        let lock_path = dir.join(KEYWORDS_LOCK);
        let mut lock = Lock::acquire(&lock_path, deadline, WriterLock::none(), owner)?;
        lock.file
            .write_all(content.as_bytes())
            .and_then(|()| lock.file.sync_all())
            .map_err(io_err("write", &lock_path))?;
        fs::rename(&lock_path, &path).map_err(io_err("rename", &lock_path))?;
        lock.held = false;
        sync_dir(dir)?;
    }
    Ok(Assigned { letters, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// File before, keywords asked for, letters, file after, dropped.
    type Case<'a> = (Option<&'a str>, Vec<String>, &'a str, String, Vec<String>);

    #[test]
    fn assign_table() {
        let full: String = (0..26).map(|i| format!("{i} k{i}\n")).collect();
        let cases: Vec<Case<'_>> = vec![
            (None, kw(&["$Label1"]), "a", "0 $Label1\n".into(), vec![]),
            (
                Some("0 Junk\n"),
                kw(&["$label1", "junk"]),
                "ab",
                "0 Junk\n1 $label1\n".into(),
                vec![],
            ),
            (
                Some("0 Junk\n"),
                kw(&["JUNK"]),
                "a",
                "0 Junk\n".into(),
                vec![],
            ),
            // A hole in the numbering stays a hole: its letter may be in old file names.
            (
                Some("1 b\n"),
                kw(&["c", "d"]),
                "cd",
                "1 b\n2 c\n3 d\n".into(),
                vec![],
            ),
            // Garbage lines are ignored (and not written back).
            (
                Some("x y\n30 big\n0 a\n"),
                kw(&["a"]),
                "a",
                "x y\n30 big\n0 a\n".into(),
                vec![],
            ),
            (
                Some(&full),
                kw(&["k25", "new", "k0"]),
                "az",
                full.clone(),
                kw(&["new"]),
            ),
        ];
        for (before, asked, want_letters, after, dropped) in cases {
            let tmp = tempfile::tempdir().expect("tempdir");
            if let Some(before) = before {
                fs::write(tmp.path().join(FILE_NAME), before).expect("write");
            }
            let got = assign(tmp.path(), &asked, &Ownership::default()).expect("assign");
            assert_eq!(got.letters, want_letters, "{before:?} {asked:?}");
            assert_eq!(got.dropped, dropped, "{before:?} {asked:?}");
            let text = fs::read_to_string(tmp.path().join(FILE_NAME)).unwrap_or_default();
            assert_eq!(text, after, "{before:?} {asked:?}");
            assert!(!tmp.path().join(UIDLIST_LOCK).exists());
            assert!(!tmp.path().join(KEYWORDS_LOCK).exists());
        }
    }

    #[test]
    fn no_keywords_touches_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            assign(tmp.path(), &[], &Ownership::default()).expect("assign"),
            Assigned::default()
        );
        assert!(!tmp.path().join(FILE_NAME).exists());
    }

    /// Dovecot holds the uidlist lock: we wait for it rather than write beside it.
    #[test]
    fn waits_for_dovecots_uidlist_lock() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lock = tmp.path().join(UIDLIST_LOCK);
        fs::write(&lock, "").expect("lock");
        let dir = tmp.path().to_path_buf();
        let writer = std::thread::spawn(move || assign(&dir, &kw(&["x"]), &Ownership::default()));
        std::thread::sleep(std::time::Duration::from_millis(150));
        assert!(
            !tmp.path().join(FILE_NAME).exists(),
            "wrote under Dovecot's lock"
        );
        fs::remove_file(&lock).expect("unlock");
        let got = writer.join().expect("thread").expect("assign");
        assert_eq!(got.letters, "a");
    }

    #[test]
    fn concurrent_writers_agree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let dir = tmp.path().to_path_buf();
                std::thread::spawn(move || {
                    assign(
                        &dir,
                        &[format!("k{i}"), "shared".into()],
                        &Ownership::default(),
                    )
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("assign");
        }
        let list = parse(&fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read"));
        assert_eq!(list.iter().flatten().count(), 9, "{list:?}");
    }

    #[test]
    fn valid_table() {
        for (name, ok) in [
            ("$Label1", true),
            ("Junk", true),
            ("$MDNSent", true),
            ("", false),
            ("a b", false),
            ("\\Seen", false),
            ("a(b", false),
            ("a]", false),
            ("ü", false),
        ] {
            assert_eq!(is_valid(name), ok, "{name:?}");
        }
    }
}
