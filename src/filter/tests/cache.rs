//! The compile cache, `check`, and the printed plan.

use super::*;

/// Rewrites `path` and moves its mtime well away from the previous one, so the change is
/// visible even on filesystems with coarse timestamps.
fn rewrite(path: &Path, text: &str, age: u64) {
    fs::write(path, text).expect("rewrite");
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    file.set_modified(SystemTime::now() + Duration::from_secs(age))
        .expect("set mtime");
}

#[test]
fn cache_sees_changed_file() {
    let setup = Setup::new().personal("require \"fileinto\"; fileinto \"A\";");
    let filter = Filter::new(setup.config.clone());
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("A", &[], false)]
    );
    // Same size, different content: only the mtime tells them apart.
    rewrite(
        &setup.personal_path(),
        "require \"fileinto\"; fileinto \"B\";",
        10,
    );
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("B", &[], false)]
    );
    // Unchanged file: the cached script is used again.
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("B", &[], false)]
    );
    // A broken rewrite is noticed too, and a fix after it.
    rewrite(&setup.personal_path(), "if {", 20);
    assert_eq!(plan_for(&filter, &Verdict::Clean).actions, vec![inbox(&[])]);
    rewrite(
        &setup.personal_path(),
        "require \"fileinto\"; fileinto \"C\";",
        30,
    );
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("C", &[], false)]
    );
    // Removing it means "no personal script".
    fs::remove_file(setup.personal_path()).expect("remove");
    assert_eq!(plan_for(&filter, &Verdict::Clean).actions, vec![inbox(&[])]);
}

#[test]
fn cache_follows_repointed_symlink() {
    let setup = Setup::new();
    let a = setup.write("a.sieve", "require \"fileinto\"; fileinto \"A\";");
    let b = setup.write("b.sieve", "require \"fileinto\"; fileinto \"B\";");
    let link = setup.personal_path();
    std::os::unix::fs::symlink(&a, &link).expect("symlink");
    let filter = Filter::new(setup.config.clone());
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("A", &[], false)]
    );
    // Re-point the way sieve managers do: new link, rename over the old one.
    let tmp = setup.dir.path().join("alice.sieve.tmp");
    std::os::unix::fs::symlink(&b, &tmp).expect("symlink");
    fs::rename(&tmp, &link).expect("rename");
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("B", &[], false)]
    );
    // A dangling symlink is no personal script: the default runs.
    let mut config = setup.config.clone();
    config.default = Some(setup.write("default.sieve", "require \"fileinto\"; fileinto \"D\";"));
    let filter = Filter::new(config);
    fs::remove_file(&b).expect("remove target");
    assert_eq!(
        plan_for(&filter, &Verdict::Clean).actions,
        vec![store("D", &[], false)]
    );
}

#[test]
fn personal_not_a_regular_file_is_broken() {
    let setup = Setup::new().default("require \"fileinto\"; fileinto \"D\";");
    fs::create_dir(setup.personal_path()).expect("mkdir");
    let filter = Filter::new(setup.config.clone());
    let plan = plan_for(&filter, &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        plan.notes.iter().any(|n| n.contains("not a regular file")),
        "{plan}"
    );
}

/// Opening a FIFO for reading would wait for a writer; the open does not block, and the
/// fstat of the opened descriptor refuses it.
#[test]
fn personal_fifo_is_broken_without_blocking() {
    let setup = Setup::new();
    let status = std::process::Command::new("mkfifo")
        .arg(setup.personal_path())
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let filter = Filter::new(setup.config.clone());
    let plan = plan_for(&filter, &Verdict::Clean);
    assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
    assert!(
        plan.notes.iter().any(|n| n.contains("not a regular file")),
        "{plan}"
    );
}

/// Only `MAX_SCRIPT_BYTES + 1` bytes are read: a larger script is refused, a script of
/// exactly the limit is compiled.
#[test]
fn personal_script_size_limit() {
    let limit = super::super::cache::MAX_SCRIPT_BYTES as usize;
    let keep = "keep;";
    for (size, usable) in [(limit, true), (limit + 1, false)] {
        let text = format!("{keep}{}", " ".repeat(size - keep.len()));
        let setup = Setup::new().personal(&text);
        let filter = Filter::new(setup.config.clone());
        let plan = plan_for(&filter, &Verdict::Clean);
        assert_eq!(plan.actions, vec![inbox(&[])], "{plan}");
        let refused = plan.notes.iter().any(|n| n.contains("larger than"));
        let skipped = plan.notes.iter().any(|n| n.contains("script skipped"));
        assert_eq!((refused, skipped), (!usable, !usable), "{size}: {plan}");
    }
}

#[test]
fn check_reports_every_global_problem() {
    let mut setup = Setup::new()
        .before("require \"fileinto\";\nfileinto;")
        .after("keep;")
        .default("if true {");
    let missing = setup.dir.path().join("missing.sieve");
    setup.config.after.push(missing.clone());
    let before = setup.config.before[0].clone();
    let filter = Filter::new(setup.config.clone());
    let problems: Vec<String> = filter.check().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{}:2:", before.display())),
        "{problems:?}"
    );
    assert_eq!(problems[1], format!("{}: no such file", missing.display()));
    assert!(problems[2].contains("default.sieve:1:"), "{problems:?}");
    // A clean configuration has nothing to report.
    let clean = Setup::new().before(VIRUS_BEFORE);
    let filter = Filter::new(clean.config.clone());
    assert_eq!(filter.check(), vec![]);
}

#[test]
fn plan_display_end_to_end() {
    let setup = Setup::new()
        .personal("require [\"fileinto\", \"imap4flags\"]; fileinto :flags \"\\\\Seen\" \"../x\";");
    let filter = Filter::new(setup.config.clone());
    let text = plan_for(&filter, &Verdict::Clean).to_string();
    assert!(
        text.starts_with("store INBOX :flags \"\\\\Seen\"\nnote: fileinto \"../x\" refused"),
        "{text}"
    );
    let text = plan_for(&filter, &virus(false)).to_string();
    assert!(
        text.starts_with("discard\nsuppressed: store INBOX :flags \"\\\\Seen\"\nnote: "),
        "{text}"
    );
    assert!(
        text.contains("note: infected: message discarded (virustest 5)"),
        "{text}"
    );
}
