//! The book (`docs/`) and its one source of truth for configuration keys, the commented
//! example `config/sievegate.toml`: every key of the configuration types is documented there
//! and every documented key exists; the example loads with every commented-out key turned
//! on; every relative link of the book and the README leads to a file and a heading.
//!
//! The keys come from the types themselves, through the binary: the raw config structs deny
//! unknown fields, so a bogus key in a section makes `check-config` name every field that
//! section expects ("unknown field `x`, expected one of `a`, `b`, ...").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::binary::bin;
use crate::support::env::repo;

/// A key no section has; its error lists the section's real keys.
const BOGUS: &str = "bogus_key_of_the_docs_test";

fn example() -> String {
    std::fs::read_to_string(repo().join("config/sievegate.toml")).expect("config/sievegate.toml")
}

/// `key = value` at the start of a line, or commented out as `# key = value` (one space:
/// indented examples inside a comment, `#   listen = [...]`, are prose, not keys).
fn key_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# ").unwrap_or(line);
    let (key, _) = rest.split_once(" = ")?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(key)
}

/// Section name → keys written in it, set or commented out, in file order of sections.
fn documented(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
        } else if let (Some(section), Some(key)) = (&current, key_of(line)) {
            sections
                .get_mut(section)
                .expect("section entered above")
                .insert(key.to_string());
        }
    }
    sections
}

