//! How results are shown: one line per outcome, the table of differing cases with their
//! scripts, replies and log lines.

use std::fmt;

use super::cases::Case;
use super::lmtp::Reply;
use crate::support::dovecot::DOMAIN;
use crate::support::maildir_tree::{header_fields, StoredCopy, Subdir};

/// What one side did with one case's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply code to the final dot (or to whichever command failed first).
    reply: String,
    /// (folder, flags) per stored file, sorted; `tmp/` leftovers count as a copy.
    copies: Vec<(String, Vec<String>)>,
    /// (folder, header fields without trace fields) per stored file, sorted: editheader's
    /// result as stored.
    headers: Vec<(String, Vec<String>)>,
    /// The mail this case sent (redirects, vacation replies, notifications), sorted; see
    /// [`sent_line`].
    pub sent: Vec<String>,
}

impl Outcome {
    /// `replies`: one per message of the case, in delivery order.
    pub fn new(replies: &[Reply], stored: &[StoredCopy], sent: Vec<String>) -> Outcome {
        let mut copies: Vec<_> = stored
            .iter()
            .map(|c| {
                let folder = match c.subdir {
                    Subdir::Tmp => format!("{} (tmp/)", c.folder),
                    Subdir::New | Subdir::Cur => c.folder.clone(),
                };
                (folder, c.flags.clone())
            })
            .collect();
        copies.sort();
        let mut headers: Vec<_> = stored
            .iter()
            .map(|c| (c.folder.clone(), c.headers.clone()))
            .collect();
        headers.sort();
        Outcome {
            reply: replies
                .iter()
                .map(|r| r.code.as_str())
                .collect::<Vec<_>>()
                .join(","),
            copies,
            headers,
            sent,
        }
    }
}

impl fmt::Display for Outcome {
    /// `250 INBOX + Copy(\Seen)`; `×2` for two copies in one folder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.reply)?;
        if self.copies.is_empty() {
            write!(f, "nothing stored")?;
            return self.fmt_sent(f);
        }
        let mut counted: Vec<(&(String, Vec<String>), usize)> = Vec::new();
        for copy in &self.copies {
            match counted.last_mut() {
                Some((last, n)) if *last == copy => *n += 1,
                _ => counted.push((copy, 1)),
            }
        }
        let parts: Vec<String> = counted
            .iter()
            .map(|((folder, flags), n)| {
                let mut s = folder.clone();
                if !flags.is_empty() {
                    s.push_str(&format!("({})", flags.join(" ")));
                }
                if *n > 1 {
                    s.push_str(&format!(" ×{n}"));
                }
                s
            })
            .collect();
        write!(f, "{}", parts.join(" + "))?;
        self.fmt_sent(f)
    }
}

impl Outcome {
    fn fmt_sent(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sent.is_empty() {
            return Ok(());
        }
        write!(f, "; sent {}", self.sent.join(" + "))
    }
}

/// One sent message as compared: `kind from -> rcpts`; for a vacation reply the address in
/// its `From`, its `Subject`, `In-Reply-To`, `MIME-Version`, media type and body text; for
/// a notification its `From` address, `Subject` and `MIME-Version`. The kind comes from the message: `Auto-Submitted:
/// auto-replied` is a vacation reply, `auto-notified` a notification, a message that keeps
/// the original `Message-ID` a redirect.
/// A redirect also says whether the body arrived unchanged (`original` is the message as
/// delivered over LMTP).
pub fn sent_line(
    mail_from: &str,
    rcpt_to: &[String],
    message: &[u8],
    original_id: &str,
    original: &[u8],
) -> String {
    let auto = header(message, "Auto-Submitted").unwrap_or_default();
    let kind = if auto.starts_with("auto-replied") {
        "vacation"
    } else if auto.starts_with("auto-notified") {
        "notify"
    } else if header(message, "Message-ID").as_deref() == Some(original_id) {
        "redirect"
    } else {
        "other"
    };
    let mut line = format!("{kind} {mail_from} -> {}", rcpt_to.join(","));
    if kind == "redirect" {
        let same = body(message) == body(original);
        line.push_str(if same {
            " [body intact]"
        } else {
            " [body changed]"
        });
        let edits = header_edits(original, message);
        if !edits.is_empty() {
            line.push_str(&format!(" [header {}]", edits.join(", ")));
        }
    }
    if kind == "vacation" {
        line.push_str(&format!(
            " [From: {}, Subject: {:?}, In-Reply-To: {}, MIME-Version: {}, Content-Type: {}, body: {:?}]",
            addr_spec(&header(message, "From").unwrap_or_default()),
            header(message, "Subject").unwrap_or_default(),
            header(message, "In-Reply-To").unwrap_or_default(),
            header(message, "MIME-Version").unwrap_or_default(),
            media_type(message),
            String::from_utf8_lossy(body(message)).replace("\r\n", "\n").trim()
        ));
    }
    if kind == "notify" {
        line.push_str(&format!(
            " [From: {}, Subject: {:?}, MIME-Version: {}]",
            addr_spec(&header(message, "From").unwrap_or_default()),
            header(message, "Subject").unwrap_or_default(),
            header(message, "MIME-Version").unwrap_or_default(),
        ));
    }
    line
}

