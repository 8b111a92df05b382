//! The scanner against a real clamd (our signature database) and against fake, misbehaving
//! peers.

use std::time::{Duration, Instant};

use sievegate::scan::{ClamdAddr, ScanError, Scanner, Verdict};

use crate::support::clamd::{Clamd, ClamdOptions};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::{eicar, load_message, load_sample};

const EICAR_NAME: &str = "Sievegate.Test.EICAR.UNOFFICIAL";
const CLAMEXE_NAME: &str = "Sievegate.Test.ClamExe.UNOFFICIAL";
const HEURISTIC_NAME: &str = "Heuristics.Sievegate.TestPattern.UNOFFICIAL";
const PUA_NAME: &str = "PUA.Sievegate.TestPattern.UNOFFICIAL";

fn default_prefixes() -> Vec<String> {
    vec!["Heuristics.".to_owned(), "PUA.".to_owned()]
}

fn scanner(addr: ClamdAddr) -> Scanner {
    Scanner::new(addr, Duration::from_secs(30), default_prefixes())
}

async fn expect_infected(scanner: &Scanner, what: &str, message: &[u8], name: &str, vt: u8) {
    let verdict = scanner
        .scan(message)
        .await
        .unwrap_or_else(|e| panic!("{what}: scan failed: {e}"));
    match &verdict {
        Verdict::Infected { name: got, .. } => assert_eq!(got, name, "{what}"),
        other => panic!("{what}: expected {name}, got {other:?}"),
    }
    assert_eq!(verdict.virustest(), vt, "{what}: virustest");
}

async fn expect_clean(scanner: &Scanner, what: &str, message: &[u8]) {
    let verdict = scanner
        .scan(message)
        .await
        .unwrap_or_else(|e| panic!("{what}: scan failed: {e}"));
    assert_eq!(verdict, Verdict::Clean, "{what}");
    assert_eq!(verdict.virustest(), 1, "{what}");
}

#[tokio::test]
async fn infected_fixtures_are_found_with_their_names() {
    let scanner = scanner(Clamd::shared().addr());
    let cases = [
        ("eicar-plain.eml", EICAR_NAME, 5),
        ("eicar-base64.eml", EICAR_NAME, 5),
        ("eicar-zip.eml", EICAR_NAME, 5),
        ("eicar-qp.eml", EICAR_NAME, 5),
        ("eicar-nested-rfc822.eml", EICAR_NAME, 5),
        ("eicar-uuencode.eml", EICAR_NAME, 5),
        ("clamexe-attachment.eml", CLAMEXE_NAME, 5),
        ("heuristic.eml", HEURISTIC_NAME, 4),
        ("pua.eml", PUA_NAME, 4),
    ];
    for (file, name, vt) in cases {
        expect_infected(&scanner, file, &load_message(file), name, vt).await;
    }
}

#[tokio::test]
async fn encoded_fixtures_need_decoding_to_match() {
    // Guards the fixtures: if the EICAR string appeared verbatim, the encoded cases above would
    // prove nothing about clamd decoding the MIME parts.
    let eicar = eicar();
    for file in [
        "eicar-base64.eml",
        "eicar-zip.eml",
        "eicar-qp.eml",
        "eicar-nested-rfc822.eml",
        "eicar-uuencode.eml",
    ] {
        let message = load_message(file);
        assert!(
            !message.windows(eicar.len()).any(|w| w == eicar.as_slice()),
            "{file} contains the EICAR string verbatim"
        );
    }
}

#[tokio::test]
async fn clean_and_malformed_fixtures_scan_clean() {
    let scanner = scanner(Clamd::shared().addr());
    for file in [
        "clean.eml",
        "clean-mentions-eicar.eml",
        "broken-mime.eml",
        "long-lines.eml",
        "nul-bytes.eml",
    ] {
        expect_clean(&scanner, file, &load_message(file)).await;
    }
    expect_clean(&scanner, "empty message", b"").await;
}

#[tokio::test]
async fn md5_signatures_detect_the_shipped_samples() {
    let scanner = scanner(Clamd::shared().addr());
    // clamd matches the unpacked clam.exe before the container's own hash, so every sample
    // reports the ClamExe name (see tests/fixtures/clamd/README.md).
    for file in ["clam.exe", "clam.zip", "clam.7z"] {
        expect_infected(&scanner, file, &load_sample(file), CLAMEXE_NAME, 5).await;
    }
}

