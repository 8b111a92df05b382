//! Differential test: sievegate against a real Dovecot LMTP + Pigeonhole (the reference
//! implementation of `sieve_before`/`sieve_after` chains), case by case.
//!
//! Both get the same global, personal and included script files and the same messages over
//! LMTP; the test compares *where each copy lands*: the LMTP reply codes, the sorted list of
//! (folder, flags) of every stored file (which also counts copies per folder), the stored
//! header fields, and what each side sent (redirects, vacation replies, notifications; see
//! `cases.rs`, "Sent mail"). It fails on any difference that is not a documented deliberate
//! one, and on a deliberate one that is not exactly as documented, and prints one table with
//! every such case.
//!
//! How the sides are set up (see `support/dovecot.rs`):
//! - one Dovecot for all cases. Each case gets a fresh user `cNN`; Dovecot's `sieve`,
//!   `sieve_before`, `sieve_after` and `sieve_default` settings expand `%n`, so each user has
//!   its own chain;
//! - sievegate's before/after/default are global paths without templates, so one sievegate
//!   runs per distinct (before, after, default) combination, pointing at one case's copies of
//!   those files. Its `personal` template points at the very files Dovecot reads. All share
//!   the private clamd, one Maildir root and one smtp-sink as `[notify] relay`; each has its
//!   own `[state] dir` (vacation and duplicate records).
//! - Dovecot sends through `submission_host` to an smtp-sink of its own, during the
//!   delivery. sievegate sends redirects then too, vacation replies and notifications a
//!   moment later from its outbox: the test waits (with a timeout) until its sink holds as
//!   many transactions as Dovecot's, then until nothing new arrives for a short while.
//!
//! Not compared: whether a copy sits in `new/` or `cur/`. Both are valid places for a newly
//! delivered message; IMAP shows the same flags either way (it only sets `\Recent` for
//! `new/`). Differences there are printed as a note. A file left in `tmp/` is compared (it
//! shows up as a copy in `<folder> (tmp/)`), since neither side may leave one.

mod cases;
pub(crate) mod lmtp;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cases::{Body, Case, Message};
use lmtp::{Lmtp, Reply};
use report::{case_lines, listing, placement, sent_line, table, CaseResult, Outcome};

use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::dovecot::{Dovecot, GlobalScripts, Options, DOMAIN, VIRUS_HEADER};
use crate::support::eicar;
use crate::support::maildir_tree::{decode_mutf7, read_tree};
use crate::support::smtp_sink::{SmtpSink, Transaction};

/// Set to a comma-separated list of case names to run only those.
const SELECT_ENV: &str = "SIEVEGATE_DIFF_CASES";
/// Set to `1` to leave both trees, scripts, configs and Dovecot's log behind.
const KEEP_ENV: &str = "SIEVEGATE_DIFF_KEEP";
/// Set to `1` to print every message each side sent, in full.
const SHOW_SENT_ENV: &str = "SIEVEGATE_DIFF_SHOW_SENT";

#[test]
fn sievegate_stores_like_pigeonhole() {
    let started = Instant::now();
    let all = cases::all();
    assert!(all.len() >= 40, "the table must keep at least 40 cases");
    let mut names: Vec<_> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names must be unique");
    let cases = select(all);

    let (results, instances) = run(&cases, "");
    let differing: Vec<usize> = (0..cases.len())
        .filter(|&i| !as_expected(&cases[i], &results[i]))
        .collect();
    eprintln!(
        "pigeonhole differential: {} cases, {} sievegate instances, {} differ, {:.1} s\n{}",
        cases.len(),
        instances,
        differing.len(),
        started.elapsed().as_secs_f64(),
        listing(&cases, &results)
    );
    let placement_notes: Vec<String> = (0..cases.len())
        .filter(|i| !differing.contains(i))
        .filter(|&i| results[i].pigeonhole_placement != results[i].sievegate_placement)
        .map(|i| {
            format!(
                "  {:>2} {}: Pigeonhole {:?}, sievegate {:?}",
                results[i].number,
                cases[i].name,
                results[i].pigeonhole_placement,
                results[i].sievegate_placement
            )
        })
        .collect();
    if !placement_notes.is_empty() {
        eprintln!(
            "note (not compared): same folders and flags, different new/ vs cur/ placement:\n{}",
            placement_notes.join("\n")
        );
    }
    assert!(
        differing.is_empty(),
        "sievegate differs from Pigeonhole in {} of {} cases:\n\n{}",
        differing.len(),
        cases.len(),
        table(&cases, &results, &differing)
    );
}

