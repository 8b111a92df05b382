//! The dry run behind `sievegate sieve test` (Pigeonhole's `sieve-test`): the chain a
//! delivery would run for one recipient and one message, up to the resulting [`Plan`],
//! which the command prints instead of executing it.
//!
//! What it shares with a delivery: admission ([`super::admit()`], the same rule as RCPT, with
//! the address's own domain counted as served) and the chain-to-Plan step
//! ([`super::pipeline::plan_for`]) on the same Sieve input (spoofable scan headers
//! stripped, the bounded Sieve view). What it does not share: the front door's scan policy
//! (a failed scan is an error here, or `--virus-status` stands in for clamd), the
//! quarantine, execution, sending and the state store. Nothing is stored, sent or written:
//! the Plan is the only output (the per-user error log is off; the state store is never
//! opened).

use std::path::PathBuf;

use crate::config::{Config, RawSieve};
use crate::delivery::view::SieveView;
use crate::delivery::{self, strip_virus_headers, Refused};
use crate::filter::{Filter, FilterConfig, FilterInput, ParsedMessage, Plan, SpamScore};
use crate::mail::address::AddressError;
use crate::scan::{ScanError, Verdict};
use crate::users::Users;

/// What `sieve test` was asked.
#[derive(Debug, Clone, Default)]
pub struct TestRequest {
    /// Runs in the personal slot instead of the user's own script.
    pub script: Option<PathBuf>,
    /// The user whose chain runs (`user@domain`); default: `to`.
    pub user: Option<String>,
    /// Envelope sender; default: the null sender.
    pub from: Option<String>,
    /// Envelope recipient; default: `user`.
    pub to: Option<String>,
    /// The verdict virustest sees (0–5); `None`: scan with the configured clamd.
    pub virus_status: Option<u8>,
    /// The score an upstream spam filter would have written: put into the message as the
    /// topmost `[sieve] spam_score_header` field, which `spamtest`/`spamtestplus` read.
    pub spam_score: Option<String>,
    /// The message, as read from the file.
    pub message: Vec<u8>,
}

/// Why `sieve test` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// Neither `--user` nor `--to`.
    #[error("give --user or --to: whose chain should run?")]
    NoUser,
    /// The address is not usable.
    #[error("{address}: {reason}")]
    Address {
        /// As given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `--virus-status` outside 0–5.
    #[error("--virus-status must be 0 to 5, not {0}")]
    VirusStatus(u8),
    /// `--spam-score` is not a number.
    #[error("--spam-score must be a number, not {0:?}")]
    SpamScore(String),
    /// clamd could not scan the message.
    #[error("clamd at {addr} could not scan the message ({source}); give --virus-status to test without clamd")]
    Scan {
        /// The configured clamd.
        addr: String,
        /// What went wrong.
        source: ScanError,
    },
    /// The async runtime for the scan could not start.
    #[error("cannot start the runtime for the scan: {0}")]
    Runtime(std::io::Error),
    /// The users file refused the user.
    #[error("{0}: not a user of this server ({1})")]
    User(String, String),
}

/// What `sieve test` found: the plan and what it ran on.
#[derive(Debug)]
pub struct TestReport {
    /// `user@domain` whose chain ran.
    pub user: String,
    /// The virustest value the scripts saw.
    pub virustest: u8,
    /// The verdict, in words.
    pub verdict: String,
    /// The Plan a delivery would execute.
    pub plan: Plan,
}

/// The verdict `--virus-status` stands for.
fn verdict_for(status: u8) -> Result<Verdict, TestError> {
    Ok(match status {
        0 => Verdict::Unscanned,
        // 2 and 3 (replaced, cured) are never produced by clamd: the closest verdict is clean.
        1..=3 => Verdict::Clean,
        4 => Verdict::Infected {
            name: "Heuristics.SieveTest".into(),
            heuristic: true,
        },
        5 => Verdict::Infected {
            name: "SieveTest.Virus".into(),
            heuristic: false,
        },
        other => return Err(TestError::VirusStatus(other)),
    })
}