#[tokio::test]
async fn heuristic_prefixes_come_from_the_caller() {
    // With no prefixes configured a heuristic signature counts as a virus.
    let scanner = Scanner::new(Clamd::shared().addr(), Duration::from_secs(30), vec![]);
    let heuristic = load_message("heuristic.eml");
    expect_infected(&scanner, "no prefixes", &heuristic, HEURISTIC_NAME, 5).await;

    let scanner = Scanner::new(
        Clamd::shared().addr(),
        Duration::from_secs(30),
        vec!["Sievegate.".to_owned()],
    );
    let plain = load_message("eicar-plain.eml");
    expect_infected(&scanner, "custom prefix", &plain, EICAR_NAME, 4).await;
}

#[tokio::test]
async fn ping_answers() {
    scanner(Clamd::shared().addr())
        .ping()
        .await
        .expect("PING real clamd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_share_one_scanner() {
    let scanner = scanner(Clamd::shared().addr());
    let infected = load_message("eicar-zip.eml");
    let clean = load_message("clean.eml");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let scanner = scanner.clone();
        let message = if i % 2 == 0 {
            infected.clone()
        } else {
            clean.clone()
        };
        tasks.push(tokio::spawn(
            async move { (i, scanner.scan(&message).await) },
        ));
    }
    for task in tasks {
        let (i, result) = task.await.expect("task");
        let verdict = result.unwrap_or_else(|e| panic!("scan {i}: {e}"));
        assert_eq!(verdict.virustest(), if i % 2 == 0 { 5 } else { 1 }, "{i}");
    }
}

/// 30 MB: above Postfix's default `message_size_limit` (10 MB), so any real message fits.
fn big_message(tail: &[u8]) -> Vec<u8> {
    let mut message = load_message("clean.eml");
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while message.len() < 30 * 1024 * 1024 {
        message.extend_from_slice(line);
    }
    message.extend_from_slice(tail);
    message.extend_from_slice(b"\r\n");
    message
}

#[tokio::test]
async fn thirty_megabyte_messages_scan_fully() {
    let scanner = scanner(Clamd::shared().addr());
    expect_clean(&scanner, "30 MB clean", &big_message(b"")).await;
    // The signature sits at the very end: proves the whole stream reached clamd.
    expect_infected(
        &scanner,
        "30 MB + EICAR",
        &big_message(&eicar()),
        EICAR_NAME,
        5,
    )
    .await;
}

#[tokio::test]
async fn stream_over_clamd_limit_is_too_large() {
    // clamd answers ERROR and hangs up while we are still sending. Often its reply survives
    // the broken pipe; sometimes the kernel drops it with the reset (measured: 3 to 30 in
    // 100, more under load), and the scanner then asks clamd with a probe that sends no
    // message bytes. Either way every attempt must be TooLarge: 30 attempts make the lost
    // reply (the probe's path) all but certain to occur.
    let clamd = Clamd::start_with(ClamdOptions {
        stream_max_length: "1M".to_owned(),
        ..ClamdOptions::default()
    });
    // StreamMaxLength binds streams only: a passed descriptor (pass_fd, the default on a
    // unix socket) is scanned whatever its size (see it::scan_fildes).
    let scanner = scanner(clamd.addr()).with_pass_fd(false);
    let message = vec![b'a'; 5 * 1024 * 1024];
    for attempt in 0..30 {
        let verdict = scanner.scan(&message).await;
        assert!(
            matches!(verdict, Ok(Verdict::TooLarge)),
            "attempt {attempt}: expected TooLarge, got {verdict:?}\n{}",
            clamd.log()
        );
    }
    // Just under and at the limit the probe must not misfire: these are scanned.
    let mut at_limit = load_message("clean.eml");
    at_limit.resize(1024 * 1024, b'a');
    expect_clean(&scanner, "at the limit", &at_limit).await;
    expect_clean(&scanner, "under the limit", &load_message("clean.eml")).await;
}

