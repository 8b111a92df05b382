//! Layer 3: the metrics endpoint of the real binary with a real clamd: deliver clean mail
//! and EICAR, scrape `GET /metrics`, parse the Prometheus text and check the counters.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::binary::{tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message, transaction};
use sievegate::scan::ClamdAddr;

/// Starts the server with `metrics_listen` on a free port; returns it and the metrics
/// address (from its log line).
fn start(options: Options) -> (Env, Running, SocketAddr) {
    start_edited(options, |text| text)
}

/// [`start`] with the config file's text passed through `edit` first.
fn start_edited(
    options: Options,
    edit: impl FnOnce(String) -> String,
) -> (Env, Running, SocketAddr) {
    let mut options = options;
    options
        .server_extra
        .push("metrics_listen = \"127.0.0.1:0\"".into());
    let env = Env::new(options);
    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    std::fs::write(&env.config_path, edit(text)).expect("write config");
    let server = Running::start(&env.config_path);
    let addr = metrics_addr(&server);
    (env, server, addr)
}

/// The metrics address a running server logged.
pub(crate) fn metrics_addr(server: &Running) -> SocketAddr {
    let logs = server.wait_for_log("metrics at http://");
    logs.split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{logs}"))
}

/// Sends `request` and returns the whole response (the server closes after it).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = tcp(addr);
    s.write_all(request.as_bytes()).expect("write request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    out
}

/// Scrapes `/metrics` and parses every sample: `name{labels}` → value.
pub(crate) fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let response = http(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {response}"));
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    let mut samples = BTreeMap::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

#[test]
fn metrics_count_clean_and_infected_deliveries() {
    let mut options = Options::new(Clamd::shared().addr());
    options.extra_sections = vec![
        "[state]\ndir = \"state\"".into(),
        "[quarantine]\nenabled = true\ndir = \"quarantine\"".into(),
    ];
    let (env, server, metrics) = start(options);

    let before = scrape(metrics);
    for outcome in [
        "delivered",
        "discarded",
        "quarantined",
        "deferred",
        "rejected",
    ] {
        assert_eq!(
            get(
                &before,
                &format!("sievegate_deliveries_total{{outcome=\"{outcome}\"}}")
            ),
            0.0,
            "every outcome exists at 0 from the start"
        );
    }

    let clean = clean_message("metrics clean");
    let infected = infected_message();
    let got = server.converse(&transaction(
        &["alice@example.test", "bob@example.test"],
        &clean,
    ));
    assert_eq!(got.matches("Saved\r\n").count(), 2, "{got}");
    let got = server.converse(&transaction(&["alice@example.test"], &infected));
    assert!(got.contains("250 2.0.0"), "{got}");
    assert_eq!(env.total_messages(), 2);

    let m = scrape(metrics);
    let outcome = |o: &str| {
        get(
            &m,
            &format!("sievegate_deliveries_total{{outcome=\"{o}\"}}"),
        )
    };
    assert_eq!(outcome("delivered"), 2.0, "{m:#?}");
    assert_eq!(outcome("quarantined"), 1.0, "{m:#?}");
    assert_eq!(outcome("discarded"), 0.0);
    assert_eq!(outcome("deferred"), 0.0);
    assert_eq!(outcome("rejected"), 0.0);
    let infected_series: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("sievegate_infected_messages_total{virus=\""))
        .collect();
    assert_eq!(infected_series.len(), 1, "{m:#?}");
    assert_eq!(*infected_series[0].1, 1.0);
    let virus = infected_series[0].0.split('"').nth(1).expect("virus label");
    // The log writer runs beside the replies: wait for the line rather than read once.
    let logs = server.wait_for_log(virus);
    assert!(
        logs.contains(virus),
        "the label is clamd's name, as in the log: {virus}\n{logs}"
    );
    assert_eq!(get(&m, "sievegate_messages_received_total"), 2.0);
    assert_eq!(
        get(&m, "sievegate_received_bytes_total"),
        (clean.len() + infected.len()) as f64
    );
    assert_eq!(get(&m, "sievegate_scan_duration_seconds_count"), 2.0);
    assert_eq!(
        get(&m, "sievegate_scan_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert!(get(&m, "sievegate_scan_duration_seconds_sum") > 0.0);
    assert_eq!(get(&m, "sievegate_clamd_errors_total"), 0.0);
    assert_eq!(
        get(&m, "sievegate_store_duration_seconds_count"),
        2.0,
        "one store per delivered recipient; the quarantined one stored nothing"
    );
    // Alice's and Bob's copies of the clean message: one file, hard-linked.
    assert_eq!(
        get(&m, "sievegate_stored_copies_total{how=\"written\"}"),
        1.0
    );
    assert_eq!(
        get(&m, "sievegate_stored_copies_total{how=\"linked\"}"),
        1.0
    );
    assert_eq!(
        get(&m, "sievegate_dir_fsyncs_total{what=\"requested\"}"),
        2.0
    );
    let runs = get(&m, "sievegate_dir_fsyncs_total{what=\"run\"}");
    assert!((1.0..=2.0).contains(&runs), "{runs}");
    assert!(get(&m, "sievegate_sessions_total") >= 2.0);

    // An open session shows in the gauge (earlier ones may take a moment to end).
    let mut open = tcp(server.addr);
    let mut buf = [0u8; 256];
    let n = open.read(&mut buf).expect("greeting");
    assert!(buf[..n].starts_with(b"220 "));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active = get(&scrape(metrics), "sievegate_sessions_active");
        if active == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions_active stays {active}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(open);

    // Anything but GET /metrics is 404.
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET /metricsx HTTP/1.0\r\n\r\n",
        "garbage\r\n\r\n",
    ] {
        let response = http(metrics, request);
        assert!(
            response.starts_with("HTTP/1.0 404 Not Found\r\n"),
            "{request:?}: {response}"
        );
    }
}

#[test]
fn metrics_count_clamd_errors_and_deferrals() {
    let nowhere = tempfile::tempdir().expect("tempdir");
    let options = Options::new(ClamdAddr::Unix(nowhere.path().join("no-clamd.sock")));
    // Without health gating, so the message reaches the scan (with it, MAIL may already
    // get 451 4.7.1 and no scan happens).
    let (_env, server, metrics) = start_edited(options, |text| {
        text.replace("[scanner]\n", "[scanner]\nhealth_interval_secs = 0\n")
    });
    let got = server.converse(&transaction(
        &["alice@example.test", "bob@example.test"],
        &clean_message("no clamd"),
    ));
    assert_eq!(got.matches("451 4.7.0").count(), 2, "{got}");
    let m = scrape(metrics);
    assert_eq!(get(&m, "sievegate_clamd_errors_total"), 1.0, "{m:#?}");
    assert_eq!(
        get(&m, "sievegate_deliveries_total{outcome=\"deferred\"}"),
        2.0
    );
    assert_eq!(get(&m, "sievegate_scan_duration_seconds_count"), 1.0);
    assert_eq!(get(&m, "sievegate_store_duration_seconds_count"), 0.0);
}
