//! Maildir writer tests: layout, names, durability rules, concurrency, disk full.

use super::*;
use std::collections::HashSet;
use std::process::Command;

fn folder(name: &str) -> Folder {
    Folder::from_sieve(name, "").expect("valid folder")
}

fn seen() -> SystemFlags {
    SystemFlags {
        seen: true,
        ..SystemFlags::default()
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.expect("dir entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn new_or_cur_by_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let cases: &[(SystemFlags, &str, &str)] = &[
        (SystemFlags::default(), "new", ""),
        (seen(), "cur", ":2,S"),
        (
            SystemFlags {
                flagged: true,
                seen: true,
                ..SystemFlags::default()
            },
            "cur",
            ":2,FS",
        ),
    ];
    for (flags, sub, suffix) in cases {
        let stored = md
            .store(&Folder::inbox(), *flags, false, &[b"a: b\r\n\r\nhi\r\n"])
            .expect("store");
        assert_eq!(
            stored.path.parent(),
            Some(md.root().join(sub).as_path()),
            "{flags:?}"
        );
        let name = stored.path.file_name().expect("name").to_string_lossy();
        assert!(name.ends_with(&format!(",S=12{suffix}")), "{name}");
        assert!(stored.folder.is_inbox());
    }
    assert!(entries(&md.root().join("tmp")).is_empty());
}

#[test]
fn names_unique_and_sized() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let mut names = HashSet::new();
    for i in 0..50usize {
        let body = vec![b'x'; i * 7];
        let stored = md
            .store(
                &Folder::inbox(),
                SystemFlags::default(),
                false,
                &[b"h\r\n", &body],
            )
            .expect("store");
        let actual = fs::metadata(&stored.path).expect("stat").len();
        let name = stored
            .path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(name.ends_with(&format!(",S={actual}")), "{name}");
        assert!(
            name.contains(&format!("P{}Q", std::process::id())),
            "{name}"
        );
        assert!(!name[..name.len() - 1].contains('/'));
        assert!(names.insert(name));
    }
}

#[test]
fn hostname_escaping() {
    for (host, want) in [
        ("mx1", "mx1"),
        ("a/b", "a\\057b"),
        ("a:b", "a\\072b"),
        ("", "localhost"),
    ] {
        assert_eq!(escape_hostname(host), want);
    }
}

#[test]
fn content_byte_identical() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let header = b"Return-Path: <a@b>\r\n";
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let stored = md
        .store(
            &Folder::inbox(),
            SystemFlags::default(),
            false,
            &[header, &body],
        )
        .expect("store");
    let got = fs::read(&stored.path).expect("read");
    assert_eq!(&got[..header.len()], header);
    assert_eq!(&got[header.len()..], &body[..]);
}

#[test]
fn folder_creation_marker_and_subscriptions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    assert!(!md.folder_exists(&folder("Work.Projects")));
    for name in [
        "Work.Projects",
        "Work.Projects",
        "Entwürfe",
        "INBOX.Work.Projects",
    ] {
        let f = folder(name);
        let stored = md
            .store(&f, SystemFlags::default(), true, &[b"x\r\n"])
            .expect("store");
        assert!(md.folder_exists(&f));
        let dir = md.root().join(f.dir_name().expect("sub-folder"));
        assert_eq!(stored.path.parent(), Some(dir.join("new").as_path()));
        for sub in ["cur", "new", "tmp"] {
            assert!(dir.join(sub).is_dir(), "{name} {sub}");
        }
        let marker = fs::metadata(dir.join(MAILDIRFOLDER)).expect("maildirfolder");
        assert_eq!(marker.len(), 0);
    }
    let subs = fs::read_to_string(md.root().join("subscriptions")).expect("subscriptions");
    // With Dovecot's default empty namespace prefix INBOX.Work.Projects is a folder of its
    // own, listed (and subscribed) under that name.
    assert_eq!(subs, "Work.Projects\nEntw&APw-rfe\nINBOX.Work.Projects\n");
    assert!(!md.root().join("subscriptions.lock").exists());
}

