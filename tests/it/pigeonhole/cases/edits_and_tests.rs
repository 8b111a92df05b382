//! Cases about what is stored, continued: the default script, compile and runtime errors,
//! mailboxexists, editheader, the tests, virustest.

use super::*;

pub fn cases() -> Vec<Case> {
    vec![
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
    ]
}

/// `[mailbox] namespace_prefix`: run with Dovecot's default empty prefix by the main
/// differential test, and (the `namespace_prefixed_*` and `mailboxexists*` ones) with
/// `INBOX.` on both sides. Last in the table, so that the other cases keep their users.
pub fn namespace_cases() -> Vec<Case> {
    vec![
        // ---- namespace: Dovecot's default empty prefix ([mailbox] namespace_prefix = "") ----
        // `INBOX.Sub` is a folder of its own (`.INBOX.Sub`), not `Sub`.
        Case {
            name: "namespace_fileinto_inbox_dot_sub",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "INBOX.Sub";
fileinto :create "Sub";
"#,
            ),
            ..BASE
        },
        Case {
            name: "namespace_mailboxexists_inbox_dot_sub",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if mailboxexists "INBOX.Made" { fileinto :create "SawInboxMade"; }
if mailboxexists "Made" { fileinto :create "SawMade"; }
fileinto :create "INBOX.Made";
"#,
            ),
            // The second delivery finds the folder the first one created (`.INBOX.Made`),
            // and no `Made`.
            more: &[MESSAGE],
            ..BASE
        },
        Case {
            name: "namespace_fileinto_inbox_dot_missing_keeps",
            personal: Some(
                r#"require ["fileinto"];
fileinto "INBOX.Missing";
"#,
            ),
            ..BASE
        },
        // Names inside the `INBOX.` prefix only: with it, `.Sub` and `.Other.Deep`.
        Case {
            name: "namespace_prefixed_fileinto",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
fileinto :create "INBOX.Sub";
fileinto :create "INBOX.Other.Deep";
"#,
            ),
            ..BASE
        },
        Case {
            name: "namespace_prefixed_mailboxexists",
            personal: Some(
                r#"require ["fileinto", "mailbox"];
if mailboxexists "INBOX.Made" { fileinto :create "INBOX.SawMade"; }
if mailboxexists "INBOX.INBOX.Made" { fileinto :create "INBOX.SawDouble"; }
fileinto :create "INBOX.Made";
"#,
            ),
            more: &[MESSAGE],
            ..BASE
        },
    ]
}
