//! Scanning by descriptor (clamd's FILDES, `[scanner] pass_fd`): a real clamd scans what we
//! pass, in memory or spooled, and every fault of the fake clamd behaves the same whichever
//! way the message goes.

use std::time::Duration;

use sievegate::scan::{ClamdAddr, ScanError, Scanner, Verdict};
use sievegate::spool::{spool_with, MessageBytes};

use crate::support::clamd::{Clamd, ClamdOptions};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::load_message;

const EICAR_NAME: &str = "Sievegate.Test.EICAR.UNOFFICIAL";

fn scanner(addr: ClamdAddr, pass_fd: bool) -> Scanner {
    Scanner::new(addr, Duration::from_secs(30), vec!["Heuristics.".into()]).with_pass_fd(pass_fd)
}

fn spooled(dir: &std::path::Path, message: &[u8]) -> MessageBytes {
    let bytes = spool_with(dir, |w| w.write_all(message)).expect("spool");
    assert!(bytes.is_spooled());
    bytes
}

#[tokio::test]
async fn clamd_scans_the_descriptors_of_memory_and_spooled_messages() {
    let clamd = Clamd::start();
    let scanner = scanner(clamd.addr(), true);
    let spool = tempfile::tempdir().expect("tempdir");
    for (file, want) in [
        ("clean.eml", Verdict::Clean),
        (
            "eicar-plain.eml",
            Verdict::Infected {
                name: EICAR_NAME.into(),
                heuristic: false,
            },
        ),
    ] {
        let message = load_message(file);
        let got = scanner.scan(&message).await.expect("slice");
        assert_eq!(got, want, "{file} from a slice");
        let in_memory = MessageBytes::from(message.clone());
        let got = scanner.scan_message(&in_memory).await.expect("memory");
        assert_eq!(got, want, "{file} in memory");
        let got = scanner
            .scan_message(&spooled(spool.path(), &message))
            .await
            .expect("spooled");
        assert_eq!(got, want, "{file} spooled");
    }
    assert!(scanner.passes_fd(), "no fallback happened");
    // clamd names what it scanned: our memfd and the unnamed spool file, never a stream.
    // Its log lines come a moment after the replies.
    let found = |log: &str, place: &str| {
        log.lines()
            .any(|l| l.contains(place) && l.contains(&format!("{EICAR_NAME} FOUND")))
    };
    let spool_place = spool.path().display().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = clamd.log();
        let both = found(&log, "/memfd:sievegate-scan") && found(&log, &spool_place);
        if both || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(found(&log, "/memfd:sievegate-scan"), "{log}");
    assert!(found(&log, &spool_place), "{log}");
    assert!(!log.contains("instream("), "{log}");
}

