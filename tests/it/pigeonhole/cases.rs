//! The differential cases: scripts and messages that both Pigeonhole and sievegate get.
//!
//! To add a case, append a `Case { name, .., ..BASE }` to [`all`]: `before`/`after` are the
//! global scripts (run in the listed order), `personal` the user's script (`None`: the user
//! has none, so `default` runs), `message` what arrives. Nothing states an expected result:
//! Pigeonhole's result *is* the expectation.
//!
//! `more` delivers further messages after `message` (same envelope; a vacation's second
//! message within the period, a duplicate), `personal_includes`/`global_includes` install
//! scripts for `include :personal`/`:global` (Pigeonhole's `sieve = file:<dir>;active=...`
//! storage and `sieve_global`; sievegate's `personal_dir`/`global_dir`: the same files).
//! In a message, `%u` in `to` and `extra_headers` stands for the recipient's local part.
//!
//! ## Sent mail
//!
//! Each side sends to its own Postfix smtp-sink (Dovecot through `submission_host`,
//! sievegate through `[notify] relay`). A sent message belongs to a case when it mentions
//! the case's Message-ID (`<cNN.diff@remote.example>`: the redirected message itself, a
//! vacation reply's `In-Reply-To`) or its recipient address (a notification). Compared,
//! sorted: the kind (`vacation`: `Auto-Submitted: auto-replied`; `notify`: `auto-notified`;
//! `redirect`: keeps the original Message-ID; else `other`), the envelope sender and
//! recipients; for a redirect whether the body arrived unchanged and which header fields it
//! gained or lost (editheader; trace fields and `X-Sieve*` marks aside); for a vacation reply the
//! address in its `From`, its `Subject`, `In-Reply-To`, `MIME-Version`, media type and body
//! text (so `:mime` is compared); for a notification the address in its `From`, its
//! `Subject` and `MIME-Version`. Not compared, different by design: everything else in the
//! header of what is sent (the `From`'s display name, `Message-ID`, `Date`, `Precedence`,
//! `X-Priority` wording; the trace fields and `X-Sievegate-Redirected-By` that sievegate
//! adds to a redirect; the notification's body text).
//!
//! ## Deliberate differences (asserted exactly, see [`Deliberate`])
//!
//! | case | Pigeonhole 0.5.19 | sievegate | why |
//! |---|---|---|---|
//! | `redirect_over_max_redirects` | runtime error, implicit keep, nothing sent | sends the first 4, ignores the 5th, no keep | README: "more are ignored and logged" |
//! | `infected_redirect` | redirects the EICAR message | sends nothing (nothing stored without quarantine) | never send infected mail on |
//! | `redirect_to_delivered_to_address` | redirects | keeps, sends nothing | README: no redirect to an address already in `Delivered-To:` (loop) |
//! | `vacation_to_user_detail` | no reply: the envelope recipient `cNN+away@` is not in To/Cc | replies: the user's address `cNN@` is in To | sievegate matches the user's address without `+detail`; Pigeonhole the exact recipient (both reply when To has `+detail`: `vacation_detail_in_to_and_envelope`) |
//! | `notify_mailto`, `notify_importance_message`, `notify_uri_headers` | envelope sender and `From:` `postmaster_address`; default Subject `Notification: <subject>` | envelope sender `<>`, `From:` the user; default Subject the message's own | README: notify goes from `<>` (RFC 3834), `From:` the user (RFC 5436 §2.7) |
//! | `notify_from` | envelope sender and `From:` the `:from` address | `:from` not the user's own: ignored (`<>`, the user) | RFC 5435 §3.3 security check (sieve-rs): no forged senders through our relay |
//!
//! `vacation :seconds` / `:days 0` agree: both hold the period to the 1-day minimum
//! (Dovecot's `sieve_vacation_min_period`, sievegate's `vacation_min_days`).
//!
//! Left out on purpose, because the two differ by design or cannot be observed here:
//! `reject`/`ereject` (Pigeonhole 0.5.19 answers 250 and mails a rejection to the sender, and
//! has no `ereject`; sievegate answers 550 unless `allow_reject_mdn`), adding a protected
//! header field (sievegate refuses to add `Auto-Submitted`, `Return-Path`, `Delivered-To`,
//! `Received` and `X-Virus-*`, as issue 7 asks; Pigeonhole 0.5.19 lets a script add
//! `Auto-Submitted`; deleting is refused by both and compared in
//! `protected_headers_not_deleted`), `fileinto :specialuse` (the reference Pigeonhole 0.5.19
//! does not compile a script that requires `special-use`; sievegate's behaviour is pinned in
//! `src/filter/tests/world.rs`), and infected mail that a script stores (sievegate never
//! stores infected mail, whatever the scripts say; Pigeonhole stores it as told; that it
//! never sends it on either is the deliberate difference `infected_redirect`).

/// What arrives over LMTP. The body is built at run time (see `Message::to_crlf` in
/// `pigeonhole.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// The `From:` header field value.
    pub from: &'static str,
    pub to: &'static str,
    pub subject: &'static str,
    /// More header lines, each ending in `\n`.
    pub extra_headers: &'static str,
    pub content_type: &'static str,
    pub body: Body,
}

