//! LDA mode: `sievegate deliver -c CONFIG -f SENDER -a RCPT [-a RCPT...] [-m FOLDER] < msg`,
//! for Postfix's `mailbox_command` or a `pipe(8)` service, like `dovecot-lda`. One process
//! per message, the same pipeline as LMTP ([`crate::delivery`]: scan once → per recipient
//! Sieve → Plan → Maildir), and an exit status per sysexits(3) instead of replies.
//!
//! # Exit status
//! Postfix bounces on every status but 75 (`EX_TEMPFAIL`), so a bounce-worthy status is
//! only ever used for clean mail:
//! - 0: delivered or discarded for every recipient. Infected mail exits 0 whatever its
//!   recipients' Sieve scripts did (discarded or quarantined), also for an unknown recipient.
//! - 75 `EX_TEMPFAIL`: anything worth a retry: clamd down or failing (with `on_failure =
//!   "tempfail"`), a store or quarantine failure, a users file that cannot be read, and also
//!   a configuration or usage error: a broken config file must not bounce mail (a bounce of
//!   infected mail would be backscatter), so Postfix keeps it while the admin fixes it.
//! - 67 `EX_NOUSER`: a recipient does not exist (clean mail only).
//! - 77 `EX_NOPERM`: a Sieve `reject`/`ereject` (clean mail only); the reason is the one line
//!   on stderr, which Postfix puts in its bounce (dovecot-lda's `-e`).
//! - 65 `EX_DATAERR`: the message is larger than `max_message_size` (as LMTP's 552).
//!
//! With several `-a` the worst status wins, in the order 75, 67, 77, 0: one status covers
//! every recipient of the invocation, so Postfix retries (or bounces) all of them.
//! Recipients already stored are stored again by a retry; nothing is lost. dovecot-lda
//! takes one recipient; the README's setup sets `destination_recipient_limit = 1`.
//!
//! # What LDA mode sends
//! There is no long-running sender task: after the stores, one pass of the outbox sends
//! what is due (vacation replies, notifications, postmaster notices, and anything else due
//! in a shared state store) within [`SEND_TIMEOUT`]; what is not sent stays queued in
//! `[state] dir` for the next LDA run or a `sievegate serve` on the same state dir.
//! Redirects go out during the delivery, as in LMTP. Without `[state] dir` the queue is in
//! memory and what the pass could not send is lost (logged).
//!
//! # Logs
//! On stderr, which Postfix shows in its own log and in bounces: so the default level is
//! `warn` (`RUST_LOG=info` gives the per-recipient lines, the same as `serve` writes), and a
//! failing status ends with one line per failed recipient that names no path or internal
//! detail. At `debug` the run ends with its metrics in the Prometheus text format (a run
//! serves no `/metrics`).

mod input;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::delivery::{self, Client, Envelope, RcptOutcome, Refused, Services};
use crate::spool::MessageBytes;
use crate::store::Folder;
use crate::users::Refusal;

/// sysexits(3) values LDA mode exits with.
pub mod exit {
    /// Delivered, discarded or quarantined.
    pub const OK: u8 = 0;
    /// The message is larger than `max_message_size`.
    pub const DATAERR: u8 = 65;
    /// No such recipient.
    pub const NOUSER: u8 = 67;
    /// Try again later: Postfix keeps the message.
    pub const TEMPFAIL: u8 = 75;
    /// Refused by the recipient's Sieve script.
    pub const NOPERM: u8 = 77;
}

/// How long the outbox pass after the stores may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long background work the delivery started (an abuse report's RDAP lookup) may run
/// after the stores before the process exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The command line of one LDA run.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-f`: the envelope sender; `None`: from the mbox `From ` line, else the null sender.
    pub from: Option<String>,
    /// `-a`: the recipients, at least one.
    pub rcpts: Vec<String>,
    /// `-m`: where the keep goes instead of INBOX.
    pub mailbox: Option<String>,
}

/// What became of one `-a` recipient.
#[derive(Debug)]
enum Fate {
    /// Went through the pipeline.
    Delivered(RcptOutcome),
    /// Not a local user (or not an address at all).
    Unknown(String),
    /// The users file cannot be read now.
    Unavailable,
}

