//! The size and abuse list (issue 8) through the real binary with the real clamd.
//!
//! Memory figures come from `/proc/PID/status` ([`crate::support::memory`]): `VmHWM`
//! (anonymous and file-backed pages) and the sampled peaks of `RssAnon` (heap: what
//! exhausts a host) and `RssFile` (a spooled message's mapped pages, which the kernel can
//! reclaim). Each figure is printed (`cargo test --test it abuse_list -- --nocapture`).

use std::sync::{Arc, Barrier};
use std::time::Instant;

use crate::support::binary::{converse, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::memory::{self, Peaks, Sampler};
use crate::support::messages::{clean_message, transaction};

const MB: usize = 1_000_000;

/// A clean message of exactly `size` bytes: headers, then lines of text.
fn message_of(size: usize, subject: &str) -> Vec<u8> {
    let mut m = clean_message(subject);
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    let pad = size - m.len();
    if pad >= 2 {
        m.extend(std::iter::repeat_n(b'x', pad - 2));
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Runs `f` while sampling the server's memory.
fn measure<T>(server: &Running, f: impl FnOnce() -> T) -> (T, Peaks) {
    let sampler = Sampler::start(server.pid());
    let out = f();
    (out, sampler.finish())
}

/// Options for big messages that are still scanned: clamd's (shared) `StreamMaxLength` is
/// 100M.
fn big_options() -> Options {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_message_size = 60 * 1024 * 1024;
    options.max_scan_size = Some(64 * 1024 * 1024);
    options
}

#[test]
fn one_50_mb_message_is_scanned_stored_whole_and_memory_stays_bounded() {
    let env = Env::new(big_options());
    let server = Running::start(&env.config_path);
    let message = message_of(50 * MB, "fifty");
    let input = transaction(&["alice@example.test"], &message);
    let idle = memory::status(server.pid());
    let started = Instant::now();
    let (out, peaks) = measure(&server, || converse(tcp(server.addr), &input));
    let took = started.elapsed();
    assert!(
        out.contains("250 2.0.0 <alice@example.test>"),
        "{out}\n{}",
        server.logs()
    );
    assert!(server.logs().contains("verdict=\"clean\""), "scanned");
    let stored = env.messages("alice", "");
    assert_eq!(stored.len(), 1);
    assert_eq!(split_trace(&stored[0].1).1, &message[..], "stored byte for byte");
    eprintln!(
        "one 50 MB message: {peaks} (idle RssAnon {:.1} MB), {:.1} s",
        idle.rss_anon as f64 / 1e6,
        took.as_secs_f64()
    );
}

#[test]
fn sixteen_concurrent_10_mb_messages_keep_memory_bounded() {
    const N: usize = 16;
    let env = Env::new(big_options());
    let server = Running::start(&env.config_path);
    let inputs: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let rcpt = format!("user{i}@example.test");
            transaction(&[&rcpt], &message_of(10 * MB, &format!("ten {i}")))
        })
        .collect();
    let idle = memory::status(server.pid());
    let started = Instant::now();
    let (outs, peaks) = measure(&server, || {
        let barrier = Arc::new(Barrier::new(N));
        let threads: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let (addr, barrier) = (server.addr, Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let stream = tcp(addr);
                    barrier.wait();
                    converse(stream, &input)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect::<Vec<String>>()
    });
    let took = started.elapsed();
    for (i, out) in outs.iter().enumerate() {
        assert!(
            out.contains(&format!("250 2.0.0 <user{i}@example.test>")),
            "{i}: {out}\n{}",
            server.logs()
        );
        assert_eq!(env.messages(&format!("user{i}"), "").len(), 1);
    }
    eprintln!(
        "{N} concurrent 10 MB messages: {peaks} (idle RssAnon {:.1} MB), {:.1} s",
        idle.rss_anon as f64 / 1e6,
        took.as_secs_f64()
    );
}