#[derive(Debug, Clone, Copy)]
pub enum Body {
    Text(&'static str),
    /// The text repeated up to about `size` bytes (for `size` tests).
    Padded(&'static str, usize),
    /// The EICAR test string: clamd flags it for sievegate, and the message's
    /// `X-Diff-Scan: infected` header tells Pigeonhole's `virustest` the same (value 5).
    Eicar,
}

#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Unique; shown in the result table.
    pub name: &'static str,
    /// Global scripts before the personal one (Pigeonhole's `sieve_before`), in order.
    pub before: &'static [&'static str],
    /// The user's script; `None`: the user has none (the `default` runs instead).
    pub personal: Option<&'static str>,
    /// Global scripts after the personal one (`sieve_after`), in order.
    pub after: &'static [&'static str],
    /// `sieve_default` / sievegate's `default`.
    pub default: Option<&'static str>,
    /// Envelope sender (`MAIL FROM`); `""` is the null sender.
    pub mail_from: &'static str,
    /// `+detail` on the recipient address.
    pub detail: Option<&'static str>,
    pub message: Message,
    /// Messages delivered after `message`, in order, in the same way (same envelope); the
    /// result is compared after the last one (the replies of all of them).
    pub more: &'static [Message],
    /// (name, script) in the user's script directory, for `include :personal "name"`.
    pub personal_includes: &'static [(&'static str, &'static str)],
    /// (name, script) in the shared global directory, for `include :global "name"`. Names
    /// must be unique over the whole table (the directory is shared).
    pub global_includes: &'static [(&'static str, &'static str)],
    /// A deliberate difference (see [`Deliberate`]); `None`: both must agree.
    pub differs: Option<Deliberate>,
}

/// A documented difference by design: the case passes only when each side's outcome reads
/// exactly as written here (`Outcome`'s one-line form, as in the listing), so a change on
/// either side shows up.
#[derive(Debug, Clone, Copy)]
pub struct Deliberate {
    pub why: &'static str,
    pub pigeonhole: &'static str,
    pub sievegate: &'static str,
}

pub const MESSAGE: Message = Message {
    from: "Alice <alice@remote.example>",
    to: "Team <team@example.test>",
    subject: "Hello",
    extra_headers: "",
    content_type: "text/plain; charset=utf-8",
    body: Body::Text("Hello,\n\nsee you tomorrow.\n"),
};

pub const BASE: Case = Case {
    name: "",
    before: &[],
    personal: None,
    after: &[],
    default: None,
    mail_from: "alice@remote.example",
    detail: None,
    message: MESSAGE,
    more: &[],
    personal_includes: &[],
    global_includes: &[],
    differs: None,
};

const VACATION: &str = "require \"vacation\";\nvacation \"I am away.\";\n";

/// Addressed to the recipient (`%u` is its local part), as vacation wants.
pub const TO_USER: Message = Message {
    to: "Carol <%u@example.test>",
    ..MESSAGE
};

const NOTHING: &str = "# no action: the implicit keep decides\n";
const KEEP: &str = "keep;\n";
const DISCARD: &str = "discard;\n";
const STOP: &str = "stop;\n";
const ADD_SEEN: &str = "require \"imap4flags\";\naddflag \"\\\\Seen\";\n";
const ADD_FLAGGED: &str = "require \"imap4flags\";\naddflag \"\\\\Flagged\";\n";
const TO_PERSONAL: &str = "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Personal\";\n";
const TO_AFTER: &str = "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"After\";\n";
const TO_DEFAULT: &str = "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Default\";\n";

