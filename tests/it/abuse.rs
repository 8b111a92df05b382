//! Abuse reports end to end: the contact comes from a small RDAP server on loopback (RFC
//! 9083 JSON with the abuse entity nested in the registrant, as registries answer), the
//! reports are caught by a recording sink, and each one must pass a real clamd as clean.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sievegate::config::Config;
use sievegate::mail::envelope::Client;
use sievegate::report::abuse::Limit;
use sievegate::report::{
    header_section, AbuseReporter, Incident, ReportOutcome, ReportSink, SubmitError,
};
use sievegate::scan::{Scanner, Verdict};
use sievegate::state::MemoryState;

use crate::support::clamd::Clamd;
use crate::support::load_message;
use crate::support::rdap::{infected_bounce, RdapServer, ABUSE, BOUNCE_ABUSE};

/// One submitted report: envelope sender, recipients, bytes.
type Sent = (String, Vec<String>, Vec<u8>);

/// The sink: remembers every report (the outbound queue in production).
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
}

impl ReportSink for Recorder {
    fn submit(
        &self,
        _kind: &str,
        from: &str,
        to: &[String],
        message: Vec<u8>,
    ) -> Result<(), SubmitError> {
        self.sent
            .lock()
            .expect("sent")
            .push((from.to_string(), to.to_vec(), message));
        Ok(())
    }
}

fn config(abuse: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:2424"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:/run/clamd.sock"
[mailbox]
domains = ["example.test"]
maildir = "/var/vmail/%d/%n/Maildir"
[abuse]
enabled = true
report_from = "abuse-reports@example.test"
{abuse}
"#
    );
    Config::from_toml(&text, Path::new("/etc/sievegate/sievegate.toml")).expect("valid config")
}

fn scanner() -> Scanner {
    Scanner::new(
        Clamd::shared().addr(),
        Duration::from_secs(30),
        vec!["Heuristics.".into(), "PUA.".into()],
    )
}

async fn virus_name(scanner: &Scanner, message: &[u8]) -> String {
    match scanner.scan(message).await.expect("scan") {
        Verdict::Infected { name, .. } => name,
        other => panic!("the test message must be infected, got {other}"),
    }
}

