//! `lmtp-load`: drives one LMTP server (RFC 2033) with a fixed load and prints one JSON line
//! of figures. `bench/run` runs it against sievegate and Dovecot side by side.
//!
//! ```text
//! lmtp-load --target 127.0.0.1:2424 | unix:/path/lmtp.sock [--target ...]
//!           [--concurrency 16] [--messages 2000] [--size 4096] [--rcpts 1]
//!           [--users 100] [--domain example.test] [--label NAME] [--no-pipelining]
//!           [--unique-senders]
//! ```
//!
//! With several `--target`s, connection i goes to target i mod n (two delivery hosts on one
//! state store, the load split evenly between them). `--unique-senders` gives every message
//! its own envelope sender and From (unique across runs too), so each vacation answers once
//! more and the state store does its full work (claim, queue, send) instead of a look-up.
//!
//! Each of `--concurrency` connections sends messages back to back (MAIL, RCPT..., DATA
//! pipelined as Postfix does, then the body, then one reply per recipient) until
//! `--messages` have been sent in all. `--no-pipelining` sends each command only after the
//! reply to the one before (a client that does not use RFC 2920 PIPELINING): it shows what a
//! server's handling of pipelined commands costs, e.g. amavisd's Nagle stall. A message counts as delivered when every recipient's
//! reply is 2xx; any other reply or a broken connection counts as an error (the connection
//! is then reopened). Latency is from the MAIL command to the last recipient reply.
//!
//! Output (one line): `{"label":..,"concurrency":..,"size":..,"rcpts":..,"delivered":..,
//! "errors":..,"secs":..,"msgs_per_s":..,"p50_ms":..,"p99_ms":..,"max_ms":..,"pipelining":true}`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

/// One command or reply may take at most this long: a stuck server is an error, not a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
struct Args {
    targets: Vec<String>,
    concurrency: usize,
    messages: u64,
    size: usize,
    rcpts: usize,
    users: usize,
    domain: String,
    label: String,
    /// Wait for each reply before the next command instead of pipelining MAIL/RCPT/DATA.
    no_pipelining: bool,
    /// Every message its own sender, so that a vacation answers each one (state store load).
    unique_senders: bool,
    /// Makes unique senders unique across runs too: start time and process id.
    run_tag: String,
}

fn usage() -> &'static str {
    "usage: lmtp-load --target HOST:PORT|unix:PATH [--concurrency N] [--messages N] \
     [--size BYTES] [--rcpts N] [--users N] [--domain D] [--label NAME] [--no-pipelining] \
     [--unique-senders]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        targets: Vec::new(),
        concurrency: 1,
        messages: 1000,
        size: 4096,
        rcpts: 1,
        users: 100,
        domain: "example.test".to_owned(),
        label: String::new(),
        no_pipelining: false,
        unique_senders: false,
        run_tag: format!(
            "{}.{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            std::process::id()
        ),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--unique-senders" {
            args.unique_senders = true;
            continue;
        }
        if flag == "--no-pipelining" {
            args.no_pipelining = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--target" => args.targets.push(value),
            "--concurrency" => args.concurrency = number(&value)? as usize,
            "--messages" => args.messages = number(&value)?,
            "--size" => args.size = number(&value)? as usize,
            "--rcpts" => args.rcpts = number(&value)? as usize,
            "--users" => args.users = number(&value)? as usize,
            "--domain" => args.domain = value,
            "--label" => args.label = value,
            _ => return Err(format!("unknown flag {flag}\n{}", usage())),
        }
    }
    if args.targets.is_empty() {
        return Err(usage().to_owned());
    }
    if args.concurrency == 0 || args.rcpts == 0 || args.users == 0 {
        return Err("--concurrency, --rcpts and --users must be at least 1".to_owned());
    }
    Ok(args)
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(target: &str) -> std::io::Result<BufReader<Box<dyn Stream>>> {
    let stream: Box<dyn Stream> = match target.strip_prefix("unix:") {
        Some(path) => Box::new(UnixStream::connect(path).await?),
        None => {
            let tcp = TcpStream::connect(target).await?;
            tcp.set_nodelay(true)?;
            Box::new(tcp)
        }
    };
    Ok(BufReader::new(stream))
}