/// The media type of a message's `Content-Type`, lower-cased, without parameters
/// (`text/plain`); empty without the field.
fn media_type(message: &[u8]) -> String {
    header(message, "Content-Type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// How the header section of `sent` differs from `original`'s: `+Name: value` for a field
/// only `sent` has, `-Name: value` for one it lost (each field counted, sorted). Trace
/// fields and each side's own redirect marks (`X-Sieve*`) are left out: they differ by
/// design.
fn header_edits(original: &[u8], sent: &[u8]) -> Vec<String> {
    let comparable = |message: &[u8]| -> Vec<String> {
        header_fields(message)
            .into_iter()
            .filter(|f| !f.to_ascii_lowercase().starts_with("x-sieve"))
            .collect()
    };
    let mut before = comparable(original);
    let mut edits = Vec::new();
    for field in comparable(sent) {
        match before.iter().position(|f| *f == field) {
            Some(i) => {
                before.remove(i);
            }
            None => edits.push(format!("+{field}")),
        }
    }
    edits.extend(before.into_iter().map(|f| format!("-{f}")));
    edits.sort();
    edits
}

/// The address of a one-mailbox field, `Name <a@b>` or `a@b`, lower-cased.
fn addr_spec(value: &str) -> String {
    let inner = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    inner.trim().to_ascii_lowercase()
}

/// What follows the header section.
fn body(message: &[u8]) -> &[u8] {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &message[i + 4..])
}

/// A header field's unfolded value (first occurrence, case-insensitive name).
pub fn header(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_owned());
            }
        }
    }
    value
}

/// What happened to one case on both sides.
pub struct CaseResult {
    /// 1-based position in the full table: the user is `c<number>`.
    pub number: usize,
    pub pigeonhole: Outcome,
    pub sievegate: Outcome,
    pub pigeonhole_placement: Vec<String>,
    pub sievegate_placement: Vec<String>,
    /// Full reply lines.
    pub pigeonhole_reply: String,
    pub sievegate_reply: String,
    pub pigeonhole_log: Vec<String>,
    pub sievegate_log: Vec<String>,
}

