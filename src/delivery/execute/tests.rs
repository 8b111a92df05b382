//! `execute` tables: stores, fallbacks, rollbacks.

use super::*;
use std::fs;
use std::path::Path;

fn folder(name: &str) -> Folder {
    Folder::from_sieve(name, "").expect("valid folder")
}

fn store(name: &str, flags: &[&str], create: bool) -> Action {
    let (flags, keywords) = SystemFlags::from_sieve(flags);
    Action::Store {
        folder: folder(name),
        flags,
        keywords,
        create,
        edited: None,
    }
}

fn plan(actions: Vec<Action>) -> Plan {
    Plan {
        actions,
        ..Plan::default()
    }
}

/// Relative paths of every file in new/ and cur/ of INBOX and `.Work`/`.Lists`.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["", ".Work", ".Lists"] {
        for sub in ["new", "cur", "tmp"] {
            let d = root.join(dir).join(sub);
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd {
                let e = e.expect("entry");
                let name = e.file_name().to_string_lossy().to_string();
                let info = name.split_once(":2,").map_or("", |(_, i)| i).to_string();
                out.push(
                    format!("{dir}/{sub}:{info}")
                        .trim_start_matches('/')
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

const HEADER: &[u8] = b"Delivered-To: bob@example.test\r\n";
const BODY: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

#[test]
fn execute_table() {
    struct Case {
        what: &'static str,
        existing: &'static [&'static str],
        actions: Vec<Action>,
        summary: &'static str,
        files: &'static [&'static str],
        notes: usize,
    }
    let cases = vec![
        Case {
            what: "keep",
            existing: &[],
            actions: vec![store("INBOX", &[], false)],
            summary: "stored INBOX",
            files: &["new:"],
            notes: 0,
        },
        Case {
            what: "fileinto with flags goes to cur/",
            existing: &[],
            actions: vec![store("Work", &["\\Seen", "\\Flagged"], true)],
            summary: "stored Work",
            files: &[".Work/cur:FS"],
            notes: 0,
        },
        Case {
            what: "fileinto existing folder without :create",
            existing: &[".Work"],
            actions: vec![store("Work", &[], false)],
            summary: "stored Work",
            files: &[".Work/new:"],
            notes: 0,
        },
        Case {
            // Pigeonhole: the first failing store aborts the delivery's stores; the
            // failsafe keep stores once into INBOX without flags.
            what: "missing folder: the failsafe keep, once, without flags",
            existing: &[],
            actions: vec![
                store("Work", &["\\Seen"], false),
                store("Lists", &[], false),
                store("INBOX", &[], false),
            ],
            summary: "stored INBOX",
            files: &["new:"],
            notes: 1,
        },
        Case {
            what: "same folder twice: one copy",
            existing: &[],
            actions: vec![
                store("Work", &[], true),
                store("Work", &["\\Seen"], true),
                store("INBOX", &[], false),
            ],
            summary: "stored Work,INBOX",
            files: &[".Work/new:", "new:"],
            notes: 0,
        },
        Case {
            what: "discard",
            existing: &[],
            actions: vec![],
            summary: "discarded",
            files: &[],
            notes: 0,
        },
        Case {
            what: "reject",
            existing: &[],
            actions: vec![Action::Reject {
                reason: "not wanted".to_string(),
                extended: false,
            }],
            summary: "rejected: not wanted",
            files: &[],
            notes: 0,
        },
        Case {
            what: "reject wins over a store",
            existing: &[],
            actions: vec![
                store("INBOX", &[], false),
                Action::Reject {
                    reason: "no".to_string(),
                    extended: true,
                },
            ],
            summary: "erejected: no",
            files: &[],
            notes: 1,
        },
    ];
    for case in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = Maildir::new(tmp.path().join("Maildir"));
        for dir in case.existing {
            fs::create_dir_all(md.root().join(dir)).expect("mkdir");
        }
        let (outcome, notes) = execute(&plan(case.actions), &md, HEADER, BODY);
        assert_eq!(outcome.summary(), case.summary, "{}", case.what);
        assert_eq!(files(md.root()), case.files, "{}", case.what);
        assert_eq!(notes.len(), case.notes, "{}: {notes:?}", case.what);
        assert!(!outcome.is_temporary_failure(), "{}", case.what);
        if let RcptOutcome::Delivered { stored } = &outcome {
            for s in stored {
                let content = fs::read(&s.path).expect("read");
                assert_eq!(content, [HEADER, BODY].concat(), "{}", case.what);
            }
        }
    }
}

