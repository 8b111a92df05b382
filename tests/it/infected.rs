//! Infected mail end to end through the real binary: quarantine, the postmaster notice and
//! the abuse report together, with a real clamd, a real SMTP sink (Postfix's smtp-sink) as
//! the relay, and an RDAP server on loopback. This is issue 6's "done when".

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::support::binary::{bin, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{infected_message, transaction_as};
use crate::support::rdap::{infected_bounce, RdapServer, ABUSE, BOUNCE_ABUSE};
use crate::support::smtp_sink::{SmtpSink, Transaction};

const POSTMASTER: &str = "postmaster@noc.example.net";
const REPORT_FROM: &str = "abuse-reports@example.test";

/// A server with quarantine, postmaster notices to a remote address (through the sink) and
/// abuse reports (RDAP on loopback), plus the env and the peers it needs.
struct Setup {
    env: Env,
    server: Running,
    sink: SmtpSink,
    rdap: RdapServer,
}

impl Setup {
    fn start() -> Setup {
        let sink = SmtpSink::start();
        let rdap = RdapServer::start();
        let mut options = Options::new(Clamd::shared().addr());
        options.extra_sections = vec![
            "[quarantine]\nenabled = true\ndir = \"quarantine\"".into(),
            "[state]\ndir = \"state\"".into(),
            format!(
                "[notify]\npostmaster = \"{POSTMASTER}\"\nrelay = \"{}\"",
                sink.addr()
            ),
            format!(
                "[abuse]\nenabled = true\nreport_from = \"{REPORT_FROM}\"\nrdap_base_urls = [\"http://127.0.0.1:{}/rdap\"]",
                rdap.port
            ),
        ];
        let env = Env::new(options);
        let server = Running::start(&env.config_path);
        Setup {
            env,
            server,
            sink,
            rdap,
        }
    }

    /// Sends `message` from `from` to `rcpts` as Postfix would, with XFORWARD naming `addr`.
    fn send(&self, addr: &str, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        let xforward = format!(
            "XFORWARD NAME=mail.sender.example ADDR={addr} HELO=sender.example IDENT=4XQZ1\r\n"
        );
        let input = transaction_as(&xforward, from, rcpts, message);
        let mut stream = tcp(self.server.addr);
        stream.write_all(&input).expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }

    fn quarantine_json(&self) -> String {
        let out = Command::new(bin())
            .args(["quarantine", "-c"])
            .arg(&self.env.config_path)
            .args(["list", "--json"])
            .output()
            .expect("run sievegate quarantine list");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn to(t: &Transaction) -> String {
    t.rcpt_to.join(",")
}

fn text(t: &Transaction) -> String {
    String::from_utf8_lossy(&t.message).into_owned()
}

#[test]
fn infected_mail_is_quarantined_notified_and_reported_once() {
    let s = Setup::start();
    let message = infected_message();
    let out = s.send(
        "203.0.113.7",
        "forged@victim.example",
        &["alice@example.test", "bob@example.test"],
        &message,
    );
    assert_eq!(
        out.matches("250 2.0.0 <").count(),
        2,
        "both recipients get 250:\n{out}\n{}",
        s.server.logs()
    );
    assert_eq!(s.env.total_messages(), 0, "nothing in any Maildir");

    // One quarantine entry listing both recipients.
    let json = s.quarantine_json();
    assert_eq!(json.matches("\"id\"").count(), 1, "{json}");
    assert!(
        json.contains("alice@example.test") && json.contains("bob@example.test"),
        "{json}"
    );
    assert!(json.contains("203.0.113.7"), "{json}");

    // One postmaster notice and one abuse report, both to the relay, both from <>
    // (the report from report_from).
    let sent = s.sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(sent.len(), 2, "{sent:#?}\n{}", s.server.logs());
    let notice = sent
        .iter()
        .find(|t| to(t) == format!("<{POSTMASTER}>"))
        .expect("a postmaster notice");
    assert_eq!(notice.mail_from, "<>");
    let notice_text = text(notice);
    assert!(notice_text.contains("text/rfc822-headers"), "{notice_text}");
    assert!(notice_text.contains("quarantine release"), "{notice_text}");
    assert!(
        !notice_text.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
        "the notice never carries the virus"
    );
    let report = sent
        .iter()
        .find(|t| to(t) == format!("<{ABUSE}>"))
        .expect("an abuse report to the RDAP abuse contact of 203.0.113.7");
    assert_eq!(report.mail_from, format!("<{REPORT_FROM}>"));
    let report_text = text(report);
    for field in [
        "Feedback-Type: virus",
        "Source-IP: 203.0.113.7",
        "Original-Mail-From: <forged@victim.example>",
        "message/feedback-report",
        "text/rfc822-headers",
    ] {
        assert!(
            report_text.contains(field),
            "{field} missing:\n{report_text}"
        );
    }
    assert!(!report_text.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"));
    assert!(
        !sent.iter().any(|t| to(t).contains("victim.example")),
        "nothing ever goes to the forged sender"
    );

    // A second infected message from that IP within the interval: quarantined and noticed,
    // but no second report.
    let out = s.send(
        "203.0.113.7",
        "other@victim.example",
        &["alice@example.test"],
        &message,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let sent = s.sink.wait_for(3, Duration::from_secs(30));
    // Give a report that should not exist time to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    let sent_now = s.sink.transactions();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(
        sent_now
            .iter()
            .filter(|t| to(t) == format!("<{ABUSE}>"))
            .count(),
        1,
        "one report per source IP per interval:\n{}",
        s.server.logs()
    );
    assert_eq!(
        sent_now
            .iter()
            .filter(|t| to(t) == format!("<{POSTMASTER}>"))
            .count(),
        2
    );
    assert_eq!(s.quarantine_json().matches("\"id\"").count(), 2);
    assert_eq!(s.rdap.requests().len(), 1, "the RDAP answer is cached");
}

#[test]
fn an_infected_bounce_gets_a_report_asking_to_stop_bouncing() {
    let s = Setup::start();
    let bounce = infected_bounce();
    let out = s.send("198.51.100.25", "", &["alice@example.test"], &bounce);
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let sent = s.sink.wait_for(2, Duration::from_secs(30));
    let report = sent
        .iter()
        .find(|t| to(t) == format!("<{BOUNCE_ABUSE}>"))
        .unwrap_or_else(|| {
            panic!(
                "a report to the bouncer's abuse desk: {sent:#?}\n{}",
                s.server.logs()
            )
        });
    let report_text = text(report);
    assert!(
        report_text.to_ascii_lowercase().contains("bounc"),
        "the report asks the MTA to stop bouncing:\n{report_text}"
    );
    // The bounce's own headers are attached.
    assert!(
        report_text.contains("Message-ID: <bounce-1@mx.bouncer.example>"),
        "{report_text}"
    );
    assert!(
        report_text.contains("Source-IP: 198.51.100.25"),
        "{report_text}"
    );
    assert!(!report_text.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"));
    // And the quarantine marks it as backscatter.
    let json = s.quarantine_json();
    assert!(json.contains("\"backscatter\":true"), "{json}");
}

#[test]
fn heuristic_matches_are_noticed_but_not_reported() {
    // virustest 4 (a `PUA.` signature here): the likely false positive an admin wants back
    // from the quarantine, and nothing an abuse desk should hear about.
    let s = Setup::start();
    let pua = crate::support::load_message("pua.eml");
    let out = s.send(
        "203.0.113.7",
        "someone@sender.example",
        &["alice@example.test"],
        &pua,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let sent = s.sink.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let sent_now = s.sink.transactions();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent_now.len(), 1, "only the notice: {sent_now:#?}");
    assert_eq!(to(&sent_now[0]), format!("<{POSTMASTER}>"));
    assert!(s.rdap.requests().is_empty(), "no RDAP lookup either");
    assert!(s.quarantine_json().contains("\"virustest\":4"));
}