/// Every case's outcome on one line (printed with --nocapture, or on failure).
pub fn listing(cases: &[Case], results: &[CaseResult]) -> String {
    cases
        .iter()
        .zip(results)
        .map(|(case, r)| {
            if let Some(d) = case.differs {
                format!(
                    "{:>2} ≈ {:<44} Pigeonhole {} | sievegate {} (by design: {})",
                    r.number, case.name, r.pigeonhole, r.sievegate, d.why
                )
            } else if r.pigeonhole == r.sievegate {
                format!("{:>2}   {:<44} {}", r.number, case.name, r.pigeonhole)
            } else if r.pigeonhole.copies == r.sievegate.copies
                && r.pigeonhole.sent == r.sievegate.sent
            {
                format!(
                    "{:>2} ≠ {:<44} {} but stored headers differ: Pigeonhole {:?} | sievegate {:?}",
                    r.number, case.name, r.pigeonhole, r.pigeonhole.headers, r.sievegate.headers
                )
            } else {
                format!(
                    "{:>2} ≠ {:<44} Pigeonhole {} | sievegate {}",
                    r.number, case.name, r.pigeonhole, r.sievegate
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where each copy sits, for the placement note.
pub fn placement(stored: &[StoredCopy]) -> Vec<String> {
    let mut out: Vec<String> = stored
        .iter()
        .map(|c| {
            let sub = match c.subdir {
                Subdir::New => "new",
                Subdir::Cur => "cur",
                Subdir::Tmp => "tmp",
            };
            format!("{}/{sub}", c.folder)
        })
        .collect();
    out.sort();
    out
}

/// The log lines of one delivery, from its slice of a sievegate log: lines naming this
/// recipient or no test recipient at all (a panic message, say), without backtrace frames.
pub fn case_lines(slice: &str, address: &str) -> Vec<String> {
    slice
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.is_empty())
        .filter(|l| l.contains(address) || !l.contains(&format!("@{DOMAIN}")))
        .map(str::to_owned)
        .collect()
}

/// One row per differing case, then per case its scripts, replies and log lines.
pub fn table(cases: &[Case], results: &[CaseResult], differing: &[usize]) -> String {
    let name = |i: usize| format!("{:>2} {}", results[i].number, cases[i].name);
    let width = |f: &dyn Fn(usize) -> usize, title: &str| {
        differing
            .iter()
            .map(|&i| f(i))
            .chain([columns(title)])
            .max()
            .unwrap_or(0)
    };
    let w_case = width(&|i| columns(&name(i)), "case");
    let w_ph = width(
        &|i| columns(&results[i].pigeonhole.to_string()),
        "Pigeonhole",
    );
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(columns(s))));
    let mut out = format!(
        "{} | {} | sievegate\n{}\n",
        pad("case", w_case),
        pad("Pigeonhole", w_ph),
        "-".repeat(w_case + w_ph + 20)
    );
    for &i in differing {
        out.push_str(&format!(
            "{} | {} | {}\n",
            pad(&name(i), w_case),
            pad(&results[i].pigeonhole.to_string(), w_ph),
            results[i].sievegate
        ));
    }
    out.push_str("\nDetails:\n");
    for &i in differing {
        let r = &results[i];
        out.push_str(&format!("\n{}\n", name(i)));
        for line in scripts_of(&cases[i]) {
            out.push_str(&format!("     {line}\n"));
        }
        if let Some(d) = cases[i].differs {
            out.push_str(&format!(
                "     documented difference ({}):\n       Pigeonhole: {}\n       sievegate:  {}\n",
                d.why, d.pigeonhole, d.sievegate
            ));
        }
        for (side, outcome, reply, log) in [
            (
                "Pigeonhole",
                &r.pigeonhole,
                &r.pigeonhole_reply,
                &r.pigeonhole_log,
            ),
            (
                "sievegate ",
                &r.sievegate,
                &r.sievegate_reply,
                &r.sievegate_log,
            ),
        ] {
            out.push_str(&format!("     {side}: {outcome}\n       reply: {reply}\n"));
            for line in log {
                out.push_str(&format!("       log: {}\n", shorten_log(line)));
            }
        }
    }
    out
}

/// Terminal columns `s` takes: East Asian wide characters (folder names like 日本) take two.
fn columns(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// The case's scripts on one line each, without `require` lines.
fn scripts_of(case: &Case) -> Vec<String> {
    let one_line = |script: &str| {
        let text: Vec<&str> = script
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("require"))
            .collect();
        if text.is_empty() {
            "(empty)".to_owned()
        } else {
            text.join(" ")
        }
    };
    let mut out = Vec::new();
    for (i, s) in case.before.iter().enumerate() {
        out.push(format!("before[{i}]: {}", one_line(s)));
    }
    match case.personal {
        Some(s) => out.push(format!("personal:  {}", one_line(s))),
        None => out.push("personal:  (none)".to_owned()),
    }
    if let Some(s) = case.default {
        out.push(format!("default:   {}", one_line(s)));
    }
    for (i, s) in case.after.iter().enumerate() {
        out.push(format!("after[{i}]:  {}", one_line(s)));
    }
    out
}

/// A log line without what the table already says: Dovecot's process/user prefix,
/// sievegate's timestamp, span and per-recipient fields that are the same for every case.
fn shorten_log(line: &str) -> String {
    let line = match line.find(">: ") {
        Some(i) => &line[i + 3..],
        None => match line.find("sievegate::") {
            Some(i) => line[i..].split_once(": ").map_or(line, |(_, rest)| rest),
            None => line,
        },
    };
    const SAME_FOR_ALL: &[&str] = &[
        "queue_id=",
        "from=",
        "to=",
        "mailbox=",
        "message_id=",
        "size=",
        "verdict=",
        "virus=",
    ];
    line.split(' ')
        .filter(|word| !SAME_FOR_ALL.iter().any(|key| word.starts_with(key)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn outcome_table_counts_copies() {
    let reply = Reply {
        code: "250".into(),
        text: String::new(),
    };
    let stored = |folder: &str, flags: &[&str], subdir| StoredCopy {
        folder: folder.into(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        headers: Vec::new(),
        subdir,
    };
    let outcome = Outcome::new(
        std::slice::from_ref(&reply),
        &[
            stored("INBOX", &[], Subdir::New),
            stored("Copy", &["\\Seen"], Subdir::Cur),
            stored("INBOX", &[], Subdir::Cur),
        ],
        Vec::new(),
    );
    assert_eq!(outcome.to_string(), "250 Copy(\\Seen) + INBOX ×2");
    assert_eq!(
        Outcome::new(
            std::slice::from_ref(&reply),
            &[],
            vec!["redirect <> -> <b@x>".into()]
        )
        .to_string(),
        "250 nothing stored; sent redirect <> -> <b@x>"
    );
}
