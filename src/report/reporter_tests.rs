//! The reporter end to end without a network: contacts from `overrides`, the rate limit and
//! the cache in [`MemoryState`], a recording sink.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::abuse::Limit;
use super::*;
use crate::config::Config;
use crate::mail::envelope::Client;
use crate::state::{MemoryState, StateStore};

/// One submitted message: kind, from, to, bytes.
type Sent = (String, String, Vec<String>, Vec<u8>);

/// Remembers what it was given.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
}

impl ReportSink for Recorder {
    fn submit(
        &self,
        kind: &str,
        from: &str,
        to: &[String],
        message: Vec<u8>,
    ) -> Result<(), SubmitError> {
        self.sent
            .lock()
            .map_err(|_| SubmitError("poisoned".into()))?
            .push((kind.into(), from.into(), to.to_vec(), message));
        Ok(())
    }
}

fn config(extra: &str) -> Config {
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
rdap_base_urls = []
{overrides}
{extra}
"#,
        overrides = if extra.contains("overrides") {
            ""
        } else {
            r#"overrides = { "203.0.113.0/24" = "abuse@example.net" }"#
        }
    );
    Config::from_toml(&text, Path::new("/etc/sievegate/sievegate.toml")).expect("valid config")
}

fn incident(addr: &str, at_secs: u64) -> Incident {
    Incident {
        mail_from: "forged@example.org".into(),
        rcpts: vec!["alice@example.test".into()],
        client: Client {
            addr: addr.parse().ok(),
            helo: Some("evil.example.net".into()),
            ..Client::default()
        },
        peer_trusted: true,
        session_id: "S1".into(),
        viruses: vec!["Eicar".into()],
        headers: b"From: x@example.org\r\nSubject: s\r\n\r\nbody with the virus\r\n".to_vec(),
        headers_withheld: None,
        received: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + at_secs),
    }
}

fn reporter(extra: &str) -> (AbuseReporter, Arc<MemoryState>, Arc<Recorder>) {
    let state = Arc::new(MemoryState::default());
    let sink = Arc::new(Recorder::default());
    let r = AbuseReporter::new(&config(extra), state.clone(), sink.clone()).expect("reporter");
    (r, state, sink)
}

#[test]
fn rate_limit_counts_suppressed_incidents() {
    let (r, _, sink) = reporter(
        "min_interval_secs = 3600\nnetwork_interval_secs = 0\ncontact_interval_secs = 0\nglobal_interval_secs = 0",
    );
    let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let first = r.report_blocking(&incident("203.0.113.7", 0));
    assert_eq!(
        first,
        ReportOutcome::Submitted {
            ip,
            to: "abuse@example.net".into(),
            incidents: 1
        }
    );
    assert_eq!(
        r.report_blocking(&incident("203.0.113.7", 10)),
        ReportOutcome::Suppressed(ip, Limit::Address)
    );
    assert_eq!(
        r.report_blocking(&incident("203.0.113.7", 20)),
        ReportOutcome::Suppressed(ip, Limit::Address)
    );
    // Another address has its own limit.
    assert!(matches!(
        r.report_blocking(&incident("203.0.113.8", 30)),
        ReportOutcome::Submitted { incidents: 1, .. }
    ));
    let later = r.report_blocking(&incident("203.0.113.7", 3600 + 5));
    assert_eq!(
        later,
        ReportOutcome::Submitted {
            ip,
            to: "abuse@example.net".into(),
            incidents: 3
        }
    );
    let sent = sink.sent.lock().unwrap();
    assert_eq!(sent.len(), 3);
    let (kind, from, to, message) = &sent[2];
    assert_eq!(
        (kind.as_str(), from.as_str()),
        ("abuse-report", "abuse-reports@example.test")
    );
    assert_eq!(to, &["abuse@example.net".to_string()]);
    let text = String::from_utf8_lossy(message);
    assert!(text.contains("\r\nIncidents: 3\r\n"));
    assert!(!text.contains("body with the virus"), "never the body");
}