#[test]
fn fallback_note_names_the_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let (_, notes) = execute(&plan(vec![store("Work", &[], false)]), &md, HEADER, BODY);
    assert_eq!(
        notes,
        ["folder \"Work\" does not exist and :create not given: kept in INBOX"]
    );
}

#[test]
fn failure_rolls_back_earlier_copies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    // `.Lists` exists, so its store needs nothing from the root; `.Work/tmp` is a file
    // (ENOTDIR: a folder problem, even as root where permission bits would not stop
    // us), and INBOX, the fallback, is broken too (`tmp` is a file): 4xx, and the copy
    // in `.Lists` must go again.
    for dir in [".Lists/cur", ".Lists/new", ".Lists/tmp", ".Work"] {
        fs::create_dir_all(md.root().join(dir)).expect("mkdir");
    }
    fs::write(md.root().join(".Work/tmp"), "").expect("write");
    fs::write(md.root().join("tmp"), "").expect("write");
    let actions = vec![store("Lists", &["\\Seen"], true), store("Work", &[], false)];
    let (outcome, notes) = execute(&plan(actions), &md, HEADER, BODY);
    assert!(outcome.is_temporary_failure(), "{}", outcome.summary());
    assert!(!outcome.is_no_space());
    assert!(
        outcome.summary().starts_with("failed: "),
        "{}",
        outcome.summary()
    );
    assert_eq!(notes.len(), 1, "the fallback is noted: {notes:?}");
    assert_eq!(files(md.root()), Vec::<String>::new());
}

