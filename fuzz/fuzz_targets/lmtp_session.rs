//! Bytes in, replies out: one whole LMTP session over an in-memory stream, with the real
//! pipeline behind it (the fake clamd of `sievegate_fuzz`, Sieve, Maildir on tmpfs).
//!
//! Input: the first byte is the write size (0: everything in one write), the rest is what
//! the client sends; then the client closes its side. Checked: no panic, the session ends
//! without an I/O error, and its output passes `transcript::check` (well-formed lines, one
//! reply per accepted recipient after DATA, infected mail never refused, a failed scan 4xx).
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use libfuzzer_sys::fuzz_target;
use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::lmtp::{Peer, Session};
use sievegate_fuzz::{scratch_dir, transcript, write_files, FakeClamd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Each user's personal script: every kind of Plan the pipeline executes.
const PERSONAL: &[(&str, &str)] = &[
    ("scripts/bob.sieve", include_str!("../scripts/reject.sieve")),
    (
        "scripts/carol.sieve",
        include_str!("../scripts/spread.sieve"),
    ),
    (
        "scripts/dave.sieve",
        include_str!("../scripts/redirect.sieve"),
    ),
    (
        "scripts/erin.sieve",
        include_str!("../scripts/vacation.sieve"),
    ),
    (
        "scripts/frank.sieve",
        include_str!("../scripts/notify.sieve"),
    ),
    (
        "scripts/grace.sieve",
        include_str!("../scripts/mixed.sieve"),
    ),
    (
        "scripts/heidi.sieve",
        include_str!("../scripts/discard.sieve"),
    ),
    (
        "scripts/ivan.sieve",
        include_str!("../scripts/include.sieve"),
    ),
    (
        "global/lists.sieve",
        include_str!("../scripts/global/lists.sieve"),
    ),
    (
        "sieve/ivan/mine.sieve",
        include_str!("../scripts/personal/mine.sieve"),
    ),
    (
        "virus-policy.sieve",
        include_str!("../../sieve/virus-policy.sieve"),
    ),
    ("default.sieve", include_str!("../../sieve/default.sieve")),
];

/// Services are rebuilt and the Maildirs wiped this often, so the in-memory state store
/// (outbox, duplicate ids) and tmpfs stay small over millions of runs.
const RUNS_PER_SERVICES: usize = 2000;

struct World {
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
    clamd: FakeClamd,
    config: Config,
    services: Mutex<(Arc<Services>, usize)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = scratch_dir("lmtp_session");
        write_files(&dir, PERSONAL);
        let clamd = FakeClamd::start(dir.join("clamd.sock"));
        let d = dir.display();
        // Small limits, so fuzz inputs reach them: line length, message size, recipients.
        let toml = format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
hostname = "mx.example.test"
max_message_size = 65536
max_recipients = 6
max_line_length = 512
xforward_from = ["127.0.0.0/8"]
idle_timeout_secs = 10
data_timeout_secs = 10
[scanner]
clamd = "{clamd}"
timeout_secs = 10
on_failure = "tempfail"
max_scan_size = 65536
[mailbox]
domains = ["example.test", "other.example"]
maildir = "{d}/mail/%d/%n/Maildir"
[sieve]
before = ["{d}/virus-policy.sieve"]
personal = "{d}/scripts/%n.sieve"
default = "{d}/default.sieve"
global_dir = "{d}/global"
personal_dir = "{d}/sieve/%n"
user_log_size = 0
[notify]
relay = "127.0.0.1:9"
"#,
            clamd = clamd.addr(),
        );
        let path = dir.join("sievegate.toml");
        std::fs::write(&path, toml).expect("write the config");
        let config = Config::load(&path).expect("the fuzz config is valid");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let services = Arc::new(Services::new(config.clone()));
        World {
            runtime,
            dir,
            clamd,
            config,
            services: Mutex::new((services, 0)),
        }
    })
}

impl World {
    fn services(&self) -> Arc<Services> {
        let mut slot = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        slot.1 += 1;
        if slot.1 >= RUNS_PER_SERVICES {
            let _ = std::fs::remove_dir_all(self.dir.join("mail"));
            *slot = (Arc::new(Services::new(self.config.clone())), 0);
        }
        Arc::clone(&slot.0)
    }

    /// Runs one session on `input`, written `chunk` bytes at a time; returns its output.
    fn session(&self, chunk: usize, input: Vec<u8>) -> Vec<u8> {
        let services = self.services();
        self.runtime.block_on(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (_stop, stop_rx) = watch::channel(false);
            let peer = Peer::Tcp("127.0.0.1:40000".parse().expect("an address"));
            let session = tokio::spawn(Session::new(server, services, peer, stop_rx).run());
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let writer = tokio::spawn(async move {
                for piece in input.chunks(chunk.max(1)) {
                    // The session may close first (QUIT, 421): the rest is not read.
                    if to_server.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                let _ = to_server.shutdown().await;
            });
            let mut out = Vec::new();
            from_server
                .read_to_end(&mut out)
                .await
                .expect("read the replies");
            let ended = session.await.expect("the session task does not panic");
            if let Err(e) = ended {
                panic!("session ended with an I/O error: {e}");
            }
            writer.await.expect("the writer task");
            out
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let world = world();
    world.clamd.clear();
    let chunk = if first == 0 {
        input.len()
    } else {
        first as usize
    };
    let out = world.session(chunk, input.to_vec());
    if let Err(problem) = transcript::check(&out, &world.clamd.scans()) {
        panic!(
            "{problem}\n--- output ---\n{}",
            String::from_utf8_lossy(&out)
        );
    }
});