pub fn all() -> Vec<Case> {
    vec![
        // ---- keep, discard, fileinto in a single personal script ----
        Case {
            name: "implicit_keep",
            personal: Some(NOTHING),
            ..BASE
        },
        Case {
            name: "explicit_keep",
            personal: Some(KEEP),
            ..BASE
        },
        Case {
            name: "empty_personal_script",
            personal: Some(""),
            ..BASE
        },
        Case {
            name: "discard",
            personal: Some(DISCARD),
            ..BASE
        },
        Case {
            name: "keep_then_discard",
            personal: Some("keep;\ndiscard;\n"),
            ..BASE
        },
        Case {
            name: "discard_then_keep",
            personal: Some("discard;\nkeep;\n"),
            ..BASE
        },
        Case {
            name: "keep_twice",
            personal: Some("keep;\nkeep;\n"),
            ..BASE
        },
        Case {
            name: "keep_and_fileinto_create",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
keep;
fileinto :create "Copy";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_create",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "Work";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_missing_folder_without_create",
            personal: Some(
                r#"require "fileinto";
fileinto "Nowhere";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_missing_folder_with_flags",
            personal: Some(
                r#"require ["fileinto", "imap4flags"];
fileinto :flags "\\Flagged" "Nowhere";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_missing_folder_after_a_stored_copy",
            personal: Some(
                r#"require ["fileinto", "imap4flags"];
fileinto :create "Early";
setflag "\\Seen";
fileinto "Nowhere";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_inbox",
            personal: Some(
                r#"require "fileinto";
fileinto "INBOX";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_inbox_lowercase",
            personal: Some(
                r#"require "fileinto";
fileinto "inbox";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_inbox_then_keep",
            personal: Some(
                r#"require "fileinto";
fileinto "INBOX";
keep;
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_same_folder_twice",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "Twice";
fileinto :create "Twice";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_two_folders",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "One";
fileinto :create "Two";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_copy",
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Archive";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_copy_then_discard",
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Archive";
discard;
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_then_stop",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "First";
stop;
fileinto :create "Never";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_hierarchy",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "Work.Reports";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_non_ascii_umlaut",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "Entwürfe";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_non_ascii_cjk",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "日本";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_ampersand",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "R&D";
"#,
            ),
            ..BASE
        },
        Case {
            name: "mailboxexists",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if mailboxexists "Nope" { fileinto "Nope"; } else { fileinto :create "Made"; }
"#,
            ),
            ..BASE
        },
        // ---- imap4flags keywords (compared by name through each folder's dovecot-keywords) ----
        Case {
            name: "keyword_implicit_keep",
            personal: Some(
                r#"require "imap4flags";
addflag ["$Label1", "\\Seen", "Work"];
"#,
            ),
            ..BASE
        },
        Case {
            name: "keywords_in_two_folders",
            personal: Some(
                r#"require ["fileinto", "mailbox", "imap4flags"];
fileinto :create :flags ["Later", "$Label2"] "Tagged";
keep :flags ["$Label2", "\\Flagged"];
"#,
            ),
            ..BASE
        },
        Case {
            name: "keywords_add_up_along_the_chain",
            before: &[r#"require "imap4flags";
addflag "$Global";
"#],
            personal: Some(
                r#"require "imap4flags";
addflag "$Personal";
removeflag "$global";
addflag "$Global";
"#,
            ),
            ..BASE
        },
        Case {
            name: "keyword_removeflag",
            personal: Some(
                r#"require "imap4flags";
setflag ["A", "B", "C"];
removeflag "b";
keep;
"#,
            ),
            ..BASE
        },
        // ---- imap4flags ----
        Case {
            name: "setflag_keep",
            personal: Some(
                r#"require "imap4flags";
setflag "\\Seen";
keep;
"#,
            ),
            ..BASE
        },
        Case {
            name: "addflag_implicit_keep",
            personal: Some(
                r#"require "imap4flags";
addflag ["\\Flagged", "\\Answered"];
"#,
            ),
            ..BASE
        },
        Case {
            name: "removeflag",
            personal: Some(
                r#"require "imap4flags";
addflag ["\\Seen", "\\Flagged"];
removeflag "\\Seen";
keep;
"#,
            ),
            ..BASE
        },
        Case {
            name: "keep_flags_argument",
            personal: Some(
                r#"require "imap4flags";
addflag "\\Seen";
keep :flags ["\\Deleted", "\\Draft"];
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_flags_argument",
            personal: Some(
                r#"require ["fileinto", "mailbox", "imap4flags"];
fileinto :create :flags "\\Seen" "Read";
"#,
            ),
            ..BASE
        },
        Case {
            name: "flags_change_between_actions",
            personal: Some(
                r#"require ["fileinto", "mailbox", "imap4flags"];
addflag "\\Seen";
fileinto :create "A";
removeflag "\\Seen";
addflag "\\Flagged";
fileinto :create "B";
"#,
            ),
            ..BASE
        },
        Case {
            name: "hasflag",
            personal: Some(
                r#"require ["fileinto", "mailbox", "imap4flags"];
addflag "\\Answered";
if hasflag :is "\\Answered" { fileinto :create "HasFlag"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "flag_variable",
            personal: Some(
                r#"require ["imap4flags", "variables"];
addflag "marks" "\\Flagged";
keep :flags "${marks}";
"#,
            ),
            ..BASE
        },
        // ---- the chain: before → personal (or default) → after ----
        Case {
            name: "before_flags_carried_into_personal_fileinto",
            before: &[ADD_FLAGGED],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_flags_with_implicit_keep",
            before: &[ADD_SEEN],
            personal: Some(NOTHING),
            ..BASE
        },
        Case {
            name: "before_fileinto_without_stop",
            before: &[r#"require ["fileinto", "mailbox"];
fileinto :create "Before";
"#],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_fileinto_copy",
            before: &[r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Audit";
"#],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_discard",
            before: &[DISCARD],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_stop_only",
            before: &[STOP],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_fileinto_and_stop",
            before: &[r#"require ["fileinto", "mailbox"];
fileinto :create "Before";
stop;
"#],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_keep_personal_fileinto",
            before: &[KEEP],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_keep_personal_nothing",
            before: &[KEEP],
            personal: Some(NOTHING),
            ..BASE
        },
        Case {
            name: "before_keep_personal_discard",
            before: &[KEEP],
            personal: Some(DISCARD),
            ..BASE
        },
        Case {
            name: "two_before_scripts_in_order",
            before: &[
                ADD_SEEN,
                r#"require ["fileinto", "mailbox"];
fileinto :create "Second";
"#,
            ],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "before_editheader_seen_by_personal",
            before: &[r#"require "editheader";
addheader "X-Before" "yes";
"#],
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if header :is "X-Before" "yes" { fileinto :create "SawBefore"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "variables_not_shared_across_chain",
            before: &[r#"require "variables";
set "folder" "FromBefore";
"#],
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
if string :is "${folder}" "" { fileinto :create "NotShared"; }
else { fileinto :create "Shared"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "personal_stop_then_after",
            personal: Some(STOP),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_keep_then_after",
            personal: Some(KEEP),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_fileinto_then_after",
            personal: Some(TO_PERSONAL),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_fileinto_copy_then_after",
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Personal";
"#,
            ),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_discard_then_after_keep",
            personal: Some(DISCARD),
            after: &[KEEP],
            ..BASE
        },
        Case {
            name: "explicit_keeps_then_after_fileinto",
            before: &[KEEP],
            personal: Some(KEEP),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_flags_then_after_fileinto",
            personal: Some(ADD_SEEN),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "after_discard_with_keep_pending",
            personal: Some(NOTHING),
            after: &[DISCARD],
            ..BASE
        },
        Case {
            name: "after_stop",
            personal: Some(NOTHING),
            after: &[r#"require ["fileinto", "mailbox", "imap4flags"];
addflag "\\Seen";
stop;
fileinto :create "Never";
"#],
            ..BASE
        },
        Case {
            name: "two_after_scripts",
            personal: Some(NOTHING),
            after: &[
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "AfterCopy";
"#,
                ADD_FLAGGED,
            ],
            ..BASE
        },
        Case {
            name: "before_personal_after_all_flag",
            before: &[ADD_SEEN],
            personal: Some(
                r#"require "imap4flags";
addflag "\\Answered";
"#,
            ),
            after: &[ADD_FLAGGED],
            ..BASE
        },
        // ---- default script, compile and run-time errors ----
        Case {
            name: "default_runs_without_personal",
            personal: None,
            default: Some(TO_DEFAULT),
            ..BASE
        },
        Case {
            name: "default_stop_then_after",
            personal: None,
            default: Some(STOP),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "before_keep_personal_fileinto_copy",
            before: &[KEEP],
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Personal";
"#,
            ),
            ..BASE
        },
        Case {
            name: "no_personal_no_default",
            personal: None,
            ..BASE
        },
        Case {
            name: "default_with_before_and_after",
            before: &[ADD_SEEN],
            personal: None,
            default: Some(NOTHING),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_compile_error_default_not_used",
            // fileinto without require: a compile error.
            personal: Some("fileinto \"Broken\";\n"),
            default: Some(TO_DEFAULT),
            ..BASE
        },
        Case {
            name: "personal_syntax_error_in_chain",
            before: &[ADD_SEEN],
            personal: Some("if true {\n  keep;\n"),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            name: "personal_compile_error_then_after",
            personal: Some("if true {\n  keep;\n"),
            after: &[TO_AFTER],
            ..BASE
        },
        Case {
            // Pigeonhole logs the bad pattern and treats the test as false; the script goes on.
            name: "invalid_regex_at_run_time",
            personal: Some(
                r#"require ["fileinto", "mailbox", "regex", "variables"];
fileinto :create "Early";
set "pattern" "(";
if header :regex "subject" "${pattern}" { fileinto :create "Matched"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "invalid_regex_at_run_time_in_before",
            before: &[r#"require ["fileinto", "mailbox", "regex", "variables"];
fileinto :create "Early";
set "pattern" "(";
if header :regex "subject" "${pattern}" { discard; }
"#],
            personal: Some(TO_PERSONAL),
            ..BASE
        },
        Case {
            name: "fileinto_slash_in_name",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "bad/name";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_name_too_long",
            // 300 bytes: longer than a file name may be (255).
            personal: Some(concat!(
                "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"",
                "Long0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "\";\n"
            )),
            ..BASE
        },
        Case {
            // A failing action: Pigeonhole's failsafe is the implicit keep.
            name: "fileinto_name_too_long_after_other_fileinto",
            personal: Some(concat!(
                "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Early\";\n",
                "fileinto :create \"",
                "Long0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "0123456789012345678901234567890123456789012345678901234567890123456789012345",
                "\";\n"
            )),
            ..BASE
        },
        Case {
            // Pigeonhole's sieve_max_actions is 32: the 33rd action is a run-time error.
            name: "too_many_actions",
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "F01"; fileinto :copy :create "F02"; fileinto :copy :create "F03";
fileinto :copy :create "F04"; fileinto :copy :create "F05"; fileinto :copy :create "F06";
fileinto :copy :create "F07"; fileinto :copy :create "F08"; fileinto :copy :create "F09";
fileinto :copy :create "F10"; fileinto :copy :create "F11"; fileinto :copy :create "F12";
fileinto :copy :create "F13"; fileinto :copy :create "F14"; fileinto :copy :create "F15";
fileinto :copy :create "F16"; fileinto :copy :create "F17"; fileinto :copy :create "F18";
fileinto :copy :create "F19"; fileinto :copy :create "F20"; fileinto :copy :create "F21";
fileinto :copy :create "F22"; fileinto :copy :create "F23"; fileinto :copy :create "F24";
fileinto :copy :create "F25"; fileinto :copy :create "F26"; fileinto :copy :create "F27";
fileinto :copy :create "F28"; fileinto :copy :create "F29"; fileinto :copy :create "F30";
fileinto :copy :create "F31"; fileinto :copy :create "F32"; fileinto :copy :create "F33";
"#,
            ),
            ..BASE
        },
        Case {
            name: "fileinto_empty_name_is_inbox",
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
fileinto :create "Early";
set "name" "";
fileinto "${name}";
"#,
            ),
            ..BASE
        },
        // ---- mailbox / mailboxexists, special-use ----
        Case {
            name: "mailboxexists_inbox_and_missing",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if mailboxexists "INBOX" { fileinto :create "InboxExists"; }
if mailboxexists "Nowhere" { fileinto :create "NowhereExists"; }
if mailboxexists ["INBOX", "Nowhere"] { fileinto :create "BothExist"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "mailboxexists_after_create_in_before",
            before: &[r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Made";
"#],
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if mailboxexists "Made" { fileinto "SawMade"; }
"#,
            ),
            ..BASE
        },
        // ---- editheader (the stored header fields are compared too) ----
        Case {
            name: "addheader_first_and_last_stored",
            personal: Some(
                r#"require ["fileinto", "mailbox", "editheader", "copy"];
fileinto :copy :create "Before";
addheader "X-First" "1";
addheader :last "X-Last" "2";
fileinto :create "After";
"#,
            ),
            ..BASE
        },
        Case {
            name: "deleteheader_stored",
            personal: Some(
                r#"require ["editheader"];
deleteheader "Subject";
deleteheader :index 1 "X-Nothing";
"#,
            ),
            ..BASE
        },
        Case {
            name: "edit_after_explicit_keep_in_before",
            before: &[r#"require "editheader";
keep;
addheader "X-Before" "late";
"#],
            personal: Some(
                r#"require ["fileinto", "mailbox", "copy"];
fileinto :copy :create "Personal";
"#,
            ),
            ..BASE
        },
        Case {
            // Pigeonhole never lets a script delete Received or Auto-Submitted: the edits are
            // denied with a warning, and the message is stored as received.
            name: "protected_headers_not_deleted",
            personal: Some(
                r#"require ["editheader"];
deleteheader "auto-submitted";
deleteheader "Received";
addheader "X-Allowed" "yes";
"#,
            ),
            message: Message {
                extra_headers: "Auto-Submitted: no\nReceived: from relay.remote.example by mx; Fri, 27 Nov 2026 08:59:00 +0000\n",
                ..MESSAGE
            },
            ..BASE
        },
        // ---- editheader ----
        Case {
            name: "addheader_then_fileinto",
            personal: Some(
                r#"require ["fileinto", "mailbox", "editheader"];
addheader "X-Filed" "yes";
fileinto :create "Tagged";
"#,
            ),
            ..BASE
        },
        Case {
            name: "addheader_then_header_test",
            personal: Some(
                r#"require ["fileinto", "mailbox", "editheader"];
addheader "X-Seen-By" "sieve";
if header :is "X-Seen-By" "sieve" { fileinto :create "SawOwnHeader"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "deleteheader_then_test",
            personal: Some(
                r#"require ["fileinto", "mailbox", "editheader"];
deleteheader "Subject";
if not exists "Subject" { fileinto :create "NoSubject"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "auto_submitted_addheader_fileinto",
            personal: Some(
                r#"require ["fileinto", "mailbox", "editheader"];
addheader "X-Tag" "auto";
fileinto :create "Auto";
"#,
            ),
            message: Message {
                extra_headers: "Auto-Submitted: auto-replied\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "auto_submitted_addheader_implicit_keep",
            personal: Some(
                r#"require "editheader";
addheader "X-Tag" "auto";
"#,
            ),
            message: Message {
                extra_headers: "Auto-Submitted: auto-replied\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "auto_submitted_fileinto",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "Auto";
"#,
            ),
            message: Message {
                extra_headers: "Auto-Submitted: auto-replied\n",
                ..MESSAGE
            },
            ..BASE
        },
        // ---- tests: envelope, header, address, body, size, exists, string ----
        Case {
            name: "envelope_from",
            personal: Some(
                r#"require ["fileinto", "mailbox", "envelope"];
if envelope :is "from" "boss@remote.example" { fileinto :create "Boss"; }
"#,
            ),
            mail_from: "boss@remote.example",
            ..BASE
        },
        Case {
            name: "envelope_null_sender",
            personal: Some(
                r#"require ["fileinto", "mailbox", "envelope"];
if envelope :is "from" "" { fileinto :create "Bounces"; }
"#,
            ),
            mail_from: "",
            ..BASE
        },
        Case {
            name: "envelope_to_detail",
            personal: Some(
                r#"require ["fileinto", "mailbox", "envelope", "subaddress"];
if envelope :detail "to" "lists" { fileinto :create "Lists"; }
"#,
            ),
            detail: Some("lists"),
            ..BASE
        },
        Case {
            name: "header_contains",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if header :contains "subject" "invoice" { fileinto :create "Invoices"; }
"#,
            ),
            message: Message {
                subject: "Your invoice 42",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "header_matches_variable_folder",
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
if header :matches "Subject" "[*] *" { fileinto :create "${1}"; }
"#,
            ),
            message: Message {
                subject: "[lists] weekly digest",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "header_encoded_word",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if header :contains "subject" "Grüße" { fileinto :create "Greetings"; }
"#,
            ),
            message: Message {
                subject: "=?UTF-8?B?R3LDvMOfZSBhdXMgQmVybGlu?=",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "header_no_match_keeps",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if header :contains "subject" "invoice" { fileinto :create "Invoices"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "address_domain",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if address :domain :is "from" "partner.example" { fileinto :create "Partner"; }
"#,
            ),
            message: Message {
                from: "\"Partner, Inc.\" <sales@partner.example>",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "address_localpart_matches_variable",
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
if address :localpart :matches "from" "*-bounces" { fileinto :create "Bounce ${1}"; }
"#,
            ),
            message: Message {
                from: "list-bounces@lists.example",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "exists_allof_anyof_not",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if allof (exists "List-Id", anyof (header :is "Precedence" "bulk", false), not exists "X-Nope") {
  fileinto :create "Lists";
}
"#,
            ),
            message: Message {
                extra_headers: "List-Id: <news.lists.example>\nPrecedence: bulk\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "body_contains",
            personal: Some(
                r#"require ["fileinto", "mailbox", "body"];
if body :contains "unsubscribe" { fileinto :create "Bulk"; }
"#,
            ),
            message: Message {
                body: Body::Text("Big sale!\n\nTo unsubscribe, reply STOP.\n"),
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "body_text_multipart",
            personal: Some(
                r#"require ["fileinto", "mailbox", "body"];
if body :text :contains "agenda" { fileinto :create "Meetings"; }
"#,
            ),
            message: Message {
                content_type: "multipart/alternative; boundary=\"b1\"",
                body: Body::Text(
                    "--b1\nContent-Type: text/plain; charset=utf-8\n\nThe agenda is attached.\n--b1\nContent-Type: text/html; charset=utf-8\n\n<p>The agenda is attached.</p>\n--b1--\n",
                ),
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "size_over",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if size :over 10K { fileinto :create "Big"; } else { fileinto :create "Small"; }
"#,
            ),
            message: Message {
                body: Body::Padded("A line of padding to make this message large.\n", 20_000),
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "size_under",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if size :under 10K { fileinto :create "Small"; } else { fileinto :create "Big"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "variables_modifiers",
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
set :lower :upperfirst "folder" "REPORTS";
fileinto :create "${folder}";
"#,
            ),
            ..BASE
        },
        Case {
            name: "string_test",
            personal: Some(
                r#"require ["fileinto", "mailbox", "variables"];
set "state" "on";
if string :is "${state}" "on" { fileinto :create "StringTest"; }
"#,
            ),
            ..BASE
        },
        // ---- virustest (Pigeonhole reads X-Diff-Scan; sievegate asks clamd) ----
        Case {
            name: "virustest_clean",
            personal: Some(
                r#"require ["fileinto", "mailbox", "virustest", "relational", "comparator-i;ascii-numeric"];
if virustest :value "eq" :comparator "i;ascii-numeric" "1" { fileinto :create "Clean"; }
"#,
            ),
            ..BASE
        },
        Case {
            name: "virustest_infected_discard",
            before: &[
                r#"require ["virustest", "relational", "comparator-i;ascii-numeric"];
if virustest :value "ge" :comparator "i;ascii-numeric" "4" { discard; stop; }
"#,
            ],
            personal: Some(TO_PERSONAL),
            message: Message {
                body: Body::Eicar,
                ..MESSAGE
            },
            ..BASE
        },
        // ---- actions that send: redirect ----
        Case {
            name: "redirect",
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            ..BASE
        },
        Case {
            name: "redirect_copy",
            personal: Some("require \"copy\";\nredirect :copy \"bob@elsewhere.example\";\n"),
            ..BASE
        },
        Case {
            name: "redirect_null_sender",
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            mail_from: "",
            ..BASE
        },
        Case {
            name: "redirect_twice",
            personal: Some(
                "redirect \"bob@elsewhere.example\";\nredirect \"dave@elsewhere.example\";\n",
            ),
            ..BASE
        },
        Case {
            name: "redirect_same_address_twice",
            personal: Some(
                "redirect \"bob@elsewhere.example\";\nredirect \"bob@elsewhere.example\";\n",
            ),
            ..BASE
        },
        Case {
            name: "redirect_with_detail",
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            detail: Some("lists"),
            ..BASE
        },
        Case {
            name: "redirect_to_delivered_to_address",
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            message: Message {
                extra_headers: "Delivered-To: bob@elsewhere.example\n",
                ..MESSAGE
            },
            differs: Some(Deliberate {
                why: "loop protection: sievegate does not redirect to an address already in Delivered-To and keeps instead",
                pigeonhole: "250 nothing stored; sent \
                    redirect <alice@remote.example> -> <bob@elsewhere.example> [body intact]",
                sievegate: "250 INBOX",
            }),
            ..BASE
        },
        Case {
            name: "redirect_and_fileinto",
            personal: Some(
                "require [\"fileinto\", \"mailbox\"];\nredirect \"bob@elsewhere.example\";\nfileinto :create \"Sent-On\";\n",
            ),
            ..BASE
        },
        Case {
            name: "redirect_in_before_and_personal",
            before: &["require \"copy\";\nredirect :copy \"audit@elsewhere.example\";\n"],
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            ..BASE
        },
        Case {
            name: "redirect_over_max_redirects",
            personal: Some(
                "redirect \"r1@elsewhere.example\";\nredirect \"r2@elsewhere.example\";\nredirect \"r3@elsewhere.example\";\nredirect \"r4@elsewhere.example\";\nredirect \"r5@elsewhere.example\";\n",
            ),
            differs: Some(Deliberate {
                why: "over max_redirects (4): Pigeonhole fails the script and keeps, sievegate sends the first 4 and ignores the rest",
                pigeonhole: "250 INBOX",
                sievegate: "250 nothing stored; sent \
                    redirect <alice@remote.example> -> <r1@elsewhere.example> [body intact] + \
                    redirect <alice@remote.example> -> <r2@elsewhere.example> [body intact] + \
                    redirect <alice@remote.example> -> <r3@elsewhere.example> [body intact] + \
                    redirect <alice@remote.example> -> <r4@elsewhere.example> [body intact]",
            }),
            ..BASE
        },
        Case {
            name: "infected_redirect",
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            message: Message {
                body: Body::Eicar,
                ..MESSAGE
            },
            differs: Some(Deliberate {
                why: "infected mail: sievegate never sends it on, whatever the scripts say",
                pigeonhole: "250 nothing stored; sent \
                    redirect <alice@remote.example> -> <bob@elsewhere.example> [body intact]",
                sievegate: "250 nothing stored",
            }),
            ..BASE
        },
        // ---- vacation ----
        Case {
            name: "vacation",
            personal: Some(VACATION),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_days",
            personal: Some("require \"vacation\";\nvacation :days 3 \"I am away.\";\n"),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_subject",
            personal: Some(
                "require \"vacation\";\nvacation :subject \"Away until Monday\" \"I am away.\";\n",
            ),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_from",
            personal: Some(
                "require \"vacation\";\nvacation :from \"office@example.test\" \"I am away.\";\n",
            ),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_addresses",
            personal: Some(
                "require \"vacation\";\nvacation :addresses [\"carol.alias@example.test\"] \"I am away.\";\n",
            ),
            message: Message {
                to: "Carol <carol.alias@example.test>",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "vacation_then_keep_and_fileinto",
            personal: Some(
                "require [\"vacation\", \"fileinto\", \"mailbox\"];\nvacation \"I am away.\";\nfileinto :create \"Away\";\n",
            ),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_not_to_precedence_list",
            personal: Some(VACATION),
            message: Message {
                extra_headers: "Precedence: list\n",
                ..TO_USER
            },
            ..BASE
        },
        Case {
            name: "vacation_not_to_list_id",
            personal: Some(VACATION),
            message: Message {
                extra_headers: "List-Id: Team <team.lists.remote.example>\n",
                ..TO_USER
            },
            ..BASE
        },
        Case {
            name: "vacation_not_to_auto_replied",
            personal: Some(VACATION),
            message: Message {
                extra_headers: "Auto-Submitted: auto-replied\n",
                ..TO_USER
            },
            ..BASE
        },
        Case {
            name: "vacation_not_to_null_sender",
            personal: Some(VACATION),
            mail_from: "",
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_not_to_mailer_daemon",
            personal: Some(VACATION),
            mail_from: "MAILER-DAEMON@remote.example",
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_not_when_user_not_addressed",
            personal: Some(VACATION),
            ..BASE
        },
        Case {
            name: "vacation_once_per_period",
            personal: Some(VACATION),
            message: TO_USER,
            more: &[TO_USER],
            ..BASE
        },
        Case {
            name: "vacation_seconds_held_to_minimum",
            personal: Some(
                "require [\"vacation\", \"vacation-seconds\"];\nvacation :seconds 1 \"I am away.\";\n",
            ),
            message: TO_USER,
            more: &[TO_USER],
            ..BASE
        },
        Case {
            name: "vacation_days_zero",
            personal: Some("require \"vacation\";\nvacation :days 0 \"I am away.\";\n"),
            message: TO_USER,
            more: &[TO_USER],
            ..BASE
        },
        Case {
            name: "vacation_cc",
            personal: Some(VACATION),
            message: Message {
                extra_headers: "Cc: Carol <%u@example.test>\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "vacation_handle_same",
            personal: Some(
                "require \"vacation\";\nvacation :handle \"away\" \"I am away.\";\n",
            ),
            message: TO_USER,
            more: &[TO_USER],
            ..BASE
        },
        Case {
            name: "vacation_two_handles",
            personal: Some(
                r#"require "vacation";
if header :contains "subject" "Second" { vacation :handle "b" "Second reply."; }
else { vacation :handle "a" "First reply."; }
"#,
            ),
            message: TO_USER,
            more: &[Message {
                subject: "Second",
                ..TO_USER
            }],
            ..BASE
        },
        Case {
            name: "vacation_ignores_reply_to",
            personal: Some(VACATION),
            message: Message {
                extra_headers: "Reply-To: Other <other@remote.example>\n",
                ..TO_USER
            },
            ..BASE
        },
        Case {
            name: "vacation_to_user_detail",
            personal: Some(VACATION),
            detail: Some("away"),
            message: TO_USER,
            differs: Some(Deliberate {
                why: "vacation to user+detail, To: has the plain address: Pigeonhole looks for the exact envelope recipient, sievegate for the user's address without detail",
                pigeonhole: "250 INBOX",
                sievegate: "250 INBOX; sent vacation <> -> <alice@remote.example> \
                    [From: c137@example.test, Subject: \"Auto: Hello\", \
                    In-Reply-To: <c137.diff@remote.example>, MIME-Version: 1.0, \
                    Content-Type: text/plain, body: \"I am away.\"]",
            }),
            ..BASE
        },
        Case {
            name: "vacation_detail_in_to_and_envelope",
            personal: Some(VACATION),
            detail: Some("away"),
            message: Message {
                to: "Carol <%u+away@example.test>",
                ..MESSAGE
            },
            ..BASE
        },
        // ---- duplicate ----
        Case {
            name: "duplicate_in_before_script",
            before: &["require \"duplicate\";\nif duplicate { discard; stop; }\n"],
            personal: Some(TO_PERSONAL),
            more: &[MESSAGE],
            ..BASE
        },
        Case {
            name: "duplicate_uniqueid",
            personal: Some(
                "require [\"duplicate\", \"fileinto\", \"mailbox\"];\nif duplicate :uniqueid \"fixed\" { fileinto :create \"Dupes\"; }\n",
            ),
            more: &[Message {
                subject: "Other",
                ..MESSAGE
            }],
            ..BASE
        },
        Case {
            name: "duplicate_discard",
            personal: Some("require \"duplicate\";\nif duplicate { discard; }\n"),
            more: &[MESSAGE],
            ..BASE
        },
        Case {
            name: "duplicate_first_is_kept",
            personal: Some(
                "require [\"duplicate\", \"fileinto\", \"mailbox\"];\nif duplicate { fileinto :create \"Dupes\"; }\n",
            ),
            ..BASE
        },
        Case {
            name: "duplicate_handle_header",
            personal: Some(
                "require [\"duplicate\", \"fileinto\", \"mailbox\"];\nif duplicate :header \"Subject\" { fileinto :create \"Dupes\"; }\n",
            ),
            more: &[MESSAGE, MESSAGE],
            ..BASE
        },
        // ---- include ----
        Case {
            name: "include_personal",
            personal: Some("require \"include\";\ninclude :personal \"filters\";\n"),
            personal_includes: &[("filters", TO_PERSONAL)],
            ..BASE
        },
        Case {
            name: "include_personal_default_location",
            personal: Some("require \"include\";\ninclude \"filters\";\nkeep;\n"),
            personal_includes: &[("filters", ADD_FLAGGED)],
            ..BASE
        },
        Case {
            name: "include_global",
            personal: Some("require \"include\";\ninclude :global \"diff_to_global\";\n"),
            global_includes: &[(
                "diff_to_global",
                "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Global\";\n",
            )],
            ..BASE
        },
        Case {
            name: "include_once",
            personal: Some(
                "require \"include\";\ninclude :once \"tag\";\ninclude :once \"tag\";\n",
            ),
            personal_includes: &[(
                "tag",
                "require \"editheader\";\naddheader \"X-Tagged\" \"once\";\n",
            )],
            ..BASE
        },
        Case {
            name: "include_without_once_twice",
            personal: Some("require \"include\";\ninclude \"tag\";\ninclude \"tag\";\n"),
            personal_includes: &[(
                "tag",
                "require \"editheader\";\naddheader \"X-Tagged\" \"again\";\n",
            )],
            ..BASE
        },
        Case {
            name: "include_optional_missing",
            personal: Some(
                "require [\"include\", \"fileinto\", \"mailbox\"];\ninclude :optional \"missing\";\nfileinto :create \"After\";\n",
            ),
            ..BASE
        },
        Case {
            name: "include_missing_not_optional",
            personal: Some(
                "require [\"include\", \"fileinto\", \"mailbox\"];\ninclude \"missing\";\nfileinto :create \"After\";\n",
            ),
            ..BASE
        },
        Case {
            name: "include_return",
            personal: Some(
                "require [\"include\", \"fileinto\", \"mailbox\"];\ninclude \"early\";\nfileinto :create \"Main\";\n",
            ),
            personal_includes: &[(
                "early",
                "require [\"include\", \"imap4flags\"];\naddflag \"\\\\Seen\";\nreturn;\naddflag \"\\\\Flagged\";\n",
            )],
            ..BASE
        },
        // ---- notify ----
        Case {
            name: "notify_mailto",
            personal: Some(
                "require \"enotify\";\nnotify \"mailto:bob@elsewhere.example\";\n",
            ),
            differs: Some(Deliberate {
                why: "notification: sievegate sends from <> (RFC 3834) and From the user (RFC 5436 §2.7), Pigeonhole from postmaster_address; without :message sievegate's Subject is the message's own, Pigeonhole's \"Notification: ...\"",
                pigeonhole: "250 INBOX; sent notify <postmaster@example.test> -> <bob@elsewhere.example> \
                    [From: postmaster@example.test, Subject: \"Notification: Hello\", MIME-Version: 1.0]",
                sievegate: "250 INBOX; sent notify <> -> <bob@elsewhere.example> \
                    [From: c152@example.test, Subject: \"Hello\", MIME-Version: 1.0]",
            }),
            ..BASE
        },
        // ---- redirect after editheader: what goes out carries the edits ----
        Case {
            name: "redirect_after_addheader",
            personal: Some(
                "require \"editheader\";\naddheader \"X-Redirect-Note\" \"edited\";\nredirect \"bob@elsewhere.example\";\n",
            ),
            ..BASE
        },
        Case {
            name: "redirect_after_deleteheader",
            personal: Some(
                "require \"editheader\";\ndeleteheader \"X-Remove-Me\";\nredirect \"bob@elsewhere.example\";\n",
            ),
            message: Message {
                extra_headers: "X-Remove-Me: yes\nX-Keep-Me: yes\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "redirect_copy_then_addheader",
            personal: Some(
                "require [\"editheader\", \"copy\"];\nredirect :copy \"bob@elsewhere.example\";\naddheader \"X-After\" \"late\";\n",
            ),
            ..BASE
        },
        Case {
            name: "redirect_of_before_script_edits",
            before: &["require \"editheader\";\naddheader :last \"X-Before\" \"yes\";\n"],
            personal: Some("redirect \"bob@elsewhere.example\";\n"),
            ..BASE
        },
        // ---- variables keep their value after the block that set them (RFC 5229 §3) ----
        Case {
            name: "variable_set_inside_block",
            personal: Some(
                r#"require ["variables", "fileinto", "mailbox"];
if header :matches "Subject" "*" { set "s" "${1}"; }
if true { set :lower "t" "Tail"; }
fileinto :create "${s}-${t}";
"#,
            ),
            ..BASE
        },
        // ---- vacation :mime and notify: what goes out ----
        Case {
            name: "vacation_mime",
            personal: Some(
                "require \"vacation\";\nvacation :mime \"Content-Type: text/html; charset=utf-8\n\n<p>I am away.</p>\n\";\n",
            ),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "vacation_mime_multipart",
            personal: Some(
                "require \"vacation\";\nvacation :mime :subject \"Away\" text:\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nI am away.\n--b1\nContent-Type: text/html; charset=utf-8\n\n<p>I am away.</p>\n--b1--\n.\n;\n",
            ),
            message: TO_USER,
            ..BASE
        },
        Case {
            name: "notify_importance_message",
            personal: Some(
                "require \"enotify\";\nnotify :importance \"1\" :message \"You have urgent mail\" \"mailto:bob@elsewhere.example\";\n",
            ),
            differs: Some(Deliberate {
                why: "notification sender: sievegate <> and From the user, Pigeonhole postmaster_address (as notify_mailto)",
                pigeonhole: "250 INBOX; sent notify <postmaster@example.test> -> <bob@elsewhere.example> \
                    [From: postmaster@example.test, Subject: \"You have urgent mail\", MIME-Version: 1.0]",
                sievegate: "250 INBOX; sent notify <> -> <bob@elsewhere.example> \
                    [From: c160@example.test, Subject: \"You have urgent mail\", MIME-Version: 1.0]",
            }),
            ..BASE
        },
        Case {
            name: "notify_from",
            personal: Some(
                "require \"enotify\";\nnotify :from \"alerts@example.test\" \"mailto:bob@elsewhere.example\";\n",
            ),
            differs: Some(Deliberate {
                why: "notify :from: sievegate (sieve-rs) takes :from only when it is the user's own address (RFC 5435 §3.3 leaves the check to the implementation: no forged senders through our relay), Pigeonhole sends from any :from, in the envelope too",
                pigeonhole: "250 INBOX; sent notify <alerts@example.test> -> <bob@elsewhere.example> \
                    [From: alerts@example.test, Subject: \"Notification: Hello\", MIME-Version: 1.0]",
                sievegate: "250 INBOX; sent notify <> -> <bob@elsewhere.example> \
                    [From: c161@example.test, Subject: \"Hello\", MIME-Version: 1.0]",
            }),
            ..BASE
        },
        Case {
            name: "notify_uri_headers",
            personal: Some(
                "require \"enotify\";\nnotify \"mailto:bob@elsewhere.example?subject=Mail%20for%20you&body=Look\";\n",
            ),
            differs: Some(Deliberate {
                why: "notification sender: sievegate <> and From the user, Pigeonhole postmaster_address (as notify_mailto); the URI's subject agrees",
                pigeonhole: "250 INBOX; sent notify <postmaster@example.test> -> <bob@elsewhere.example> \
                    [From: postmaster@example.test, Subject: \"Mail for you\", MIME-Version: 1.0]",
                sievegate: "250 INBOX; sent notify <> -> <bob@elsewhere.example> \
                    [From: c162@example.test, Subject: \"Mail for you\", MIME-Version: 1.0]",
            }),
            ..BASE
        },
    ]
}