/// Hardening #5 item 4: a folder that can never take the message falls back to INBOX
/// (before, each of these answered 451 on every retry until Postfix bounced); INBOX
/// itself failing stays a temporary failure.
#[test]
fn unusable_folder_falls_back_to_inbox() {
    type Setup = fn(&Path);
    struct Case {
        what: &'static str,
        folder: String,
        create: bool,
        setup: Setup,
        /// `Some(files)` when delivered, `None` when the recipient fails (4xx).
        files: Option<&'static [&'static str]>,
        note: &'static str,
    }
    let long_ascii = "x".repeat(300);
    // The limit is on the modified UTF-7 directory name, not the UTF-8 Sieve name: 94 CJK
    // characters are 282 bytes of UTF-8 but `.&` + 251 + `-` = 254 bytes on disk (fits);
    // 95 are 257 bytes on disk (too long).
    let fits_mutf7 = "日".repeat(94);
    let long_mutf7 = "日".repeat(95);
    let nothing: Setup = |_| {};
    let cases = vec![
        Case {
            what: "300-character name with :create",
            folder: long_ascii.clone(),
            create: true,
            setup: nothing,
            files: Some(&["new:"]),
            note: "directory name longer than 255 bytes",
        },
        Case {
            what: "300-character name without :create",
            folder: long_ascii,
            create: false,
            setup: nothing,
            files: Some(&["new:"]),
            note: "directory name longer than 255 bytes",
        },
        Case {
            what: "95 CJK characters: too long in modified UTF-7",
            folder: long_mutf7,
            create: true,
            setup: nothing,
            files: Some(&["new:"]),
            note: "directory name longer than 255 bytes",
        },
        Case {
            what: "the folder is a plain file",
            folder: "Work".into(),
            create: true,
            setup: |root| {
                fs::create_dir_all(root).expect("mkdir");
                fs::write(root.join(".Work"), "x").expect("write");
            },
            files: Some(&["new:"]),
            note: "Not a directory",
        },
        Case {
            what: "the folder's tmp/ is a plain file",
            folder: "Work".into(),
            create: false,
            setup: |root| {
                fs::create_dir_all(root.join(".Work")).expect("mkdir");
                fs::write(root.join(".Work/tmp"), "x").expect("write");
            },
            files: Some(&["new:"]),
            note: "Not a directory",
        },
        Case {
            what: "the folder's new/ is a plain file (rename fails)",
            folder: "Work".into(),
            create: false,
            setup: |root| {
                fs::create_dir_all(root.join(".Work/tmp")).expect("mkdir");
                fs::create_dir_all(root.join(".Work/cur")).expect("mkdir");
                fs::write(root.join(".Work/new"), "x").expect("write");
            },
            files: Some(&["new:"]),
            note: "Not a directory",
        },
        Case {
            what: "subscriptions is a directory (creating the folder fails)",
            folder: "Work".into(),
            create: true,
            setup: |root| {
                fs::create_dir_all(root.join("subscriptions/x")).expect("mkdir");
            },
            files: Some(&["new:"]),
            note: "Is a directory",
        },
        Case {
            what: "INBOX's tmp/ is a plain file: 4xx",
            folder: "INBOX".into(),
            create: false,
            setup: |root| {
                fs::create_dir_all(root).expect("mkdir");
                fs::write(root.join("tmp"), "x").expect("write");
            },
            files: None,
            note: "",
        },
        Case {
            what: "folder unusable and INBOX unusable: 4xx",
            folder: "Work".into(),
            create: false,
            setup: |root| {
                fs::create_dir_all(root.join(".Work")).expect("mkdir");
                fs::write(root.join(".Work/tmp"), "x").expect("write");
                fs::write(root.join("tmp"), "x").expect("write");
            },
            files: None,
            note: "Not a directory",
        },
    ];
    // The boundary: 94 CJK characters are stored in their folder.
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let fits = folder(&fits_mutf7);
    assert_eq!(fits.dir_name().map(|d| d.len()), Some(254));
    let actions = vec![store(&fits_mutf7, &[], true)];
    let (outcome, notes) = execute(&plan(actions), &md, HEADER, BODY);
    assert_eq!(outcome.summary(), format!("stored {}", fits.imap_name()));
    assert!(notes.is_empty(), "{notes:?}");

    for case in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let md = Maildir::new(tmp.path().join("Maildir"));
        (case.setup)(md.root());
        let target = folder(&case.folder);
        let actions = vec![Action::Store {
            folder: target,
            flags: SystemFlags::default(),
            keywords: Vec::new(),
            edited: None,
            create: case.create,
        }];
        let (outcome, notes) = execute(&plan(actions), &md, HEADER, BODY);
        match case.files {
            Some(want) => {
                assert_eq!(outcome.summary(), "stored INBOX", "{}", case.what);
                assert_eq!(files(md.root()), want, "{}", case.what);
                assert_eq!(notes.len(), 1, "{}: {notes:?}", case.what);
                assert!(notes[0].contains(case.note), "{}: {notes:?}", case.what);
                assert!(notes[0].ends_with("INBOX instead"), "{}", case.what);
            }
            None => {
                assert!(outcome.is_temporary_failure(), "{}", case.what);
                assert!(!outcome.is_no_space(), "{}", case.what);
                assert!(
                    notes.iter().all(|n| n.contains(case.note)),
                    "{}: {notes:?}",
                    case.what
                );
            }
        }
        // Nothing half-made of the long folders is left behind.
        let leftovers: Vec<_> = fs::read_dir(md.root())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() > 100)
                    .collect()
            })
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", case.what);
    }
}

