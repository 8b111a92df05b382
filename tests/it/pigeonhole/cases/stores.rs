//! Cases about what is stored: keep, discard, fileinto, flags and keywords, the chain.

use super::*;

pub fn cases() -> Vec<Case> {
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
    ]
}
