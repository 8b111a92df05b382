//! Abuse reporting that cannot be amplified or poisoned, through the real binary with a
//! real clamd, Postfix's smtp-sink as the relay and RDAP on loopback:
//! - a report bomb (1000 infected messages from 1000 addresses of one /64, one abuse
//!   contact) gives at most one report;
//! - with RDAP unreachable (a port that accepts and never answers) infected deliveries stay
//!   fast and reports beyond `max_lookups_in_flight` are skipped, not queued;
//! - a virus in a header field never goes out in a notice or report;
//! - hostile bytes in every field interpolated into a notice or report stay out of the
//!   headers and lines we write.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::eicar;
use crate::support::env::{Env, Options};
use crate::support::messages::{infected_message, transaction_as};
use crate::support::rdap::{RdapServer, ABUSE};
use crate::support::smtp_sink::{SmtpSink, Transaction};

const POSTMASTER: &str = "postmaster@noc.example.net";
const REPORT_FROM: &str = "abuse-reports@example.test";

fn start(sink: &SmtpSink, abuse: &str, postmaster: bool) -> (Env, Running) {
    let mut options = Options::new(Clamd::shared().addr());
    let notify = if postmaster {
        format!(
            "[notify]\npostmaster = \"{POSTMASTER}\"\nrelay = \"{}\"",
            sink.addr()
        )
    } else {
        format!("[notify]\nrelay = \"{}\"", sink.addr())
    };
    options.extra_sections = vec![
        "[state]\ndir = \"state\"".into(),
        notify,
        format!("[abuse]\nenabled = true\nreport_from = \"{REPORT_FROM}\"\n{abuse}"),
    ];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    (env, server)
}