/// The namespace cases again with Courier-style `INBOX.` on both sides (Dovecot's inbox
/// namespace and `[mailbox] namespace_prefix`): `INBOX.Sub` is `.Sub` there.
#[test]
fn sievegate_stores_like_pigeonhole_with_the_inbox_prefix() {
    let cases: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| {
            c.name.starts_with("namespace_prefixed_")
                || c.name.starts_with("mailboxexists")
                || c.name == "namespace_fileinto_inbox_dot_missing_keeps"
        })
        .collect();
    assert!(cases.len() >= 5, "the namespace cases are in the table");
    let (results, _) = run(&cases, "INBOX.");
    let differing: Vec<usize> = (0..cases.len())
        .filter(|&i| !as_expected(&cases[i], &results[i]))
        .collect();
    eprintln!(
        "pigeonhole differential, namespace prefix INBOX.:\n{}",
        listing(&cases, &results)
    );
    assert!(
        differing.is_empty(),
        "with namespace prefix INBOX., sievegate differs from Pigeonhole in {} of {} cases:\n\n{}",
        differing.len(),
        cases.len(),
        table(&cases, &results, &differing)
    );
}

/// Both sides agree, or differ exactly as the case's [`cases::Deliberate`] says.
fn as_expected(case: &Case, result: &CaseResult) -> bool {
    match case.differs {
        None => result.pigeonhole == result.sievegate,
        Some(d) => {
            result.pigeonhole.to_string() == d.pigeonhole
                && result.sievegate.to_string() == d.sievegate
        }
    }
}

/// The whole table, or the cases named in [`SELECT_ENV`] (unknown names fail the test).
fn select(all: Vec<Case>) -> Vec<Case> {
    let Some(wanted) = std::env::var(SELECT_ENV).ok().filter(|v| !v.is_empty()) else {
        return all;
    };
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    for name in &wanted {
        assert!(
            all.iter().any(|c| c.name == *name),
            "{SELECT_ENV}: no case named {name:?}"
        );
    }
    all.into_iter()
        .filter(|c| wanted.contains(&c.name))
        .collect()
}

