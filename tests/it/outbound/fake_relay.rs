//! A scripted SMTP relay for fault injection (the real relay, Postfix's smtp-sink, cannot
//! answer `550 5.1.1` to one RCPT or `552` after DATA, nor hang after the TCP accept).
//! Connection number n follows `scripts[n]` (the last one repeats).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the relay answers one connection.
#[derive(Debug, Clone)]
pub enum Script {
    /// Greets and answers; `rcpt` is the reply to RCPT TO, `data_end` the reply after the
    /// message's final dot (both without CRLF).
    Answer {
        rcpt: &'static str,
        data_end: &'static str,
    },
    /// Accepts the TCP connection and never says a word.
    Hang,
}

impl Script {
    /// Takes everything.
    pub const OK: Script = Script::Answer {
        rcpt: "250 2.1.5 ok",
        data_end: "250 2.0.0 queued as FAKE",
    };
}

/// One transaction the relay accepted (a 2xx after DATA).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The MAIL FROM argument as sent, e.g. `<a@b>`.
    pub mail_from: String,
    /// The RCPT TO arguments as sent.
    pub rcpt_to: Vec<String>,
    /// The message bytes as sent (dot-unstuffed, CRLF kept, without the final dot line).
    pub message: Vec<u8>,
}

/// What the relay saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: usize,
    /// The transactions it accepted.
    pub accepted: Vec<Accepted>,
}

/// The relay; its thread lives as long as the test binary (a loopback port nobody else
/// uses).
pub struct FakeRelay {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl FakeRelay {
    /// Listens on a free loopback port.
    pub fn start(scripts: Vec<Script>) -> FakeRelay {
        assert!(!scripts.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                lock(&shared).connections += 1;
                let script = scripts[n.min(scripts.len() - 1)].clone();
                let seen = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, script, &seen));
            }
        });
        FakeRelay { addr, seen }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections so far.
    pub fn connections(&self) -> usize {
        lock(&self.seen).connections
    }

    /// Accepted transactions so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        lock(&self.seen).accepted.clone()
    }

    /// Waits until `n` connections were made (or fails after `timeout`).
    pub fn wait_connections(&self, n: usize, timeout: Duration) {
        let started = Instant::now();
        while self.connections() < n {
            assert!(
                started.elapsed() < timeout,
                "{} connections after {timeout:?}, wanted {n}",
                self.connections()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve(stream: TcpStream, script: Script, seen: &Mutex<Seen>) {
    let Script::Answer { rcpt, data_end } = script else {
        // Hold the connection open, silent, until the client gives up.
        let mut reader = BufReader::new(stream);
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
        return;
    };
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes()).is_ok();
    if !say("220 fake.relay.test ESMTP") {
        return;
    }
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let ok = match verb.as_str() {
            "EHLO" | "HELO" => say("250 fake.relay.test"),
            "MAIL" => {
                mail_from = command["MAIL FROM:".len().min(command.len())..].to_string();
                rcpt_to.clear();
                say("250 2.1.0 ok")
            }
            "RCPT" => {
                if rcpt.starts_with('2') {
                    rcpt_to.push(command["RCPT TO:".len().min(command.len())..].to_string());
                }
                say(rcpt)
            }
            "DATA" => {
                if !say("354 go ahead") {
                    return;
                }
                let mut message = Vec::new();
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    let unstuffed = raw.strip_prefix(b".").unwrap_or(&raw);
                    message.extend_from_slice(unstuffed);
                }
                if data_end.starts_with('2') {
                    lock(seen).accepted.push(Accepted {
                        mail_from: mail_from.clone(),
                        rcpt_to: rcpt_to.clone(),
                        message,
                    });
                }
                say(data_end)
            }
            "QUIT" => {
                say("221 bye");
                return;
            }
            _ => say("250 ok"),
        };
        if !ok {
            return;
        }
    }
}
