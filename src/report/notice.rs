//! The postmaster notice: one short message per infected message to `[notify] postmaster`,
//! saying what was found, in what envelope, from which client, and how to release it from
//! quarantine. It never carries infected content: only the original header section, as a
//! `text/rfc822-headers` part (RFC 6522 §4), next to the text.
//!
//! Every notice has the null envelope sender `<>` and `Auto-Submitted: auto-generated`
//! (RFC 3834 §5), so no MTA bounces it and no responder answers it: it cannot loop.
//!
//! **Rate limit.** At most `[notify] max_per_minute` notices go out per window of one minute
//! (starting at the first infected message after a quiet spell). The rest of that window are
//! collected and, when it ends, listed in one digest. The collector lives in this process's
//! memory: the count starts again at a restart, and a digest still pending at shutdown is
//! queued at once (see [`Notifier::run`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use crate::config::Config;
use crate::mail::envelope::{Client, Envelope};
use crate::mail::text::{sanitize, Charset};
use crate::outbound::{new_message_id, Outbox};
use crate::scan::Verdict;

/// The queue kind of a notice (logs).
pub const NOTICE_KIND: &str = "postmaster-notice";
/// The queue kind of a digest (logs).
pub const DIGEST_KIND: &str = "postmaster-digest";

/// At most this much of the original header section is attached (cut at a line end): a
/// hostile message may carry megabytes of header fields.
pub const MAX_ATTACHED_HEADERS: usize = crate::mail::header::MAX_BYTES;

/// Entries a digest lists one by one; beyond, only their number.
const MAX_DIGEST_ENTRIES: usize = 500;

/// Longest value (virus name, subject, address) copied into a notice's text.
const MAX_VALUE: usize = 300;

/// One infected message, as the delivery pipeline knows it: everything a notice says.
/// Plain data; [`InfectedMessage::new`] fills it from the pipeline's own types.
#[derive(Debug, Clone)]
pub struct InfectedMessage {
    /// Our transaction id (the `Received` header's `id`, the logs).
    pub id: String,
    /// When it arrived.
    pub received_at: SystemTime,
    /// Envelope sender (MAIL FROM) without brackets; `""` for the null sender.
    pub mail_from: String,
    /// Envelope recipients, as given in RCPT TO, in order.
    pub rcpts: Vec<String>,
    /// The MTA's client (XFORWARD): address, name, HELO, queue id.
    pub client: Client,
    /// The signature names clamd reported.
    pub viruses: Vec<String>,
    /// The RFC 5235 `virustest` value (4 heuristic, 5 virus).
    pub virustest: u8,
    /// The message's original header section ([`original_headers`]).
    pub headers: Vec<u8>,
    /// Why the header section must not be attached (clamd found something in it, or could
    /// not scan it): the notice then goes without its `text/rfc822-headers` part and says
    /// why. `None`: attach it.
    pub headers_withheld: Option<String>,
    /// The whole message's size in bytes.
    pub size: usize,
    /// The quarantine entry, when the message was quarantined.
    pub quarantine_id: Option<String>,
    /// The message is itself a bounce (null sender, a DSN, a MAILER-DAEMON From).
    pub backscatter: bool,
}

impl InfectedMessage {
    /// Fills everything the pipeline has at hand; `quarantine_id` and `backscatter` are left
    /// `None`/`false` for the caller to set.
    pub fn new(envelope: &Envelope, verdict: &Verdict, message: &[u8]) -> Self {
        InfectedMessage {
            id: envelope.id.clone(),
            received_at: SystemTime::now(),
            mail_from: envelope.mail_from.clone(),
            rcpts: envelope.rcpts.iter().map(|r| r.original.clone()).collect(),
            client: envelope.client.clone(),
            viruses: verdict
                .virus_name()
                .map(str::to_string)
                .into_iter()
                .collect(),
            virustest: verdict.virustest(),
            headers: original_headers(message).to_vec(),
            headers_withheld: None,
            size: message.len(),
            quarantine_id: None,
            backscatter: false,
        }
    }
}

/// The header section of `message` as the one header walker reads it
/// ([`crate::mail::header::section`]): whole, well-formed field lines from the top, at most
/// [`MAX_ATTACHED_HEADERS`] bytes. A line that is not a header field ends it, so a message
/// without a blank line (or without headers) can never leak its body into a notice.
pub fn original_headers(message: &[u8]) -> &[u8] {
    crate::mail::header::section(message)
}

/// What the notice says about the original message's own headers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HeaderSummary {
    message_id: String,
    subject: String,
    from: String,
}