/// Installs every case's scripts, delivers every message to both sides, and reads both
/// Maildir trees back. Returns the results and the number of sievegate instances. Dovecot
/// and every sievegate are stopped when this returns (or panics).
fn run(cases: &[Case], namespace_prefix: &str) -> (Vec<CaseResult>, usize) {
    // Each side sends to its own smtp-sink: Dovecot through `submission_host`, sievegate
    // through `[notify] relay` (all instances share one).
    let pigeonhole_sink = SmtpSink::start();
    let sievegate_sink = SmtpSink::start();
    let mut dovecot = Dovecot::start_with(Options {
        submission: Some(pigeonhole_sink.addr()),
        namespace_prefix: (!namespace_prefix.is_empty()).then(|| namespace_prefix.to_string()),
        ..Options::default()
    });
    let clamd = Clamd::shared();
    let sg_dir = tempfile::Builder::new()
        .prefix("sievegate-diff-")
        .tempdir()
        .expect("tempdir");
    let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| v == "1");
    if keep {
        dovecot.keep_files();
        eprintln!(
            "keeping Dovecot's files in {} and sievegate's in {}",
            dovecot.root().display(),
            sg_dir.path().display()
        );
    }

    // A fresh user per case, so that Maildirs never mix. Numbered by position in the full
    // table, so a case keeps its user when run alone.
    let all_names: Vec<&str> = cases::all().iter().map(|c| c.name).collect();
    let users: Vec<String> = cases
        .iter()
        .map(|c| {
            let n = all_names.iter().position(|n| *n == c.name).expect("listed") + 1;
            format!("c{n:02}")
        })
        .collect();
    let mut groups: Vec<Group> = Vec::new();
    for (index, (case, user)) in cases.iter().zip(&users).enumerate() {
        dovecot.add_user(user);
        if let Some(script) = case.personal {
            dovecot.set_personal(user, script);
        }
        for (name, script) in case.personal_includes {
            dovecot.set_personal_include(user, name, script);
        }
        for (name, script) in case.global_includes {
            dovecot.set_global_include(name, script);
        }
        let globals = dovecot.set_globals(user, case.before, case.after, case.default);
        match groups
            .iter_mut()
            .find(|g| same_globals(&cases[g.cases[0]], case))
        {
            Some(group) => group.cases.push(index),
            None => groups.push(Group {
                globals,
                cases: vec![index],
            }),
        }
    }
    let servers: Vec<Running> = groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let config = sg_dir.path().join(format!("group{g:02}.toml"));
            let text = sievegate_config(
                sg_dir.path(),
                &dovecot,
                clamd,
                &group.globals,
                sievegate_sink.addr(),
                &sg_dir.path().join(format!("state{g:02}")),
                namespace_prefix,
            );
            std::fs::write(&config, text).expect("write sievegate config");
            Running::start(&config)
        })
        .collect();

    // Deliver: one LMTP connection to Dovecot for all cases, one per sievegate; the two
    // sides at the same time (both mostly wait for fsync).
    let messages: Vec<Vec<Vec<u8>>> = cases
        .iter()
        .zip(&users)
        .map(|(c, user)| {
            std::iter::once(&c.message)
                .chain(c.more)
                .map(|m| m.to_crlf(user))
                .collect()
        })
        .collect();
    let recipient = |i: usize| match cases[i].detail {
        Some(detail) => format!("{}+{detail}@{DOMAIN}", users[i]),
        None => format!("{}@{DOMAIN}", users[i]),
    };
    let mut sievegate_replies: Vec<Vec<Reply>> = vec![Vec::new(); cases.len()];
    // Where each case's log lines start in its server's log (a panic's lines do not name
    // the recipient).
    let mut log_starts = vec![0; cases.len()];
    let dovecot_replies: Vec<Vec<Reply>> = std::thread::scope(|scope| {
        let to_dovecot = scope.spawn(|| {
            let mut lmtp = Lmtp::connect(dovecot.addr());
            let replies: Vec<Vec<Reply>> = (0..cases.len())
                .map(|i| {
                    messages[i]
                        .iter()
                        .map(|m| lmtp.deliver(cases[i].mail_from, &recipient(i), m))
                        .collect()
                })
                .collect();
            lmtp.quit();
            replies
        });
        for (group, server) in groups.iter().zip(&servers) {
            let mut lmtp = Lmtp::connect(server.addr);
            for &i in &group.cases {
                log_starts[i] = server.logs().len();
                sievegate_replies[i] = messages[i]
                    .iter()
                    .map(|m| lmtp.deliver(cases[i].mail_from, &recipient(i), m))
                    .collect();
            }
            lmtp.quit();
        }
        match to_dovecot.join() {
            Ok(replies) => replies,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });

    // Dovecot sends during the delivery; sievegate sends redirects then too, but vacation
    // replies and notifications through its outbox queue, a moment later.
    let pigeonhole_sent = pigeonhole_sink.transactions();
    let sievegate_sent = settle(&sievegate_sink, pigeonhole_sent.len());
    if std::env::var_os(SHOW_SENT_ENV).is_some_and(|v| v == "1") {
        for (side, sent) in [
            ("Pigeonhole", &pigeonhole_sent),
            ("sievegate", &sievegate_sent),
        ] {
            for t in sent.iter() {
                eprintln!(
                    "==== {side} sent, MAIL FROM <{}> RCPT TO {:?}\n{}",
                    t.mail_from,
                    t.rcpt_to,
                    String::from_utf8_lossy(&t.message)
                );
            }
        }
    }
    let sent_by = |sent: &[Transaction], i: usize, user: &str| -> Vec<String> {
        let original_id = format!("<{user}.diff@remote.example>");
        let address = format!("{user}@{DOMAIN}");
        let mut lines: Vec<String> = sent
            .iter()
            .filter(|t| {
                let text = String::from_utf8_lossy(&t.message);
                text.contains(&original_id[1..]) || text.contains(&address)
            })
            .map(|t| {
                sent_line(
                    &t.mail_from,
                    &t.rcpt_to,
                    &t.message,
                    &original_id,
                    &messages[i][0],
                )
            })
            .collect();
        lines.sort();
        lines
    };

    // Read both trees back.
    let mut results = Vec::with_capacity(cases.len());
    for (i, user) in users.iter().enumerate() {
        let (group, server) = groups
            .iter()
            .zip(&servers)
            .find(|(g, _)| g.cases.contains(&i))
            .expect("every case is in a group");
        let logs = server.logs();
        let next = group.cases.iter().position(|&c| c == i).expect("in group") + 1;
        let end = group.cases.get(next).map_or(logs.len(), |&c| log_starts[c]);
        let pigeonhole_stored = read_tree(&dovecot.maildir(user));
        let sievegate_stored = read_tree(
            &sg_dir
                .path()
                .join("mail")
                .join(DOMAIN)
                .join(user)
                .join("Maildir"),
        );
        let sievegate_reply = &sievegate_replies[i];
        let texts = |replies: &[Reply]| {
            replies
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        };
        results.push(CaseResult {
            number: user[1..].parse().expect("cNN"),
            pigeonhole: Outcome::new(
                &dovecot_replies[i],
                &pigeonhole_stored,
                sent_by(&pigeonhole_sent, i, user),
            ),
            sievegate: Outcome::new(
                sievegate_reply,
                &sievegate_stored,
                sent_by(&sievegate_sent, i, user),
            ),
            pigeonhole_placement: placement(&pigeonhole_stored),
            sievegate_placement: placement(&sievegate_stored),
            pigeonhole_reply: texts(&dovecot_replies[i]),
            sievegate_reply: texts(sievegate_reply),
            pigeonhole_log: dovecot.user_log(user),
            sievegate_log: case_lines(
                logs.get(log_starts[i]..end).unwrap_or(""),
                &format!("{user}@{DOMAIN}"),
            ),
        });
    }
    let instances = servers.len();
    drop(servers);
    if keep {
        let _ = sg_dir.keep();
    }
    (results, instances)
}

