//! [`Maildir::link_with_keywords`]: further copies of a stored message as hard links.

use super::*;
use std::os::unix::fs::MetadataExt;

fn folder(name: &str) -> Folder {
    Folder::from_sieve(name, "").expect("valid folder")
}

const MESSAGE: &[u8] = b"Subject: one file\r\n\r\nbody\r\n";

/// A message stored in `alice`'s INBOX, and `bob`'s Maildir next to it.
fn stored_pair(tmp: &Path) -> (Maildir, Maildir, StoredMessage) {
    let alice = Maildir::new(tmp.join("alice/Maildir"));
    let bob = Maildir::new(tmp.join("bob/Maildir"));
    let first = alice
        .store(&Folder::inbox(), SystemFlags::default(), false, &[MESSAGE])
        .expect("store");
    (alice, bob, first)
}

#[test]
fn a_link_shares_the_file_and_gets_its_own_name_and_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_alice, bob, first) = stored_pair(tmp.path());
    let seen = SystemFlags {
        seen: true,
        ..SystemFlags::default()
    };
    let cases: &[(Folder, SystemFlags, &[&str], bool, &str)] = &[
        // Bob's INBOX (created by the link: his Maildir did not exist).
        (Folder::inbox(), SystemFlags::default(), &[], false, "new"),
        (Folder::inbox(), seen, &[], false, "cur"),
        (folder("Lists"), SystemFlags::default(), &[], true, "new"),
        // A keyword in a folder the link creates: dovecot-keywords is written first.
        (
            folder("Tagged"),
            SystemFlags::default(),
            &["$Label1"],
            true,
            "cur",
        ),
    ];
    let mut names = std::collections::HashSet::new();
    for (into, flags, keywords, create, sub) in cases {
        let keywords: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
        let linked = bob
            .link_with_keywords(&first.path, into, *flags, &keywords, *create)
            .expect("no error")
            .expect("linked");
        assert_eq!(
            linked.path.parent().and_then(Path::file_name),
            Some(sub.as_ref())
        );
        assert!(linked.path.starts_with(bob.root()), "{linked:?}");
        let meta = fs::metadata(&linked.path).expect("linked file");
        assert_eq!(meta.ino(), fs::metadata(&first.path).expect("first").ino());
        assert_eq!(fs::read(&linked.path).expect("read"), MESSAGE);
        let name = linked.path.file_name().expect("name").to_string_lossy();
        assert!(name.contains(&format!(",S={}", MESSAGE.len())), "{name}");
        assert!(names.insert(name.into_owned()), "names are unique");
    }
    assert_eq!(
        fs::metadata(&first.path).expect("first").nlink(),
        1 + cases.len() as u64
    );
    assert!(bob.root().join(".Lists/maildirfolder").is_file());
    assert!(
        fs::read_to_string(bob.root().join(".Tagged/dovecot-keywords"))
            .expect("keywords")
            .contains("$Label1")
    );
}

#[test]
fn a_missing_folder_without_create_is_the_same_error_as_for_a_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_alice, bob, first) = stored_pair(tmp.path());
    let err = bob
        .link_with_keywords(
            &first.path,
            &folder("Nope"),
            SystemFlags::default(),
            &[],
            false,
        )
        .expect_err("missing folder");
    assert!(matches!(err, StoreError::FolderMissing(_)), "{err:?}");
    assert!(err.is_folder_problem());
}

#[test]
fn no_link_when_the_source_is_gone_or_not_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (alice, bob, first) = stored_pair(tmp.path());
    // A symlink at the source's name (e.g. swapped in by someone with write access) is
    // never linked.
    let symlink = tmp.path().join("symlink");
    std::os::unix::fs::symlink(&first.path, &symlink).expect("symlink");
    let inbox = Folder::inbox();
    let none = SystemFlags::default();
    assert!(bob
        .link_with_keywords(&symlink, &inbox, none, &[], false)
        .expect("no error")
        .is_none());
    alice.remove(&first).expect("rollback");
    assert!(bob
        .link_with_keywords(&first.path, &inbox, none, &[], false)
        .expect("no error")
        .is_none());
    assert!(
        !bob.root().join("new").exists() || entries_empty(&bob.root().join("new")),
        "nothing left behind"
    );
}

fn entries_empty(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}