/// One LMTP transaction as Postfix would send it, XFORWARD naming the client; the reply.
fn send(server: &Running, xforward: &str, from: &str, message: &[u8]) -> String {
    let input = transaction_as(xforward, from, &["alice@example.test"], message);
    let mut stream = tcp(server.addr);
    stream.write_all(&input).expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

fn xforward(addr: &str) -> String {
    format!("XFORWARD NAME=mail.sender.example ADDR={addr} HELO=sender.example IDENT=Q1\r\n")
}

/// `count` infected messages from the addresses `addr(i)`, over 4 connections at once;
/// the sorted per-message latencies.
fn bomb(server: &Running, count: usize, addr: impl Fn(usize) -> String + Sync) -> Vec<Duration> {
    let message = infected_message();
    let mut all: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (message, addr) = (&message, &addr);
                scope.spawn(move || {
                    let mut times = Vec::new();
                    for i in (t..count).step_by(4) {
                        let started = Instant::now();
                        let reply =
                            send(server, &xforward(&addr(i)), "forged@example.org", message);
                        times.push(started.elapsed());
                        assert!(
                            reply.contains("250 2.0.0 <alice@example.test>")
                                || reply.contains("250 2.6.0")
                                || reply.matches("\r\n250").count() >= 4,
                            "{reply}"
                        );
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn reports(sink: &SmtpSink) -> Vec<Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| t.mail_from.contains(REPORT_FROM))
        .collect()
}

#[test]
fn a_report_bomb_from_one_network_to_one_contact_is_one_report() {
    let sink = SmtpSink::start();
    let rdap = RdapServer::start();
    let (_env, server) = start(
        &sink,
        &format!("rdap_base_urls = [\"http://127.0.0.1:{}/rdap\"]", rdap.port),
        false,
    );
    let times = bomb(&server, 1000, |i| format!("IPV6:2001:db8:1::{:x}", i + 1));
    println!(
        "1000 infected messages from one /64: p50 {:?}, p99 {:?}",
        percentile(&times, 50),
        percentile(&times, 99)
    );
    let first = sink.wait_for(1, Duration::from_secs(30));
    // Let the outbox drain whatever else it might have.
    std::thread::sleep(Duration::from_secs(3));
    let sent = reports(&sink);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(first.len(), 1);
    assert_eq!(sent[0].rcpt_to, [format!("<{ABUSE}>")]);
    let logs = server.logs();
    let limited = logs.matches("abuse report: rate limited").count();
    let skipped = logs.matches("abuse report skipped").count();
    let lookups = rdap.requests().len();
    println!("held by the rate limits: {limited}, skipped (in flight): {skipped}, RDAP lookups: {lookups}");
    assert_eq!(
        limited + skipped,
        999,
        "every other incident is accounted for"
    );
    // The answer names the /64: one lookup serves its addresses (a few may race the first).
    assert!(lookups <= 8, "{lookups} lookups");
}

#[test]
fn rdap_that_never_answers_keeps_deliveries_fast_and_reports_bounded() {
    let sink = SmtpSink::start();
    // Accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let (_env, server) = start(
        &sink,
        &format!(
            "rdap_base_urls = [\"http://127.0.0.1:{port}/rdap\"]\nrdap_timeout_secs = 5\nmax_lookups_in_flight = 4"
        ),
        false,
    );
    // Every message from another /64: each would need its own lookup.
    let times = bomb(&server, 300, |i| format!("IPV6:2001:db8:{:x}::1", i + 2));
    let (p50, p99) = (percentile(&times, 50), percentile(&times, 99));
    println!("300 infected messages, RDAP silent: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 < Duration::from_secs(2),
        "p99 {p99:?}: a delivery waited for RDAP"
    );
    // The bound held: at most 4 lookups were ever running; the rest were skipped at once.
    let logs = server.logs();
    let skipped = logs.matches("abuse report skipped").count();
    println!("skipped over max_lookups_in_flight: {skipped}");
    assert!(skipped >= 250, "{skipped} skipped");
    // A clean delivery meanwhile is as fast as ever.
    let started = Instant::now();
    let reply = send(
        &server,
        &xforward("192.0.2.1"),
        "a@remote.example",
        b"Subject: hi\r\n\r\nhello\r\n",
    );
    assert!(
        reply.contains("250 2.0.0 <alice@example.test>") || reply.contains("\r\n250"),
        "{reply}"
    );
    println!("clean delivery during the storm: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(reports(&sink).is_empty());
}

fn assert_no_headers_part(t: &Transaction) {
    let text = String::from_utf8_lossy(&t.message);
    assert!(!text.contains("text/rfc822-headers"), "{text}");
    assert!(!text.contains("EICAR-STANDARD"), "{text}");
    assert!(
        !t.message.windows(11).any(|w| w == b"X-Payload: "),
        "{text}"
    );
}

#[tokio::test]
async fn a_virus_in_a_header_field_is_never_sent() {
    let sink = SmtpSink::start();
    let (_env, server) = start(
        &sink,
        "rdap_base_urls = []\noverrides = { \"203.0.113.0/24\" = \"abuse@example.net\" }",
        true,
    );
    let mut message =
        b"From: Mallory <mallory@forged.example>\r\nSubject: invoice\r\nX-Payload: ".to_vec();
    message.extend_from_slice(&eicar());
    message.extend_from_slice(
        b"\r\nMessage-ID: <hdr-virus@forged.example>\r\n\r\nno virus in the body\r\n",
    );
    let reply = send(
        &server,
        &xforward("203.0.113.7"),
        "forged@example.org",
        &message,
    );
    assert!(reply.contains("\r\n250"), "{reply}");
    let sent = sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(sent.len(), 2, "a notice and a report: {sent:#?}");
    for t in &sent {
        assert_no_headers_part(t);
        // What left is clean for clamd too.
        let scanner = sievegate::scan::Scanner::new(
            Clamd::shared().addr(),
            Duration::from_secs(30),
            Vec::new(),
        );
        let verdict = scanner.scan(&t.message).await.expect("scan");
        assert_eq!(verdict, sievegate::scan::Verdict::Clean);
    }
    assert!(server
        .logs()
        .contains("left out of the notice and the abuse report"));
}

#[test]
fn hostile_fields_stay_out_of_notice_and_report_headers() {
    let sink = SmtpSink::start();
    let (_env, server) = start(
        &sink,
        "rdap_base_urls = []\noverrides = { \"203.0.113.0/24\" = \"abuse@example.net\" }",
        true,
    );
    // Encoded-words that decode to CR LF and header lines, raw NUL and bare CR in fields,
    // and CR LF (xtext) in XFORWARD's NAME and HELO.
    let ew = "=?utf-8?b?aGkNClgtSW5qZWN0ZWQ6IHllcw0KDQo8YT5ib2R5?=";
    let message = format!(
        "From: =?utf-8?q?Mal=0D=0AX-Injected:_yes?= <mallory@forged.example>\r\n\
         Subject: {ew}\r\n\
         Message-ID: <a\x00b=0D=0AX-Injected: yes@forged.example>\r\n\
         X-Junk: a\rX-Injected: yes\r\n\r\n"
    );
    let mut message = message.into_bytes();
    message.extend_from_slice(&eicar());
    message.extend_from_slice(b"\r\n");
    let xf = "XFORWARD NAME=evil+0D+0AX-Injected:+20yes ADDR=203.0.113.8 HELO=h+0D+0AX-Injected:+20yes IDENT=Q+0A2\r\n";
    let reply = send(
        &server,
        xf,
        "\"a\\\r\nX-Injected: yes\"@forged.example",
        &message,
    );
    let reply2 = send(&server, xf, "forged@example.org", &message);
    assert!(reply2.contains("\r\n250"), "{reply} / {reply2}");
    let sent = sink.wait_for(2, Duration::from_secs(30));
    assert!(sent.len() >= 2, "{sent:#?}");
    for t in &sent {
        let m = &t.message;
        assert!(!m.contains(&0), "NUL sent");
        for line in m.split(|&b| b == b'\n') {
            assert!(
                !line.starts_with(b"X-Injected"),
                "{}",
                String::from_utf8_lossy(m)
            );
            assert!(line.ends_with(b"\r") || line.is_empty(), "bare LF");
            assert!(
                !line[..line.len().saturating_sub(1)].contains(&b'\r'),
                "bare CR"
            );
        }
        // The decoded Subject may appear as text, on one line of ours, never as a line or
        // header of its own.
        let text = String::from_utf8_lossy(m);
        for line in text.lines().filter(|l| l.contains("<a>body")) {
            assert!(
                line.starts_with("Subject:") && line.contains("hiX-Injected: yes<a>body"),
                "{line:?}"
            );
        }
    }
}