async fn assert_clean(scanner: &Scanner, report: &[u8]) {
    let verdict = scanner.scan(report).await.expect("scan report");
    assert_eq!(verdict, Verdict::Clean, "the report itself must scan clean");
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn incident(
    message: &[u8],
    xforward: Option<&str>,
    mail_from: &str,
    virus: &str,
    when: SystemTime,
) -> Incident {
    Incident {
        mail_from: mail_from.to_string(),
        rcpts: vec!["alice@example.test".into(), "bob@example.test".into()],
        client: Client {
            name: Some("unknown".into()),
            addr: xforward.and_then(sievegate::mail::envelope::parse_ip),
            helo: Some("infected.example.net".into()),
            queue_id: Some("4XyZ1".into()),
        },
        peer_trusted: true,
        session_id: "T1".into(),
        viruses: vec![virus.to_string()],
        headers: header_section(message).to_vec(),
        headers_withheld: None,
        received: when,
    }
}

fn fields(report: &[u8]) -> String {
    let text = String::from_utf8_lossy(report);
    let start = text.find("Feedback-Type:").expect("feedback-report part");
    let rest = &text[start..];
    rest[..rest.find("\r\n\r\n").expect("end of fields")].to_string()
}

#[tokio::test]
async fn report_goes_to_the_rdap_abuse_contact_once_per_interval() {
    let rdap = RdapServer::start();
    let sink = Arc::new(Recorder::default());
    let reporter = AbuseReporter::new(
        &config(&format!(
            "rdap_base_urls = [\"http://127.0.0.1:{}/missing\", \"http://127.0.0.1:{}/rdap/\"]\nmin_interval_secs = 86400",
            rdap.port, rdap.port
        )),
        Arc::new(MemoryState::default()),
        sink.clone(),
    )
    .expect("reporter");
    let scanner = scanner();
    let message = load_message("eicar-base64.eml");
    let virus = virus_name(&scanner, &message).await;
    let ip: IpAddr = "203.0.113.7".parse().unwrap();

    let first = reporter
        .report(incident(
            &message,
            Some("203.0.113.7"),
            "sender@example.org",
            &virus,
            at(0),
        ))
        .await;
    assert_eq!(
        first,
        ReportOutcome::Submitted {
            ip,
            to: ABUSE.into(),
            incidents: 1
        }
    );
    // Within the interval: nothing sent, counted.
    let second = reporter
        .report(incident(
            &message,
            Some("203.0.113.7"),
            "sender@example.org",
            &virus,
            at(60),
        ))
        .await;
    assert_eq!(second, ReportOutcome::Suppressed(ip, Limit::Address));
    let third = reporter
        .report(incident(
            &message,
            Some("203.0.113.7"),
            "sender@example.org",
            &virus,
            at(86_400 + 60),
        ))
        .await;
    assert_eq!(
        third,
        ReportOutcome::Submitted {
            ip,
            to: ABUSE.into(),
            incidents: 2
        }
    );

    let sent = sink.sent.lock().expect("sent").clone();
    assert_eq!(sent.len(), 2);
    let (from, to, report) = &sent[0];
    assert_eq!(from, "abuse-reports@example.test");
    assert_eq!(to, &[ABUSE.to_string()]);
    let f = fields(report);
    assert!(f.contains("Feedback-Type: virus\r\n"), "{f}");
    assert!(f.contains("Source-IP: 203.0.113.7\r\n"));
    assert!(f.contains("Original-Mail-From: <sender@example.org>\r\n"));
    assert!(f.contains(
        "Original-Rcpt-To: <alice@example.test>\r\nOriginal-Rcpt-To: <bob@example.test>\r\n"
    ));
    assert!(f.contains("Reporting-MTA: dns; mx.example.test"));
    assert!(
        !f.contains("Incidents:"),
        "the first report stands for one incident"
    );
    let text = String::from_utf8_lossy(report);
    assert!(
        text.contains("Message-ID: <eicar-base64@example.org>"),
        "original headers attached"
    );
    assert!(
        !text.contains("b64-boundary--") && !text.contains("WDVPIVAl"),
        "never the body"
    );
    assert!(!text.contains("stop bouncing"));
    assert!(fields(&sent[1].2).contains("Incidents: 2"));
    for (_, _, report) in &sent {
        assert_clean(&scanner, report).await;
    }
    // The first server 404s, the second answers. The second incident used the cached
    // answer; the third came after rdap_cache_secs (a day), so it asked again.
    let lookup = ["/missing/ip/203.0.113.7", "/rdap/ip/203.0.113.7"];
    assert_eq!(rdap.requests(), [lookup, lookup].concat());
}

/// An infected DSN (null sender) bounced to us by 198.51.100.25.
#[tokio::test]
async fn infected_bounce_asks_the_mta_to_stop_bouncing() {
    let rdap = RdapServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // The RFC 9224 bootstrap file's servers are used only over https and only at public
    // addresses: its http one is never asked, its https one (on loopback) is refused by
    // the resolver before any connection. The server the admin configured is asked.
    let bootstrap = dir.path().join("ipv4.json");
    std::fs::write(
        &bootstrap,
        format!(
            r#"{{"version": "1.0", "publication": "2026-11-01T00:00:00Z", "services": [
                [["198.51.100.0/24"], ["http://127.0.0.1:{0}/boot-http/", "https://localhost:{0}/boot-https/"]]]}}"#,
            rdap.port
        ),
    )
    .expect("write bootstrap");
    let sink = Arc::new(Recorder::default());
    let reporter = AbuseReporter::new(
        &config(&format!(
            "rdap_base_urls = [\"http://127.0.0.1:{}/boot\"]\nrdap_bootstrap = {:?}",
            rdap.port,
            bootstrap.display().to_string()
        )),
        Arc::new(MemoryState::default()),
        sink.clone(),
    )
    .expect("reporter");
    let scanner = scanner();
    let bounce = infected_bounce();
    let virus = virus_name(&scanner, &bounce).await;
    assert!(sievegate::mail::bounce::is_bounce_raw("", &bounce));

    // No XFORWARD: the source is the client in the Received header our trusted MTA added.
    let outcome = reporter
        .report(incident(&bounce, None, "", &virus, at(0)))
        .await;
    assert_eq!(
        outcome,
        ReportOutcome::Submitted {
            ip: "198.51.100.25".parse().unwrap(),
            to: BOUNCE_ABUSE.into(),
            incidents: 1
        }
    );
    let sent = sink.sent.lock().expect("sent").clone();
    let (_, to, report) = &sent[0];
    assert_eq!(to, &[BOUNCE_ABUSE.to_string()]);
    let text = String::from_utf8_lossy(report);
    assert!(
        text.contains("Please stop\r\nbouncing virus-infected mail"),
        "{text}"
    );
    for reason in [
        "forged",
        "carries the virus",
        "double bounce",
        "wastes your resources",
    ] {
        assert!(text.contains(reason), "reason {reason:?} missing");
    }
    assert!(fields(report).contains("Original-Mail-From: <>"));
    // The bounce's whole top-level header section, and nothing of its body.
    let headers_part = &text[text
        .find("Content-Type: text/rfc822-headers")
        .expect("third part")..];
    for header in [
        "Received: from mx.bouncer.example (mx.bouncer.example [198.51.100.25])",
        "From: Mail Delivery System <MAILER-DAEMON@mx.bouncer.example>",
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <bounce-1@mx.bouncer.example>",
        "Content-Type: multipart/report; report-type=delivery-status;",
    ] {
        assert!(headers_part.contains(header), "{header:?} missing");
    }
    assert!(!text.contains("Final-Recipient") && !text.contains("eicar-base64@example.org"));
    assert_clean(&scanner, report).await;
    assert_eq!(rdap.requests(), ["/boot/ip/198.51.100.25"]);
}

