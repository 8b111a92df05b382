//! The forks under `patches/` against their own PATCHES.md: the list and the patched trees
//! must not drift apart (issue 15).
//!
//! Every change in a fork carries a `sievegate patch (PATCHES.md #N)` comment. Here, for
//! each fork: the entries are numbered 1..=N without gaps, every "<k> patches" in the text
//! says N, every marker is well-formed and names a listed patch, every listed patch has at
//! least one marker, and every file that carries marker #N is named in entry N's
//! `Files:` line. Every path PATCHES.md or UPSTREAM.md names (in backquotes) exists, in the
//! fork or in sievegate, and a test named right after its file (`path` (`name`)) is in that
//! file; a case named where the text speaks of the Pigeonhole differential is one of its
//! cases.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::env::repo;

/// The forks, as directories under `patches/`.
const FORKS: &[&str] = &["sieve-rs", "smtp-proto", "mail-parser"];

const MARKER: &str = "sievegate patch";

#[test]
fn patches_md_matches_the_patched_trees() {
    let mut problems = Vec::new();
    for fork in FORKS {
        check_fork(fork, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "PATCHES.md drift:\n{}",
        problems.join("\n")
    );
}

#[test]
fn upstream_md_names_every_patch_and_real_paths() {
    let root = repo();
    let text = fs::read_to_string(root.join("patches/UPSTREAM.md")).expect("patches/UPSTREAM.md");
    let mut problems = Vec::new();
    for fork in FORKS {
        let count = entries(&read_patches_md(fork)).len();
        for n in 1..=count {
            let heading = format!("### {fork} #{n}:");
            match text.lines().find(|l| l.starts_with(&heading)) {
                None => problems.push(format!("UPSTREAM.md: no `{heading}` section")),
                Some(line) => {
                    if !(line.contains("upstreamable") || line.contains("ours only")) {
                        problems.push(format!(
                            "UPSTREAM.md: `{heading}` says neither upstreamable nor ours only"
                        ))
                    }
                }
            }
        }
    }
    let mut bases = vec![root.join("patches")];
    bases.extend(FORKS.iter().map(|f| root.join("patches").join(f)));
    check_paths("UPSTREAM.md", &text, &root, &bases, &mut problems);
    assert!(
        problems.is_empty(),
        "UPSTREAM.md drift:\n{}",
        problems.join("\n")
    );
}

fn read_patches_md(fork: &str) -> String {
    let path = repo().join("patches").join(fork).join("PATCHES.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One `## N. title` section of a PATCHES.md.
struct Entry {
    number: usize,
    body: String,
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    // Whether the lines now read belong to the last entry (a heading of any other kind
    // ends it).
    let mut open = false;
    for line in text.lines() {
        if line.starts_with('#') {
            let numbered = line
                .strip_prefix("## ")
                .and_then(|rest| rest.split_once(". "))
                .and_then(|(num, _)| num.parse().ok());
            open = numbered.is_some();
            if let Some(number) = numbered {
                out.push(Entry {
                    number,
                    body: String::new(),
                });
            }
            continue;
        }
        if let (true, Some(last)) = (open, out.last_mut()) {
            last.body.push_str(line);
            last.body.push('\n');
        }
    }
    out
}

fn check_fork(fork: &str, problems: &mut Vec<String>) {
    let root = repo();
    let dir = root.join("patches").join(fork);
    let text = read_patches_md(fork);
    let list = entries(&text);
    let at = |msg: String| format!("patches/{fork}: {msg}");

    // Numbered 1..=N without gaps or repeats.
    let count = list.len();
    for (i, e) in list.iter().enumerate() {
        if e.number != i + 1 {
            problems.push(at(format!("entry {} is numbered #{}", i + 1, e.number)));
        }
    }
    if count == 0 {
        problems.push(at("PATCHES.md lists no `## N. ` entries".into()));
    }
    // Every "<k> patches" in the text is the count.
    for k in numbers_before(&text, " patches") {
        if k != count {
            problems.push(at(format!("PATCHES.md says {k} patches, lists {count}")));
        }
    }

    // The markers in the tree: file -> patch numbers.
    let mut marked: BTreeMap<PathBuf, BTreeSet<usize>> = BTreeMap::new();
    for file in files_under(&dir) {
        let rel = file
            .strip_prefix(&dir)
            .expect("under the fork")
            .to_path_buf();
        if rel.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let Ok(content) = fs::read_to_string(&file) else {
            continue; // binary test data
        };
        for (lineno, line) in content.lines().enumerate() {
            let mut rest = line;
            while let Some(pos) = rest.find(MARKER) {
                rest = &rest[pos + MARKER.len()..];
                let number = rest
                    .strip_prefix(" (PATCHES.md #")
                    .and_then(|r| r.split_once(')'))
                    .and_then(|(n, _)| n.parse::<usize>().ok());
                match number {
                    Some(n) if (1..=count).contains(&n) => {
                        marked.entry(rel.clone()).or_default().insert(n);
                    }
                    Some(n) => problems.push(at(format!(
                        "{}:{}: marker #{n}, but PATCHES.md lists 1..={count}",
                        rel.display(),
                        lineno + 1
                    ))),
                    None => problems.push(at(format!(
                        "{}:{}: marker not of the form `{MARKER} (PATCHES.md #N)`",
                        rel.display(),
                        lineno + 1
                    ))),
                }
            }
        }
    }

    for e in &list {
        let files = files_of(&e.body);
        if files.is_empty() {
            problems.push(at(format!(
                "#{} has no `- File:`/`- Files:` line",
                e.number
            )));
        }
        for f in &files {
            if !dir.join(f).exists() {
                problems.push(at(format!(
                    "#{} names `{f}`, which is not in the fork",
                    e.number
                )));
            }
        }
        let has_marker = marked.values().any(|ns| ns.contains(&e.number));
        if !has_marker {
            problems.push(at(format!("#{} has no marker in the tree", e.number)));
        }
        for (file, ns) in &marked {
            if ns.contains(&e.number) && !names_file(&files, file) {
                problems.push(at(format!(
                    "{} carries marker #{}, which does not list it under Files",
                    file.display(),
                    e.number
                )));
            }
        }
    }

    let doc = format!("patches/{fork}/PATCHES.md");
    check_paths(&doc, &text, &root, std::slice::from_ref(&dir), problems);
}

/// The integers written right before `suffix` ("19 patches" -> 19).
fn numbers_before(text: &str, suffix: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(suffix) {
        let end = from + pos;
        let digits: String = text[..end]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !digits.is_empty() {
            let digits: String = digits.chars().rev().collect();
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
        from = end + suffix.len();
    }
    out
}

/// The paths in an entry's `- File:`/`- Files:` bullet (to the next bullet or blank line).
fn files_of(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut bullet = String::new();
    for line in body.lines() {
        if line.starts_with("- ") || line.trim().is_empty() {
            if inside {
                break;
            }
            inside = line.starts_with("- File:") || line.starts_with("- Files:");
        }
        if inside {
            bullet.push_str(line);
            bullet.push('\n');
        }
    }
    for token in backquoted(&bullet) {
        // A dot file (`.gitignore`) counts here, where only paths are expected.
        let dot_file = token.starts_with('.') && !token.starts_with("..") && !token.contains(' ');
        if looks_like_path(&token) || dot_file {
            out.push(token);
        }
    }
    out
}

fn names_file(files: &[String], file: &Path) -> bool {
    files.iter().any(|f| {
        let listed = Path::new(f.trim_end_matches('/'));
        file == listed || (f.ends_with('/') && file.starts_with(listed))
    })
}

/// Every backquoted path exists (in one of `bases`, the fork or `patches/` and the forks, or
/// in sievegate); `path` (`name`, ..) names something in that file; and a snake_case name
/// where the text speaks of the differential is a Pigeonhole case.
fn check_paths(doc: &str, text: &str, root: &Path, bases: &[PathBuf], problems: &mut Vec<String>) {
    let cases = case_names(root);
    let mut after_path = BTreeSet::new();
    for paragraph in text.split("\n\n") {
        let tokens = backquoted_with_context(paragraph);
        for (i, (token, following)) in tokens.iter().enumerate() {
            if !looks_like_path(token) || token.contains('*') || token.contains('<') {
                continue;
            }
            let Some(found) = bases
                .iter()
                .map(|b| b.join(token))
                .chain([root.join(token)])
                .find(|p| p.exists())
            else {
                problems.push(format!("{doc}: `{token}` does not exist"));
                continue;
            };
            // `path` (`name`, `name`): the names must be in that file.
            if found.is_file() && following.trim_start().starts_with("(`") {
                let content = fs::read_to_string(&found).unwrap_or_default();
                for (name, _) in tokens.iter().skip(i + 1) {
                    if !is_snake(name) {
                        break;
                    }
                    after_path.insert(name.clone());
                    if !contains_word(&content, name) {
                        problems.push(format!("{doc}: `{name}` is not in `{token}`"));
                    }
                    if !paragraph.contains(&format!("`{name}`,")) {
                        break;
                    }
                }
            }
        }
        // After the word "differential", to the end of its sentence or clause.
        let mut rest = paragraph;
        while let Some(pos) = rest.find("differential") {
            rest = &rest[pos + "differential".len()..];
            let end = [". ", ".\n", ";"]
                .iter()
                .filter_map(|t| rest.find(t))
                .min()
                .unwrap_or(rest.len());
            for token in backquoted(&rest[..end]) {
                let token = &token;
                if is_snake(token)
                    && token.contains('_')
                    && !after_path.contains(token)
                    && !cases.contains(token)
                {
                    problems.push(format!(
                        "{doc}: `{token}` is named as a differential case but is none"
                    ));
                }
            }
        }
    }
}

fn case_names(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in files_under(&root.join("tests/it/pigeonhole")) {
        let content = fs::read_to_string(&file).unwrap_or_default();
        for line in content.lines() {
            if let Some(rest) = line.trim().strip_prefix("name: \"") {
                if let Some((name, _)) = rest.split_once('"') {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

fn backquoted(text: &str) -> Vec<String> {
    backquoted_with_context(text)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// Each backquoted token with the text that follows it.
fn backquoted_with_context(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let token = after[..end].to_string();
        let following = &after[end + 1..];
        out.push((token, following.chars().take(3).collect()));
        rest = following;
    }
    out
}

fn looks_like_path(token: &str) -> bool {
    if token.contains(' ') || token.contains("::") || token.starts_with("--") {
        return false;
    }
    // A media type (`message/rfc822`) is not a path.
    let media = ["text/", "message/", "multipart/", "application/", "image/"];
    if media.iter().any(|m| token.starts_with(m)) {
        return false;
    }
    let known_ext = [".rs", ".svtest", ".sieve", ".toml", ".json", ".md", ".eml"];
    (token.contains('/') && !token.starts_with('/') && !token.contains("://"))
        || known_ext
            .iter()
            .any(|e| token.ends_with(e) && token.len() > e.len())
}

fn is_snake(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && token.starts_with(|c: char| c.is_ascii_lowercase())
}

fn contains_word(content: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    content.match_indices(word).any(|(i, _)| {
        let before = content[..i].chars().next_back();
        let after = content[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
