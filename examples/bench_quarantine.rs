//! Benchmark: list and filter 100 000 quarantine entries in the SQLite state store.
//!
//! `cargo run --release --example bench_quarantine [DIR] [N]` fills `DIR/sievegate.db`
//! (default: a temporary directory) with N entries (default 100 000) spread over 90 days,
//! 1-3 recipients each among 500 users, 20 virus names, then prints how long each query
//! takes. `scripts/bench-quarantine` also times the real `sievegate quarantine list`.
//! Figures, not assertions: the target is "under a second".

use std::time::{Duration, Instant, SystemTime};

use sievegate::quarantine::admin::EntryJson;
use sievegate::state::{QuarantineEntry, QuarantineFilter, SqliteState, StateStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let temp;
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let store = SqliteState::open(&dir)?;
    let now = SystemTime::now();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let rcpts: Vec<String> = (0..1 + i % 3)
            .map(|k| format!("user{}@example.test", (i * 7 + k * 131) % 500))
            .collect();
        batch.push(QuarantineEntry {
            id: format!("BENCH{i:08}"),
            received_at: now - Duration::from_secs(((n - i) as u64 * 90 * 86_400) / n as u64),
            sender: format!("sender{}@remote{}.example", i % 1000, i % 37),
            resolved: rcpts.clone(),
            recipients: rcpts,
            client_ip: Some(format!("203.0.113.{}", i % 250)),
            client_helo: Some(format!("mx{}.remote.example", i % 37)),
            queue_id: Some(format!("4Q{i:X}")),
            verdict: "infected".into(),
            virustest: 5,
            viruses: vec![format!("Win.Test.Family{}-{}", i % 20, i % 3)],
            message_id: format!("<bench.{i}@remote.example>"),
            subject: format!("Invoice number {i}"),
            from: format!("Sender {i} <sender{i}@remote.example>"),
            size: 4096 + (i as u64 % 50_000),
            backscatter: i % 10 == 0,
            released_at: None,
            released_by: None,
            releases: Vec::new(),
        });
        if batch.len() == batch.capacity() {
            store.quarantine_insert_many(&batch)?;
            batch.clear();
        }
    }
    store.quarantine_insert_many(&batch)?;
    println!(
        "filled {n} entries in {:.2} s ({})",
        started.elapsed().as_secs_f64(),
        store.path().display()
    );

    // "list all" last: freeing its 100 000 entries would otherwise be timed with the next.
    let queries: Vec<(&str, QuarantineFilter)> = vec![
        (
            "--since (last 7 days)",
            QuarantineFilter {
                since: Some(now - Duration::from_secs(7 * 86_400)),
                ..Default::default()
            },
        ),
        (
            "--virus family7",
            QuarantineFilter {
                virus: Some("family7-".into()),
                ..Default::default()
            },
        ),
        (
            "--rcpt user42@example.test",
            QuarantineFilter {
                rcpt: Some("user42@example.test".into()),
                ..Default::default()
            },
        ),
        (
            "--virus nomatch",
            QuarantineFilter {
                virus: Some("nomatch".into()),
                ..Default::default()
            },
        ),
        ("list all", QuarantineFilter::default()),
    ];
    for (name, filter) in queries {
        let started = Instant::now();
        let entries = store.quarantine_list(&filter)?;
        let query = started.elapsed();
        let json: Vec<EntryJson<'_>> = entries.iter().map(EntryJson::new).collect();
        let text = serde_json::to_string(&json)?;
        println!(
            "{name:<28} {:>7} entries  query {:>7.1} ms  +JSON {:>7.1} ms ({} bytes)",
            entries.len(),
            query.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0,
            text.len()
        );
    }
    Ok(())
}
