//! The chain table: which scripts run, in which order, and what the Plan becomes.

use super::*;

fn redirect(to: &str) -> Action {
    Action::Redirect {
        to: to.to_string(),
        edited: None,
    }
}

pub(super) struct Case {
    name: &'static str,
    setup: Setup,
    verdict: Verdict,
    want: Vec<Action>,
    /// A substring some note must contain.
    note: Option<&'static str>,
}

pub(super) fn case(name: &'static str, setup: Setup, verdict: Verdict, want: Vec<Action>) -> Case {
    Case {
        name,
        setup,
        verdict,
        want,
        note: None,
    }
}

impl Case {
    pub(super) fn note(mut self, note: &'static str) -> Self {
        self.note = Some(note);
        self
    }
}

#[test]
fn chain_table() {
    let deep_nesting = format!("{}keep;{}", "if true { ".repeat(40), " }".repeat(40));
    let giant_string = format!(
        "require \"fileinto\"; fileinto \"{}\";",
        "x".repeat(100_000)
    );
    let quarantine_before = r#"require ["vnd.sievegate.quarantine", "virustest", "relational", "comparator-i;ascii-numeric"];
        if virustest :value "ge" :comparator "i;ascii-numeric" "4" { quarantine; quarantine; discard; stop; }"#;
    let cases = vec![
        case("no scripts", Setup::new(), Verdict::Clean, vec![inbox(&[])]),
        case(
            "before quarantines infected: the one action the virus policy keeps",
            Setup::new().before(quarantine_before).personal("keep;"),
            virus(true),
            vec![Action::Quarantine],
        )
        .note("infected"),
        case(
            "before quarantine, clean: not asked",
            Setup::new().before(quarantine_before),
            Verdict::Clean,
            vec![inbox(&[])],
        ),
        case(
            "after script may quarantine; the keep stays",
            Setup::new().after("require \"vnd.sievegate.quarantine\"; quarantine;"),
            Verdict::Clean,
            vec![Action::Quarantine, inbox(&[])],
        ),
        case(
            "personal quarantine ignored",
            Setup::new().personal("require \"vnd.sievegate.quarantine\"; quarantine;"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("only global (before/after) scripts may quarantine"),
        case(
            "default script quarantine ignored",
            Setup::new().default("require \"vnd.sievegate.quarantine\"; quarantine;"),
            virus(false),
            vec![],
        )
        .note("only global (before/after) scripts may quarantine"),
        case(
            "quarantine without require does not compile (script skipped)",
            Setup::new().before("quarantine;"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("script skipped"),
        case(
            "virus before, unscanned",
            Setup::new().before(VIRUS_BEFORE),
            Verdict::Unscanned,
            vec![inbox(&[])],
        ),
        case(
            "virus before, clean",
            Setup::new().before(VIRUS_BEFORE),
            Verdict::Clean,
            vec![inbox(&[])],
        ),
        case(
            "virus before, heuristic",
            Setup::new().before(VIRUS_BEFORE).personal("keep;"),
            virus(true),
            vec![],
        )
        .note("infected"),
        case(
            "virus before, virus",
            Setup::new().before(VIRUS_BEFORE),
            virus(false),
            vec![],
        ),
        case(
            "virus before skips personal reject",
            Setup::new()
                .before(VIRUS_BEFORE)
                .personal("require \"reject\"; reject \"go away\";"),
            virus(false),
            vec![],
        ),
        case(
            "personal fileinto :create :flags",
            Setup::new().personal(
                r#"require ["fileinto", "mailbox", "imap4flags"];
                   fileinto :create :flags ["\\Seen", "\\Flagged"] "Work.Projects";"#,
            ),
            Verdict::Clean,
            vec![store("Work.Projects", &["\\Seen", "\\Flagged"], true)],
        ),
        case(
            "setflag applies to fileinto",
            Setup::new().personal(
                r#"require ["fileinto", "imap4flags"]; setflag "\\Seen"; fileinto "Lists";"#,
            ),
            Verdict::Clean,
            vec![store("Lists", &["\\Seen"], false)],
        ),
        case(
            "keywords go with the store",
            Setup::new().personal(
                r#"require ["fileinto", "imap4flags"]; fileinto :flags ["$Label1", "\\Seen"] "X";"#,
            ),
            Verdict::Clean,
            vec![store("X", &["\\Seen", "$Label1"], false)],
        ),
        case(
            "invalid keywords dropped with a note",
            Setup::new().personal(
                r#"require ["fileinto", "imap4flags"]; fileinto :flags ["a(b", "\\Recent", "ok"] "X";"#,
            ),
            Verdict::Clean,
            vec![store("X", &["ok"], false)],
        )
        .note("invalid IMAP flags ignored: a(b \\Recent"),
        case(
            "keywords of the implicit keep add up along the chain",
            Setup::new()
                .before(r#"require "imap4flags"; addflag "$Before";"#)
                .personal(r#"require "imap4flags"; addflag ["\\Seen", "$label1"];"#),
            Verdict::Clean,
            vec![inbox(&["\\Seen", "$Before", "$label1"])],
        ),
        case(
            "personal reject, clean",
            Setup::new().personal("require \"reject\"; reject \"go away\";"),
            Verdict::Clean,
            vec![reject("go away", false)],
        ),
        case(
            "personal reject, infected",
            Setup::new().personal("require \"reject\"; reject \"go away\";"),
            virus(false),
            vec![],
        )
        .note("reject replaced by discard"),
        case(
            "personal reject, heuristic",
            Setup::new().personal("require \"reject\"; reject \"go away\";"),
            virus(true),
            vec![],
        )
        .note("reject replaced by discard"),
        case(
            "ereject, clean",
            Setup::new().personal("require \"ereject\"; ereject \"no thanks\";"),
            Verdict::Clean,
            vec![reject("no thanks", true)],
        ),
        case(
            "ereject, infected",
            Setup::new().personal("require \"ereject\"; ereject \"no thanks\";"),
            virus(false),
            vec![],
        )
        .note("ereject replaced by discard"),
        case(
            "reject plus fileinto conflict keeps",
            Setup::new()
                .personal("require [\"reject\", \"fileinto\"]; fileinto \"X\"; reject \"no\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("reject conflicts"),
        case(
            "before sets flags, personal keeps",
            Setup::new()
                .before("require \"imap4flags\"; addflag \"\\\\Flagged\";")
                .personal("keep;"),
            Verdict::Clean,
            vec![inbox(&["\\Flagged"])],
        ),
        case(
            "before flags reach the implicit keep",
            Setup::new().before("require \"imap4flags\"; addflag \"\\\\Seen\";"),
            Verdict::Clean,
            vec![inbox(&["\\Seen"])],
        ),
        case(
            "stop in before skips personal and after",
            Setup::new()
                .before("require \"fileinto\"; fileinto \"A\"; stop;")
                .personal("require \"fileinto\"; fileinto \"B\";")
                .after("require \"fileinto\"; fileinto \"C\";"),
            Verdict::Clean,
            vec![store("A", &[], false)],
        ),
        case(
            "bare stop in before keeps",
            Setup::new().before("stop;"),
            Verdict::Clean,
            vec![inbox(&[])],
        ),
        case(
            "stop in personal skips after",
            Setup::new()
                .personal("require \"fileinto\"; fileinto \"P\"; stop;")
                .after("require \"fileinto\"; fileinto \"C\";"),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "before, personal, after in order while the keep is pending",
            Setup::new()
                .before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";")
                .personal("require [\"fileinto\", \"copy\"]; fileinto :copy \"P\";")
                .after("require \"fileinto\"; fileinto \"A\";"),
            Verdict::Clean,
            vec![
                store("B", &[], false),
                store("P", &[], false),
                store("A", &[], false),
            ],
        ),
        case(
            "fileinto :copy keeps the implicit keep",
            Setup::new().before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";"),
            Verdict::Clean,
            vec![store("B", &[], false), inbox(&[])],
        ),
        case(
            "discard in before cancels keep for all",
            Setup::new().before("discard;").after("require \"fileinto\";"),
            Verdict::Clean,
            vec![],
        ),
        case(
            "default runs without personal",
            Setup::new().default("require \"fileinto\"; fileinto \"D\";"),
            Verdict::Clean,
            vec![store("D", &[], false)],
        ),
        case(
            "default skipped with personal",
            Setup::new()
                .default("require \"fileinto\"; fileinto \"D\";")
                .personal("require \"fileinto\"; fileinto \"P\";"),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "broken personal: keep, no default",
            Setup::new()
                .default("require \"fileinto\"; fileinto \"D\";")
                .personal("require \"fileinto\";\nif header {"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("alice.sieve:2:"),
        case(
            "broken global ends the chain",
            Setup::new()
                .before("if {")
                .personal("require \"fileinto\"; fileinto \"P\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("global script skipped"),
        case(
            "missing global skipped, rest runs",
            {
                let mut setup = Setup::new().personal("require \"fileinto\"; fileinto \"P\";");
                setup.config.before.push(setup.dir.path().join("nope.sieve"));
                setup
            },
            Verdict::Clean,
            vec![store("P", &[], false)],
        )
        .note("global script skipped"),
        case(
            "giant string does not compile",
            Setup::new().personal(&giant_string),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("personal script skipped"),
        case(
            "deep nesting does not compile",
            Setup::new().personal(&deep_nesting),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("personal script skipped"),
        case(
            "runtime error keeps, drops earlier actions",
            Setup::new().personal(
                "require [\"fileinto\", \"ihave\"]; fileinto \"X\"; error \"boom\";",
            ),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("runtime error"),
        case(
            "while capability refused at run time",
            Setup::new().personal("require \"vnd.stalwart.while\"; discard;"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("runtime error"),
        case(
            "runtime error on infected mail still discards",
            Setup::new().personal(
                "require [\"fileinto\", \"ihave\"]; fileinto \"X\"; error \"boom\";",
            ),
            virus(false),
            vec![],
        )
        .note("runtime error"),
        case(
            "include of a chain name ends in keep",
            Setup::new().personal(
                "require [\"include\", \"fileinto\"]; fileinto \"X\"; include :global \"sievegate:main\";",
            ),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("not found"),
        case(
            "missing include ends in keep",
            Setup::new().personal(
                "require [\"include\", \"fileinto\"]; fileinto \"X\"; include \"other\";",
            ),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("included personal script \"other\" not found"),
        case(
            "missing optional include is skipped",
            Setup::new().personal(
                "require [\"include\", \"fileinto\"]; include :optional \"other\"; fileinto \"X\";",
            ),
            Verdict::Clean,
            vec![store("X", &[], false)],
        )
        .note(":optional, skipped"),
        case(
            "folder ../x",
            Setup::new().personal("require \"fileinto\"; fileinto \"../x\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("refused"),
        case(
            "folder .hidden",
            Setup::new().personal("require \"fileinto\"; fileinto \".hidden\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("refused"),
        case(
            "folder a/b",
            Setup::new().personal("require \"fileinto\"; fileinto \"a/b\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("refused"),
        case(
            "same folder twice is one store",
            Setup::new().personal(
                "require [\"fileinto\", \"imap4flags\"]; fileinto \"X\"; fileinto :flags \"\\\\Seen\" \"X\";",
            ),
            Verdict::Clean,
            vec![store("X", &["\\Seen"], false)],
        ),
        case(
            "redirect on clean redirects",
            Setup::new().personal("redirect \"carol@example.net\";"),
            Verdict::Clean,
            vec![redirect("carol@example.net")],
        ),
        case(
            "redirect then discard redirects",
            Setup::new().personal("redirect \"carol@example.net\"; discard;"),
            Verdict::Clean,
            vec![redirect("carol@example.net")],
        ),
        case(
            "redirect :copy redirects and keeps",
            Setup::new().personal("require \"copy\"; redirect :copy \"carol@example.net\";"),
            Verdict::Clean,
            vec![redirect("carol@example.net"), inbox(&[])],
        ),
        case(
            "redirect on infected discards",
            Setup::new().personal("redirect \"carol@example.net\";"),
            virus(false),
            vec![],
        )
        .note("infected"),
        case(
            "vacation on infected discards",
            Setup::new().personal("require \"vacation\"; vacation \"I am away\";"),
            virus(true),
            vec![],
        )
        .note("infected"),
        case(
            "explicit keep on infected",
            Setup::new().personal("keep;"),
            virus(false),
            vec![],
        )
        .note("store into INBOX dropped"),
        case(
            "explicit fileinto on infected",
            Setup::new().personal("require [\"fileinto\", \"mailbox\"]; fileinto :create \"Work\";"),
            virus(true),
            vec![],
        )
        .note("store into Work dropped"),
        case(
            "no scripts, infected",
            Setup::new(),
            virus(false),
            vec![],
        ),
        case(
            "environment items",
            Setup::new().before(
                r#"require ["environment", "fileinto", "copy"];
                   if allof (environment :is "location" "MDA",
                             environment :is "phase" "during",
                             environment :is "domain" "mx.example.test",
                             environment :is "host" "mx.example.test",
                             environment :is "name" "sievegate",
                             environment :is "remote-host" "client.example.org") {
                       fileinto :copy "Env";
                   }
                   if environment :is "remote-ip" "192.0.2.1" { fileinto :copy "Ip"; }"#,
            ),
            Verdict::Clean,
            vec![store("Env", &[], false), store("Ip", &[], false), inbox(&[])],
        ),
        case(
            "envelope from and to",
            Setup::new().personal(
                r#"require ["envelope", "fileinto", "copy", "subaddress"];
                   if envelope :is "from" "bob@example.org" { fileinto :copy "From"; }
                   if envelope :is "to" "Alice+tag@example.test" { fileinto :copy "To"; }
                   if envelope :detail "to" "tag" { fileinto :copy "Detail"; }"#,
            ),
            Verdict::Clean,
            vec![
                store("From", &[], false),
                store("To", &[], false),
                store("Detail", &[], false),
                inbox(&[]),
            ],
        ),
        case(
            "mailboxexists without a Maildir: only INBOX exists",
            Setup::new().personal(
                "require [\"mailbox\", \"fileinto\"]; if mailboxexists \"X\" { fileinto \"X\"; }",
            ),
            Verdict::Clean,
            vec![inbox(&[])],
        ),
        case(
            "duplicate answers not a duplicate",
            Setup::new().personal("require \"duplicate\"; if duplicate { discard; }"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("answered not seen"),
        case(
            "virustest value visible to personal",
            Setup::new().personal(
                r#"require ["virustest", "fileinto", "relational", "comparator-i;ascii-numeric"];
                   if virustest :value "eq" :comparator "i;ascii-numeric" "1" { fileinto "Clean"; }"#,
            ),
            Verdict::Clean,
            vec![store("Clean", &[], false)],
        ),
    ];
    check(cases);
}

/// Runs every case and reports all failures at once.
pub(super) fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let filter = Filter::new(case.setup.config.clone());
        let plan = plan_for(&filter, &case.verdict);
        if plan.actions != case.want {
            failures.push(format!(
                "{}: want {:?}\n got plan:\n{plan}",
                case.name, case.want
            ));
            continue;
        }
        // A script that does not compile would make many cases pass for the wrong reason.
        let skipped = plan.notes.iter().any(|n| n.contains("script skipped"));
        if skipped
            && !case
                .note
                .is_some_and(|n| n.contains("skipped") || n.contains(".sieve:"))
        {
            failures.push(format!("{}: unexpected skipped script:\n{plan}", case.name));
            continue;
        }
        if let Some(note) = case.note {
            if !plan.notes.iter().any(|n| n.contains(note)) {
                failures.push(format!("{}: no note with {note:?}:\n{plan}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
