//! The differential cases: scripts and messages that both Pigeonhole and sievegate get.
//!
//! The table is split by theme (`cases/stores.rs`, `cases/edits_and_tests.rs`,
//! `cases/sending.rs`) and read in that order by [`all`]. To add a case, append a
//! `Case { name, .., ..BASE }` at the end of `cases/sending.rs`, so every earlier case keeps
//! its user number (the deliberate differences name users): `before`/`after` are the
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
//! | `notify_mailto`, `notify_importance_message`, `notify_uri_headers` | envelope sender and `From:` `postmaster_address` | envelope sender `<>`, `From:` the user | README: notify goes from `<>` (RFC 3834), `From:` the user (RFC 5436 §2.7) |
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

mod edits_and_tests;
mod sending;
mod stores;

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

/// Every case, in a fixed order: a case's user `cNN` is its position here, and the
/// deliberate differences name those users.
pub fn all() -> Vec<Case> {
    let mut all = stores::cases();
    all.extend(edits_and_tests::cases());
    all.extend(sending::cases());
    all.extend(edits_and_tests::namespace_cases());
    all
}