/// A folder on a read-only mount (EROFS on that folder only) falls back to INBOX. Needs
/// root for the bind mount, like the disk-full tests; it fails rather than skips.
#[test]
fn read_only_folder_falls_back_to_inbox() {
    use std::process::Command;
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    let work = md.root().join(".Work");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(work.join(sub)).expect("mkdir");
    }
    let run = |args: &[&str]| {
        let out = Command::new("mount")
            .args(args)
            .arg(&work)
            .arg(&work)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "read_only_folder_falls_back_to_inbox needs root to bind-mount: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    };
    run(&["--bind"]);
    let _unmount = Unmount(work.clone());
    run(&["-o", "remount,bind,ro"]);

    let (outcome, notes) = execute(&plan(vec![store("Work", &[], false)]), &md, HEADER, BODY);
    assert_eq!(outcome.summary(), "stored INBOX", "{notes:?}");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("Read-only file system"), "{notes:?}");
    assert_eq!(files(md.root()), ["new:"]);
}

#[test]
fn unusable_root_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("Maildir");
    fs::write(&root, "a file").expect("write");
    let md = Maildir::new(root);
    let (outcome, _) = execute(&plan(vec![store("INBOX", &[], false)]), &md, HEADER, BODY);
    assert!(matches!(
        outcome,
        RcptOutcome::Failed {
            error: StoreError::Io { .. }
        }
    ));
}

#[test]
fn shared_copies_are_links_and_edited_ones_are_not() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (header, body) = (
        b"X-Trace: shared\r\n".as_slice(),
        b"\r\nbody\r\n".as_slice(),
    );
    let mut shared = SharedCopy::new(true);
    let inode = |root: &Path| -> Vec<u64> {
        let mut inodes = Vec::new();
        for dir in ["", ".Work"] {
            for sub in ["new", "cur"] {
                let Ok(rd) = fs::read_dir(root.join(dir).join(sub)) else {
                    continue;
                };
                inodes.extend(rd.map(|e| e.expect("entry").metadata().expect("meta").ino()));
            }
        }
        inodes
    };
    // Alice: INBOX and Work (the second folder links the first copy).
    let alice = Maildir::new(tmp.path().join("alice"));
    let two = plan(vec![
        store("INBOX", &[], false),
        store("Work", &["\\Seen"], true),
    ]);
    let (outcome, _) = execute_shared(&two, &alice, header, body, &mut shared);
    assert!(
        matches!(outcome, RcptOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    // Bob: INBOX, a link as well.
    let bob = Maildir::new(tmp.path().join("bob"));
    let one = plan(vec![store("INBOX", &[], false)]);
    let (outcome, _) = execute_shared(&one, &bob, header, body, &mut shared);
    assert!(
        matches!(outcome, RcptOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    let mut all = inode(alice.root());
    all.extend(inode(bob.root()));
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|i| *i == all[0]), "one file: {all:?}");
    // Carol's editheader result differs: her own file, and the shared source is kept.
    let carol = Maildir::new(tmp.path().join("carol"));
    let edited = plan(vec![Action::Store {
        folder: Folder::inbox(),
        flags: SystemFlags::default(),
        keywords: Vec::new(),
        create: false,
        edited: Some(b"X-Edited: yes\r\n\r\nbody\r\n".as_slice().into()),
    }]);
    let (outcome, _) = execute_shared(&edited, &carol, header, body, &mut shared);
    assert!(
        matches!(outcome, RcptOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    assert_ne!(inode(carol.root()), vec![all[0]]);
    // Without sharing every copy is a file of its own.
    let mut off = SharedCopy::new(false);
    let dave = Maildir::new(tmp.path().join("dave"));
    let (outcome, _) = execute_shared(&two, &dave, header, body, &mut off);
    assert!(
        matches!(outcome, RcptOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    let dave_inodes = inode(dave.root());
    assert_eq!(dave_inodes.len(), 2);
    assert_ne!(dave_inodes[0], dave_inodes[1]);
}