/// Runs one delivery with the config at `config_path`, the message from `input`; returns
/// the exit status. Everything the admin should know is logged or printed on stderr.
pub fn run(config_path: &std::path::Path, request: &Request, input: impl Read) -> u8 {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("sievegate deliver: configuration error: message kept by the MTA");
            return exit::TEMPFAIL;
        }
    };
    let folder = match request
        .mailbox
        .as_deref()
        .map(|name| Folder::from_sieve(name, &config.mailbox.namespace_prefix))
        .transpose()
    {
        Ok(folder) => folder,
        Err(e) => {
            eprintln!("sievegate deliver: -m {:?}: {e}", request.mailbox);
            return exit::TEMPFAIL;
        }
    };
    if request.rcpts.is_empty() {
        eprintln!("sievegate deliver: at least one -a RECIPIENT is needed");
        return exit::TEMPFAIL;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sievegate deliver: cannot start the runtime: {e}");
            return exit::TEMPFAIL;
        }
    };
    let max = config.server.max_message_size;
    let spool = config.server.spool.clone();
    let read = runtime.block_on(input::read_message(input, max, spool));
    let (mbox_from, message) = match read {
        Ok(Some(read)) => read,
        Ok(None) => {
            eprintln!("sievegate deliver: message size exceeds fixed maximum message size");
            return exit::DATAERR;
        }
        Err(e) => {
            eprintln!("sievegate deliver: {e}");
            return exit::TEMPFAIL;
        }
    };
    let mail_from = request
        .from
        .as_deref()
        .or(mbox_from.as_deref())
        .map(strip_brackets)
        .unwrap_or_default();
    let services = match Services::open(config) {
        Ok(services) => Arc::new(services),
        Err(e) => {
            eprintln!("sievegate deliver: state store: {e}");
            return exit::TEMPFAIL;
        }
    };
    let status = runtime.block_on(async {
        let fates = deliver(&services, request, mail_from, folder, message).await;
        flush_outbox(&services).await;
        drain(DRAIN_TIMEOUT).await;
        status(&request.rcpts, &fates)
    });
    // Whatever is still running after the drain is given up (logged by its own timeout).
    runtime.shutdown_timeout(Duration::from_secs(1));
    // A run serves no metrics endpoint; at debug its counters (this run's, from zero) go to
    // the log, the same series `serve` exposes, so an admin (and the tests) can compare.
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!("metrics of this run:\n{}", crate::metrics::render());
    }
    status
}

/// Admits the recipients ([`delivery::admit`], the rule LMTP's RCPT applies) and hands the
/// message to the front door ([`delivery::enter`]: one scan, the one scan-failure policy,
/// one log line per recipient). A user the users file does not know goes through the door
/// as unknown, like LMTP's `unknown_users = "after-scan"`: refused after the scan unless
/// the mail is infected. An address at no domain of ours never reaches the door; the
/// verdict decides it here, since an unknown recipient of infected mail must not get a
/// status that bounces.
async fn deliver(
    services: &Arc<Services>,
    request: &Request,
    mail_from: String,
    folder: Option<Folder>,
    message: MessageBytes,
) -> Vec<Fate> {
    let mailbox = &services.config.mailbox;
    let mut fates = Vec::with_capacity(request.rcpts.len());
    let mut rcpts = Vec::new();
    let mut unknown = Vec::new();
    for address in &request.rcpts {
        let address = strip_brackets(address);
        match delivery::admit(mailbox, &services.users, &address) {
            Ok(rcpt) => {
                rcpts.push(rcpt);
                unknown.push(false);
                fates.push(None);
            }
            Err(Refused::User {
                rcpt,
                refusal: Refusal::Unknown,
            }) => {
                tracing::info!(to = %address, "no such user: refused after the scan unless infected");
                rcpts.push(*rcpt);
                unknown.push(true);
                fates.push(None);
            }
            Err(refused @ Refused::User { .. }) => {
                tracing::error!(to = %address, "recipient deferred: {refused}");
                fates.push(Some(Fate::Unavailable));
            }
            Err(refused @ Refused::Address(_)) => {
                tracing::info!(to = ?address, "recipient refused: {refused}");
                fates.push(Some(Fate::Unknown(address)));
            }
        }
    }
    let envelope = Envelope {
        id: crate::mail::envelope::new_id(),
        mail_from,
        rcpts,
        helo: None,
        peer_addr: None,
        client: client_from_env(),
        // The environment is whoever started us: not a trusted MTA's word.
        client_trusted: false,
        started: Instant::now(),
        default_mailbox: folder.and(request.mailbox.clone()),
    };
    let delivered = delivery::enter(services, &envelope, &unknown, message).await;
    let infected = delivered
        .verdict
        .as_ref()
        .is_some_and(|v| v.virus_name().is_some());
    let scan_failed = delivered.verdict.is_none();
    let mut outcomes = delivered.outcomes.into_iter();
    fates
        .into_iter()
        .map(|fate| match fate {
            None => match outcomes.next() {
                Some(outcome) => Fate::Delivered(outcome),
                // One outcome per recipient is the pipeline's promise; never lose silently.
                None => Fate::Delivered(RcptOutcome::Deferred(delivery::Deferral::Internal)),
            },
            // Infected mail for nobody is discarded, never bounced.
            Some(Fate::Unknown(address)) if infected => {
                tracing::info!(to = %address, "unknown recipient of infected mail: discarded");
                Fate::Delivered(RcptOutcome::Discarded)
            }
            // Without a verdict the mail may be infected: 67 could bounce it. The MTA
            // retries, and the next scan decides.
            Some(Fate::Unknown(_)) if scan_failed => {
                Fate::Delivered(RcptOutcome::Deferred(delivery::Deferral::ScanFailed))
            }
            Some(fate) => fate,
        })
        .collect()
}

