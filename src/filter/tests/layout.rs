//! Script layout and limits through [`Filter`]: include directories, the ManageSieve symlink
//! layout, the per-user log, `disabled_extensions`, `max_actions`, `max_include_depth`.

use std::os::unix::fs::symlink;

use super::*;

/// A Setup whose user has a ManageSieve-style `sieve/` directory and a global directory.
fn with_dirs(setup: Setup) -> Setup {
    let mut setup = setup;
    fs::create_dir_all(setup.dir.path().join("sieve")).expect("mkdir");
    fs::create_dir_all(setup.dir.path().join("global")).expect("mkdir");
    setup.config.scripts.personal_dir = Some(format!("{}/sieve", setup.dir.path().display()));
    setup.config.scripts.global_dir = Some(setup.dir.path().join("global"));
    setup
}

fn notes_contain(plan: &Plan, needle: &str) -> bool {
    plan.notes.iter().any(|n| n.contains(needle))
}

#[test]
fn include_table() {
    // (name, personal script, files in sieve/ and global/, expected actions, a note)
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<Action>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "personal include",
            "require \"include\"; include \"a\";",
            vec![("sieve/a.sieve", "require \"fileinto\"; fileinto \"A\";")],
            vec![store("A", &[], false)],
            "",
        ),
        (
            "name with .sieve",
            "require \"include\"; include :personal \"a.sieve\";",
            vec![("sieve/a.sieve", "require \"fileinto\"; fileinto \"A\";")],
            vec![store("A", &[], false)],
            "",
        ),
        (
            "global include",
            "require \"include\"; include :global \"g\";",
            vec![("global/g.sieve", "require \"fileinto\"; fileinto \"G\";")],
            vec![store("G", &[], false)],
            "",
        ),
        (
            ":global does not see the personal directory",
            "require \"include\"; include :global \"a\";",
            vec![("sieve/a.sieve", "discard;")],
            vec![inbox(&[])],
            "included global script \"a\" not found",
        ),
        (
            ":once runs the script once",
            "require [\"include\", \"variables\"]; include \"inc\"; include :once \"inc\"; include :once \"inc\";",
            vec![(
                "sieve/inc.sieve",
                "require [\"imap4flags\"]; addflag \"\\\\Flagged\"; if hasflag \"\\\\Seen\" { addflag \"\\\\Deleted\"; } addflag \"\\\\Seen\";",
            )],
            vec![inbox(&["\\Flagged", "\\Seen"])],
            "",
        ),
        (
            "without :once it runs again",
            "require \"include\"; include \"inc\"; include \"inc\";",
            vec![(
                "sieve/inc.sieve",
                "require [\"imap4flags\"]; if hasflag \"\\\\Seen\" { addflag \"\\\\Deleted\"; } addflag \"\\\\Seen\";",
            )],
            vec![inbox(&["\\Deleted", "\\Seen"])],
            "",
        ),
        (
            "optional missing include is skipped",
            "require [\"include\", \"fileinto\"]; include :optional \"gone\"; fileinto \"X\";",
            vec![],
            vec![store("X", &[], false)],
            ":optional, skipped",
        ),
        (
            "missing include is a runtime error",
            "require [\"include\", \"fileinto\"]; fileinto \"X\"; include \"gone\";",
            vec![],
            vec![inbox(&[])],
            "included personal script \"gone\" not found",
        ),
        (
            "dot-dot refused even with :optional",
            "require [\"include\", \"fileinto\"]; fileinto \"X\"; include :optional \"../alice\";",
            vec![],
            vec![inbox(&[])],
            "refused: script name contains '/'",
        ),
        (
            "hidden file refused",
            "require \"include\"; include \".dovecot\";",
            vec![("sieve/.dovecot.sieve", "discard;")],
            vec![inbox(&[])],
            "refused: script name starts with '.'",
        ),
        (
            "a broken include is a runtime error",
            "require [\"include\", \"fileinto\"]; fileinto \"X\"; include \"bad\";",
            vec![("sieve/bad.sieve", "if {")],
            vec![inbox(&[])],
            "included personal script unusable",
        ),
        (
            "self include loops until the limit",
            "require [\"include\", \"fileinto\"]; fileinto \"X\"; include \"self\";",
            vec![("sieve/self.sieve", "require \"include\"; include \"self\";")],
            vec![inbox(&[])],
            "include nesting limit reached",
        ),
        (
            "the chain script is not reachable by the empty name",
            "require [\"include\", \"fileinto\"]; fileinto \"X\"; include \"\";",
            vec![],
            vec![store("X", &[], false)],
            "",
        ),
    ];
    for (name, personal, files, want, note) in cases {
        let setup = with_dirs(Setup::new().personal(personal));
        for (path, text) in &files {
            setup.write(path, text);
        }
        let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
        assert_eq!(plan.actions, want, "{name}: {plan}");
        assert!(
            note.is_empty() || notes_contain(&plan, note),
            "{name}: {plan}"
        );
    }
}

