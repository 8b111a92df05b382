//! `sievegate sieve check` and `sieve test` through the real binary, and the script layout
//! (RFC 6609 include, Dovecot's ManageSieve symlink, the per-user error log) through the
//! real server.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::binary::{bin, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{repo, Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::maildir_tree::read_tree;
use crate::support::messages::{clean_message, infected_message, transaction};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/sieve")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run sievegate")
}

fn text(bytes: &[u8]) -> String {
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

/// An environment for `sieve test`: no before script (so a personal script runs for
/// infected mail too and the never-bounce rule has something to suppress), the corpus's
/// `global/` as `global_dir`, the user's `sieve/` directory as `personal_dir`.
fn tools_env(clamd: sievegate::scan::ClamdAddr, extra: &[&str]) -> Env {
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

fn sieve_test(env: &Env, extra: &[&str], message: &Path) -> Output {
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

/// Set to `1` to (re)write the corpus's expected `.plan` files from what `sieve test`
/// prints; review the diff before committing.
const BLESS_ENV: &str = "SIEVEGATE_BLESS";

/// What the corpus must exercise: (feature, text some corpus script contains). Each
/// extension and argument issue 7 lists.
const CORPUS_COVERS: &[(&str, &str)] = &[
    ("fileinto", "fileinto "),
    ("mailbox :create", "fileinto :create"),
    ("mailboxexists", "mailboxexists "),
    ("fileinto :specialuse", "fileinto :specialuse"),
    ("specialuse_exists", "specialuse_exists"),
    ("imap4flags", "addflag "),
    ("imap4flags keywords", "$Label1"),
    ("hasflag", "hasflag "),
    ("editheader addheader", "addheader "),
    ("editheader deleteheader", "deleteheader "),
    ("redirect", "redirect \""),
    ("redirect :copy", "redirect :copy"),
    ("fileinto :copy", "fileinto :copy"),
    ("vacation", "vacation "),
    ("vacation :days", ":days "),
    ("vacation :seconds", ":seconds 3600 :addresses"),
    ("vacation :from", ":from "),
    ("vacation :addresses", ":addresses "),
    ("vacation :handle", ":handle \"away"),
    ("vacation :mime", ":mime"),
    ("vacation :subject", ":subject "),
    ("notify mailto", "\"mailto:"),
    ("duplicate", "duplicate "),
    ("include :personal", "include :personal"),
    ("include :global", "include :global"),
    ("include :once", ":once"),
    ("include :optional", "include :optional"),
    ("reject", "reject \""),
    ("ereject", "ereject \""),
    ("environment", "environment :"),
    ("vnd.sievegate.virus-name", "vnd.sievegate.virus-name"),
    ("vnd.sievegate.queue-id", "vnd.sievegate.queue-id"),
    ("spamtest", "spamtest :value"),
    ("spamtestplus", "spamtest :percent"),
    ("virustest", "virustest :value"),
    ("variables", "set :"),
    ("body", "body :"),
    ("relational :count", ":count "),
    ("relational :value", ":value "),
    ("date", "date :zone"),
    ("index", ":index "),
    ("currentdate", "currentdate "),
    ("subaddress", "envelope :detail"),
    ("envelope", "envelope :domain"),
    ("regex", ":regex "),
];

/// The corpus (see `tests/fixtures/sieve/README.md`): every `NAME.sieve` runs through
/// `sieve test` in the personal slot, once for each `NAME.vN.plan` (virustest N), and must
/// print exactly that plan. A script's `# sieve-test:` lines add arguments.
#[test]
fn test_prints_the_plan_for_the_corpus() {
    let clamd = FakeClamd::start(Mode::Close);
    let env = tools_env(clamd.addr(), &[]);
    // What `mailboxexists`/`:specialuse` find, and `include :personal`'s directory.
    for folder in [".Archive", ".Junk"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(env.maildir("alice").join(folder).join(sub)).expect("mkdir");
        }
    }
    let personal = env.dir.path().join("mail/example.test/alice/sieve");
    std::fs::create_dir_all(&personal).expect("mkdir");
    for entry in std::fs::read_dir(fixtures().join("personal")).expect("personal/") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, personal.join(path.file_name().expect("name"))).expect("copy");
    }
    let bless = std::env::var_os(BLESS_ENV).is_some_and(|v| v == "1");

    let mut scripts: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sieve"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("broken-")
        })
        .collect();
    scripts.sort();
    let mut corpus_text = String::new();
    let mut runs = 0;
    let mut failures = Vec::new();
    for script in &scripts {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(script).expect("read script");
        corpus_text.push_str(&source);
        let mut args: Vec<String> = source
            .lines()
            .filter_map(|l| l.strip_prefix("# sieve-test:"))
            .flat_map(|l| l.split_whitespace().map(str::to_string))
            .collect();
        let message = match args.iter().position(|a| a == "--message") {
            Some(i) => {
                let file = args.remove(i + 1);
                args.remove(i);
                fixtures().join(file)
            }
            None => fixtures().join("report.eml"),
        };
        for (flag, default) in [
            ("--user", "alice@example.test"),
            ("--from", "sender@remote.example"),
        ] {
            if !args.iter().any(|a| a == flag) {
                args.extend([flag.to_string(), default.to_string()]);
            }
        }
        let statuses: Vec<u8> = (0..=5)
            .filter(|n| fixtures().join(format!("{name}.v{n}.plan")).exists())
            .collect();
        let statuses = if statuses.is_empty() && bless {
            vec![1, 5]
        } else {
            statuses
        };
        assert!(!statuses.is_empty(), "{name}.sieve has no {name}.vN.plan");
        for status in statuses {
            runs += 1;
            let mut run_args: Vec<&str> = args.iter().map(String::as_str).collect();
            let status_text = status.to_string();
            run_args.extend(["--script", script.to_str().unwrap()]);
            run_args.extend(["--virus-status", &status_text]);
            let out = sieve_test(&env, &run_args, &message);
            assert!(out.status.success(), "{name}: {}", text(&out.stderr));
            let got = normalize(&text(&out.stdout));
            let want_path = fixtures().join(format!("{name}.v{status}.plan"));
            if bless {
                std::fs::write(&want_path, &got).expect("bless");
                continue;
            }
            let want = std::fs::read_to_string(&want_path).expect("plan");
            if got != want {
                failures.push(format!(
                    "{name} at virustest {status}:\n--- want\n{want}--- got\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<&str> = CORPUS_COVERS
        .iter()
        .filter(|(_, needle)| !corpus_text.contains(needle))
        .map(|(feature, _)| *feature)
        .collect();
    assert!(missing.is_empty(), "the corpus does not cover {missing:?}");
    assert!(runs >= 2 * CORPUS_COVERS.len() / 3, "only {runs} runs");
}

/// `sieve test`'s output with what changes from run to run replaced: the corpus's path,
/// and the `Date:` and `Message-ID:` of generated messages (indented lines).
fn normalize(output: &str) -> String {
    let mut out = String::new();
    for line in output
        .replace(&fixtures().display().to_string(), "$FIXTURES")
        .lines()
    {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("    date: ") {
            out.push_str("    Date: $DATE");
        } else if lower.starts_with("    message-id: ") {
            out.push_str("    Message-ID: $MESSAGE_ID");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
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