#[test]
fn existing_subscription_not_duplicated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    fs::create_dir_all(md.root()).expect("mkdir");
    // Dovecot's version-2 format separates hierarchy levels with a tab.
    fs::write(
        md.root().join("subscriptions"),
        "V\t2\n\nTrash\nWork\tOld\n",
    )
    .expect("write");
    md.store(&folder("Work.Old"), SystemFlags::default(), true, &[b"x"])
        .expect("store");
    md.store(&folder("Lists"), SystemFlags::default(), true, &[b"x"])
        .expect("store");
    let subs = fs::read_to_string(md.root().join("subscriptions")).expect("read");
    assert_eq!(subs, "V\t2\n\nTrash\nWork\tOld\nLists\n");
}

#[test]
fn folder_missing_without_create() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let err = md
        .store(&folder("Work"), SystemFlags::default(), false, &[b"x"])
        .expect_err("missing");
    assert!(matches!(err, StoreError::FolderMissing(ref f) if *f == folder("Work")));
    assert!(!err.is_no_space());
    assert!(!md.root().join(".Work").exists());
    assert!(!md.root().join("subscriptions").exists());
    // A folder made by someone else (Dovecot, an IMAP client) is used without :create.
    fs::create_dir_all(md.root().join(".Work")).expect("mkdir");
    md.store(&folder("Work"), SystemFlags::default(), false, &[b"x"])
        .expect("existing folder");
}

#[test]
fn remove_rolls_back_and_refuses_foreign_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let stored = md
        .store(&folder("Work"), seen(), true, &[b"x"])
        .expect("store");
    md.remove(&stored).expect("remove");
    assert!(!stored.path.exists());
    md.remove(&stored).expect("already gone is fine");

    let outside = tmp.path().join("victim");
    fs::write(&outside, "keep").expect("write");
    for path in [
        outside.clone(),
        md.root().join("new/../../victim"),
        md.root().join("subscriptions"),
        md.root().join("tmp/x"),
    ] {
        let bogus = StoredMessage {
            folder: Folder::inbox(),
            path,
            dropped_keywords: Vec::new(),
        };
        assert!(matches!(
            md.remove(&bogus),
            Err(StoreError::OutsideRoot { .. })
        ));
    }
    assert!(outside.exists());
}

#[test]
fn concurrent_stores_all_land() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let md = md.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let body = format!("thread {t} message {i}\r\n");
                        md.store(
                            &folder("Shared"),
                            SystemFlags::default(),
                            true,
                            &[body.as_bytes()],
                        )
                        .map(|s| s.path)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut paths = HashSet::new();
    for t in threads {
        for p in t.join().expect("thread").expect("stores") {
            assert!(paths.insert(p));
        }
    }
    let new_dir = md.root().join(".Shared/new");
    assert_eq!(entries(&new_dir).len(), 80);
    let subs = fs::read_to_string(md.root().join("subscriptions")).expect("read");
    assert_eq!(subs, "Shared\n");
}

#[test]
fn root_is_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("Maildir");
    fs::write(&root, "not a dir").expect("write");
    let md = Maildir::new(root.clone());
    let err = md
        .store(&Folder::inbox(), SystemFlags::default(), false, &[b"x"])
        .expect_err("must fail");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert_eq!(fs::read(&root).expect("read"), b"not a dir");
}

#[test]
fn no_space_classification() {
    let cases: &[(io::Error, bool)] = &[
        (io::Error::from_raw_os_error(libc::ENOSPC), true),
        (io::Error::from_raw_os_error(libc::EDQUOT), true),
        (io::Error::from_raw_os_error(libc::EIO), false),
        (io::Error::from_raw_os_error(libc::EACCES), false),
        (io::Error::from(io::ErrorKind::StorageFull), true),
        (io::Error::other("x"), false),
    ];
    for (err, want) in cases {
        assert_eq!(is_no_space_error(err), *want, "{err:?}");
    }
    let quota = StoreError::Io {
        op: "write",
        path: PathBuf::from("/x"),
        source: io::Error::from_raw_os_error(libc::EDQUOT),
    };
    assert!(quota.is_no_space() && quota.is_quota_exceeded());
    let full = StoreError::Io {
        op: "write",
        path: PathBuf::from("/x"),
        source: io::Error::from_raw_os_error(libc::ENOSPC),
    };
    assert!(full.is_no_space() && !full.is_quota_exceeded());
    assert!(!StoreError::FolderMissing(Folder::inbox()).is_no_space());
}

