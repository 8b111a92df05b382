//! Message + verdict + Sieve chain → Plan, through `sievetool::run` (what `sieve test` and a
//! delivery run: scan headers stripped, the bounded Sieve view, before/personal chain, the
//! virus policy), without side effects.
//!
//! Input: byte 0 is the virustest value (mod 6); byte 1 chooses the personal script (low
//! nibble: one of [`SCRIPTS`], or past them a fuzzed script), the before scripts (bits 4-5:
//! none, the shipped virus policy, a hostile global script) and the envelope sender (bits
//! 6-7). The rest is the message; with a fuzzed script, the script comes first, up to the
//! first NUL. Checked: no panic; with virustest 4 or 5 the Plan stores nothing in a mailbox
//! and sends nothing: no reject (nor its MDN), redirect, vacation or notify, nothing to
//! remember.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sievegate::config::Config;
use sievegate::delivery::dry_run::{self as sievetool, TestRequest};
use sievegate::filter::{Action, INFECTED_VIRUSTEST};
use sievegate_fuzz::{scratch_dir, write_files};

/// The personal scripts a fuzz input can choose (byte 1, low nibble).
const SCRIPTS: &[(&str, &str)] = &[
    (
        "scripts/mixed.sieve",
        include_str!("../scripts/mixed.sieve"),
    ),
    (
        "scripts/redirect.sieve",
        include_str!("../scripts/redirect.sieve"),
    ),
    (
        "scripts/vacation.sieve",
        include_str!("../scripts/vacation.sieve"),
    ),
    (
        "scripts/notify.sieve",
        include_str!("../scripts/notify.sieve"),
    ),
    (
        "scripts/reject.sieve",
        include_str!("../scripts/reject.sieve"),
    ),
    (
        "scripts/spread.sieve",
        include_str!("../scripts/spread.sieve"),
    ),
    (
        "scripts/discard.sieve",
        include_str!("../scripts/discard.sieve"),
    ),
    (
        "scripts/include.sieve",
        include_str!("../scripts/include.sieve"),
    ),
    (
        "scripts/hostile-before.sieve",
        include_str!("../scripts/hostile-before.sieve"),
    ),
];

const OTHER_FILES: &[(&str, &str)] = &[
    (
        "global/lists.sieve",
        include_str!("../scripts/global/lists.sieve"),
    ),
    (
        "sieve/alice/mine.sieve",
        include_str!("../scripts/personal/mine.sieve"),
    ),
    (
        "virus-policy.sieve",
        include_str!("../../sieve/virus-policy.sieve"),
    ),
    (
        "hostile-before.sieve",
        include_str!("../scripts/hostile-before.sieve"),
    ),
];

const SENDERS: [&str; 4] = [
    "",
    "sender@remote.example",
    "MAILER-DAEMON@remote.example",
    "alice@example.test",
];

struct World {
    dir: PathBuf,
    /// One config per before-script choice: none, the virus policy, the hostile script.
    configs: [Config; 3],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = scratch_dir("message_path");
        write_files(&dir, SCRIPTS);
        write_files(&dir, OTHER_FILES);
        let d = dir.display();
        let config = |before: &str| {
            let toml = format!(
                r#"
[server]
listen = ["127.0.0.1:0"]
hostname = "mx.example.test"
max_message_size = 1048576
[scanner]
clamd = "unix:{d}/no-clamd.sock"
max_scan_size = 1048576
[mailbox]
domains = ["example.test"]
maildir = "{d}/mail/%d/%n/Maildir"
[sieve]
before = [{before}]
personal = "{d}/personal/%n.sieve"
global_dir = "{d}/global"
personal_dir = "{d}/sieve/%n"
max_header_fields = 200
max_header_size = 65536
"#
            );
            let path = dir.join("sievegate.toml");
            std::fs::write(&path, toml).expect("write the config");
            Config::load(&path).expect("the fuzz config is valid")
        };
        let configs = [
            config(""),
            config(&format!("\"{d}/virus-policy.sieve\"")),
            config(&format!("\"{d}/hostile-before.sieve\"")),
        ];
        World { dir, configs }
    })
}

fuzz_target!(|data: &[u8]| {
    let [verdict, choice, rest @ ..] = data else {
        return;
    };
    let world = world();
    let virustest = verdict % 6;
    let which = usize::from(choice & 0x0f);
    let config = &world.configs[usize::from((choice >> 4) & 0x03) % 3];
    let from = SENDERS[usize::from(choice >> 6)];
    let (script, message) = match SCRIPTS.get(which) {
        Some((name, _)) => (world.dir.join(name), rest),
        None => {
            let (script, message) = match rest.iter().position(|&b| b == 0) {
                Some(nul) => (&rest[..nul], &rest[nul + 1..]),
                None => (rest, &[][..]),
            };
            let path = world.dir.join("fuzzed.sieve");
            std::fs::write(&path, script).expect("write the fuzzed script");
            (path, message)
        }
    };
    let request = TestRequest {
        script: Some(script),
        user: Some("alice@example.test".into()),
        from: Some(from.into()),
        to: Some("alice+news@example.test".into()),
        virus_status: Some(virustest),
        message: message.to_vec(),
        // Fields added to the request later keep their defaults here.
        ..TestRequest::default()
    };
    let report = match sievetool::run(config, &request) {
        Ok(report) => report,
        Err(e) => panic!("sieve test refused a valid request: {e}"),
    };
    // The Plan's rendering runs over whatever the scripts produced (its JSON is the
    // command's, in the binary).
    let _ = report.plan.to_string();
    if virustest >= INFECTED_VIRUSTEST {
        let plan = &report.plan;
        for action in &plan.actions {
            assert!(
                matches!(action, Action::Quarantine),
                "infected mail (virustest {virustest}) kept {action:?}\n{}",
                report.plan
            );
        }
        assert!(
            plan.remember.is_empty(),
            "infected mail remembered {:?}",
            plan.remember
        );
    }
});
