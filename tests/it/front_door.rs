//! The front door (`delivery::enter`) through the real binary from both sides: the same
//! scan failure gives the same per-recipient log line and the same metric changes whether
//! the message came over LMTP (`serve`, 127.0.0.1:0) or through LDA mode (`sievegate
//! deliver`). LMTP's metrics are scraped before and after; LDA mode serves none, so the run
//! is started with `RUST_LOG=...,sievegate::lda=debug` and its closing metrics dump (this
//! run's counters, from zero) is parsed instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::metrics::{metrics_addr, scrape};
use crate::support::binary::{bin, Running};
use crate::support::env::{Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::messages::{clean_message, transaction};
use crate::support::RECIPIENT_FIELDS;

/// The fields that differ by nature between two deliveries: the transaction id and the time.
const VARYING: [&str; 2] = ["id", "delay_ms"];

/// The per-recipient line for `to` in `logs` (text format), as field → value, with the
/// outcome word as `kind`; the fields that vary between runs are left out.
fn rcpt_line(logs: &str, to: &str) -> BTreeMap<String, String> {
    let needle = format!(" to={to} ");
    let line = logs
        .lines()
        .find(|l| l.contains(&needle) && l.contains(" actions="))
        .unwrap_or_else(|| panic!("no log line for {to}:\n{logs}"));
    let mut fields = BTreeMap::new();
    let start = line.find(" id=").expect("id field");
    // The outcome word is the message, just before the fields.
    let kind = line[..start].rsplit(' ').next().unwrap_or("").to_string();
    fields.insert("kind".to_string(), kind);
    for (i, key) in RECIPIENT_FIELDS.iter().enumerate() {
        let begin = line
            .find(&format!(" {key}="))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len()
            + 2;
        let end = RECIPIENT_FIELDS
            .get(i + 1)
            .and_then(|next| line[begin..].find(&format!(" {next}=")))
            .map(|n| begin + n)
            .unwrap_or(line.len());
        if !VARYING.contains(key) {
            fields.insert(key.to_string(), line[begin..end].to_string());
        }
    }
    fields
}

/// Prometheus text → series → value, for the series a delivery changes (scan time and
/// byte sums are times or the same bytes counted; their `_count`s are kept).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_string(), value.parse::<f64>().ok()?)))
        .collect()
}

/// The series that changed from `before` to `after`, with their change; only the
/// per-message and per-recipient families (sessions and scrapes are LMTP's own), and no
/// histogram sums or buckets (they hold times).
fn deltas(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let delivery_family = |s: &str| {
        [
            "sievegate_messages_received_total",
            "sievegate_received_bytes_total",
            "sievegate_deliveries_total",
            "sievegate_clamd_errors_total",
            "sievegate_infected_messages_total",
            "sievegate_scan_duration_seconds_count",
            "sievegate_store_duration_seconds_count",
            "sievegate_stored_copies_total",
            "sievegate_dir_fsyncs_total",
        ]
        .iter()
        .any(|f| s == *f || s.starts_with(&format!("{f}{{")))
    };
    after
        .iter()
        .filter(|(series, _)| delivery_family(series))
        .filter_map(|(series, value)| {
            let change = value - before.get(series).copied().unwrap_or(0.0);
            (change != 0.0).then(|| (series.clone(), change))
        })
        .collect()
}

/// One run of each entry point against a fake clamd that answers every scan with an
/// error, under `on_failure`: the LMTP line and metric changes, then LDA mode's.
fn both_ways(on_failure: &'static str) {
    let fake = FakeClamd::start(Mode::Error);
    let mut options = Options::new(fake.addr());
    options.on_failure = on_failure;
    options.scan_timeout_secs = 2;
    options
        .server_extra
        .push("metrics_listen = \"127.0.0.1:0\"".into());
    let env = Env::new(options);
    let message = clean_message("front door");

    let server = Running::start(&env.config_path);
    let addr = metrics_addr(&server);
    let before = scrape(addr);
    let reply = server.converse(&transaction(&["alice@example.test"], &message));
    let logs = server.wait_for_log(" to=alice@example.test ");
    let lmtp_line = rcpt_line(&logs, "alice@example.test");
    let lmtp_metrics = deltas(&before, &scrape(addr));
    drop(server);

    let mut child = Command::new(bin())
        .args(["deliver", "-c"])
        .arg(&env.config_path)
        .args(["-f", "sender@remote.example", "-a", "alice@example.test"])
        .env("RUST_LOG", "info,sievegate::lda=debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sievegate deliver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&message)
        .expect("write the message");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lda_line = rcpt_line(&stderr, "alice@example.test");
    let dump = stderr
        .split("metrics of this run:")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics dump at debug:\n{stderr}"));
    let lda_metrics = deltas(&BTreeMap::new(), &samples(dump));

    match on_failure {
        "tempfail" => {
            assert!(reply.contains("451 4.7.0 <alice@example.test>"), "{reply}");
            assert_eq!(out.status.code(), Some(75), "{stderr}");
            assert_eq!(lmtp_line["kind"], "deferred", "{lmtp_line:?}");
        }
        _ => {
            assert!(reply.contains("250 2.0.0 <alice@example.test>"), "{reply}");
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            assert_eq!(lmtp_line["kind"], "delivered", "{lmtp_line:?}");
        }
    }
    assert_eq!(
        lmtp_line, lda_line,
        "{on_failure}: the same log line both ways"
    );
    assert_eq!(
        lmtp_metrics, lda_metrics,
        "{on_failure}: the same metric changes both ways"
    );
    assert_eq!(
        lmtp_metrics.get("sievegate_clamd_errors_total"),
        Some(&1.0),
        "{lmtp_metrics:?}"
    );
    let outcome = if on_failure == "tempfail" {
        "deferred"
    } else {
        "delivered"
    };
    assert_eq!(
        lmtp_metrics.get(&format!(
            "sievegate_deliveries_total{{outcome=\"{outcome}\"}}"
        )),
        Some(&1.0),
        "{lmtp_metrics:?}"
    );
}

#[test]
fn a_failed_scan_under_tempfail_looks_the_same_from_lmtp_and_lda() {
    both_ways("tempfail");
}

#[test]
fn a_failed_scan_under_deliver_unscanned_looks_the_same_from_lmtp_and_lda() {
    both_ways("deliver-unscanned");
}