/// Runs the chain for the request under `config`; never writes anything.
pub fn run(config: &Config, request: &TestRequest) -> Result<TestReport, TestError> {
    let user = request
        .user
        .as_deref()
        .or(request.to.as_deref())
        .ok_or(TestError::NoUser)?;
    // The tool also answers for domains not (yet) served: the address's own domain counts.
    let mut mailbox = config.mailbox.clone();
    if let Some((_, domain)) = user.rsplit_once('@') {
        mailbox.domains.push(domain.to_lowercase());
    }
    let users = Users::new(config.mailbox.users_file.as_deref());
    let mut rcpt = delivery::admit(&mailbox, &users, user).map_err(|e| match e {
        Refused::Address(reason) => TestError::Address {
            address: user.to_string(),
            reason: match reason {
                AddressError::Syntax => "not an address",
                AddressError::UnknownDomain => "domain not served",
                AddressError::UnsafeLocalPart => "unsafe local part",
            },
        },
        Refused::User { rcpt, refusal } => TestError::User(rcpt.user(), refusal.to_string()),
    })?;
    if let Some(to) = &request.to {
        rcpt.original = to.clone();
    }
    let verdict = match request.virus_status {
        Some(status) => verdict_for(status)?,
        None => scan(config, &request.message)?,
    };
    let sieve = &config.sieve;
    let spam = spam_header(config, request.spam_score.as_deref())?;
    let mut scripts = sieve.scripts.clone();
    // No side effects: the per-user error log is a write.
    scripts.user_log_size = 0;
    let filter = Filter::new(FilterConfig {
        personal: match &request.script {
            // `%` in a path given on the command line is literal, not a template.
            Some(path) => Some(path.to_string_lossy().replace('%', "%%")),
            None => sieve.personal.clone(),
        },
        scripts,
        spam_score: spam
            .as_ref()
            .map(|(source, _)| source.clone())
            .or_else(|| sieve.spam_score.clone()),
        ..crate::delivery::build::filter_config(sieve, &config.server.hostname)
    });
    let body = strip_virus_headers(&request.message);
    // The score goes where the upstream filter writes it: on top of the header, so the
    // run reads it exactly as a delivery would (only the topmost instance counts).
    let body = match &spam {
        Some((_, field)) => {
            let mut with_score = field.clone().into_bytes();
            with_score.extend_from_slice(&body);
            std::borrow::Cow::Owned(with_score)
        }
        None => body,
    };
    let view = SieveView::new(&body, &sieve.limits);
    let parsed = ParsedMessage::new(view.bytes());
    let from = request.from.clone().unwrap_or_default();
    // `mailboxexists` and `:specialuse` read the user's Maildir (read-only: no side effect).
    let maildir = rcpt.expand(&config.mailbox.maildir);
    let input = FilterInput {
        message: &body,
        mail_from: &from,
        rcpt: &rcpt,
        verdict: &verdict,
        remote_ip: None,
        remote_host: None,
        maildir: Some(&maildir),
        queue_id: None,
    };
    let mut plan = super::pipeline::plan_for(&filter, &input, &parsed, None);
    plan.notes.extend(view.notes());
    if spam.is_some() && sieve.spam_score.is_none() {
        plan.notes.push(format!(
            "--spam-score: [sieve] spam_score_header is not set, so deliveries see spamtest 0; \
             this run used {DEFAULT_SPAM_HEADER} with spam_score_max {}",
            RawSieve::default().spam_score_max
        ));
    }
    Ok(TestReport {
        user: rcpt.user(),
        virustest: verdict.virustest(),
        verdict: verdict.to_string(),
        plan,
    })
}

/// The header `--spam-score` is written into when `[sieve] spam_score_header` is not set
/// (rspamd's and SpamAssassin's).
pub const DEFAULT_SPAM_HEADER: &str = "X-Spam-Score";

/// For `--spam-score`: where the score is read from (the configured header and maximum, or
/// [`DEFAULT_SPAM_HEADER`] and the default maximum) and the header line carrying it.
fn spam_header(
    config: &Config,
    score: Option<&str>,
) -> Result<Option<(SpamScore, String)>, TestError> {
    let Some(text) = score else {
        return Ok(None);
    };
    let score = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .ok_or_else(|| TestError::SpamScore(text.to_string()))?;
    let source = config
        .sieve
        .spam_score
        .clone()
        .unwrap_or_else(|| SpamScore {
            header: DEFAULT_SPAM_HEADER.to_string(),
            max: RawSieve::default().spam_score_max,
        });
    let field = format!("{}: {score}\r\n", source.header);
    Ok(Some((source, field)))
}

/// Scans with the configured clamd, as a delivery would.
fn scan(config: &Config, message: &[u8]) -> Result<Verdict, TestError> {
    let scanner = crate::delivery::build::scanner(&config.scanner);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TestError::Runtime)?;
    runtime
        .block_on(scanner.scan(message))
        .map_err(|source| TestError::Scan {
            addr: scanner.addr().to_string(),
            source,
        })
}
