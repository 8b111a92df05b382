//! `sievegate sieve check` and `sieve test` through the real binary, and the script layout
//! (RFC 6609 include, Dovecot's ManageSieve symlink, the per-user error log) through the
//! real server.

use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::binary::{bin, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{repo, Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::maildir_tree::read_tree;
use crate::support::messages::{clean_message, infected_message, transaction};

pub(crate) fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/sieve")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run sievegate")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_good_scripts() {
    let good = fixtures().join("fileinto-flags.sieve");
    let other = fixtures().join("include-global.sieve");
    let out = run(&[
        "sieve",
        "check",
        good.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "OK: 2 script(s) compiled\n");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn check_reports_file_line_col_and_fails() {
    let good = fixtures().join("discard.sieve");
    let unclosed = fixtures().join("broken-unclosed.sieve");
    let unknown = fixtures().join("broken-unknown.sieve");
    let out = run(&[
        "sieve",
        "check",
        unclosed.to_str().unwrap(),
        good.to_str().unwrap(),
        unknown.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    // `file:line:col: message`, one line per broken file, in argument order.
    assert!(
        lines[0].starts_with(&format!("{}:", unclosed.display())),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:2:", unknown.display())),
        "{stderr}"
    );
    for line in lines {
        let rest = line.split_once(".sieve:").expect("path").1;
        let mut parts = rest.splitn(3, ':');
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(!parts.next().unwrap().trim().is_empty(), "{line}");
    }
    let missing = run(&["sieve", "check", "/nonexistent/x.sieve"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).starts_with("/nonexistent/x.sieve: "));
}

#[test]
fn check_honours_disabled_extensions() {
    let env = tools_env(
        FakeClamd::start(Mode::Close).addr(),
        &["disabled_extensions = [\"reject\"]"],
    );
    let script = fixtures().join("reject.sieve");
    let out = run(&[
        "sieve",
        "check",
        "-c",
        env.config_path.to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:1:", script.display()))
            && stderr.contains("Extension 'reject' is disabled"),
        "{stderr}"
    );
    // Without the config, the same script compiles.
    assert!(run(&["sieve", "check", script.to_str().unwrap()])
        .status
        .success());
}

/// `sieve check -c` checks each constant `fileinto` folder under `[mailbox]
/// namespace_prefix`, as ManageSieve's PUTSCRIPT does: with `INBOX.`, `Sub` is in no
/// namespace (delivery would store into INBOX), so it is an error at its line.
#[test]
fn check_follows_the_namespace_prefix() {
    let mut options = Options::new(FakeClamd::start(Mode::Close).addr());
    options.mailbox_extra = vec!["namespace_prefix = \"INBOX.\"".to_string()];
    let env = Env::new(options);
    let script = env.dir.path().join("sort.sieve");
    std::fs::write(
        &script,
        "require \"fileinto\";\nfileinto \"INBOX.Lists\";\nfileinto \"Lists\";\n",
    )
    .expect("write");
    let config = env.config_path.to_str().unwrap();
    let out = run(&["sieve", "check", "-c", config, script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:3:", script.display()))
            && stderr
                .contains("Invalid folder name \"Lists\": outside the namespace prefix \"INBOX.\""),
        "{stderr}"
    );
    // Dovecot's default prefix (no config): both are folders of their own.
    assert!(run(&["sieve", "check", script.to_str().unwrap()])
        .status
        .success());
}

/// An environment for `sieve test`: no before script (so a personal script runs for
/// infected mail too and the never-bounce rule has something to suppress), the corpus's
/// `global/` as `global_dir`, the user's `sieve/` directory as `personal_dir`.
pub(crate) fn tools_env(clamd: sievegate::scan::ClamdAddr, extra: &[&str]) -> Env {
    let mut options = Options::new(clamd);
    options.before = Some(vec![]);
    options.sieve_extra = vec![
        format!(
            "global_dir = {:?}",
            fixtures().join("global").display().to_string()
        ),
        "personal_dir = \"mail/%d/%n/sieve\"".to_string(),
    ];
    options
        .sieve_extra
        .extend(extra.iter().map(|s| s.to_string()));
    Env::new(options)
}

pub(crate) fn sieve_test(env: &Env, extra: &[&str], message: &Path) -> Output {
    let mut args = vec![
        "sieve".to_string(),
        "test".into(),
        "-c".into(),
        env.config_path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(message.display().to_string());
    Command::new(bin())
        .args(&args)
        .output()
        .expect("run sieve test")
}

#[test]
fn test_json_shows_suppressed_actions_of_infected_mail() {
    let clamd = FakeClamd::start(Mode::Close);
    let env = tools_env(clamd.addr(), &[]);
    let script = fixtures().join("reject.sieve");
    let out = sieve_test(
        &env,
        &[
            "--to",
            "alice+tag@example.test",
            "--script",
            script.to_str().unwrap(),
            "--virus-status",
            "5",
            "--spam-score",
            "7.5",
            "--json",
        ],
        &fixtures().join("report.eml"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["user"], "alice@example.test");
    assert_eq!(v["virustest"], 5);
    assert_eq!(v["discard"], true);
    assert_eq!(v["actions"], serde_json::json!([]));
    assert_eq!(
        v["suppressed"],
        serde_json::json!([{"type": "reject", "reason": "no thanks"}])
    );
    let notes = v["notes"].to_string();
    assert!(notes.contains("infected: message discarded"), "{notes}");
    // No spam_score_header in this config: the run says what it used instead.
    assert!(
        notes.contains("spam_score_header is not set") && notes.contains("X-Spam-Score"),
        "{notes}"
    );
}

/// `--json` gives redirects, vacation replies and notifications their own shape, with the
/// generated text.
#[test]
fn test_json_shows_what_would_be_sent() {
    let clamd = FakeClamd::start(Mode::Close);
    let env = tools_env(clamd.addr(), &[]);
    let script = env.dir.path().join("send.sieve");
    std::fs::write(
        &script,
        r#"require ["editheader", "copy", "vacation", "enotify"];
addheader "X-Fwd" "1";
redirect :copy "bob@elsewhere.example";
vacation :addresses ["al@example.test"] "Away.";
notify :message "Mail" "mailto:phone@elsewhere.example";
"#,
    )
    .expect("write");
    let out = sieve_test(
        &env,
        &[
            "--user",
            "alice@example.test",
            "--from",
            "sender@remote.example",
            "--script",
            script.to_str().unwrap(),
            "--virus-status",
            "1",
            "--json",
        ],
        &fixtures().join("rich.eml"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let actions = v["actions"].as_array().expect("actions");
    let of = |kind: &str| {
        actions
            .iter()
            .find(|a| a["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {v}"))
    };
    assert_eq!(
        of("redirect"),
        &serde_json::json!({"type": "redirect", "to": "bob@elsewhere.example", "edited": true})
    );
    let vacation = of("vacation");
    assert_eq!(vacation["to"], serde_json::json!(["sender@remote.example"]));
    let reply = vacation["message"].as_str().expect("text");
    assert!(
        reply.starts_with("From: <al@example.test>\r\n") && reply.ends_with("Away.\r\n"),
        "{reply}"
    );
    let notify = of("notify");
    assert_eq!(notify["to"], serde_json::json!(["phone@elsewhere.example"]));
    assert!(
        notify["message"]
            .as_str()
            .is_some_and(|m| m.contains("Subject: Mail\r\n")),
        "{notify}"
    );
    assert_eq!(of("store")["folder"], "INBOX");
}

/// `--spam-score` is what the upstream filter would have written: spamtest and spamtestplus
/// read it from the configured header's topmost instance, above a forged one in the file.
#[test]
fn test_spam_score_feeds_spamtest() {
    let clamd = FakeClamd::start(Mode::Close);
    let env = tools_env(
        clamd.addr(),
        &[
            "spam_score_header = \"X-Rspamd-Score\"",
            "spam_score_max = 10.0",
        ],
    );
    let script = env.dir.path().join("spam.sieve");
    std::fs::write(
        &script,
        r#"require ["spamtest", "spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "70" { fileinto "Junk"; stop; }
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "Untested"; stop; }
if spamtest :value "eq" :comparator "i;ascii-numeric" "1" { fileinto "Ham"; stop; }
fileinto "Unsure";
"#,
    )
    .expect("write script");
    let eml = env.dir.path().join("forged.eml");
    std::fs::write(
        &eml,
        "X-Rspamd-Score: -5\r\nFrom: a@remote.example\r\nTo: alice@example.test\r\n\
         Subject: cheap\r\n\r\nBuy.\r\n",
    )
    .expect("write message");
    let folder = |score: Option<&str>| -> String {
        let mut args = vec![
            "--user",
            "alice@example.test",
            "--virus-status",
            "1",
            "--script",
            script.to_str().unwrap(),
            "--json",
        ];
        if let Some(score) = score {
            args.extend(["--spam-score", score]);
        }
        let out = sieve_test(&env, &args, &eml);
        assert!(out.status.success(), "{score:?}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["actions"][0]["folder"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    // Without --spam-score the forged field is the topmost: -5 is "definitely not spam".
    assert_eq!(folder(None), "Ham");
    assert_eq!(folder(Some("7.5")), "Junk");
    assert_eq!(folder(Some("10")), "Junk");
    assert_eq!(folder(Some("3")), "Unsure");
    assert_eq!(folder(Some("0")), "Ham");
    // Not a number: a clear error, exit 1.
    let out = sieve_test(
        &env,
        &[
            "--user",
            "alice@example.test",
            "--virus-status",
            "1",
            "--spam-score",
            "lots",
        ],
        &eml,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("--spam-score must be a number"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn test_scans_with_clamd_or_fails_clearly() {
    // clamd down: a clear error, exit 1, nothing on stdout.
    let down = FakeClamd::start(Mode::Close);
    let env = tools_env(down.addr(), &[]);
    let eml = env.dir.path().join("virus.eml");
    std::fs::write(&eml, infected_message()).expect("write");
    let out = sieve_test(&env, &["--user", "alice@example.test"], &eml);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("could not scan") && stderr.contains("--virus-status"),
        "{stderr}"
    );

    // A real clamd: the EICAR message is infected, the user's script never matters.
    let env = tools_env(Clamd::shared().addr(), &[]);
    env.set_personal("alice", "require \"fileinto\"; fileinto \"Kept\";");
    let eml = env.dir.path().join("virus.eml");
    std::fs::write(&eml, infected_message()).expect("write");
    let out = sieve_test(&env, &["--user", "alice@example.test"], &eml);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("virustest 5"), "{stdout}");
    assert!(
        stdout.contains("\ndiscard\nsuppressed: store Kept\n"),
        "{stdout}"
    );
    // No side effects: no mailbox, no per-user log.
    assert_eq!(env.total_messages(), 0);
    assert!(!env
        .dir
        .path()
        .join("mail/example.test/alice/.dovecot.sieve.log")
        .exists());
}

/// Sends one message to `rcpt` through the real server; the LMTP answer.
fn deliver(server: &Running, rcpt: &str, message: &[u8]) -> String {
    server.converse(&transaction(&[rcpt], message))
}

/// `FOLDER FLAG...` for each copy in `user`'s Maildir, sorted.
fn stored(env: &Env, user: &str) -> Vec<String> {
    let mut out: Vec<String> = read_tree(&env.maildir(user))
        .into_iter()
        .map(|c| {
            format!("{} {}", c.folder, c.flags.join(" "))
                .trim_end()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Writes `user`'s ManageSieve layout: `sieve/<name>.sieve` for each script, and
/// `.dovecot.sieve` as a relative symlink to `sieve/<active>.sieve`.
fn layout(env: &Env, user: &str, scripts: &[(&str, &str)], active: &str) -> PathBuf {
    let home = env.dir.path().join("mail/example.test").join(user);
    std::fs::create_dir_all(home.join("sieve")).expect("mkdir");
    for (name, text) in scripts {
        std::fs::write(home.join("sieve").join(format!("{name}.sieve")), text).expect("write");
    }
    let link = home.join(".dovecot.sieve");
    symlink(format!("sieve/{active}.sieve"), &link).expect("symlink");
    link
}

#[test]
fn include_and_managesieve_layout_through_the_server() {
    let clamd = Clamd::shared();
    let env = tools_env(clamd.addr(), &["max_include_depth = 3"]);
    // alice: the active script includes a personal script (twice, :once), a global one and
    // an optional missing one.
    layout(
        &env,
        "alice",
        &[
            (
                "main",
                "require [\"include\", \"fileinto\"];\n\
                 include :personal \"tag\";\n\
                 include :once \"tag.sieve\";\n\
                 include :optional \"gone\";\n\
                 include :global \"lists\";\n",
            ),
            (
                "tag",
                "require [\"imap4flags\"];\naddflag \"\\\\Flagged\";\n",
            ),
            ("unused", "discard;\n"),
        ],
        "main",
    );
    // bob: a path trick.
    let bob = layout(
        &env,
        "bob",
        &[(
            "main",
            "require [\"include\", \"fileinto\"];\nfileinto \"X\";\ninclude \"../../alice/sieve/unused\";\n",
        )],
        "main",
    );
    // carol: an include loop.
    let carol = layout(
        &env,
        "carol",
        &[
            ("main", "require \"include\";\ninclude \"other\";\n"),
            (
                "other",
                "require [\"include\", \"fileinto\"];\nfileinto \"Loop\";\ninclude \"main\";\n",
            ),
        ],
        "main",
    );
    // dave: the active script does not compile.
    let dave = layout(
        &env,
        "dave",
        &[("main", "require \"fileinto\";\nfileinto \"X\"\n")],
        "main",
    );
    // dave's home belongs to dave (uid/gid 65534 here), the server runs as root: his log
    // must still be his to read.
    let dave_home = dave.parent().expect("home").to_path_buf();
    std::os::unix::fs::chown(&dave_home, Some(65534), Some(65534)).expect("chown (root)");
    let server = Running::start(&env.config_path);
    let message = clean_message("monthly report");
    for user in ["alice", "bob", "carol", "dave"] {
        let reply = deliver(&server, &format!("{user}@example.test"), &message);
        assert!(reply.contains("250 2.0.0 <"), "{user}: {reply}");
    }
    // :personal → sieve/tag.sieve once (flag), :global lists → a copy in Lists and
    // \Answered; the keep carries both flags.
    assert_eq!(
        stored(&env, "alice"),
        vec!["INBOX \\Answered \\Flagged", "Lists \\Answered \\Flagged"],
        "{}",
        server.logs()
    );
    // The trick is refused: runtime error, implicit keep, nothing in X, the reason in
    // bob's log next to his active script.
    assert_eq!(stored(&env, "bob"), vec!["INBOX"]);
    let log = std::fs::read_to_string(format!("{}.log", bob.display())).expect("bob's log");
    assert!(log.contains("refused: script name contains '/'"), "{log}");
    // The loop ends at the nesting limit: keep, logged, noted.
    assert_eq!(stored(&env, "carol"), vec!["INBOX"]);
    let log = std::fs::read_to_string(format!("{}.log", carol.display())).expect("carol's log");
    assert!(log.contains("include nesting limit reached"), "{log}");
    let logs = server.wait_for_log("include nesting limit reached");
    assert!(logs.contains("include nesting limit reached"), "{logs}");
    // dave's broken script: the keep, and the compile error with its position in his log.
    assert_eq!(stored(&env, "dave"), vec!["INBOX"]);
    let log = std::fs::read_to_string(format!("{}.log", dave.display())).expect("dave's log");
    assert!(log.contains(".dovecot.sieve:3:"), "{log}");
    let meta = std::fs::metadata(format!("{}.log", dave.display())).expect("dave's log");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (65534, 65534, 0o600)
    );
    // A second delivery to dave: the user's log gets it again, the server log only once.
    deliver(&server, "dave@example.test", &message);
    let log = std::fs::read_to_string(format!("{}.log", dave.display())).expect("dave's log");
    assert_eq!(log.matches("script skipped").count(), 2, "{log}");
    let logs = server.logs();
    assert_eq!(
        logs.matches("personal Sieve script unusable").count(),
        1,
        "{logs}"
    );

    // ManageSieve re-points the symlink: the next delivery runs the other script.
    let alice = env
        .dir
        .path()
        .join("mail/example.test/alice/.dovecot.sieve");
    std::fs::remove_file(&alice).expect("unlink");
    symlink("sieve/unused.sieve", &alice).expect("symlink");
    deliver(&server, "alice@example.test", &message);
    assert_eq!(
        stored(&env, "alice"),
        vec!["INBOX \\Answered \\Flagged", "Lists \\Answered \\Flagged"]
    );
}
