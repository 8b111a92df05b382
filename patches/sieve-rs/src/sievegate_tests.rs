/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs LLC <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

//! sievegate patch (PATCHES.md #20): tests of sievegate's patches that need only sieve-rs's
//! public API, ready to go upstream with their patches (sievegate's `patches/UPSTREAM.md`).
//! Those that can be written as `.svtest` files are in `tests/sievegate/patches.svtest`.

use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use crate::{
    Compiler, Context, Envelope, Event, Input, MessageOrigin, Runtime,
    compiler::{ErrorType, grammar::Capability},
    runtime::RuntimeError,
};

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Hello\r\n\
Message-ID: <1@example.org>\r\n\
\r\n\
Hi Bob.\r\n";

/// Runs `script` over `message` for bob@example.org and returns every event, or the first
/// runtime error. Duplicate checks answer "not seen", every other event "done".
fn run(runtime: &Runtime, script: &str, message: &[u8]) -> Result<Vec<Event>, RuntimeError> {
    let script = Compiler::new()
        .compile(script.as_bytes())
        .expect("compiles");
    let mut ctx = context(runtime, message);
    ctx.set_envelope(Envelope::From, "alice@example.org");
    ctx.set_envelope(Envelope::To, "bob@example.org");
    ctx.set_user_address("bob@example.org");
    let mut input = Input::script("test", script);
    let mut events = Vec::new();
    while let Some(result) = ctx.run(input) {
        let event = result?;
        input = (!matches!(event, Event::DuplicateId { .. })).into();
        events.push(event);
    }
    Ok(events)
}

/// `Runtime::filter` is left out of test builds; this is what it does.
fn context<'x>(runtime: &'x Runtime, message: &'x [u8]) -> Context<'x> {
    Context::new(
        runtime,
        MessageParser::new().parse(message).expect("message parses"),
    )
}

fn origins(events: &[Event]) -> Vec<MessageOrigin> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CreatedMessage { origin, .. } => Some(*origin),
            _ => None,
        })
        .collect()
}

// sievegate patch (PATCHES.md #2): a created message says what produced it.
#[test]
fn created_message_says_what_produced_it() {
    let runtime = Runtime::new().with_max_out_messages(10);
    let events = run(
        &runtime,
        "require \"vacation\";\r\nvacation \"Away.\";\r\n",
        MESSAGE,
    )
    .expect("runs");
    assert_eq!(origins(&events), vec![MessageOrigin::Vacation]);
    let events = run(
        &runtime,
        "require \"editheader\";\r\naddheader \"X-A\" \"1\";\r\nkeep;\r\n",
        MESSAGE,
    )
    .expect("runs");
    assert_eq!(origins(&events), vec![MessageOrigin::Edited]);
}

// sievegate patch (PATCHES.md #4): past its deadline, a run stops with an error.
#[test]
fn a_passed_deadline_stops_the_run() {
    let runtime = Runtime::new();
    let script = Compiler::new().compile(b"keep;\r\n").expect("compiles");
    let mut ctx = context(&runtime, MESSAGE).with_deadline(Instant::now());
    std::thread::sleep(Duration::from_millis(2));
    assert!(matches!(
        ctx.run(Input::script("test", script.clone())),
        Some(Err(RuntimeError::TimeLimitReached))
    ));

    let mut ctx =
        context(&runtime, MESSAGE).with_deadline(Instant::now() + Duration::from_secs(60));
    assert!(matches!(
        ctx.run(Input::script("test", script)),
        Some(Ok(Event::Keep { .. }))
    ));
}

// sievegate patch (PATCHES.md #10): a disabled extension is a compile error.
#[test]
fn a_disabled_extension_fails_to_compile() {
    let compiler = Compiler::new().with_disabled_capability(Capability::Vacation);
    let err = compiler
        .compile(b"require \"vacation\";\r\nvacation \"x\";\r\n")
        .expect_err("vacation is disabled");
    assert!(matches!(
        err.error_type(),
        ErrorType::CapabilityDisabled(Capability::Vacation)
    ));
    assert!(compiler.compile(b"keep;\r\n").is_ok());
}

// sievegate patch (PATCHES.md #21): a constant `fileinto` folder the check refuses fails
// the compile at the name's line; a name with a variable in it is left to run time.
#[test]
fn a_constant_folder_name_is_checked_at_compile_time() {
    let check: crate::MailboxCheck = std::sync::Arc::new(|name: &str| {
        if name.starts_with("INBOX.") {
            Ok(())
        } else {
            Err("outside the namespace".to_string())
        }
    });
    let compiler = Compiler::new().with_mailbox_check(check);
    let script = b"require [\"fileinto\", \"variables\", \"copy\"];\r\nset \"f\" \"Sub\";\r\nfileinto \"INBOX.Sub\";\r\nfileinto \"${f}\";\r\nif true {\r\n  fileinto :copy \"Sub\";\r\n}\r\n";
    let err = compiler.compile(script).expect_err("Sub is refused");
    assert_eq!(err.line_num(), 6, "{err}");
    assert!(matches!(
        err.error_type(),
        ErrorType::InvalidMailbox { name, reason }
            if name == "Sub" && reason == "outside the namespace"
    ));
    assert!(err.to_string().starts_with("Invalid folder name \"Sub\": outside the namespace"));
    // Without the check (upstream's behaviour) the same script compiles.
    assert!(Compiler::new().compile(script).is_ok());
}