#[test]
fn include_depth_is_configurable() {
    let mut setup = with_dirs(Setup::new().personal("require \"include\"; include \"l1\";"));
    setup.write("sieve/l1.sieve", "require \"include\"; include \"l2\";");
    setup.write("sieve/l2.sieve", "require \"fileinto\"; fileinto \"Deep\";");
    setup.config.scripts.max_include_depth = 2;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![store("Deep", &[], false)], "{plan}");
    setup.config.scripts.max_include_depth = 1;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        notes_contain(&plan, "include nesting limit reached"),
        "{plan}"
    );
}

#[test]
fn managesieve_symlink_layout() {
    // .dovecot.sieve -> sieve/main.sieve, relative, as ManageSieve writes it.
    let mut setup = with_dirs(Setup::new());
    setup.write(
        "sieve/main.sieve",
        "require [\"include\"]; include \"lib\";",
    );
    setup.write("sieve/lib.sieve", "require \"fileinto\"; fileinto \"Lib\";");
    setup.write("sieve/other.sieve", "discard;");
    let link = setup.dir.path().join(".dovecot.sieve");
    symlink("sieve/main.sieve", &link).expect("symlink");
    setup.config.personal = Some(link.display().to_string());
    let filter = Filter::new(setup.config.clone());
    let plan = plan_for(&filter, &Verdict::Clean);
    assert_eq!(plan.actions, vec![store("Lib", &[], false)], "{plan}");
    // SETACTIVE re-points the link: the next message runs the other script.
    fs::remove_file(&link).expect("unlink");
    symlink("sieve/other.sieve", &link).expect("symlink");
    assert!(plan_for(&filter, &Verdict::Clean).actions.is_empty());
    // A dangling link: no personal script, the default runs (here: none, keep).
    fs::remove_file(&link).expect("unlink");
    symlink("sieve/deleted.sieve", &link).expect("symlink");
    assert_eq!(plan_for(&filter, &Verdict::Clean).actions, vec![inbox(&[])]);
}

#[test]
fn user_log_gets_the_users_errors_only() {
    let setup = Setup::new()
        .before("require \"fileinto\"; fileinto :copy \"B\"; if true {")
        .personal("require \"fileinto\"; fileinto \"X\";");
    let filter = Filter::new(setup.config.clone());
    plan_for(&filter, &Verdict::Clean);
    // The before script is broken: the chain ends there, the user's log stays empty (a
    // global script's problem is the administrator's, and names its paths).
    assert!(!setup.dir.path().join("alice.sieve.log").exists());
    let setup = Setup::new().personal("require \"fileinto\";\nfileinto \"X\"\n");
    let filter = Filter::new(setup.config.clone());
    plan_for(&filter, &Verdict::Clean);
    let text = fs::read_to_string(setup.dir.path().join("alice.sieve.log")).expect("log");
    assert!(
        text.contains("script skipped:") && text.contains("alice.sieve:3:"),
        "{text}"
    );
    // A runtime error is logged too.
    let setup = Setup::new().personal("require \"ihave\";\nerror \"boom\";\n");
    plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    let text = fs::read_to_string(setup.dir.path().join("alice.sieve.log")).expect("log");
    assert!(
        text.contains("runtime error:") && text.contains("boom"),
        "{text}"
    );
}

