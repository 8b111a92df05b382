//! After the final dot: scan the message once, then for each recipient run Sieve to a Plan,
//! execute it, log one line, and produce exactly one reply — in RCPT order.

use std::sync::Arc;

use super::{reply, reply::Reply, Peer, Services, Transaction, Xforward};
use crate::config::OnScanFailure;
use crate::delivery::headers::{strip_virus_headers, trace_headers, ClientInfo, TraceInfo};
use crate::delivery::{self, RcptOutcome};
use crate::filter::{FilterInput, ParsedMessage};
use crate::scan::Verdict;
use crate::store::maildir::Maildir;

/// What the session knows about the client, copied for the blocking delivery task.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub session_id: String,
    pub lhlo: Option<String>,
    pub xforward: Xforward,
    pub peer: Peer,
}

/// Scans and delivers one message; returns one reply per recipient of `txn`, in order.
pub(super) async fn deliver(
    services: &Arc<Services>,
    ctx: &Context,
    txn: &Transaction,
    message: Vec<u8>,
) -> Vec<Reply> {
    let size = message.len();
    let message_id = header_value(&message, "message-id").unwrap_or_default();
    let verdict = match services.scanner.scan(&message).await {
        Ok(verdict) => verdict,
        Err(error) => match services.config.scanner.on_failure {
            OnScanFailure::Tempfail => {
                tracing::warn!(error = %error, "virus scan failed: every recipient gets 451, the MTA retries");
                return txn
                    .rcpts
                    .iter()
                    .map(|rcpt| {
                        let r = reply::scan_failed(&rcpt.original);
                        tracing::info!(
                            queue_id = ctx.xforward.ident.as_deref().unwrap_or(""),
                            from = %txn.mail_from,
                            to = %rcpt.original,
                            message_id = %message_id,
                            size,
                            verdict = "error",
                            delay_ms = txn.started.elapsed().as_millis() as u64,
                            status = %r,
                            "deferred"
                        );
                        r
                    })
                    .collect();
            }
            OnScanFailure::DeliverUnscanned => {
                tracing::warn!(error = %error, "virus scan failed: delivering unscanned (on_failure = deliver-unscanned)");
                Verdict::Unscanned
            }
        },
    };

    let services = Arc::clone(services);
    let ctx = ctx.clone();
    let txn_owned = txn.clone();
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        deliver_all(&services, &ctx, &txn_owned, &message, &message_id, &verdict)
    });
    match task.await {
        Ok(replies) => replies,
        Err(e) => {
            // A panic in the filter or store must not take the server down or lose mail.
            tracing::error!(error = %e, "delivery task failed: every recipient gets 451");
            txn.rcpts
                .iter()
                .map(|r| reply::local_error(&r.original))
                .collect()
        }
    }
}

/// The blocking part: Sieve and the store, recipient by recipient.
fn deliver_all(
    services: &Services,
    ctx: &Context,
    txn: &Transaction,
    message: &[u8],
    message_id: &str,
    verdict: &Verdict,
) -> Vec<Reply> {
    let config = &services.config;
    // Spoofable scan headers go before Sieve sees the message and before it is stored.
    let body = strip_virus_headers(message);
    let parsed = ParsedMessage::new(&body);
    let received_at = std::time::SystemTime::now();
    let peer_addr = match ctx.peer {
        Peer::Tcp(addr) => Some(addr.ip().to_string()),
        Peer::Unix => None,
    };
    let x = &ctx.xforward;
    let client = (x.name.is_some() || x.addr.is_some() || x.helo.is_some()).then_some(ClientInfo {
        name: x.name.as_deref(),
        addr: x.addr.as_deref(),
        helo: x.helo.as_deref(),
    });
    let (virus, virustest) = match verdict {
        Verdict::Infected { name, .. } => (name.as_str(), verdict.virustest()),
        _ => ("", verdict.virustest()),
    };
    let verdict_word = match verdict {
        Verdict::Clean => "clean",
        Verdict::Infected { .. } => "infected",
        Verdict::Unscanned => "unscanned",
    };
    txn.rcpts
        .iter()
        .map(|rcpt| {
            let input = FilterInput {
                message: &body,
                mail_from: &txn.mail_from,
                rcpt,
                verdict,
                remote_ip: x.addr.as_deref(),
                remote_host: x.name.as_deref(),
            };
            let plan = services.filter.plan_parsed(&input, &parsed);
            let info = TraceInfo {
                return_path: &txn.mail_from,
                hostname: &config.server.hostname,
                session_id: &ctx.session_id,
                helo: ctx.lhlo.as_deref(),
                peer_addr: peer_addr.as_deref(),
                client,
                verdict,
                scanner_name: "ClamAV using sievegate",
                received_at,
            };
            let header = trace_headers(&info, rcpt);
            let maildir = Maildir::new(rcpt.expand(&config.mailbox.maildir));
            let (outcome, notes) = delivery::execute(&plan, &maildir, &header, &body);
            let r = match &outcome {
                RcptOutcome::Delivered { .. } => reply::delivered(&rcpt.original, &ctx.session_id),
                RcptOutcome::Discarded => reply::discarded(&rcpt.original, &ctx.session_id),
                RcptOutcome::Rejected { reason, .. } => reply::rejected(&rcpt.original, reason),
                RcptOutcome::Failed { error } => {
                    tracing::error!(to = %rcpt.original, error = %error, "store failed");
                    if error.is_no_space() {
                        reply::mailbox_full(&rcpt.original)
                    } else {
                        reply::local_error(&rcpt.original)
                    }
                }
            };
            let notes: Vec<&str> = plan
                .notes
                .iter()
                .chain(notes.iter())
                .map(String::as_str)
                .collect();
            tracing::info!(
                queue_id = ctx.xforward.ident.as_deref().unwrap_or(""),
                from = %txn.mail_from,
                to = %rcpt.original,
                mailbox = %rcpt.user(),
                message_id = %message_id,
                size = message.len(),
                verdict = verdict_word,
                virustest,
                virus,
                actions = %outcome.summary(),
                notes = %notes.join("; "),
                delay_ms = txn.started.elapsed().as_millis() as u64,
                status = %r,
                "{}",
                match outcome {
                    RcptOutcome::Delivered { .. } => "delivered",
                    RcptOutcome::Discarded => "discarded",
                    RcptOutcome::Rejected { .. } => "rejected",
                    RcptOutcome::Failed { .. } => "deferred",
                }
            );
            r
        })
        .collect()
}

/// The unfolded value of the first header `name` (lowercase) in the header section, for
/// logs. Tolerates bare LF; stops at the first empty line.
fn header_value(message: &[u8], name: &str) -> Option<String> {
    let mut lines = message.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
        {
            continue;
        }
        let mut value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_string();
        while let Some(next) = lines.peek() {
            if !matches!(next.first(), Some(b' ' | b'\t')) {
                break;
            }
            let next = next.strip_suffix(b"\r").unwrap_or(next);
            value.push(' ');
            value.push_str(String::from_utf8_lossy(next).trim());
            lines.next();
        }
        return Some(reply::sanitize(value.trim(), 255));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::header_value;

    #[test]
    fn header_value_table() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody",
                Some("<a@b>"),
            ),
            (b"message-id:\r\n <folded@b>\r\n\r\n", Some("<folded@b>")),
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            (b"Message-ID: <lf@b>\nSubject: y\n\n", Some("<lf@b>")),
            (b"no headers at all", None),
        ];
        for (msg, want) in cases {
            assert_eq!(
                header_value(msg, "message-id").as_deref(),
                *want,
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }
}
