//! The Sieve script corpus (`tests/fixtures/sieve/`, see its README): every script through
//! `sievegate sieve test`, compared with its expected plans.

use std::path::PathBuf;

use crate::sieve_tools::{fixtures, sieve_test, text, tools_env};
use crate::support::fake_clamd::{FakeClamd, Mode};

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
    ("ihave", "if ihave "),
    ("vnd.sievegate.quarantine", "quarantine;"),
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
    eprintln!("sieve corpus: {} scripts, {runs} runs", scripts.len());
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