/// Unmounts the test tmpfs even when an assertion fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("small");
    fs::create_dir(&mnt).expect("mkdir");
    // Tests never skip: without root (or with mount refused) this fails, it does not pass.
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output();
    match &mount {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "disk_full_leaves_nothing needs root to mount a 1 MiB tmpfs: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("disk_full_leaves_nothing: cannot run mount: {e}"),
    }
    let _unmount = Unmount(mnt.clone());
    let md = Maildir::new(mnt.join("Maildir"));
    let big = vec![b'x'; 2 * 1024 * 1024];
    for f in [Folder::inbox(), folder("Big")] {
        let err = md
            .store(
                &f,
                SystemFlags::default(),
                true,
                &[b"Subject: big\r\n\r\n", &big],
            )
            .expect_err("disk full");
        assert!(err.is_no_space(), "{err}");
        // The disk is just as full for INBOX: no fallback, a 452.
        assert!(!err.is_folder_problem(), "{err}");
        let dir = md.root().join(f.dir_name().unwrap_or_default());
        for sub in ["tmp", "new", "cur"] {
            assert!(entries(&dir.join(sub)).is_empty(), "{f} {sub}");
        }
    }
    // The space is free again: a small message still goes through.
    md.store(&Folder::inbox(), SystemFlags::default(), false, &[b"small"])
        .expect("small store after ENOSPC");
}

/// Where an error happened and its errno decide between "store into INBOX instead" and a
/// 4xx (hardening #5 item 4); the message text plays no part.
#[test]
fn folder_problem_table() {
    let io = |errno: i32| StoreError::Io {
        op: "create",
        path: PathBuf::from("/m/.Work/tmp/x"),
        source: io::Error::from_raw_os_error(errno),
    };
    let in_folder = |errno: i32| StoreError::in_folder(&folder("Work"), io(errno));
    // (errno, folder problem inside a sub-folder, no space)
    let cases: &[(i32, bool, bool)] = &[
        (libc::EACCES, true, false),
        (libc::EPERM, true, false),
        (libc::EROFS, true, false),
        (libc::ENOTDIR, true, false),
        (libc::EISDIR, true, false),
        (libc::EEXIST, true, false),
        (libc::ENAMETOOLONG, true, false),
        (libc::EINVAL, true, false),
        (libc::ELOOP, true, false),
        (libc::EMLINK, true, false),
        (libc::ENOSPC, false, true),
        (libc::EDQUOT, false, true),
        (libc::EIO, false, false),
        (libc::EMFILE, false, false),
        (libc::ENFILE, false, false),
        (libc::ENOENT, false, false),
        (libc::ESTALE, false, false),
    ];
    for &(errno, problem, no_space) in cases {
        let err = in_folder(errno);
        assert!(matches!(err, StoreError::InFolder { .. }), "{errno}");
        assert_eq!(err.is_folder_problem(), problem, "in folder, errno {errno}");
        assert_eq!(err.is_no_space(), no_space, "in folder, errno {errno}");
        // The same errno at INBOX (the root) is never a folder problem: INBOX is the
        // fallback, so its failure is the recipient's 4xx.
        let at_inbox = StoreError::in_folder(&Folder::inbox(), io(errno));
        assert!(matches!(at_inbox, StoreError::Io { .. }), "{errno}");
        assert!(!at_inbox.is_folder_problem(), "at INBOX, errno {errno}");
        assert_eq!(at_inbox.is_no_space(), no_space, "at INBOX, errno {errno}");
    }
    // An error without an errno (a lock timeout) is transient.
    let timeout = StoreError::in_folder(
        &folder("Work"),
        StoreError::Io {
            op: "lock",
            path: PathBuf::from("/m/subscriptions.lock"),
            source: io::Error::from(io::ErrorKind::TimedOut),
        },
    );
    assert!(!timeout.is_folder_problem());
    assert!(StoreError::FolderMissing(folder("Work")).is_folder_problem());
    assert!(StoreError::FolderNameTooLong(folder("Work")).is_folder_problem());
    let outside = StoreError::OutsideRoot {
        path: PathBuf::from("/x"),
        root: PathBuf::from("/m"),
    };
    assert!(!outside.is_folder_problem());
}