#[test]
fn nothing_sent_when_disabled_ignored_unknown_or_dry_run() {
    let (r, _, sink) = reporter("");
    assert_eq!(
        r.report_blocking(&incident("192.168.1.1", 0)),
        ReportOutcome::Ignored("192.168.1.1".parse().unwrap())
    );
    // Our own listener address counts as ours.
    assert!(matches!(
        r.report_blocking(&incident("127.0.0.1", 0)),
        ReportOutcome::Ignored(_)
    ));
    let mut untrusted = incident("203.0.113.7", 0);
    untrusted.peer_trusted = false;
    assert!(matches!(
        r.report_blocking(&untrusted),
        ReportOutcome::NoSource(_)
    ));
    // No override and no RDAP server: a lookup failure, nothing sent.
    assert!(matches!(
        r.report_blocking(&incident("198.51.100.1", 0)),
        ReportOutcome::LookupFailed(_)
    ));
    let mut report = incident("203.0.113.7", 0);
    report.headers =
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n".to_vec();
    assert_eq!(r.report_blocking(&report), ReportOutcome::AboutReport);
    assert!(sink.sent.lock().unwrap().is_empty());

    let (dry, _, sink) = reporter("dry_run = true");
    let ReportOutcome::DryRun { to, message, .. } =
        dry.report_blocking(&incident("203.0.113.7", 0))
    else {
        panic!("dry run expected");
    };
    assert_eq!(to, "abuse@example.net");
    assert!(String::from_utf8_lossy(&message).contains("Feedback-Type: virus"));
    assert!(sink.sent.lock().unwrap().is_empty());

    let (off, _, sink) = reporter("");
    let mut cfg = config("");
    cfg.abuse.enabled = false;
    let off2 = AbuseReporter::new(&cfg, Arc::new(MemoryState::default()), sink.clone()).unwrap();
    drop(off);
    assert_eq!(
        off2.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Disabled
    );
    assert!(sink.sent.lock().unwrap().is_empty());
}

#[test]
fn cached_answers_are_used() {
    let (r, state, sink) = reporter("");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let day = Duration::from_secs(86_400);
    state
        .cache_put(
            "rdap-net:198.51.100.0/24",
            "contact:noc@example.com",
            now + day,
        )
        .unwrap();
    state
        .cache_put("rdap-net:198.51.101.0/24", "none", now + day)
        .unwrap();
    assert!(matches!(
        r.report_blocking(&incident("198.51.100.9", 0)),
        ReportOutcome::Submitted { ref to, .. } if to == "noc@example.com"
    ));
    assert!(matches!(
        r.report_blocking(&incident("198.51.101.10", 0)),
        ReportOutcome::NoContact(_)
    ));
    // A failed lookup is remembered briefly.
    assert!(matches!(
        r.report_blocking(&incident("198.51.102.11", 0)),
        ReportOutcome::LookupFailed(_)
    ));
    assert_eq!(
        state
            .cache_get("rdap-net:198.51.102.0/24", now)
            .unwrap()
            .as_deref(),
        Some("failed")
    );
    assert_eq!(
        state
            .cache_get("rdap-net:198.51.102.0/24", now + Duration::from_secs(301))
            .unwrap(),
        None
    );
    assert_eq!(sink.sent.lock().unwrap().len(), 1);
}

#[test]
fn a_burst_from_one_network_to_one_contact_is_one_report() {
    // Defaults: one report per network a day, per contact an hour, one a minute overall.
    let (r, _, sink) = reporter("");
    let mut outcomes = Vec::new();
    for i in 1..=200u64 {
        outcomes.push(r.report_blocking(&incident(&format!("203.0.113.{}", i % 250 + 1), i)));
    }
    assert!(matches!(
        outcomes[0],
        ReportOutcome::Submitted { incidents: 1, .. }
    ));
    // Within the global minute the global limit holds them; after it, the network's.
    let at = |limit| {
        outcomes[1..]
            .iter()
            .filter(|o| matches!(o, ReportOutcome::Suppressed(_, l) if *l == limit))
            .count() as u64
    };
    assert_eq!((at(Limit::Global), at(Limit::Network)), (59, 140));
    assert_eq!(sink.sent.lock().unwrap().len(), 1);
    // A day later the next report counts what the network's limit held back.
    let next = r.report_blocking(&incident("203.0.113.99", 86_400 + 1_000));
    assert!(
        matches!(next, ReportOutcome::Submitted { incidents: 141, .. }),
        "{next:?}"
    );
}