fn broken(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

/// Reads one (possibly multi-line) reply; returns its code.
async fn reply(conn: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(STEP_TIMEOUT, conn.read_line(&mut line))
            .await
            .map_err(|_| broken("reply timed out".to_owned()))??;
        if n == 0 {
            return Err(broken("connection closed".to_owned()));
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| broken(format!("bad reply line {line:?}")))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

async fn send(conn: &mut BufReader<Box<dyn Stream>>, bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(STEP_TIMEOUT, conn.get_mut().write_all(bytes))
        .await
        .map_err(|_| broken("write timed out".to_owned()))?
}

async fn open_session(target: &str) -> std::io::Result<BufReader<Box<dyn Stream>>> {
    let mut conn = connect(target).await?;
    let greeting = reply(&mut conn).await?;
    if greeting != 220 {
        return Err(broken(format!("greeting {greeting}")));
    }
    send(&mut conn, b"LHLO load.test\r\n").await?;
    let code = reply(&mut conn).await?;
    if code != 250 {
        return Err(broken(format!("LHLO got {code}")));
    }
    Ok(conn)
}

/// A small deterministic generator for body text (so messages differ, without a crate).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A plain-text message of about `size` bytes (CRLF, no line starting with a dot).
fn message(args: &Args, seq: u64, sender: &str, rcpts: &[String]) -> Vec<u8> {
    let mut head = String::new();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = write!(
        head,
        "From: Load Generator <{sender}>\r\nTo: {}\r\nSubject: load message {seq}\r\n\
         Date: Sat, 28 Nov 2026 00:00:00 +0000\r\nMessage-ID: <{seq}.{now}@load.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        rcpts.join(", ")
    );
    let mut out = head.into_bytes();
    let mut rng = XorShift(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    const WORDS: &[&str] = &[
        "mail", "delivery", "sieve", "maildir", "the", "of", "and", "scan", "clean", "message",
        "folder", "header", "body", "a", "to", "server",
    ];
    let mut line = String::new();
    while out.len() < args.size {
        line.clear();
        while line.len() < 72 {
            line.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
            line.push(' ');
        }
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Sends one transaction; `Ok(true)` when every recipient got 2xx.
///
/// Pipelined (`pipelining`), MAIL, every RCPT and DATA go out in one write and their replies
/// are read afterwards, as Postfix's LMTP client does (RFC 2033 requires PIPELINING).
/// Otherwise each command waits for its reply, as a client that does not pipeline would.
async fn transaction(
    conn: &mut BufReader<Box<dyn Stream>>,
    sender: &str,
    rcpts: &[String],
    body: &[u8],
    pipelining: bool,
) -> std::io::Result<bool> {
    let mut commands = vec![format!("MAIL FROM:<{sender}>\r\n")];
    for rcpt in rcpts {
        commands.push(format!("RCPT TO:<{rcpt}>\r\n"));
    }
    commands.push(String::from("DATA\r\n"));
    // One reply per command, in order: MAIL, each RCPT, DATA.
    let mut codes = Vec::with_capacity(commands.len());
    if pipelining {
        send(conn, commands.concat().as_bytes()).await?;
        for _ in &commands {
            codes.push(reply(conn).await?);
        }
    } else {
        for command in &commands {
            send(conn, command.as_bytes()).await?;
            codes.push(reply(conn).await?);
        }
    }
    let mail_ok = codes.first().is_some_and(|c| c / 100 == 2);
    let rcpt_codes = codes.get(1..=rcpts.len()).unwrap_or(&[]);
    let accepted = rcpt_codes.iter().filter(|c| **c / 100 == 2).count();
    if codes.last() != Some(&354) {
        // No DATA phase: nothing more to read for this transaction.
        send(conn, b"RSET\r\n").await?;
        reply(conn).await?;
        return Ok(false);
    }
    send(conn, body).await?;
    let mut ok = mail_ok && accepted == rcpts.len();
    for _ in 0..accepted {
        if reply(conn).await? / 100 != 2 {
            ok = false;
        }
    }
    Ok(ok)
}

struct Totals {
    next: AtomicU64,
    errors: AtomicU64,
}

async fn worker(args: Arc<Args>, totals: Arc<Totals>, id: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut conn = None;
    loop {
        let seq = totals.next.fetch_add(1, Ordering::Relaxed);
        if seq >= args.messages {
            break;
        }
        let rcpts: Vec<String> = (0..args.rcpts)
            .map(|i| {
                let user = (seq as usize * args.rcpts + i + id) % args.users;
                format!("user{user}@{}", args.domain)
            })
            .collect();
        let sender = if args.unique_senders {
            format!("bench-{seq}.{}@load.test", args.run_tag)
        } else {
            String::from("bench@load.test")
        };
        let body = message(&args, seq, &sender, &rcpts);
        let target = &args.targets[id % args.targets.len()];
        if conn.is_none() {
            match open_session(target).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    eprintln!("lmtp-load: connect {target}: {e}");
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let start = Instant::now();
        match transaction(c, &sender, &rcpts, &body, !args.no_pipelining).await {
            Ok(true) => latencies.push(start.elapsed()),
            Ok(false) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("lmtp-load: {e}");
                totals.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = send(&mut c, b"QUIT\r\n").await;
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let totals = Arc::new(Totals {
        next: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..args.concurrency {
        tasks.push(tokio::spawn(worker(args.clone(), totals.clone(), id)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        match task.await {
            Ok(l) => latencies.extend(l),
            Err(e) => {
                eprintln!("lmtp-load: worker failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    let delivered = latencies.len();
    println!(
        "{{\"label\":\"{}\",\"concurrency\":{},\"size\":{},\"rcpts\":{},\"delivered\":{},\
         \"errors\":{},\"secs\":{:.3},\"msgs_per_s\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\
         \"max_ms\":{:.2},\"pipelining\":{}}}",
        args.label.replace(['"', '\\'], ""),
        args.concurrency,
        args.size,
        args.rcpts,
        delivered,
        totals.errors.load(Ordering::Relaxed),
        secs,
        delivered as f64 / secs,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
        !args.no_pipelining,
    );
    if totals.errors.load(Ordering::Relaxed) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