/// How long sievegate's outbox may take to send what Pigeonhole sent during the delivery.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// No new transaction for this long after the count is reached: nothing more is coming.
const QUIET: Duration = Duration::from_millis(500);

/// Waits until `sink` holds at least `expected` transactions (or [`SEND_TIMEOUT`] passed:
/// then the comparison shows what is missing), then until nothing new arrived for [`QUIET`].
fn settle(sink: &SmtpSink, expected: usize) -> Vec<Transaction> {
    let started = Instant::now();
    let mut got = sink.transactions();
    while got.len() < expected && started.elapsed() < SEND_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
        got = sink.transactions();
    }
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < QUIET {
        std::thread::sleep(Duration::from_millis(20));
        let now = sink.transactions();
        if now.len() != got.len() {
            got = now;
            quiet_since = Instant::now();
        }
    }
    got
}

/// Cases that share before/after/default scripts, served by one sievegate.
struct Group {
    /// The first case's copies of the global scripts (same text for every case here).
    globals: GlobalScripts,
    cases: Vec<usize>,
}

fn same_globals(a: &Case, b: &Case) -> bool {
    a.before == b.before && a.after == b.after && a.default == b.default
}

fn sievegate_config(
    dir: &Path,
    dovecot: &Dovecot,
    clamd: &Clamd,
    globals: &GlobalScripts,
    relay: SocketAddr,
    state: &Path,
    namespace_prefix: &str,
) -> String {
    let list = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let default = globals
        .default
        .as_ref()
        .map(|p| format!("default = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
hostname = "mx.{DOMAIN}"
[scanner]
clamd = {clamd:?}
[mailbox]
domains = ["{DOMAIN}"]
maildir = {maildir:?}
namespace_prefix = {namespace_prefix:?}
[sieve]
before = [{before}]
personal = {personal:?}
after = [{after}]
personal_dir = {personal_dir:?}
global_dir = {global_dir:?}
{default}[state]
dir = {state:?}
[notify]
relay = "{relay}"
"#,
        clamd = format!("unix:{}", clamd.socket().display()),
        maildir = format!("{}/mail/%d/%n/Maildir", dir.display()),
        before = list(&globals.before),
        personal = dovecot.personal_template(),
        after = list(&globals.after),
        personal_dir = format!("{}/sieve/%n", dovecot.root().display()),
        global_dir = dovecot.global_include_dir().display().to_string(),
        state = state.display().to_string(),
    )
}

impl Message {
    /// The message as sent over LMTP (CRLF). The `X-Diff-Scan` header makes Pigeonhole's
    /// virustest see what clamd tells sievegate: `infected` for EICAR, else `clean`.
    fn to_crlf(self, user: &str) -> Vec<u8> {
        let (scan, body) = match self.body {
            Body::Text(text) => ("clean", text.to_owned()),
            Body::Padded(line, size) => ("clean", line.repeat(size / line.len() + 1)),
            Body::Eicar => (
                "infected",
                format!(
                    "This carries the EICAR test string:\n{}\n",
                    String::from_utf8(eicar()).expect("EICAR is ASCII")
                ),
            ),
        };
        let text = format!(
            "{VIRUS_HEADER}: {scan}\nFrom: {from}\nTo: {to}\nSubject: {subject}\n\
             Message-ID: <{user}.diff@remote.example>\nDate: Fri, 27 Nov 2026 09:00:00 +0000\n\
             {extra}MIME-Version: 1.0\nContent-Type: {content_type}\n\n{body}",
            from = self.from,
            to = self.to.replace("%u", user),
            subject = self.subject,
            extra = self.extra_headers.replace("%u", user),
            content_type = self.content_type,
        );
        text.replace('\n', "\r\n").into_bytes()
    }
}

/// The book's "Deliberate differences from Pigeonhole" table (docs/src/sieve/pigeonhole.md)
/// names exactly the cases that carry a [`cases::Deliberate`]: the documentation and the
/// asserted behaviour agree.
#[test]
fn readme_lists_the_deliberate_differences() {
    let readme =
        std::fs::read_to_string(crate::support::env::repo().join("docs/src/sieve/pigeonhole.md"))
            .expect("docs/src/sieve/pigeonhole.md");
    let section = readme
        .split("### Deliberate differences from Pigeonhole")
        .nth(1)
        .expect("README has the section")
        .split("\n#")
        .next()
        .unwrap_or("");
    let mut listed: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    listed.sort();
    let mut deliberate: Vec<String> = cases::all()
        .iter()
        .filter(|c| c.differs.is_some())
        .map(|c| c.name.to_string())
        .collect();
    deliberate.sort();
    assert_eq!(listed, deliberate, "README's table vs cases.rs");
}

#[test]
fn mutf7_folder_names_decode() {
    assert_eq!(decode_mutf7("Entw&APw-rfe"), "Entwürfe");
    assert_eq!(decode_mutf7("&ZeVnLA-"), "日本");
    assert_eq!(decode_mutf7("R&-D"), "R&D");
    assert_eq!(decode_mutf7("Plain.Sub"), "Plain.Sub");
    // Malformed input stays visible instead of being guessed at.
    assert_eq!(decode_mutf7("Bad&!!-x"), "Bad&!!-x");
}