#[test]
fn disabled_extension_skips_the_script() {
    let mut setup = Setup::new().personal("require \"fileinto\"; fileinto \"X\";");
    setup.config.scripts.disabled_extensions = vec!["fileinto".into()];
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        notes_contain(&plan, "Extension 'fileinto' is disabled"),
        "{plan}"
    );
}

/// RFC 5463: `ihave` says a disabled extension is not available; the others still are.
#[test]
fn ihave_honours_disabled_extensions() {
    let script = r#"require ["ihave", "fileinto"];
        if ihave "vacation" { fileinto "HasVacation"; }
        if ihave "imap4flags" { fileinto "HasFlags"; }
        if not ihave "enotify" { fileinto "NoNotify"; }"#;
    let mut setup = Setup::new().personal(script);
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(
        plan.actions,
        vec![
            store("HasVacation", &[], false),
            store("HasFlags", &[], false)
        ],
        "{plan}"
    );
    setup.config.scripts.disabled_extensions = vec!["vacation".into(), "enotify".into()];
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(
        plan.actions,
        vec![store("HasFlags", &[], false), store("NoNotify", &[], false)],
        "{plan}"
    );
    assert!(plan.notes.is_empty(), "{plan}");
}

#[test]
fn max_actions_is_configurable() {
    let script = "require \"fileinto\"; fileinto \"A\"; fileinto \"B\"; fileinto \"C\";";
    let mut setup = Setup::new().personal(script);
    setup.config.scripts.max_actions = 3;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions.len(), 3, "{plan}");
    setup.config.scripts.max_actions = 2;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(notes_contain(&plan, "(3 > 2)"), "{plan}");
}

#[test]
fn max_script_size_is_configurable() {
    let mut setup = Setup::new().personal("require \"fileinto\"; fileinto \"X\";");
    setup.config.scripts.max_script_size = 10;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(notes_contain(&plan, "larger than 10 bytes"), "{plan}");
}

#[test]
fn check_compiles_the_global_dir() {
    let setup = with_dirs(Setup::new());
    setup.write("global/good.sieve", "keep;");
    setup.write("global/bad.sieve", "if {");
    setup.write("global/notes.txt", "if {");
    let problems = Filter::new(setup.config.clone()).check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].path().ends_with("global/bad.sieve"),
        "{problems:?}"
    );
}

#[test]
fn user_log_hides_files_outside_the_users_area() {
    // The active script is a symlink to a file outside the user's area (here: a config
    // file): the chain treats it as broken, the user's log does not quote it.
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret.toml");
    fs::write(&secret, "password = \"hunter2\"\n").expect("write");
    let mut setup = with_dirs(Setup::new());
    let link = setup.dir.path().join(".dovecot.sieve");
    symlink(&secret, &link).expect("symlink");
    setup.config.personal = Some(link.display().to_string());
    plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    let log = fs::read_to_string(setup.dir.path().join(".dovecot.sieve.log")).expect("log");
    assert!(log.contains("outside your directory"), "{log}");
    assert!(
        !log.contains("password") && !log.contains("hunter2"),
        "{log}"
    );
    // An include symlinked out of sieve/ is refused before it is read.
    let mut setup = with_dirs(Setup::new().personal("require \"include\"; include \"x\";"));
    symlink(&secret, setup.dir.path().join("sieve/x.sieve")).expect("symlink");
    setup.config.scripts.user_log_size = 1 << 16;
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert!(notes_contain(&plan, "resolves outside"), "{plan}");
    let log = fs::read_to_string(setup.dir.path().join("alice.sieve.log")).expect("log");
    assert!(
        log.contains("resolves outside") && !log.contains("password"),
        "{log}"
    );
}

#[test]
fn many_includes_compile_as_in_pigeonhole() {
    // sieve-rs's own limit is 6 include commands per script.
    let mut script = String::from("require [\"include\"];\n");
    for i in 0..20 {
        script.push_str(&format!("include :optional \"r{i}\";\n"));
    }
    let setup = with_dirs(Setup::new().personal(&script));
    setup.write(
        "sieve/r19.sieve",
        "require \"fileinto\"; fileinto \"Last\";",
    );
    let plan = plan_for(&Filter::new(setup.config.clone()), &Verdict::Clean);
    assert_eq!(plan.actions, vec![store("Last", &[], false)], "{plan}");
}