#[test]
fn contact_and_global_limits() {
    let (r, _, sink) = reporter(
        "network_interval_secs = 0\noverrides = { \"203.0.113.0/24\" = \"abuse@example.net\", \"198.51.100.0/24\" = \"abuse@example.net\", \"192.0.2.0/24\" = \"other@example.org\" }",
    );
    assert!(matches!(
        r.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Submitted { .. }
    ));
    // Another network of the same desk: the contact's limit (an hour).
    assert_eq!(
        r.report_blocking(&incident("198.51.100.7", 100)),
        ReportOutcome::Suppressed("198.51.100.7".parse().unwrap(), Limit::Contact)
    );
    // Another desk within the global minute.
    assert_eq!(
        r.report_blocking(&incident("192.0.2.7", 30)),
        ReportOutcome::Suppressed("192.0.2.7".parse().unwrap(), Limit::Global)
    );
    assert!(matches!(
        r.report_blocking(&incident("192.0.2.8", 200)),
        ReportOutcome::Submitted { incidents: 1, .. }
    ));
    assert_eq!(sink.sent.lock().unwrap().len(), 2);
}

#[test]
fn reports_in_flight_are_bounded() {
    let (r, _, _) = reporter("max_lookups_in_flight = 1");
    let permit = r.try_start(&incident("203.0.113.7", 0)).expect("a slot");
    assert_eq!(
        r.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Busy
    );
    drop(permit);
    assert!(matches!(
        r.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Submitted { .. }
    ));
}

#[test]
fn the_outbox_queues_reports_for_its_sender() {
    let state = Arc::new(MemoryState::default());
    let config = config("");
    let sink = Arc::new(crate::outbound::Outbox::new(&config, state.clone()));
    let r = AbuseReporter::new(&config, state.clone(), sink).unwrap();
    assert!(matches!(
        r.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Submitted { .. }
    ));
    let due = state
        .queue_due(SystemTime::now() + Duration::from_secs(1), 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, "abuse-report");
    assert_eq!(due[0].from, "abuse-reports@example.test");
    assert_eq!(due[0].to, vec!["abuse@example.net".to_string()]);
    assert!(String::from_utf8_lossy(&due[0].message).contains("Source-IP: 203.0.113.7"));
}

#[test]
fn incident_from_the_pipeline_envelope() {
    use crate::mail::address::Recipient;
    use crate::mail::envelope::Envelope;
    use crate::scan::Verdict;
    let rcpt = |original: &str| Recipient {
        original: original.into(),
        local: "alice".into(),
        detail: None,
        domain: "example.test".into(),
        home: None,
    };
    let envelope = Envelope {
        id: "S9".into(),
        mail_from: "".into(),
        rcpts: vec![rcpt("Alice@example.test"), rcpt("alice+x@example.test")],
        helo: Some("postfix".into()),
        peer_addr: None,
        client: Client {
            addr: "203.0.113.7".parse().ok(),
            ..Client::default()
        },
        client_trusted: true,
        started: std::time::Instant::now(),
        default_mailbox: None,
    };
    let message = b"Subject: s\r\n\r\nbody\r\n";
    let infected = Verdict::Infected {
        name: "Eicar".into(),
        heuristic: false,
    };
    let now = SystemTime::now();
    let incident = Incident::new(&envelope, true, &infected, message, now).expect("infected");
    assert_eq!(
        incident.rcpts,
        ["Alice@example.test", "alice+x@example.test"]
    );
    assert_eq!(incident.viruses, ["Eicar"]);
    assert_eq!(incident.headers, b"Subject: s\r\n");
    assert_eq!(incident.client.addr, "203.0.113.7".parse().ok());
    assert!(Incident::new(&envelope, true, &Verdict::Clean, message, now).is_none());
}

/// Two hosts sharing one state store send one report per global interval between them,
/// not one each (issue 16: limits must not multiply by the number of hosts).
#[test]
fn the_global_limit_holds_across_hosts_sharing_the_store() {
    let extra = "overrides = { \"203.0.113.0/24\" = \"abuse@example.net\", \"192.0.2.0/24\" = \"other@example.org\" }";
    let state = Arc::new(MemoryState::default());
    let sink = Arc::new(Recorder::default());
    let a = AbuseReporter::new(&config(extra), state.clone(), sink.clone()).expect("reporter");
    let b = AbuseReporter::new(&config(extra), state.clone(), sink.clone()).expect("reporter");
    assert!(matches!(
        a.report_blocking(&incident("203.0.113.7", 0)),
        ReportOutcome::Submitted { .. }
    ));
    // Another source and desk, on the other host, within the minute.
    assert_eq!(
        b.report_blocking(&incident("192.0.2.7", 30)),
        ReportOutcome::Suppressed("192.0.2.7".parse().unwrap(), Limit::Global)
    );
    // After it, either host.
    assert!(matches!(
        b.report_blocking(&incident("192.0.2.7", 61)),
        ReportOutcome::Submitted { incidents: 1, .. }
    ));
    assert_eq!(sink.sent.lock().unwrap().len(), 2);
}