impl HeaderSummary {
    fn parse(headers: &[u8]) -> Self {
        let Some(parsed) = mail_parser::MessageParser::new().parse_headers(headers) else {
            return HeaderSummary::default();
        };
        let from = parsed
            .from()
            .and_then(|a| a.first())
            .map(|a| match (a.name(), a.address()) {
                (Some(name), Some(addr)) => format!("{name} <{addr}>"),
                (None, Some(addr)) => format!("<{addr}>"),
                (Some(name), None) => name.to_string(),
                (None, None) => String::new(),
            });
        HeaderSummary {
            message_id: parsed
                .message_id()
                .map(|id| format!("<{}>", clean(id)))
                .unwrap_or_default(),
            subject: clean(parsed.subject().unwrap_or_default()),
            from: clean(&from.unwrap_or_default()),
        }
    }
}

/// A value from the message or a peer, safe for one line of a notice.
fn clean(value: &str) -> String {
    sanitize(value, MAX_VALUE, Charset::Utf8).into_owned()
}

/// `<addr>`, `<>` for the null sender.
fn bracket(address: &str) -> String {
    format!("<{}>", clean(address))
}

/// RFC 5322 date-time of `t`.
fn date(t: SystemTime) -> String {
    crate::mail::date::rfc5322_date(t)
}

/// Sends the postmaster notices; built only when `[notify] postmaster` is set.
pub struct Notifier {
    outbox: Outbox,
    postmaster: String,
    /// The notices' `From:`.
    from: String,
    hostname: String,
    /// The config file, absolute, for the release command.
    config_path: PathBuf,
    max_per_minute: u32,
    /// The rate-limit window: one minute ([`Notifier::with_window`] for tests).
    window: Duration,
    collector: Mutex<Collector>,
}

/// The rate limiter's state: the current window and what it held back.
#[derive(Debug, Default)]
struct Collector {
    /// When the current window began; `None` while nothing arrived since the last one ended.
    started: Option<Instant>,
    /// Notices sent in the current window.
    sent: u32,
    /// Held back in the current window, one text entry each (at most
    /// [`MAX_DIGEST_ENTRIES`]).
    held: Vec<String>,
    /// Held back beyond `held`'s cap: counted only.
    uncounted: usize,
    /// Arrival of the first message held back, for the digest's text.
    first_held: Option<SystemTime>,
}

/// What the window held back, to be sent as one digest.
#[derive(Debug)]
struct Digest {
    entries: Vec<String>,
    uncounted: usize,
    first: SystemTime,
}

impl Collector {
    /// Ends the window when `now` is past it: returns what it held back, if anything.
    fn roll(&mut self, now: Instant, window: Duration) -> Option<Digest> {
        let started = self.started?;
        if now.duration_since(started) < window {
            return None;
        }
        self.take()
    }

    /// Ends the window now.
    fn take(&mut self) -> Option<Digest> {
        let collector = std::mem::take(self);
        let first = collector.first_held?;
        Some(Digest {
            entries: collector.held,
            uncounted: collector.uncounted,
            first,
        })
    }
}

