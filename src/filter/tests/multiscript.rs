//! Pigeonhole's multiscript rules, one table case per rule (see the module doc of `filter`
//! for each rule and the Pigeonhole function it comes from).

use super::chain::{case, check};
use super::*;

const FILEINTO_P: &str = "require \"fileinto\"; fileinto \"P\";";
const COPY_P: &str = "require [\"fileinto\", \"copy\"]; fileinto :copy \"P\";";
const ERROR: &str = "require \"ihave\"; error \"boom\";";

/// Pigeonhole's multiscript rules (see the module doc of `filter`), one case per rule; the
/// first five are the behaviour observed on Dovecot 2.3.19 / Pigeonhole 0.5.19.
#[test]
fn multiscript_table() {
    let cases = vec![
        // Observed: a before fileinto without stop ends the sequence.
        case(
            "before fileinto: personal does not run",
            Setup::new()
                .before("require [\"fileinto\", \"mailbox\"]; fileinto :create \"Spamish\";")
                .personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("Spamish", &[], true)],
        ),
        case(
            "before discard: nothing stored, personal does not run",
            Setup::new().before("discard;").personal("keep;"),
            Verdict::Clean,
            vec![],
        ),
        case(
            "before stop only: personal still runs",
            Setup::new().before("stop;").personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "before explicit keep stays pending; personal fileinto cancels it",
            Setup::new().before("keep;").personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "before keep :flags stays pending; personal fileinto cancels it",
            Setup::new()
                .before("require \"imap4flags\"; keep :flags \"\\\\Seen\";")
                .personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "before addflag reaches the personal fileinto",
            Setup::new()
                .before("require \"imap4flags\"; addflag \"\\\\Flagged\";")
                .personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("P", &["\\Flagged"], false)],
        ),
        // Keep and flags across scripts.
        case(
            "before keep :flags with nothing after: the keep carries its flags",
            Setup::new()
                .before("require \"imap4flags\"; keep :flags \"\\\\Seen\";")
                .personal("stop;"),
            Verdict::Clean,
            vec![inbox(&["\\Seen"])],
        ),
        case(
            "personal removeflag changes the implicit keep's flags",
            Setup::new()
                .before("require \"imap4flags\"; addflag [\"\\\\Seen\", \"\\\\Flagged\"];")
                .personal("require \"imap4flags\"; removeflag \"\\\\Seen\";"),
            Verdict::Clean,
            vec![inbox(&["\\Flagged"])],
        ),
        case(
            "a store into INBOX is the keep: keep adds no flags",
            Setup::new().personal(
                "require [\"imap4flags\", \"fileinto\", \"copy\"]; addflag \"\\\\Flagged\"; \
                 fileinto :copy :flags \"\\\\Seen\" \"INBOX\";",
            ),
            Verdict::Clean,
            vec![inbox(&["\\Seen"])],
        ),
        // After scripts.
        case(
            "after does not run once personal cancelled the keep",
            Setup::new()
                .personal(FILEINTO_P)
                .after("require \"fileinto\"; fileinto \"A\";"),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "after runs while the keep is pending",
            Setup::new()
                .personal(COPY_P)
                .after("require \"fileinto\"; fileinto \"A\";"),
            Verdict::Clean,
            vec![store("P", &[], false), store("A", &[], false)],
        ),
        case(
            "personal explicit keep; after fileinto cancels it",
            Setup::new()
                .personal("require \"imap4flags\"; keep :flags \"\\\\Seen\";")
                .after("require \"fileinto\"; fileinto \"A\";"),
            Verdict::Clean,
            vec![store("A", &[], false)],
        ),
        case(
            "discard in after cancels a pending keep",
            Setup::new().personal(COPY_P).after("discard;"),
            Verdict::Clean,
            vec![store("P", &[], false)],
        ),
        case(
            "discard in after cancels the personal explicit keep",
            Setup::new().personal("keep;").after("discard;"),
            Verdict::Clean,
            vec![],
        ),
        case(
            "stop in after ends only the after script",
            Setup::new()
                .after("stop;")
                .after("require \"fileinto\"; fileinto \"A2\";"),
            Verdict::Clean,
            vec![store("A2", &[], false)],
        ),
        // fileinto :copy leaves the keep pending.
        case(
            "before fileinto :copy: personal runs",
            Setup::new()
                .before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";")
                .personal(FILEINTO_P),
            Verdict::Clean,
            vec![store("B", &[], false), store("P", &[], false)],
        ),
        // Runtime errors in each slot.
        case(
            "runtime error in before: personal does not run",
            Setup::new().before(ERROR).personal(FILEINTO_P),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("runtime error in before script"),
        case(
            "runtime error in personal keeps the before actions",
            Setup::new()
                .before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";")
                .personal(&format!("require \"fileinto\"; fileinto \"P\"; {ERROR}"))
                .after("require \"fileinto\"; fileinto \"A\";"),
            Verdict::Clean,
            vec![store("B", &[], false), inbox(&[])],
        )
        .note("runtime error in personal script"),
        case(
            "runtime error in after keeps the personal actions",
            Setup::new().personal(COPY_P).after(ERROR),
            Verdict::Clean,
            vec![store("P", &[], false), inbox(&[])],
        )
        .note("runtime error in after script"),
        case(
            "failure keep carries no flags",
            Setup::new()
                .before("require \"imap4flags\"; addflag \"\\\\Seen\";")
                .personal(ERROR),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("runtime error"),
        case(
            "runtime error on infected mail still discards",
            Setup::new()
                .before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";")
                .personal(ERROR),
            virus(false),
            vec![],
        )
        .note("infected"),
        // Scripts that do not compile.
        case(
            "broken personal: no default, no after",
            Setup::new()
                .default("require \"fileinto\"; fileinto \"D\";")
                .personal("if {")
                .after("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\";"),
            Verdict::Clean,
            vec![inbox(&[])],
        )
        .note("personal script skipped"),
        case(
            "broken after: earlier actions stand, keep applies",
            Setup::new().personal(COPY_P).after("if {"),
            Verdict::Clean,
            vec![store("P", &[], false), inbox(&[])],
        )
        .note("global script skipped"),
        // Reject across scripts.
        case(
            "reject in before: personal does not run",
            Setup::new()
                .before("require \"reject\"; reject \"no\";")
                .personal(FILEINTO_P),
            Verdict::Clean,
            vec![reject("no", false)],
        ),
        case(
            "reject after an earlier copy: reject dropped, copy kept",
            Setup::new()
                .before("require [\"fileinto\", \"copy\"]; fileinto :copy \"B\";")
                .personal("require \"reject\"; reject \"no\";"),
            Verdict::Clean,
            vec![store("B", &[], false)],
        )
        .note("reject dropped"),
    ];
    check(cases);
}