/// Real errors land in the right place: a file where the folder's tmp/ belongs is a problem
/// of that folder; the same at the root is not.
#[test]
fn errors_are_located() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    fs::create_dir_all(md.root().join(".Work")).expect("mkdir");
    fs::write(md.root().join(".Work/tmp"), "").expect("write");
    let err = md
        .store(&folder("Work"), SystemFlags::default(), false, &[b"x"])
        .expect_err("ENOTDIR");
    assert!(err.is_folder_problem(), "{err}");
    fs::write(md.root().join("tmp"), "").expect("write");
    let err = md
        .store(&Folder::inbox(), SystemFlags::default(), false, &[b"x"])
        .expect_err("ENOTDIR");
    assert!(!err.is_folder_problem(), "{err}");
    // Creating a folder needs the root's cur/new/tmp first: a broken root is not the
    // folder's problem either.
    let err = md
        .store(&folder("Other"), SystemFlags::default(), true, &[b"x"])
        .expect_err("root broken");
    assert!(!err.is_folder_problem(), "{err}");
    let long = folder(&"y".repeat(300));
    let err = md
        .store(&long, SystemFlags::default(), true, &[b"x"])
        .expect_err("too long");
    assert!(matches!(err, StoreError::FolderNameTooLong(_)), "{err}");
}

/// Hardening #5 item 13: a crash leftover in `tmp/` (older than 36 hours) is removed when
/// the folder is next delivered to; a recent file (maybe a delivery in progress) is not.
#[test]
fn store_cleans_crash_leftovers_in_tmp() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let hour = std::time::Duration::from_secs(3600);
    for dir in ["", ".Work"] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(md.root().join(dir).join(sub)).expect("mkdir");
        }
        for (name, age) in [("crashed", 48 * hour), ("in-progress", hour)] {
            let path = md.root().join(dir).join("tmp").join(name);
            let file = fs::File::create(&path).expect("create");
            file.set_modified(SystemTime::now() - age).expect("mtime");
        }
    }
    md.store(&Folder::inbox(), SystemFlags::default(), false, &[b"x"])
        .expect("store");
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = entries(&md.root().join(dir).join("tmp"))
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(""), ["in-progress"]);
    assert_eq!(
        names(".Work"),
        ["crashed", "in-progress"],
        "not delivered to yet"
    );
    md.store(&folder("Work"), SystemFlags::default(), false, &[b"x"])
        .expect("store");
    assert_eq!(names(".Work"), ["in-progress"]);
}

/// Keywords: letters after the system flags in `cur/`, the names in `dovecot-keywords` of
/// the folder they were stored in.
#[test]
fn keywords_in_file_name_and_keywords_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let kw = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let first = md
        .store_with_keywords(
            &Folder::inbox(),
            seen(),
            &kw(&["$Label1"]),
            false,
            &[b"x\r\n"],
        )
        .expect("store");
    let second = md
        .store_with_keywords(
            &Folder::from_sieve("Work", "").expect("folder"),
            SystemFlags::default(),
            &kw(&["Later", "$label1"]),
            true,
            &[b"x\r\n"],
        )
        .expect("store");
    let name = |p: &std::path::Path| p.file_name().expect("name").to_string_lossy().into_owned();
    assert!(name(&first.path).ends_with(":2,Sa"), "{:?}", first.path);
    assert!(name(&second.path).ends_with(":2,ab"), "{:?}", second.path);
    assert!(second.path.parent().expect("dir").ends_with(".Work/cur"));
    let read = |p: std::path::PathBuf| fs::read_to_string(p).expect("keywords file");
    assert_eq!(read(md.root().join("dovecot-keywords")), "0 $Label1\n");
    assert_eq!(
        read(md.root().join(".Work/dovecot-keywords")),
        "0 Later\n1 $label1\n"
    );
}