impl Notifier {
    /// The notifier for `config`, sending through `outbox`; `None` when `[notify]
    /// postmaster` is not set (notices are off).
    pub fn new(config: &Config, outbox: Outbox) -> Option<Notifier> {
        let postmaster = config.notify.postmaster.clone()?;
        Some(Notifier {
            outbox,
            postmaster,
            from: config.notify.from.clone(),
            hostname: config.server.hostname.clone(),
            config_path: std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone()),
            max_per_minute: config.notify.max_per_minute.max(1),
            window: Duration::from_secs(60),
            collector: Mutex::new(Collector::default()),
        })
    }

    /// The same with another rate-limit window than one minute.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Tells the postmaster about `message`: a notice now, or a line in this window's
    /// digest when `max_per_minute` notices went out already. Never fails and never waits
    /// for a peer: the message is only queued (one state-store write); a failure to queue
    /// is logged.
    pub fn infected(&self, message: &InfectedMessage) {
        let now = Instant::now();
        let (expired, mut send) = {
            let mut collector = self.lock();
            let expired = collector.roll(now, self.window);
            collector.started.get_or_insert(now);
            if collector.sent < self.max_per_minute {
                collector.sent += 1;
                (expired, true)
            } else {
                self.hold(&mut collector, message);
                (expired, false)
            }
        };
        // This process's budget allowed it; the hosts sharing the state store share one.
        if send && !self.shared_slot() {
            self.hold(&mut self.lock(), message);
            send = false;
        }
        if let Some(digest) = expired {
            self.send_digest(digest);
        }
        if send {
            match self.compose_notice(message) {
                Ok(bytes) => self.queue(NOTICE_KIND, bytes),
                Err(e) => {
                    tracing::error!(id = %message.id, error = %e, "cannot build the postmaster notice")
                }
            }
        } else {
            tracing::info!(id = %message.id, max_per_minute = self.max_per_minute, "postmaster notice held for this minute's digest");
        }
    }

    /// Puts `message` in this window's digest.
    fn hold(&self, collector: &mut Collector, message: &InfectedMessage) {
        if collector.held.len() < MAX_DIGEST_ENTRIES {
            collector.held.push(self.digest_entry(message));
        } else {
            collector.uncounted += 1;
        }
        collector.first_held.get_or_insert(message.received_at);
    }

    /// One of the `max_per_minute` notices of the current window, counted across every
    /// host sharing the state store (with one host, what the collector already allows): the
    /// window is the clock's, aligned on multiples of its length so hosts agree, and its
    /// slots are `remember_once` keys that expire with it. A store that cannot answer does
    /// not hold a notice back (this process's own limit still applies).
    fn shared_slot(&self) -> bool {
        let now = SystemTime::now();
        let window_ms = self.window.as_millis().max(1);
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let index = since / window_ms;
        let left = window_ms - since % window_ms;
        let until = now
            .checked_add(Duration::from_millis(
                u64::try_from(left).unwrap_or(u64::MAX),
            ))
            .unwrap_or(now);
        let state = self.outbox.state();
        for slot in 0..self.max_per_minute {
            match state.remember_once(&format!("notice-slot:{index}:{slot}"), until, now) {
                Ok(true) => return true,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "postmaster notice: the shared rate limit cannot be read; this host's own applies");
                    return true;
                }
            }
        }
        false
    }

    /// Sends the digest of a window that has ended. [`Notifier::run`] calls it; exposed for
    /// callers with their own timer. Returns true when a digest was queued.
    pub fn flush_expired(&self) -> bool {
        let expired = self.lock().roll(Instant::now(), self.window);
        expired.map(|d| self.send_digest(d)).is_some()
    }

    /// Sends digests as their windows end, until `shutdown` resolves; then queues a digest
    /// still pending at once, so nothing collected is lost by stopping.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let tick = (self.window / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(tick) => { self.flush_expired(); }
            }
        }
        let pending = self.lock().take();
        if let Some(digest) = pending {
            self.send_digest(digest);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Collector> {
        // The collector holds plain counters and strings; a panic elsewhere cannot leave
        // them inconsistent enough to matter.
        self.collector.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, kind: &str, message: Vec<u8>) {
        match self
            .outbox
            .enqueue(kind, "", std::slice::from_ref(&self.postmaster), message)
        {
            Ok(ids) => {
                tracing::info!(kind, to = %self.postmaster, queue_ids = ?ids, "queued for the postmaster")
            }
            Err(e) => {
                tracing::error!(kind, to = %self.postmaster, error = %e, "cannot queue the postmaster's message")
            }
        }
    }

    fn send_digest(&self, digest: Digest) {
        match self.compose_digest(&digest) {
            Ok(bytes) => self.queue(DIGEST_KIND, bytes),
            Err(e) => tracing::error!(error = %e, "cannot build the postmaster digest"),
        }
    }

    /// The exact command that releases quarantine entry `id`.
    pub fn release_command(&self, id: &str) -> String {
        format!(
            "sievegate quarantine release {} -c {}",
            clean(id),
            self.config_path.display()
        )
    }

    fn viruses(message: &InfectedMessage) -> String {
        if message.viruses.is_empty() {
            "unnamed".to_string()
        } else {
            clean(&message.viruses.join(", "))
        }
    }

    /// The notice for `message`, a complete RFC 5322 message (CRLF):
    /// `multipart/mixed` of the `text/plain` report and the `text/rfc822-headers` original
    /// header section.
    pub fn compose_notice(&self, message: &InfectedMessage) -> std::io::Result<Vec<u8>> {
        let viruses = Self::viruses(message);
        // Short enough for one line (a longer Subject gets RFC 2047-encoded by
        // mail-builder): the quarantine id is in the text.
        let fate = match &message.quarantine_id {
            Some(_) => "quarantined",
            None => "discarded",
        };
        let subject = format!("[sievegate] virus found: {viruses} ({fate})");
        let text = self.notice_text(message);
        let mut parts = vec![MimePart::new("text/plain", text)];
        if message.headers_withheld.is_none() {
            let headers = original_headers(&message.headers).to_vec();
            parts.push(MimePart::new("text/rfc822-headers", headers));
        } else {
            tracing::warn!(id = %message.id, reason = ?message.headers_withheld, "postmaster notice sent without the original header section");
        }
        let body = MimePart::new("multipart/mixed", parts);
        self.builder(subject).body(body).write_to_vec()
    }

    /// The headers every message to the postmaster has.
    fn builder(&self, subject: String) -> MessageBuilder<'_> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        MessageBuilder::new()
            .from(self.from.as_str())
            .to(self.postmaster.as_str())
            .subject(subject)
            .date(Date::new(i64::try_from(now).unwrap_or(i64::MAX)))
            .message_id(new_message_id(&self.hostname))
            .header("Auto-Submitted", Raw::new("auto-generated"))
    }

    fn notice_text(&self, m: &InfectedMessage) -> String {
        let summary = HeaderSummary::parse(&m.headers);
        let mut t = String::new();
        let mut line = |label: &str, value: &str| {
            t.push_str(&format!("{label:<17} {value}\r\n"));
        };
        line(
            "Virus:",
            &format!("{} (virustest {})", Self::viruses(m), m.virustest),
        );
        match &m.quarantine_id {
            Some(id) => {
                line("Quarantine id:", &clean(id));
                line("Release with:", &self.release_command(id));
            }
            None => line("Quarantine:", "none, the message is gone"),
        }
        if m.backscatter {
            line(
                "Backscatter:",
                "yes, this message is itself a bounce carrying a virus",
            );
        }
        line("Received:", &date(m.received_at));
        line("Envelope sender:", &bracket(&m.mail_from));
        let rcpts: Vec<String> = m.rcpts.iter().map(|r| bracket(r)).collect();
        line("Recipients:", &rcpts.join(", "));
        let client = &m.client;
        let known =
            |v: &Option<String>| v.as_deref().map(clean).unwrap_or_else(|| "unknown".into());
        line(
            "Client address:",
            &known(&client.addr.map(|ip| ip.to_string())),
        );
        line("Client name:", &known(&client.name));
        line("Client HELO:", &known(&client.helo));
        line("MTA queue id:", &known(&client.queue_id));
        line("sievegate id:", &clean(&m.id));
        line("Size:", &format!("{} bytes", m.size));
        line("Message-ID:", &summary.message_id);
        line("From:", &summary.from);
        line("Subject:", &summary.subject);

        let mut text = format!(
            "sievegate on {host} found a virus in a message and did not deliver it.\r\n\
             No bounce was sent: the sender address of virus mail is forged, so a bounce\r\n\
             would reach an innocent third party.\r\n\r\n",
            host = self.hostname
        );
        text.push_str(&t);
        if m.backscatter {
            text.push_str(
                "\r\nThis message is a bounce (null sender, a delivery report or a\r\n\
                 MAILER-DAEMON From): a server sent a virus-carrying bounce for mail that\r\n\
                 forged an address here.\r\n",
            );
        }
        match &m.headers_withheld {
            None => text.push_str(
                "\r\nThe original header section is attached (text/rfc822-headers). The\r\n\
                 message itself is not: it would carry the virus.\r\n",
            ),
            Some(why) => text.push_str(&format!(
                "\r\nNeither the message nor its header section is attached: the header\r\n\
                 section was not safe to send ({}).\r\n",
                clean(why)
            )),
        }
        text
    }

    /// One digest entry: a few lines per message.
    fn digest_entry(&self, m: &InfectedMessage) -> String {
        let summary = HeaderSummary::parse(&m.headers);
        let rcpts: Vec<String> = m.rcpts.iter().map(|r| bracket(r)).collect();
        let client = m
            .client
            .addr
            .map_or_else(|| "unknown client".into(), |ip| ip.to_string());
        let mut entry = format!(
            "- {}: {} (virustest {}){}\r\n  {} -> {}, from {}, MTA queue id {}\r\n  Message-ID {}, Subject: {}\r\n",
            date(m.received_at),
            Self::viruses(m),
            m.virustest,
            if m.backscatter { ", a bounce (backscatter)" } else { "" },
            bracket(&m.mail_from),
            rcpts.join(", "),
            client,
            m.client.queue_id.as_deref().map(clean).unwrap_or_else(|| "unknown".into()),
            summary.message_id,
            summary.subject,
        );
        match &m.quarantine_id {
            Some(id) => entry.push_str(&format!(
                "  Quarantine id {}: {}\r\n",
                clean(id),
                self.release_command(id)
            )),
            None => entry.push_str("  Not quarantined.\r\n"),
        }
        entry
    }

    fn compose_digest(&self, digest: &Digest) -> std::io::Result<Vec<u8>> {
        let count = digest.entries.len() + digest.uncounted;
        let subject = format!("[sievegate] {count} more infected messages (digest)");
        let mut text = format!(
            "sievegate on {host} found {count} more infected messages in the minute from\r\n\
             {first}, beyond notify.max_per_minute ({max} notices a minute). None was\r\n\
             delivered and no bounce was sent. One entry each:\r\n\r\n",
            host = self.hostname,
            first = date(digest.first),
            max = self.max_per_minute,
        );
        for entry in &digest.entries {
            text.push_str(entry);
        }
        if digest.uncounted > 0 {
            text.push_str(&format!(
                "- and {} more, not listed (see the log)\r\n",
                digest.uncounted
            ));
        }
        self.builder(subject)
            .body(MimePart::new("text/plain", text))
            .write_to_vec()
    }
}

#[cfg(test)]
mod tests;
