//! Users file tests: the parser (a table), lookups, and re-reading on change.

use super::*;
use std::fs;

fn parse(text: &str) -> Result<UserTable, String> {
    UserTable::parse(text, Path::new("users")).map_err(|e| e.to_string())
}

#[test]
fn parse_table() {
    // (file, lookups (local, domain) → Some(home) / None for unknown) or the error.
    type Want<'a> = Result<&'a [(&'a str, &'a str, Option<Option<&'a str>>)], &'a str>;
    let cases: &[(&str, Want)] = &[
        ("", Ok(&[("alice", "example.test", None)])),
        (
            "alice@example.test:{PLAIN}pw:1000:1000::/home/alice::\n",
            Ok(&[
                ("alice", "example.test", Some(Some("/home/alice"))),
                ("alice", "other.test", None),
                ("bob", "example.test", None),
            ]),
        ),
        (
            // Fields may be missing at the end; a bare name is every served domain.
            "alice@example.test\nbob\ncarol@example.test:x\n",
            Ok(&[
                ("alice", "example.test", Some(None)),
                ("bob", "example.test", Some(None)),
                ("bob", "other.test", Some(None)),
                ("carol", "example.test", Some(None)),
            ]),
        ),
        (
            "# comment\n\n   \n  # indented comment\nAlice@Example.TEST::::::\n",
            Ok(&[("alice", "example.test", Some(None))]),
        ),
        (
            // Extra fields may hold ':' and '='; only the 6th field is the home.
            "dave@example.test:pw:1:2:Dave D:/srv/dave:/bin/false:userdb_mail=maildir:~/M quota=1G\n",
            Ok(&[("dave", "example.test", Some(Some("/srv/dave")))]),
        ),
        (
            // The first entry of a name wins, as in Dovecot.
            "erin:::::/first\nerin:::::/second\n",
            Ok(&[("erin", "example.test", Some(Some("/first")))]),
        ),
        (
            "frank@example.test:x:::gecos\r\n",
            Ok(&[("frank", "example.test", Some(None))]),
        ),
        (":pw:1:1::/home/x\n", Err("users:1: empty user name")),
        ("ok\n@example.test\n", Err("users:2: user name \"@example.test\": must be user or user@domain")),
        ("a@b@c\n", Err("users:1: user name \"a@b@c\": must be user or user@domain")),
        ("a@\n", Err("users:1: user name \"a@\": must be user or user@domain")),
        ("al ice\n", Err("users:1: user name \"al ice\": contains white space or a control character")),
        ("alice:x:1:1::home/alice\n", Err("users:1: home \"home/alice\" of alice is not an absolute path")),
        ("alice:x:1:1::/home/%n\n", Err("users:1: home \"/home/%n\" of alice contains '%' or a control character")),
    ];
    for (text, want) in cases {
        match (parse(text), want) {
            (Ok(table), Ok(lookups)) => {
                for (local, domain, home) in *lookups {
                    let got = table
                        .get(local, domain)
                        .map(|u| u.home.as_ref().map(|h| h.to_string_lossy().into_owned()));
                    let want = home.map(|h| h.map(str::to_string));
                    assert_eq!(got, want, "{text:?}: {local}@{domain}");
                }
            }
            (Err(got), Err(want)) => assert_eq!(got, *want, "{text:?}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

fn recipient(address: &str) -> Recipient {
    let domains = vec!["example.test".to_string(), "other.test".to_string()];
    Recipient::resolve(address, &domains, "+").expect("valid recipient")
}

#[test]
fn admit_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users");
    fs::write(
        &path,
        "alice@example.test:x:::: /home/alice\nbob@example.test\nshared\n",
    )
    .expect("write");
    let users = Users::new(Some(&path));
    /// (address, needs_home, the home set or the refusal)
    type Case<'a> = (&'a str, bool, Result<Option<&'a str>, Refusal>);
    let cases: &[Case] = &[
        ("alice@example.test", false, Ok(Some("/home/alice"))),
        ("ALICE+lists@Example.Test", true, Ok(Some("/home/alice"))),
        ("alice@other.test", false, Err(Refusal::Unknown)),
        ("bob@example.test", false, Ok(None)),
        ("bob@example.test", true, Err(Refusal::NoHome)),
        ("shared@other.test", false, Ok(None)),
        ("nobody@example.test", false, Err(Refusal::Unknown)),
        ("alice.typo@example.test", false, Err(Refusal::Unknown)),
    ];
    for (address, needs_home, want) in cases {
        let mut rcpt = recipient(address);
        let got = users
            .admit(&mut rcpt, *needs_home)
            .map(|()| rcpt.home.as_ref().map(|h| h.to_string_lossy().into_owned()));
        let want = want.map(|h| h.map(str::to_string));
        assert_eq!(got, want, "{address} needs_home={needs_home}");
    }
    // Without a users file everybody exists, without a home.
    let mut rcpt = recipient("anyone@example.test");
    assert_eq!(Users::Everyone.admit(&mut rcpt, false), Ok(()));
    assert_eq!(rcpt.home, None);
}

/// Replaces the file the way editors and config management do: a new inode, renamed over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

#[test]
fn reread_on_change_keeps_last_good_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users");
    fs::write(&path, "alice@example.test\n").expect("write");
    let file = UsersFile::open(path.clone(), Duration::ZERO);
    assert!(matches!(
        file.lookup("alice", "example.test"),
        Lookup::Found(_)
    ));
    assert_eq!(file.lookup("bob", "example.test"), Lookup::Unknown);

    // A new user appears without a restart.
    replace(&path, "alice@example.test\nbob@example.test\n");
    assert!(matches!(
        file.lookup("bob", "example.test"),
        Lookup::Found(_)
    ));

    // Edited in place, same size, same inode: the modification time tells.
    fs::write(&path, "alice@example.test\ncarl@example.test\n").expect("write");
    assert!(matches!(
        file.lookup("carl", "example.test"),
        Lookup::Found(_)
    ));
    assert_eq!(file.lookup("bob", "example.test"), Lookup::Unknown);

    // A broken version keeps the last good table...
    replace(&path, "alice@example.test\nbroken user\n");
    assert!(matches!(
        file.lookup("carl", "example.test"),
        Lookup::Found(_)
    ));
    // ... and so does a missing file.
    fs::remove_file(&path).expect("remove");
    assert!(matches!(
        file.lookup("carl", "example.test"),
        Lookup::Found(_)
    ));
    // Fixed again: the new table is used.
    replace(&path, "dora@example.test\n");
    assert!(matches!(
        file.lookup("dora", "example.test"),
        Lookup::Found(_)
    ));
    assert_eq!(file.lookup("carl", "example.test"), Lookup::Unknown);
}

#[test]
fn recheck_is_rate_limited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users");
    fs::write(&path, "alice@example.test\n").expect("write");
    let file = UsersFile::open(path.clone(), Duration::from_secs(3600));
    replace(&path, "bob@example.test\n");
    // Within the interval the old table answers: no stat per RCPT.
    assert_eq!(file.lookup("bob", "example.test"), Lookup::Unknown);
}

#[test]
fn never_read_is_unavailable_not_unknown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users");
    let file = UsersFile::open(path.clone(), Duration::ZERO);
    assert_eq!(file.lookup("alice", "example.test"), Lookup::Unavailable);
    fs::write(&path, "broken user\n").expect("write");
    assert_eq!(file.lookup("alice", "example.test"), Lookup::Unavailable);
    replace(&path, "alice@example.test\n");
    assert!(matches!(
        file.lookup("alice", "example.test"),
        Lookup::Found(_)
    ));
}

/// The server, the outbox and a reload each open the same file: one read, one table, one
/// "users file read" line per version of the file, not one per reader.
#[test]
fn readers_of_one_file_share_its_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("users");
    fs::write(&path, "alice@example.test\n").expect("write");
    let first = UsersFile::open(path.clone(), Duration::ZERO);
    let second = UsersFile::open(path.clone(), Duration::ZERO);
    let (a, b) = (first.table().expect("read"), second.table().expect("read"));
    assert!(Arc::ptr_eq(&a, &b), "one table for both readers");
    replace(&path, "bob@example.test\n");
    let (c, d) = (first.table().expect("read"), second.table().expect("read"));
    assert!(!Arc::ptr_eq(&a, &c), "the edit is read again");
    assert!(Arc::ptr_eq(&c, &d), "and shared again");
    assert!(matches!(
        second.lookup("bob", "example.test"),
        Lookup::Found(_)
    ));
}

#[test]
fn the_password_field_is_kept_and_never_shown() {
    let text = "alice@example.test:{PLAIN}s3cret:1000:1000::/home/alice::\n\
                bob@example.test::::::/home/bob\n\
                carol@example.test:{SHA512-CRYPT}$6$x$y\n\
                dave\n";
    let table = UserTable::parse(text, Path::new("users")).expect("parses");
    let password = |local: &str, domain: &str| {
        let user = table.get(local, domain).expect("known");
        user.password.as_ref().map(|p| p.expose().to_string())
    };
    assert_eq!(
        password("alice", "example.test").as_deref(),
        Some("{PLAIN}s3cret")
    );
    assert_eq!(password("bob", "example.test"), None);
    assert_eq!(
        password("carol", "example.test").as_deref(),
        Some("{SHA512-CRYPT}$6$x$y")
    );
    assert_eq!(password("dave", "example.test"), None);
    let alice = table.get("alice", "example.test").expect("known");
    assert_eq!(alice.home.as_deref(), Some(Path::new("/home/alice")));
    let shown = format!("{alice:?} {table:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("$6$"),
        "{shown}"
    );
}

#[test]
fn digest_opt_out_extra_field() {
    let cases: &[(&str, bool)] = &[
        (
            "a@example.test:x:1:1::/h:/bin/false:sievegate_digest=no\n",
            true,
        ),
        (
            "a@example.test:x:1:1::/h::quota=1G SIEVEGATE_DIGEST=Off\n",
            true,
        ),
        (
            "a@example.test:x:1:1::/h::userdb_mail=maildir:~/M sievegate_digest=0\n",
            true,
        ),
        ("a@example.test:x:1:1::/h::sievegate_digest=yes\n", false),
        // Only the extra fields count, not the gecos or the shell.
        (
            "a@example.test:x:1:1:sievegate_digest=no:/h:sievegate_digest=no\n",
            false,
        ),
        ("a@example.test\n", false),
    ];
    for (text, want) in cases {
        let table = parse(text).expect("parses");
        let user = table.get("a", "example.test").expect("listed");
        assert_eq!(user.digest_opt_out, *want, "{text:?}");
    }
}