#[tokio::test]
async fn dry_run_and_no_contact_send_nothing() {
    let rdap = RdapServer::start();
    let base = format!("rdap_base_urls = [\"http://127.0.0.1:{}/rdap\"]", rdap.port);
    let sink = Arc::new(Recorder::default());
    let dry = AbuseReporter::new(
        &config(&format!("{base}\ndry_run = true")),
        Arc::new(MemoryState::default()),
        sink.clone(),
    )
    .expect("reporter");
    let message = load_message("eicar-base64.eml");
    let outcome = dry
        .report(incident(
            &message,
            Some("203.0.113.7"),
            "sender@example.org",
            "Eicar",
            at(0),
        ))
        .await;
    let ReportOutcome::DryRun {
        ip,
        to,
        message: report,
    } = outcome
    else {
        panic!("expected a dry run, got {outcome:?}");
    };
    assert_eq!(
        (ip.to_string(), to.as_str()),
        ("203.0.113.7".to_string(), ABUSE)
    );
    assert!(fields(&report).contains("Source-IP: 203.0.113.7"));

    let live = AbuseReporter::new(
        &config(&base),
        Arc::new(MemoryState::default()),
        sink.clone(),
    )
    .expect("reporter");
    // RDAP answers, without an abuse entity: logged, nothing sent.
    let none = live
        .report(incident(
            &message,
            Some("198.51.100.99"),
            "sender@example.org",
            "Eicar",
            at(0),
        ))
        .await;
    assert_eq!(
        none,
        ReportOutcome::NoContact("198.51.100.99".parse().unwrap())
    );
    // An address the registry does not know (404 everywhere).
    let failed = live
        .report(incident(
            &message,
            Some("192.0.2.1"),
            "sender@example.org",
            "Eicar",
            at(0),
        ))
        .await;
    assert_eq!(
        failed,
        ReportOutcome::LookupFailed("192.0.2.1".parse().unwrap())
    );
    assert!(sink.sent.lock().expect("sent").is_empty());
}
