//! sievegate: an LMTP (RFC 2033) final-delivery agent that scans every message once with
//! ClamAV, runs the recipient's Sieve scripts with RFC 5235 `virustest`, and stores into
//! Maildir. Infected mail is never bounced, rejected or redirected towards its sender.
//!
//! # Layout
//! One delivery reads top to bottom through these modules. A module imports only from the
//! layers below it: cli → server → lmtp, lda, reload → delivery → filter, quarantine,
//! report → outbound, scan → users, spool → config, store → mail, metrics, health, state.
//!
//! - [`config`]: TOML file → validated [`config::Config`]: plain values, every problem
//!   reported at once; one file per section (its raw keys, defaults and checks), `mod.rs`
//!   runs them in order. It imports no feature module (only [`mail`], and the bottom
//!   layer's [`state::postgres::describe`] for a redacted `[state] url`);
//!   [`delivery::build`] turns its values into the scanner and the filter settings.
//! - [`server`]: TCP and unix listeners, the connection limit with slots reserved for
//!   trusted peers, peer credentials on the unix socket, graceful shutdown.
//! - [`reload`]: SIGHUP: the config read again into new services in [`reload::Current`],
//!   which each new transaction takes; a bad file is refused and the old one stays.
//! - [`metrics`]: Prometheus counters and histograms updated at the pipeline, session and
//!   server seams with plain values (an outcome's label, a virus name), served by a tiny
//!   HTTP/1.0 responder on `[server] metrics_listen`; imports nothing of ours.
//! - [`health`]: a peer's up/down flag (set by its calls and a probe, logged once per
//!   transition) that gates MAIL; imports nothing of ours.
//! - [`logging`]: the log writer from `[log]` (text or JSON lines, the level).
//! - [`lmtp`]: the session state machine (generic over the stream), one file per verb;
//!   [`lmtp::reply`] owns every reply text the client sees; outcomes become replies there.
//!   MAIL is refused while clamd is down ([`scan::health`]) or while the state store a
//!   delivery needs is unreachable ([`health`]); RCPT counts deliveries per
//!   user ([`delivery::UserLimit`], `user_concurrency_limit`).
//! - [`managesieve`]: the RFC 5804 server (`[managesieve]`, off by default): a sans-I/O
//!   command parser, one session per connection (STARTTLS, SASL PLAIN through
//!   [`managesieve::Authenticate`]), the user's script directory in Pigeonhole's layout
//!   written atomically under a lock; scripts are checked with delivery's compiler
//!   ([`filter::tools::check_bytes`]). Started by `serve` beside the LMTP listeners.
//! - [`auth`]: logins for ManageSieve and the web admin view: one [`auth::Authenticator`]
//!   (SASL PLAIN, failed-login limits per address and per user, one log line per attempt,
//!   never a password) over two backends: `[mailbox] users_file` with Dovecot's password
//!   schemes ([`auth::password`]) or Dovecot's auth service on its socket ([`auth::dovecot`]).
//! - [`web`]: the quarantine's web page on `[web] listen` (axum on hyper, maud pages):
//!   a signed link opens one entry for one recipient; release and delete (mail held by
//!   policy) or a release request to the postmaster (infected mail), POST only, with CSRF
//!   checks and security headers; [`web::router`] is the site the admin view extends.
//!   [`web::admin`]: the admin view (`[web] admin_users`: list, filter, release, delete with
//!   the CLI's code) and the sample mailboxes' raw downloads, behind a login whose signed
//!   cookie ([`web::session`]) any host with the same secret accepts.
//! - [`users`]: which recipients exist (`[mailbox] users_file`, Dovecot passwd-file), their `%h`.
//! - [`scan`]: clamd client (FILDES on a unix socket, INSTREAM otherwise), its reply parser,
//!   verdict → `virustest` value; [`scan::health`]: clamd up or down, from every scan and a
//!   PING probe.
//! - [`filter`]: built from a [`filter::FilterConfig`]; Sieve script resolution and compile
//!   cache; runs the chain (Pigeonhole's multiscript: before → personal or default → after,
//!   each script on its own) to a printable [`filter::Plan`] (folders, flags and keywords,
//!   edited content) without writing to any mailbox; [`filter::lookup`] answers
//!   `mailboxexists`, `:specialuse` and `spamtest` (read-only); `duplicate` and vacation
//!   look up [`filter::memory`] (the state store), written only after the delivery; RFC 6609
//!   includes ([`filter::include`]), the per-user error log, the compile step of
//!   `sieve check` ([`filter::tools`]).
//! - [`spool`]: a message's bytes on the heap or, above `[server] spool_threshold`, in an
//!   unnamed file in `spool_dir` mapped read-only ([`spool::MessageBytes`]), so many
//!   large messages at once cost page cache, not heap.
//! - [`delivery`]: THE front door for one message ([`delivery::enter`]): admit the
//!   recipients ([`delivery::admit()`], one rule for every entry point), scan once with the
//!   one scan-failure policy, then per recipient: its reading of the one scan
//!   ([`delivery::policy`]: `ignore_signatures`, the `[domain."..."]` policy, sample
//!   recipients) → the bounded Sieve view → Plan → trace headers → Maildir → one log line
//!   and its metrics → one [`delivery::RcptOutcome`].
//!   [`delivery::Services`] is what it shares. Two stages: the blocking one (Sieve, the
//!   stores, what is queued) never waits on a peer; the async one after it sends what must
//!   go now (redirects without a durable state store) and the postmaster notice and abuse
//!   report. [`delivery::send`]: redirects, vacation replies and notifications into the
//!   outbox (a redirect is answered once queued; the outbox keeps it in INBOX if the relay
//!   refuses it for good); [`delivery::redirect`] hands each redirect over, remembers and
//!   claims it. A `duplicate` claim is owned by the plan ([`filter::memory::Claim`]) and
//!   released when it is dropped, whichever way the delivery ends. Unknown users are decided after the scan: 250 for infected
//!   mail, 550 otherwise. A panic in a per-message step degrades that step only. Its
//!   callers: the LMTP session and LDA mode ([`delivery::enter`]), `quarantine release`
//!   ([`delivery::release`], after its own rescan) and `sieve test`
//!   ([`delivery::dry_run`]: admission and the chain to a Plan, nothing executed).
//! - [`lda`]: LDA mode (`sievegate deliver`, like dovecot-lda): the message on stdin
//!   (normalised and spooled like LMTP's, `lda::input`) through the front door, sysexits
//!   statuses that never bounce infected mail, one bounded outbox pass before exiting.
//! - [`store`]: the durable Maildir++ writer (tmp → fsync → rename → fsync dir), further
//!   copies of the same bytes as hard links (`[mailbox] link_copies`), directory fsyncs
//!   shared by concurrent deliveries into one folder ([`store::dirsync`], group commit),
//!   IMAP keywords in Dovecot's `dovecot-keywords`, the INBOX fallback classification of
//!   its errors, crash-leftover cleanup in `tmp/`, and the configured owner and modes of
//!   what it creates ([`store::Ownership`]).
//! - [`quarantine`]: infected mail kept once per message (`<dir>/<id>.eml`, indexed in
//!   [`state`]) before any reply, holding only the recipients whose copy it kept; release
//!   per recipient, once; purge and the sweep of crash leftovers; the library part of the
//!   `quarantine` command ([`quarantine::admin`]); the signed links to one entry for one
//!   recipient and one action ([`quarantine::link`], HMAC-SHA-256, no I/O but the key);
//!   each recipient's periodic digest of what is held for them ([`quarantine::digest`]:
//!   one run per schedule slot across hosts, built by [`outbound::compose`], queued in the
//!   outbox).
//! - [`state`]: the state store behind one trait, [`state::StateStore`] (SQLite in WAL
//!   mode for one host; PostgreSQL shared by several, with the quarantined messages too;
//!   an in-memory twin, bounded): quarantine index, caches, rate limits, outbound queue;
//!   every cache and rate row expires (`expire`, run by the server). Each backend is a
//!   module of its own (open and migrate, schema, row encodings, the trait impl); one
//!   behaviour suite, and one two-handle suite (races, leases), run on all three.
//! - [`outbound`]: everything we send: queued in [`state`], sent by one background task
//!   through `[notify] relay` (mail-send) or stored straight into a local user's INBOX;
//!   a redirect's failure keep ([`outbound::LocalDelivery::keep`]).
//! - [`report`]: the messages we build about mail, with mail-builder: the postmaster notice
//!   (one per infected message, rate-limited into a digest), RFC 5965 abuse reports to the
//!   sending address's abuse contact (source IP from XFORWARD or the Received formats the
//!   admin lists, RDAP https-only and bounded, ARF, rate limits per address, network,
//!   contact and in total; the attached headers scanned first), the RFC 5429
//!   rejection MDN.
//! - [`mail`]: the bottom layer (imports nothing of ours): the [`mail::envelope::Envelope`]
//!   and the original [`mail::envelope::Client`] (its address an `IpAddr`, parsed once where
//!   XFORWARD or the LDA environment is read) every entry point hands the pipeline;
//!   [`mail::address`] (RCPT address → `Recipient`: case folding, `+detail`, path safety;
//!   the address checks of what we send); [`mail::header`], the one header walker;
//!   [`mail::bounce`]; [`mail::date`]; [`mail::text`], the one sanitizer for client text
//!   written into headers and replies; and the plain values config and features share
//!   ([`mail::net`], [`mail::sieve`], [`mail::maildir`]: the store's owner and modes, the
//!   folder-name rule).
//! - [`systemd`]: readiness for `Type=notify` units (`sd_notify`: ready, stopping, reloading).

pub mod auth;
pub mod config;
pub mod delivery;
pub mod filter;
pub mod health;
pub mod lda;
pub mod lmtp;
pub mod logging;
pub mod mail;
pub mod managesieve;
pub mod metrics;
pub mod outbound;
pub mod quarantine;
pub mod reload;
pub mod report;
pub mod scan;
pub mod server;
pub mod spool;
pub mod state;
pub mod store;
pub mod systemd;
pub mod users;
pub mod web;