/// Runs `check-config` on `text` written to a temp file; (success, stderr).
fn check_config(dir: &Path, text: &str) -> (bool, String) {
    let path = dir.join("sievegate.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .expect("run sievegate check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The field names serde lists after "expected" in an unknown-field error:
/// "expected one of `a`, `b`", "expected `a` or `b`", "expected `a`".
fn expected_fields(err: &str) -> BTreeSet<String> {
    let line = err
        .lines()
        .find(|l| l.contains(&format!("unknown field `{BOGUS}`")))
        .unwrap_or_else(|| panic!("no unknown-field error for {BOGUS}: {err}"));
    let (_, after) = line
        .split_once("expected")
        .expect("serde names what it expected");
    after
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys the configuration types accept, section by section (and the sections).
fn keys_of_the_types(
    sections: &[String],
) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = example();
    let (_, err) = check_config(dir.path(), &format!("{BOGUS} = 1\n{text}"));
    let top = expected_fields(&err);
    let mut keys = BTreeMap::new();
    for section in sections {
        let header = format!("[{section}]\n");
        let with_bogus = text.replacen(&header, &format!("{header}{BOGUS} = 1\n"), 1);
        assert_ne!(with_bogus, text, "section [{section}] is in the example");
        let (ok, err) = check_config(dir.path(), &with_bogus);
        assert!(!ok, "a bogus key in [{section}] must be refused");
        keys.insert(section.clone(), expected_fields(&err));
    }
    (top, keys)
}

/// Every key of the types is in the example (set or as `# key = value`), and every key the
/// example names exists; the packaged config names only keys that exist too.
#[test]
fn every_config_key_is_documented_in_the_example_and_exists() {
    let doc_keys = documented(&example());
    let sections: Vec<String> = doc_keys.keys().cloned().collect();
    let (top, types) = keys_of_the_types(&sections);
    // A table of tables (`[domain."example.test"]`) is one top-level key.
    let top_level = |s: &String| s.split('.').next().unwrap_or(s).to_string();
    assert_eq!(
        top,
        sections.iter().map(top_level).collect::<BTreeSet<_>>(),
        "the sections of the types vs the sections of config/sievegate.toml"
    );
    let mut problems = Vec::new();
    for (section, keys) in &types {
        let doc = &doc_keys[section];
        // A nested table ([quarantine.digest]) documents its key of the parent's type.
        let tables: BTreeSet<String> = keys
            .iter()
            .filter(|k| sections.contains(&format!("{section}.{k}")))
            .cloned()
            .collect();
        for missing in keys.difference(doc).filter(|k| !tables.contains(*k)) {
            problems.push(format!(
                "[{section}] {missing}: a key of the types, not documented"
            ));
        }
        for extra in doc.difference(keys) {
            problems.push(format!("[{section}] {extra}: documented, but no such key"));
        }
    }
    let contrib = std::fs::read_to_string(repo().join("contrib/sievegate.toml"))
        .expect("contrib/sievegate.toml");
    for (section, keys) in documented(&contrib) {
        let Some(known) = types.get(&section) else {
            problems.push(format!("contrib: [{section}] is no section"));
            continue;
        };
        for extra in keys.difference(known) {
            problems.push(format!("contrib: [{section}] {extra}: no such key"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let total: usize = types.values().map(BTreeSet::len).sum();
    assert!(
        total > 90,
        "the types name {total} keys: the error parsing broke"
    );
}

/// The example with every `# key = value` line uncommented passes `check-config`. The
/// absolute paths it names (users file, include directory, RDAP bootstrap files, Maildir
/// root, state) are moved under a temp root and made there; `vmail`, the usual mail user,
/// becomes the user running the test; the relative `../sieve/` scripts are the repo's.
#[test]
fn the_example_passes_check_config_with_every_commented_key_turned_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let root_s = root.path().display().to_string();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("getpwuid")
        .expect("the test's user exists")
        .name;
    let mut turned_on = 0;
    let text: String = example()
        .lines()
        .map(|line| {
            let line = match (line.strip_prefix("# "), key_of(line)) {
                (Some(rest), Some(_)) => {
                    turned_on += 1;
                    rest
                }
                _ => line,
            };
            let line = line.replace("\"/", &format!("\"{root_s}/"));
            let line = line.replace("\"vmail\"", &format!("\"{me}\""));
            line + "\n"
        })
        .collect();
    assert!(turned_on >= 10, "only {turned_on} commented keys found");

    let value: toml::Value = toml::from_str(&text).expect("the uncommented example is TOML");
    let get = |section: &str, key: &str| value.get(section).and_then(|s| s.get(key)).cloned();
    let path = |v: toml::Value| PathBuf::from(v.as_str().expect("a path").to_string());
    let users = path(get("mailbox", "users_file").expect("users_file is documented"));
    std::fs::create_dir_all(users.parent().expect("parent")).expect("mkdir");
    std::fs::write(&users, "alice@example.test\n").expect("users file");
    let global = path(get("sieve", "global_dir").expect("global_dir is documented"));
    std::fs::create_dir_all(&global).expect("global_dir");
    for file in get("abuse", "rdap_bootstrap")
        .and_then(|v| v.as_array().cloned())
        .expect("rdap_bootstrap is documented")
    {
        let file = path(file);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, r#"{"services": []}"#).expect("bootstrap file");
    }
    let config_dir = root.path().join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::os::unix::fs::symlink(repo().join("sieve"), root.path().join("sieve")).expect("symlink");
    key_files(&value, root.path());

    let (ok, err) = check_config(&config_dir, &text);
    assert!(
        ok,
        "check-config of the uncommented example:\n{err}\n{text}"
    );
}

/// A heading's id as mdBook makes it: the text lowercased, spaces as `-`, only
/// alphanumerics, `-` and `_` kept.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The page with its `{{#include FILE}}` and `{{#include FILE:ANCHOR}}` lines expanded,
/// as mdBook expands them (the ANCHOR lines themselves left out).
fn expand(page: &Path) -> String {
    let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let mut out = String::new();
    for line in text.lines() {
        let Some(spec) = line
            .trim()
            .strip_prefix("{{#include ")
            .and_then(|l| l.strip_suffix("}}"))
        else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (file, anchor) = match spec.split_once(':') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (spec, None),
        };
        let included = page.parent().expect("dir").join(file);
        let body = std::fs::read_to_string(&included)
            .unwrap_or_else(|e| panic!("{} includes {}: {e}", page.display(), included.display()));
        let mut inside = anchor.is_none();
        let before = out.len();
        for l in body.lines() {
            if let Some(a) = anchor {
                if l.contains(&format!("ANCHOR: {a}")) {
                    inside = true;
                    continue;
                }
                if l.contains(&format!("ANCHOR_END: {a}")) {
                    inside = false;
                    continue;
                }
            }
            if inside && !l.contains("ANCHOR: ") && !l.contains("ANCHOR_END: ") {
                out.push_str(l);
                out.push('\n');
            }
        }
        // mdBook includes nothing, silently, for an anchor the file does not have.
        assert!(
            out.len() > before,
            "{}: {{{{#include {spec}}}}} includes nothing",
            page.display()
        );
    }
    out
}

/// Markdown lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

fn heading_ids(page: &Path) -> BTreeSet<String> {
    let text = expand(page);
    let mut ids = BTreeSet::new();
    for line in prose(&text) {
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&hashes) && line.as_bytes().get(hashes) == Some(&b' ') {
            let mut id = heading_id(&line[hashes + 1..]);
            let mut n = 1;
            while ids.contains(&id) {
                id = format!("{}-{n}", heading_id(&line[hashes + 1..]));
                n += 1;
            }
            ids.insert(id);
        }
    }
    ids
}

/// The targets of `[text](target)` links outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    found
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// Every relative link of the book's pages and of the README leads to a file, every
/// `#anchor` to a heading of its page, and every page is in SUMMARY.md.
#[test]
fn book_and_readme_links_lead_to_pages_and_headings() {
    let src = repo().join("docs/src");
    let mut pages = Vec::new();
    markdown_files(&src, &mut pages);
    pages.sort();
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md");
    let mut problems = Vec::new();
    for page in &pages {
        let rel = page
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        if rel != "SUMMARY.md" && !summary.contains(&format!("]({rel})")) {
            problems.push(format!("{rel}: not in SUMMARY.md"));
        }
    }
    pages.push(repo().join("README.md"));
    for page in &pages {
        for target in links(&expand(page)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("dir").join(file)
            };
            let shown = format!("{}: ({target})", page.display());
            if !linked.exists() {
                problems.push(format!("{shown}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                if !heading_ids(&linked).contains(anchor) {
                    problems.push(format!("{shown}: no such heading"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn heading_ids_are_made_as_mdbook_makes_them() {
    assert_eq!(heading_id("Reload (SIGHUP)"), "reload-sighup");
    assert_eq!(heading_id("[server]"), "server");
    assert_eq!(
        heading_id("LDA mode (`sievegate deliver`)"),
        "lda-mode-sievegate-deliver"
    );
}

/// The Sieve reference's limits table repeats the `[sieve]` defaults for script writers,
/// next to Pigeonhole's names: each must be the value the example configuration shows.
#[test]
fn the_sieve_limits_table_shows_the_example_defaults() {
    let example: toml::Value = toml::from_str(&example()).expect("the example is TOML");
    let sieve = example.get("sieve").expect("[sieve]");
    let page = std::fs::read_to_string(repo().join("docs/src/sieve/limits.md")).expect("page");
    let mut rows = 0;
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let keys: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
        let defaults: Vec<&str> = cells[2]
            .split(['/', ',', ':'])
            .map(|d| d.trim().trim_matches('`'))
            .filter_map(|d| d.split_whitespace().next())
            .collect();
        for (key, shown) in keys.iter().zip(&defaults) {
            let value = sieve
                .get(*key)
                .unwrap_or_else(|| panic!("{key}: not in the example's [sieve]"));
            assert_eq!(
                value.to_string(),
                *shown,
                "{key} in docs/src/sieve/limits.md"
            );
            rows += 1;
        }
    }
    assert!(rows >= 14, "only {rows} limits checked");
}

/// The pages whose code blocks an admin pastes: the whole book but the internals, and the
/// README (whose Quickstart the book includes).
fn admin_facing_pages() -> Vec<PathBuf> {
    let src = repo().join("docs/src");
    let mut pages = Vec::new();
    markdown_files(&src, &mut pages);
    pages.retain(|p| !p.starts_with(src.join("internals")) && !p.ends_with("SUMMARY.md"));
    pages.push(repo().join("README.md"));
    pages.sort();
    pages
}

/// One fenced code block of a page's markdown source: where it starts, its info string, the
/// marker comment right before it (if any) and its lines.
struct Block {
    line: usize,
    /// The opening fence is indented (inside a list item, say).
    indented: bool,
    info: String,
    marker: Option<String>,
    text: String,
}

/// The fenced blocks of a markdown source, each with the `<!-- ... -->` comment that is the
/// last non-blank line before its opening fence.
fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    let mut last: Option<&str> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(block) => found.push(block),
                None => {
                    let marker = last
                        .and_then(|l| l.strip_prefix("<!--"))
                        .and_then(|l| l.strip_suffix("-->"))
                        .map(|m| m.trim().to_string());
                    open = Some(Block {
                        line: n + 1,
                        indented: line.starts_with(char::is_whitespace),
                        info: fence.trim().to_string(),
                        marker,
                        text: String::new(),
                    });
                }
            }
            last = None;
            continue;
        }
        match open.as_mut() {
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            None if !trimmed.is_empty() => last = Some(trimmed),
            None => {}
        }
    }
    found
}

/// The names of the test functions of `tests/`: `fn NAME(` after a `#[test]`.
fn test_functions() -> BTreeSet<String> {
    fn walk(dir: &Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("test source");
                let mut after_test = false;
                for line in text.lines().map(str::trim) {
                    if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                        after_test = true;
                    } else if let (true, Some(rest)) = (after_test, line.strip_prefix("fn ")) {
                        if let Some((name, _)) = rest.split_once('(') {
                            names.insert(name.to_string());
                        }
                        after_test = false;
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(&repo().join("tests"), &mut names);
    names
}

/// What a marker comment before a code block may say (the book's convention, in its
/// markdown source; mdBook shows nothing of it):
///
/// - `<!-- deploy: install|sh -->`, `<!-- deploy: append FILE -->`, `<!-- deploy: toml
///   FILE -->`: `scripts/test-deploy` applies the block as it stands, only on the deployment
///   chapter `admin/deploy.md`, which that script reads;
/// - `<!-- tested: NAME -->`: the test function NAME (in `tests/`) or the script
///   `scripts/NAME` runs what the block shows;
/// - `<!-- untested: REASON -->`: an admin reads it but no test applies it, and why.
fn marker_problem(page: &Path, marker: &str, tests: &BTreeSet<String>) -> Option<String> {
    let (kind, rest) = marker.split_once(':').unwrap_or((marker, ""));
    let rest = rest.trim();
    match kind {
        "deploy" => {
            if !page.ends_with("admin/deploy.md") {
                return Some("deploy: markers belong in admin/deploy.md only".into());
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                ["install" | "sh"] => None,
                ["append" | "toml", file] if file.starts_with('/') => None,
                _ => Some(format!(
                    "deploy: {rest}: not install, sh, append FILE or toml FILE"
                )),
            }
        }
        "tested" if tests.contains(rest) => None,
        "tested" if !rest.is_empty() && repo().join("scripts").join(rest).is_file() => None,
        "tested" => Some(format!("tested: {rest}: no such test function or script")),
        "untested" if rest.len() >= 10 => None,
        "untested" => Some("untested: say why".into()),
        _ => Some(format!(
            "<!-- {marker} -->: not a deploy:, tested: or untested: marker"
        )),
    }
}

/// Every code block of the admin-facing pages is either applied by a test (the deployment
/// chapter's blocks by `scripts/test-deploy`, others by a named test) or marked untested
/// with a reason: a snippet an admin pastes cannot silently drift from what is tested.
#[test]
fn every_admin_block_is_tested_or_marked_untested() {
    let tests = test_functions();
    assert!(
        tests.len() > 100,
        "only {} test functions found",
        tests.len()
    );
    let mut problems = Vec::new();
    let mut marked = 0;
    for page in admin_facing_pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for block in blocks(&text) {
            let at = format!("{}:{}", page.display(), block.line);
            match &block.marker {
                None => problems.push(format!(
                    "{at}: a ```{} block without <!-- deploy: ... -->, <!-- tested: NAME --> or <!-- untested: REASON --> right before it",
                    block.info
                )),
                // scripts/test-deploy reads fences at the start of a line only.
                Some(marker) if marker.starts_with("deploy:") && block.indented => {
                    problems.push(format!("{at}: a deploy: block must not be indented"))
                }
                Some(marker) => match marker_problem(&page, marker, &tests) {
                    Some(problem) => problems.push(format!("{at}: {problem}")),
                    None => marked += 1,
                },
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(marked >= 30, "only {marked} blocks found");
}

/// The deployment chapter is the script's input: it has the blocks of each kind the script
/// applies (the install, shell lines, main.cf and Dovecot lines, sievegate.toml keys), and
/// `scripts/test-deploy` reads that page and is run by `scripts/test`.
#[test]
fn the_deployment_chapter_is_what_test_deploy_runs() {
    let page = repo().join("docs/src/admin/deploy.md");
    let text = std::fs::read_to_string(&page).expect("admin/deploy.md");
    let markers: Vec<String> = blocks(&text).into_iter().filter_map(|b| b.marker).collect();
    for want in [
        "deploy: install",
        "deploy: sh",
        "deploy: append /etc/postfix/main.cf",
        "deploy: append /etc/dovecot/local.conf",
        "deploy: toml /etc/sievegate/sievegate.toml",
    ] {
        assert!(
            markers.iter().any(|m| m == want),
            "admin/deploy.md has no <!-- {want} --> block"
        );
    }
    let script = std::fs::read_to_string(repo().join("scripts/test-deploy")).expect("script");
    assert!(script.contains("docs/src/admin/deploy.md"));
    let suite = std::fs::read_to_string(repo().join("scripts/test")).expect("scripts/test");
    assert!(suite.contains("./scripts/test-deploy"));
}

/// A `main.cf` block pastes as it is: Postfix takes `#` as a comment only at the start of a
/// line, so a `# ...` after a value becomes part of it (`postfix check` is silent, then
/// smtpd dies at the first connection).
#[test]
fn no_main_cf_block_has_a_comment_after_a_value() {
    let mut problems = Vec::new();
    for page in admin_facing_pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for block in blocks(&text) {
            let postfix = block
                .marker
                .as_deref()
                .is_some_and(|m| m.contains("main.cf"))
                || block
                    .text
                    .lines()
                    .any(|l| l.contains("virtual_transport ="));
            for (i, line) in block.text.lines().enumerate() {
                if postfix && !line.trim_start().starts_with('#') && line.contains(" #") {
                    problems.push(format!("{}:{}: {line}", page.display(), block.line + 1 + i));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Merges `add` into `base`: tables key by key, everything else replaced.
fn merge(base: &mut toml::Table, add: toml::Table) {
    for (key, value) in add {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(a)) => merge(b, a),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Moves every absolute path of `value` (`"/..."`, `"unix:/..."`) under `root` and makes
/// what it names: a `*_file` key's file (a users file with one user), a directory for other
/// keys, the directory of a unix socket. Templates (`%d`, `%n`, `%h`) are made by the store.
fn rooted(key: &str, value: &mut toml::Value, root: &Path) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                rooted(k, v, root);
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| rooted(key, v, root)),
        toml::Value::String(s) => {
            let (prefix, path) = match s.strip_prefix("unix:") {
                Some(p) => ("unix:", p),
                None => ("", s.as_str()),
            };
            let Some(rel) = path.strip_prefix('/') else {
                return;
            };
            let moved = root.join(rel);
            if !moved.to_string_lossy().contains('%') {
                if !prefix.is_empty() || key.ends_with("_file") || key == "personal" {
                    std::fs::create_dir_all(moved.parent().expect("parent")).expect("mkdir");
                    if key.ends_with("_file") {
                        std::fs::write(&moved, "alice@example.test::::::\n").expect("file");
                    }
                } else {
                    std::fs::create_dir_all(&moved).expect("mkdir");
                }
            }
            *s = format!("{prefix}{}", moved.display());
        }
        _ => {}
    }
}

/// The key files a configuration names, with contents `check-config` accepts (it loads them
/// as `serve` does): ManageSieve's STARTTLS certificate and key (a test PKI made under
/// `root`), the link key (32 bytes, mode 0600).
fn key_files(config: &toml::Value, root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let get = |section: &str, key: &str| {
        config
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
    };
    if let (Some(cert), Some(key)) = (
        get("managesieve", "tls_cert"),
        get("managesieve", "tls_key"),
    ) {
        let pki = crate::support::tls::make(&root.join("test-pki"));
        for (from, to) in [(&pki.cert, &cert), (&pki.key, &key)] {
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(from, to).expect("copy a PEM file");
        }
    }
    if let Some(secret) = get("web", "secret_file") {
        std::fs::create_dir_all(secret.parent().expect("parent")).expect("mkdir");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("link key");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// The least a configuration has: a listener, clamd, the domains and the Maildir root.
const MINIMAL: &str = r#"
[server]
listen = ["unix:/run/sievegate/lmtp.sock"]
[scanner]
clamd = "unix:/run/clamav/clamd.ctl"
[mailbox]
domains = ["example.test"]
maildir = "/var/vmail/%d/%n/Maildir"
"#;

/// Every sievegate.toml block the book shows on its own (not an include of the example,
/// which the test above covers) passes `check-config`, set into a minimal configuration
/// (a unix listener, clamd, one domain, a Maildir root) as an admin sets keys: its absolute paths
/// are moved under a temp root and made there.
#[test]
fn every_toml_block_of_the_book_passes_check_config() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in admin_facing_pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for block in blocks(&text) {
            if block.info != "toml" || block.text.contains("{{#include") {
                continue;
            }
            let at = format!("{}:{}", page.display(), block.line);
            let root = tempfile::tempdir().expect("tempdir");
            let mut config: toml::Table = toml::from_str(MINIMAL).expect("base config");
            match toml::from_str::<toml::Table>(&block.text) {
                Ok(add) => merge(&mut config, add),
                Err(e) => {
                    problems.push(format!("{at}: not TOML: {e}"));
                    continue;
                }
            }
            let mut value = toml::Value::Table(config);
            rooted("", &mut value, root.path());
            key_files(&value, root.path());
            let text = toml::to_string(&value).expect("serialise");
            let (ok, err) = check_config(root.path(), &text);
            if !ok {
                problems.push(format!("{at}: check-config:\n{err}\n{text}"));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 2, "only {checked} toml blocks found");
}

#[test]
fn the_log_field_table_lists_the_fields_of_the_log_line_in_order() {
    // Operations' table of the per-recipient log line against the fields the logs tests
    // find on it (support::RECIPIENT_FIELDS): a field added to one and not the other fails.
    let page = repo().join("docs/src/admin/operations.md");
    let text = std::fs::read_to_string(&page).expect("operations.md");
    let table: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once("` |"))
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with("sievegate_"))
        .collect();
    assert_eq!(
        table,
        crate::support::RECIPIENT_FIELDS,
        "{}: the log-field table",
        page.display()
    );
}