#[tokio::test]
async fn a_large_spooled_message_is_scanned_to_its_last_byte_without_stream_limits() {
    // StreamMaxLength 1M binds INSTREAM only: the 3 MB message is scanned whole by
    // descriptor (the signature sits at its end), and refused as a stream.
    let clamd = Clamd::start_with(ClamdOptions {
        stream_max_length: "1M".to_owned(),
        ..ClamdOptions::default()
    });
    let mut message = load_message("clean.eml");
    while message.len() < 3 * 1024 * 1024 {
        message.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n");
    }
    message.extend_from_slice(&crate::support::eicar());
    message.extend_from_slice(b"\r\n");
    let spool = tempfile::tempdir().expect("tempdir");
    let bytes = spooled(spool.path(), &message);
    let got = scanner(clamd.addr(), true)
        .scan_message(&bytes)
        .await
        .expect("scanned");
    assert_eq!(got.virus_name(), Some(EICAR_NAME), "{}", clamd.log());
    // The same bytes as a stream hit StreamMaxLength (or clamd's lost reply: an I/O error).
    match scanner(clamd.addr(), false).scan_message(&bytes).await {
        Ok(Verdict::TooLarge) | Err(ScanError::Io(_)) => {}
        other => panic!("expected the stream limit, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_always_streams() {
    let clamd = Clamd::start_with(ClamdOptions {
        tcp: true,
        ..ClamdOptions::default()
    });
    let scanner = scanner(clamd.tcp_addr().expect("tcp"), true);
    assert!(!scanner.passes_fd(), "descriptors cannot cross TCP");
    let got = scanner
        .scan(&load_message("eicar-plain.eml"))
        .await
        .expect("scan");
    assert_eq!(got.virus_name(), Some(EICAR_NAME));
}

/// What a fault must produce, whichever way the message went.
fn check(mode: Mode, got: &Result<Verdict, ScanError>) -> bool {
    match mode {
        Mode::Hang => matches!(got, Err(ScanError::Timeout)),
        Mode::Garbage => matches!(got, Err(ScanError::Malformed(_))),
        Mode::Close | Mode::DieMidStream => {
            matches!(got, Err(ScanError::Io(_) | ScanError::Malformed(_)))
        }
        Mode::Error => {
            matches!(got, Err(ScanError::Clamd(t)) if t == "INSTREAM: Can't write to temporary file.")
        }
        Mode::SizeLimit => matches!(got, Ok(Verdict::TooLarge)),
        Mode::SlowOk | Mode::StallScan | Mode::NoFildes | Mode::LostFd => {
            matches!(got, Ok(Verdict::Clean))
        }
    }
}

#[tokio::test]
async fn every_fault_is_the_same_by_descriptor_and_by_stream() {
    let spool = tempfile::tempdir().expect("tempdir");
    // Larger than one INSTREAM chunk and one fake read, so "mid-stream" is mid-message.
    let mut message = load_message("clean.eml");
    message.resize(200_000, b'x');
    let modes = [
        Mode::Hang,
        Mode::Garbage,
        Mode::Close,
        Mode::Error,
        Mode::SizeLimit,
        Mode::SlowOk,
        Mode::DieMidStream,
    ];
    for mode in modes {
        // (way, pass_fd, spooled)
        for (way, pass_fd, spool_it) in [
            ("fildes memory", true, false),
            ("fildes spooled", true, true),
            ("instream", false, false),
        ] {
            let fake = FakeClamd::start(mode);
            // Short, for Hang; SlowOk answers after 1.5 s.
            let timeout = Duration::from_millis(if mode == Mode::SlowOk { 10_000 } else { 500 });
            let scanner = Scanner::new(fake.addr(), timeout, vec![]).with_pass_fd(pass_fd);
            let bytes = if spool_it {
                spooled(spool.path(), &message)
            } else {
                MessageBytes::from(message.clone())
            };
            let got = scanner.scan_message(&bytes).await;
            assert!(check(mode, &got), "{mode:?} {way}: {got:?}");
            // Close and Hang never read the command; every other mode saw the one we meant.
            // A stream clamd hangs up on is followed by one length probe (a second INSTREAM
            // that sends no message bytes), which a dead clamd does not answer either.
            let expect = match mode {
                Mode::Close | Mode::Hang => (0, 0),
                Mode::DieMidStream if !pass_fd => (0, 2),
                _ if pass_fd => (1, 0),
                _ => (0, 1),
            };
            assert_eq!(
                (fake.fildes_scans(), fake.instream_scans()),
                expect,
                "{mode:?} {way}: (fildes, instream)"
            );
            assert_eq!(scanner.passes_fd(), pass_fd, "{mode:?} {way}: no fallback");
        }
    }
}

#[tokio::test]
async fn a_clamd_that_cannot_take_descriptors_is_asked_once_then_streamed_to() {
    for mode in [Mode::NoFildes, Mode::LostFd] {
        let fake = FakeClamd::start(mode);
        let scanner = scanner(fake.addr(), true);
        let clone = scanner.clone();
        assert!(clone.passes_fd());
        let got = scanner.scan(b"Subject: one\r\n\r\nhello\r\n").await;
        assert!(
            check(mode, &got),
            "{mode:?}: this message is streamed: {got:?}"
        );
        assert_eq!(
            (fake.fildes_scans(), fake.instream_scans()),
            (1, 1),
            "{mode:?}"
        );
        assert!(!clone.passes_fd(), "{mode:?}: clones share the fallback");
        let got = clone.scan(b"Subject: two\r\n\r\nhello\r\n").await;
        assert!(check(mode, &got), "{mode:?}: {got:?}");
        assert_eq!(
            (fake.fildes_scans(), fake.instream_scans()),
            (1, 2),
            "{mode:?}: FILDES is not tried again"
        );
        assert!(scanner.health().is_up(), "{mode:?}: clamd answered");
    }
}
