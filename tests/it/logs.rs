//! Layer 3: `[log] format = "json"` on the real binary: every line on stderr is one JSON
//! object, and the per-recipient lines carry the fields the README documents.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::binary::{bin, converse, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message, transaction_as};
use crate::support::RECIPIENT_FIELDS;
use serde_json::Value;

#[test]
fn json_logs_are_one_object_per_line_with_the_recipient_fields() {
    let mut options = Options::new(Clamd::shared().addr());
    options.extra_sections = vec!["[log]\nformat = \"json\"".into()];
    // A config warning at startup (max_message_size above max_scan_size) is a JSON line too.
    options.max_scan_size = Some(1024 * 1024);
    let env = Env::new(options);
    let mut server = Running::start(&env.config_path);

    let clean = clean_message("json logs");
    let xforward = "XFORWARD NAME=client.remote.example ADDR=192.0.2.7 IDENT=4ABC123\r\n";
    let got = server.converse(&transaction_as(
        xforward,
        "sender@remote.example",
        &["alice@example.test"],
        &clean,
    ));
    assert!(got.contains("Saved\r\n"), "{got}");
    let got = server.converse(&transaction_as(
        "",
        "mallory@forged.example",
        &["bob@example.test"],
        &infected_message(),
    ));
    assert!(got.contains("250 2.0.0"), "{got}");
    server.wait_for_log("\"to\":\"bob@example.test\"");
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    let logs = server.logs();
    let mut recipients = Vec::new();
    for line in logs.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object: {e}: {line:?}\n{logs}"));
        let object = value.as_object().expect("an object per line");
        for key in ["timestamp", "level", "message", "target"] {
            assert!(object.contains_key(key), "{key} missing: {line}");
        }
        if object.contains_key("to") && object.contains_key("verdict") {
            recipients.push(value);
        }
    }
    assert_eq!(recipients.len(), 2, "one line per recipient:\n{logs}");
    assert!(
        logs.contains("\"level\":\"WARN\"") && logs.contains("max_scan_size"),
        "the startup warning is logged: {logs}"
    );
    for r in &recipients {
        for field in RECIPIENT_FIELDS {
            assert!(r.get(field).is_some(), "{field} missing: {r}");
        }
        let spans = r["spans"].as_array().expect("spans");
        let session = spans
            .iter()
            .find(|s| s["name"] == "session")
            .unwrap_or_else(|| panic!("no session span: {r}"));
        assert!(session["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")));
        assert!(session["id"].is_string());
        assert!(spans.iter().any(|s| s["name"] == "transaction"), "{r}");
    }
    let alice = &recipients[0];
    assert_eq!(alice["message"], "delivered");
    assert_eq!(alice["to"], "alice@example.test");
    assert_eq!(alice["mailbox"], "alice@example.test");
    assert_eq!(alice["from"], "sender@remote.example");
    assert_eq!(alice["queue_id"], "4ABC123");
    assert_eq!(alice["verdict"], "clean");
    assert_eq!(alice["virustest"], 1);
    assert_eq!(alice["virus"], "");
    assert_eq!(alice["size"], clean.len());
    assert_eq!(alice["message_id"], "<clean.9@remote.example>");
    assert_eq!(alice["actions"], "stored INBOX");
    assert!(alice["delay_ms"].is_u64());
    assert_eq!(alice["level"], "INFO");

    let bob = &recipients[1];
    assert_eq!(bob["message"], "discarded");
    assert_eq!(bob["verdict"], "infected");
    assert_eq!(bob["virustest"], 5);
    assert!(
        bob["virus"].as_str().is_some_and(|v| !v.is_empty()),
        "{bob}"
    );
    assert_eq!(bob["queue_id"], "", "no XFORWARD in that transaction");
}

/// `sievegate serve` without `RUST_LOG` (which would override `[log] level`), its stderr
/// collected line by line; killed on drop.
struct Unfiltered {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Unfiltered {
    fn start(config: &std::path::Path) -> Unfiltered {
        let mut child = Command::new(bin())
            .args(["serve", "-c"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sievegate");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Unfiltered { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Unfiltered {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn log_level_comes_from_the_config_and_changes_on_sighup() {
    let mut options = Options::new(Clamd::shared().addr());
    options.extra_sections = vec!["[log]\nformat = \"json\"\nlevel = \"info\"".into()];
    let env = Env::new(options);
    let server = Unfiltered::start(&env.config_path);
    let line = server.wait_for("listening on ");
    let value: Value = serde_json::from_str(&line).expect("JSON");
    let addr: SocketAddr = value["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no addr in {line}"));
    let deliver = |subject: &str| {
        let got = converse(
            tcp(addr),
            &transaction_as(
                "",
                "s@remote.example",
                &["alice@example.test"],
                &clean_message(subject),
            ),
        );
        assert!(got.contains("Saved\r\n"), "{got}");
    };
    deliver("at info");
    server.wait_for("\"message\":\"delivered\"");

    let text = std::fs::read_to_string(&env.config_path).expect("read config");
    std::fs::write(
        &env.config_path,
        text.replace("level = \"info\"", "level = \"warn\""),
    )
    .expect("write config");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) },
        0
    );
    let changed = server.wait_for("log level changed");
    assert!(changed.contains("\"to\":\"warn\""), "{changed}");
    deliver("at warn");
    // The delivery's line would be written before its reply; give the reader thread time.
    std::thread::sleep(Duration::from_millis(500));
    let delivered = server
        .lines()
        .iter()
        .filter(|l| l.contains("\"message\":\"delivered\""))
        .count();
    assert_eq!(
        delivered,
        1,
        "no info lines at warn:\n{}",
        server.lines().join("\n")
    );
    assert_eq!(env.messages("alice", "").len(), 2);
}