#[tokio::test]
async fn a_clamd_that_dies_mid_stream_is_an_error_not_too_large() {
    // The probe after a hang-up must not turn a real failure into "too large, deliver":
    // a clamd that dies after the first chunk gives the probe no answer either.
    let fake = FakeClamd::start(Mode::DieMidStream);
    let message = vec![b'a'; 5 * 1024 * 1024];
    let err = scanner(fake.addr())
        .with_pass_fd(false)
        .scan(&message)
        .await
        .expect_err("died");
    assert!(matches!(err, ScanError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn tcp_transport_works() {
    let clamd = Clamd::start_with(ClamdOptions {
        tcp: true,
        ..ClamdOptions::default()
    });
    let addr = clamd.tcp_addr().expect("tcp enabled");
    assert!(addr.to_string().starts_with("tcp:127.0.0.1:"), "{addr}");
    let scanner = scanner(addr);
    scanner.ping().await.expect("PING over TCP");
    expect_clean(&scanner, "clean over TCP", &load_message("clean.eml")).await;
    let infected = load_message("eicar-base64.eml");
    expect_infected(&scanner, "eicar over TCP", &infected, EICAR_NAME, 5).await;
}

#[tokio::test]
async fn scanner_recovers_after_clamd_restart() {
    let mut clamd = Clamd::start();
    let scanner = scanner(clamd.addr());
    let clean = load_message("clean.eml");
    expect_clean(&scanner, "before stop", &clean).await;

    clamd.stop();
    assert!(!clamd.socket().exists());
    let err = scanner.scan(&clean).await.expect_err("clamd is down");
    assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
    let err = scanner.ping().await.expect_err("clamd is down");
    assert!(matches!(err, ScanError::Connect(_)), "{err:?}");

    clamd.restart();
    // Same Scanner object: no cached broken state.
    expect_clean(&scanner, "after restart", &clean).await;
    let infected = load_message("eicar-plain.eml");
    expect_infected(&scanner, "after restart", &infected, EICAR_NAME, 5).await;
}

#[tokio::test]
async fn missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner(ClamdAddr::Unix(dir.path().join("no-such.sock")));
    let err = scanner.scan(b"x").await.expect_err("nothing listens");
    assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn refused_tcp_port_is_a_connect_error() {
    // Bind then drop: the port is (almost certainly) closed right after.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let scanner = scanner(ClamdAddr::Tcp(format!("127.0.0.1:{port}")));
    let err = scanner.scan(b"x").await.expect_err("nothing listens");
    assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn hanging_clamd_times_out_on_time() {
    let fake = FakeClamd::start(Mode::Hang);
    let timeout = Duration::from_secs(1);
    let scanner = Scanner::new(fake.addr(), timeout, default_prefixes());
    let started = Instant::now();
    let err = scanner
        .scan(&load_message("clean.eml"))
        .await
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(matches!(err, ScanError::Timeout), "{err:?}");
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(elapsed < timeout * 3, "timeout not enforced: {elapsed:?}");

    let err = scanner.ping().await.expect_err("no answer");
    assert!(matches!(err, ScanError::Timeout), "{err:?}");
}

#[tokio::test]
async fn garbage_reply_is_malformed() {
    let fake = FakeClamd::start(Mode::Garbage);
    let err = scanner(fake.addr())
        .scan(&load_message("clean.eml"))
        .await
        .expect_err("garbage");
    assert!(matches!(err, ScanError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn closed_connection_is_io_or_malformed() {
    let fake = FakeClamd::start(Mode::Close);
    // Whether the close is seen while writing (EPIPE) or as an empty reply depends on timing.
    let err = scanner(fake.addr())
        .scan(&load_message("eicar-plain.eml"))
        .await
        .expect_err("closed");
    assert!(
        matches!(err, ScanError::Io(_) | ScanError::Malformed(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn error_reply_is_a_clamd_error() {
    let fake = FakeClamd::start(Mode::Error);
    let err = scanner(fake.addr())
        .scan(&load_message("clean.eml"))
        .await
        .expect_err("error reply");
    match err {
        ScanError::Clamd(text) => assert_eq!(text, "INSTREAM: Can't write to temporary file."),
        other => panic!("expected Clamd, got {other:?}"),
    }
}

#[tokio::test]
async fn size_limit_reply_is_too_large_not_an_error() {
    // A retry would be refused the same way: this must not become a 451 loop.
    let fake = FakeClamd::start(Mode::SizeLimit);
    let verdict = scanner(fake.addr())
        .scan(&load_message("clean.eml"))
        .await
        .expect("a verdict");
    assert_eq!(verdict, Verdict::TooLarge);
}

#[tokio::test]
async fn over_max_scan_size_is_not_sent_to_clamd() {
    // A fake that would answer garbage: reaching it would fail the scan.
    let fake = FakeClamd::start(Mode::Garbage);
    let message = load_message("clean.eml");
    let scanner = scanner(fake.addr()).with_max_scan_size(message.len() - 1);
    assert_eq!(
        scanner.scan(&message).await.expect("verdict"),
        Verdict::TooLarge
    );
    let scanner = scanner.with_max_scan_size(message.len());
    assert!(
        scanner.scan(&message).await.is_err(),
        "at the limit it is scanned"
    );
}
