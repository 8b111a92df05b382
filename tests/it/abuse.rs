//! Abuse reports end to end: the contact comes from a small RDAP server on loopback (RFC
//! 9083 JSON with the abuse entity nested in the registrant, as registries answer), the
//! reports are caught by a recording sink, and each one must pass a real clamd as clean.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sievegate::config::Config;
use sievegate::delivery::Client;
use sievegate::report::{
    header_section, is_bounce, AbuseReporter, Incident, ReportOutcome, ReportSink, SubmitError,
};
use sievegate::scan::{Scanner, Verdict};
use sievegate::state::MemoryState;

use crate::support::clamd::Clamd;
use crate::support::load_message;

const ABUSE: &str = "abuse@rdap-test.example";
const BOUNCE_ABUSE: &str = "abuse@bouncer.example";

/// A one-thread HTTP/1.1 server on 127.0.0.1 answering `GET /rdap/ip/ADDR` (and the same
/// under `/boot/`) with an RFC 9083 network object; 404 for other addresses.
struct RdapServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

fn network_json(ip: &str, abuse: &str) -> String {
    // ARIN-like: the abuse contact is an entity inside the registrant organisation.
    format!(
        r#"{{
  "rdapConformance": ["rdap_level_0"],
  "objectClassName": "ip network",
  "handle": "NET-TEST-1",
  "startAddress": "{ip}", "endAddress": "{ip}", "ipVersion": "v4",
  "name": "TEST-NET", "type": "ASSIGNMENT",
  "entities": [
    {{"objectClassName": "entity", "handle": "ORG-TEST", "roles": ["registrant"],
      "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["fn", {{}}, "text", "Test Org"],
                               ["kind", {{}}, "text", "org"], ["email", {{}}, "text", "hostmaster@rdap-test.example"]]],
      "entities": [
        {{"objectClassName": "entity", "handle": "NOC-TEST", "roles": ["technical"],
          "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["email", {{}}, "text", "noc@rdap-test.example"]]]}},
        {{"objectClassName": "entity", "handle": "ABUSE-TEST", "roles": ["abuse"],
          "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["fn", {{}}, "text", "Abuse desk"],
                                   ["email", {{"type": "work"}}, "text", "{abuse}"]]]}}
      ]}}
  ]
}}"#
    )
}

impl RdapServer {
    fn start() -> RdapServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind RDAP server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                log.lock().expect("log").push(path.clone());
                let ip = path
                    .strip_prefix("/rdap/ip/")
                    .or_else(|| path.strip_prefix("/boot/ip/"))
                    .unwrap_or("");
                let (status, body) = match ip {
                    "203.0.113.7" => ("200 OK", network_json(ip, ABUSE)),
                    "198.51.100.25" => ("200 OK", network_json(ip, BOUNCE_ABUSE)),
                    "198.51.100.99" => ("200 OK", r#"{"objectClassName": "ip network", "entities": [{"roles": ["registrant"]}]}"#.to_string()),
                    _ => ("404 Not Found", r#"{"errorCode": 404}"#.to_string()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/rdap+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        RdapServer { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("log").clone()
    }
}

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
            addr: xforward.map(str::to_string),
            helo: Some("infected.example.net".into()),
            queue_id: Some("4XyZ1".into()),
        },
        peer_trusted: true,
        session_id: "T1".into(),
        viruses: vec![virus.to_string()],
        headers: header_section(message).to_vec(),
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
    assert_eq!(second, ReportOutcome::Suppressed(ip));
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
fn infected_bounce() -> Vec<u8> {
    let original = String::from_utf8(load_message("eicar-base64.eml")).expect("ascii fixture");
    let dsn = format!(
        "Received: from mx.bouncer.example (mx.bouncer.example [198.51.100.25])\r\n\
         \tby mx.example.test (Postfix) with ESMTP id 4BnC3;\r\n\
         \tSat, 28 Nov 2026 06:00:00 +0000 (UTC)\r\n\
         Return-Path: <>\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.bouncer.example>\r\n\
         To: alice@example.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <bounce-1@mx.bouncer.example>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"dsn-boundary\"\r\n\
         \r\n\
         --dsn-boundary\r\n\
         Content-Type: text/plain\r\n\r\n\
         Your message could not be delivered.\r\n\r\n\
         --dsn-boundary\r\n\
         Content-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.bouncer.example\r\n\r\n\
         Final-Recipient: rfc822; nobody@bouncer.example\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\r\n\
         --dsn-boundary\r\n\
         Content-Type: message/rfc822\r\n\r\n\
         {original}\r\n\
         --dsn-boundary--\r\n"
    );
    dsn.into_bytes()
}

#[tokio::test]
async fn infected_bounce_asks_the_mta_to_stop_bouncing() {
    let rdap = RdapServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // The RFC 9224 bootstrap file picks the server for 198.51.100.0/24.
    let bootstrap = dir.path().join("ipv4.json");
    std::fs::write(
        &bootstrap,
        format!(
            r#"{{"version": "1.0", "publication": "2026-11-01T00:00:00Z", "services": [
                [["198.51.100.0/24"], ["http://127.0.0.1:{}/boot/"]]]}}"#,
            rdap.port
        ),
    )
    .expect("write bootstrap");
    let sink = Arc::new(Recorder::default());
    let reporter = AbuseReporter::new(
        &config(&format!(
            "rdap_base_urls = []\nrdap_bootstrap = {:?}",
            bootstrap.display().to_string()
        )),
        Arc::new(MemoryState::default()),
        sink.clone(),
    )
    .expect("reporter");
    let scanner = scanner();
    let bounce = infected_bounce();
    let virus = virus_name(&scanner, &bounce).await;
    assert!(is_bounce("", &bounce));

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