/// The exit status for all recipients (worst wins: 75, 67, 77, 0), with one stderr line
/// per recipient that did not get its mail.
fn status(rcpts: &[String], fates: &[Fate]) -> u8 {
    let mut worst = exit::OK;
    let rank = |code: u8| match code {
        exit::TEMPFAIL => 3,
        exit::NOUSER => 2,
        exit::NOPERM => 1,
        _ => 0,
    };
    for (rcpt, fate) in rcpts.iter().zip(fates) {
        let (code, line) = match fate {
            Fate::Delivered(o) if o.is_temporary_failure() => (
                exit::TEMPFAIL,
                "temporary failure, try again later".to_string(),
            ),
            Fate::Delivered(RcptOutcome::Rejected { reason, .. }) => {
                let reason =
                    crate::mail::text::sanitize(reason, 200, crate::mail::text::Charset::Ascii);
                let reason = if reason.trim().is_empty() {
                    "Message rejected by recipient's filter".into()
                } else {
                    reason
                };
                (exit::NOPERM, reason.into_owned())
            }
            Fate::Unknown(_) | Fate::Delivered(RcptOutcome::UnknownUser) => {
                (exit::NOUSER, "user unknown".to_string())
            }
            Fate::Unavailable => (
                exit::TEMPFAIL,
                "temporary failure, try again later".to_string(),
            ),
            Fate::Delivered(_) => continue,
        };
        let rcpt = crate::mail::text::sanitize(rcpt, 256, crate::mail::text::Charset::Ascii);
        eprintln!("<{rcpt}>: {line}");
        if rank(code) > rank(worst) {
            worst = code;
        }
    }
    worst
}

/// One bounded outbox pass (see the module doc), after a pending postmaster digest is
/// queued: a process that exits cannot send it later.
async fn flush_outbox(services: &Services) {
    if let Some(notifier) = &services.notifier {
        notifier.run(std::future::ready(())).await;
    }
    match tokio::time::timeout(SEND_TIMEOUT, services.outbox.send_due()).await {
        Ok(pass) if pass.retried > 0 => {
            let kept = if services.config.state.is_durable() {
                "kept in the state store for the next run"
            } else {
                "lost: no [state] dir to keep it"
            };
            tracing::warn!(
                retried = pass.retried,
                "outbox: {} message(s) not sent now, {kept}",
                pass.retried
            );
        }
        Ok(_) => {}
        Err(_) => tracing::warn!(
            timeout_secs = SEND_TIMEOUT.as_secs(),
            "outbox: not done in time; the rest stays queued"
        ),
    }
}

/// Waits (bounded) until the tasks the delivery spawned have finished: the runtime would
/// drop them at exit.
async fn drain(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let metrics = tokio::runtime::Handle::current().metrics();
    // `block_on`'s own future is not a task: any alive task is one the delivery spawned.
    while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Postfix's local(8) exports the original client as `CLIENT_ADDRESS`, `CLIENT_HOSTNAME`
/// and `CLIENT_HELO`: Sieve's `remote-ip` / `remote-host` and the Received header.
fn client_from_env() -> Client {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty() && v != "unknown")
            .map(|v| {
                crate::mail::text::sanitize(&v, 255, crate::mail::text::Charset::Ascii).into_owned()
            })
    };
    Client {
        name: var("CLIENT_HOSTNAME"),
        addr: var("CLIENT_ADDRESS").and_then(|a| crate::mail::envelope::parse_ip(&a)),
        helo: var("CLIENT_HELO"),
        queue_id: None,
    }
}

/// `<a@b>` → `a@b`; `<>` → `""`, the null sender.
fn strip_brackets(address: &str) -> String {
    let a = address.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        use delivery::Deferral;
        let ok = || Fate::Delivered(RcptOutcome::Discarded);
        let temp = || Fate::Delivered(RcptOutcome::Deferred(Deferral::ScanFailed));
        let rejected = || {
            Fate::Delivered(RcptOutcome::Rejected {
                reason: "no".into(),
                extended: false,
            })
        };
        let unknown = || Fate::Unknown("x@y".into());
        let cases: Vec<(Vec<Fate>, u8)> = vec![
            (vec![ok()], exit::OK),
            (vec![ok(), unknown()], exit::NOUSER),
            (vec![rejected(), ok()], exit::NOPERM),
            (vec![rejected(), unknown()], exit::NOUSER),
            (vec![unknown(), temp()], exit::TEMPFAIL),
            (vec![Fate::Unavailable, ok()], exit::TEMPFAIL),
        ];
        for (fates, want) in cases {
            let rcpts: Vec<String> = fates.iter().map(|_| "r@x".to_string()).collect();
            assert_eq!(status(&rcpts, &fates), want, "{fates:?}");
        }
    }

    #[test]
    fn brackets() {
        for (input, want) in [("<a@b>", "a@b"), ("a@b", "a@b"), ("<>", ""), ("", "")] {
            assert_eq!(strip_brackets(input), want);
        }
    }
}
