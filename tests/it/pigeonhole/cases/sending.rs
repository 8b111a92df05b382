//! Cases about what is sent (redirect, vacation, notify) and what needs memory or other
//! files (duplicate, include). Cases added later are appended at the end, whatever their
//! theme, so that every earlier case keeps its user number.

use super::*;

pub fn cases() -> Vec<Case> {
    vec![
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
                why: "notification: sievegate sends from <> (RFC 3834) and From the user (RFC 5436 §2.7), Pigeonhole from postmaster_address",
                pigeonhole: "250 INBOX; sent notify <postmaster@example.test> -> <bob@elsewhere.example> \
                    [From: postmaster@example.test, Subject: \"Notification: Hello\", MIME-Version: 1.0]",
                sievegate: "250 INBOX; sent notify <> -> <bob@elsewhere.example> \
                    [From: c152@example.test, Subject: \"Notification: Hello\", MIME-Version: 1.0]",
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
                    [From: c161@example.test, Subject: \"Notification: Hello\", MIME-Version: 1.0]",
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
        // ---- which address a vacation reply comes from (RFC 5230 erratum 2035) ----
        Case {
            name: "vacation_alias_in_to_user_in_cc",
            personal: Some(
                "require \"vacation\";\nvacation :addresses [\"carol.alias@example.test\"] \"I am away.\";\n",
            ),
            message: Message {
                to: "Carol <carol.alias@example.test>",
                extra_headers: "Cc: Carol <%u@example.test>\n",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "vacation_alias_and_user_in_to",
            personal: Some(
                "require \"vacation\";\nvacation :addresses [\"carol.alias@example.test\"] \"I am away.\";\n",
            ),
            message: Message {
                to: "Carol <carol.alias@example.test>, Carol <%u@example.test>",
                ..MESSAGE
            },
            ..BASE
        },
        Case {
            name: "vacation_second_alias_in_cc",
            personal: Some(
                "require \"vacation\";\nvacation :addresses [\"a1@example.test\", \"a2@example.test\"] \"I am away.\";\n",
            ),
            message: Message {
                to: "Team <team@example.test>",
                extra_headers: "Cc: A2 <a2@example.test>, A1 <a1@example.test>\n",
                ..MESSAGE
            },
            ..BASE
        },
        // ---- sieve-rs's own test suite, changed in the fork (patches/sieve-rs/PATCHES.md) ----
        // `stalwart/extensions.svtest` "Variable scopes": a variable first set in a nested
        // block keeps its value after it (RFC 5229 §3; sieve-rs patch #15).
        Case {
            name: "variable_set_in_nested_blocks",
            personal: Some(
                r#"require ["variables", "fileinto", "mailbox"];
if true {
  set "a" "A";
  if true {
    set "b" "B";
    if true {
      set :lower "c" "C";
      if header :matches "Subject" "*" { set "d" "${1}"; }
    }
  }
}
fileinto :create "${a}${b}${c}-${d}";
"#,
            ),
            ..BASE
        },
        // The RFC 5260 §6 / RFC 6009 example shape whose saved parse upstream dropped the
        // variables (`tests/rfcs/*.json`): values set inside `currentdate` blocks, used after.
        Case {
            name: "variable_from_currentdate_block",
            personal: Some(
                r#"require ["date", "variables", "fileinto", "mailbox"];
if currentdate :matches "year" "*" { set "year" "${1}"; }
fileinto :create "Archive-${year}";
"#,
            ),
            ..BASE
        },
        // `extensions/vacation/execute.svtest` "Action": `vacation` then `keep` are two
        // actions (one reply, one stored copy); sieve-rs patch #1 made `keep` an event.
        Case {
            name: "vacation_then_keep",
            personal: Some("require \"vacation\";\nvacation \"I am away.\";\nkeep;\n"),
            message: TO_USER,
            ..BASE
        },
    ]
}