// sievegate patch (PATCHES.md #11): an unknown command is reported on its own line.
#[test]
fn an_unknown_command_is_reported_where_it_is() {
    let err = Compiler::new()
        .compile(b"keep;\r\nfrobnicate;\r\n")
        .expect_err("unknown command");
    assert_eq!(err.line_num(), 2, "{err}");
}

// sievegate patch (PATCHES.md #12): a protected prefix refuses adding and deleting the
// whole family, in any case.
#[test]
fn a_protected_prefix_covers_the_family() {
    let runtime = Runtime::new().with_protected_header_prefix("X-Virus-");
    let message = [&b"X-Virus-Status: clean\r\n"[..], MESSAGE].concat();
    let events = run(
        &runtime,
        "require \"editheader\";\r\ndeleteheader \"x-virus-status\";\r\n\
         addheader \"X-VIRUS-Found\" \"no\";\r\nkeep;\r\n",
        &message,
    )
    .expect("runs");
    assert_eq!(
        origins(&events),
        vec![],
        "the message was edited: {events:?}"
    );
    // Without the prefix, the same script edits the message.
    let events = run(
        &Runtime::new(),
        "require \"editheader\";\r\ndeleteheader \"x-virus-status\";\r\n\
         addheader \"X-VIRUS-Found\" \"no\";\r\nkeep;\r\n",
        &message,
    )
    .expect("runs");
    assert_eq!(origins(&events), vec![MessageOrigin::Edited]);
}

// sievegate patch (PATCHES.md #19): a Subject that decodes to CR LF and header fields adds
// nothing to the vacation reply's header.
#[test]
fn an_encoded_subject_cannot_add_header_fields_to_a_reply() {
    let runtime = Runtime::new().with_max_out_messages(10);
    // The encoded-word is "hi\r\nContent-Type: text/html\r\nX-Injected: yes".
    let message = String::from_utf8_lossy(MESSAGE).replace(
        "Subject: Hello",
        "Subject: =?utf-8?B?aGkNCkNvbnRlbnQtVHlwZTogdGV4dC9odG1sDQpYLUluamVjdGVkOiB5ZXM=?=",
    );
    let events = run(
        &runtime,
        "require \"vacation\";\r\nvacation \"Away.\";\r\n",
        message.as_bytes(),
    )
    .expect("runs");
    let reply = events
        .iter()
        .find_map(|e| match e {
            Event::CreatedMessage { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a vacation reply");
    let parsed = MessageParser::new().parse(&reply).expect("parses");
    let names: Vec<String> = parsed.parts[0]
        .headers
        .iter()
        .map(|h| h.name.as_str().to_ascii_lowercase())
        .collect();
    assert!(!names.contains(&"x-injected".to_string()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "content-type").count(),
        1,
        "{names:?}"
    );
    assert!(names.contains(&"auto-submitted".to_string()), "{names:?}");
    assert!(names.contains(&"subject".to_string()), "{names:?}");
}

// sievegate patch (PATCHES.md #5): the segment matcher (`matches`) gives the same answer as
// the backtracking loop (kept in `capture`) on every small pattern and value over a tiny
// alphabet, escapes and case folding included.
#[test]
fn glob_matches_agrees_with_the_backtracking_loop() {
    use crate::runtime::tests::glob::GlobPattern;
    // A fixed linear congruential generator: reproducible without a dependency.
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % bound
    };
    let pattern_chars = ['a', 'b', 'A', '*', '?', '\\', 'ß'];
    let value_chars = ['a', 'b', 'A', '*', '?', 'ß', 'S'];
    for _ in 0..20_000 {
        let pattern: String = (0..next(8))
            .map(|_| pattern_chars[next(pattern_chars.len())])
            .collect();
        let value: String = (0..next(10))
            .map(|_| value_chars[next(value_chars.len())])
            .collect();
        for to_lower in [false, true] {
            let glob = GlobPattern::compile(&pattern, to_lower);
            let fast = glob.matches(&value);
            let old = glob.clone().capture(&value, 0, &mut Vec::new());
            assert_eq!(fast, old, "{pattern:?} {value:?} lower={to_lower}");
        }
    }
}

// sievegate patch (PATCHES.md #5): a pattern that makes the backtracking loop quadratic
// (`*a…ab` against a long run of `a`) is answered at once.
#[test]
fn glob_matches_in_linear_time() {
    use crate::runtime::tests::glob::GlobPattern;
    let value = "a".repeat(1 << 20);
    let pattern = format!("*{}b", "a".repeat(1000));
    let started = Instant::now();
    assert!(!GlobPattern::compile(&pattern, false).matches(&value));
    // The loop takes minutes on this in a debug build; the segment matcher milliseconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
