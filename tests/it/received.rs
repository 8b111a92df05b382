//! The `Received` parsers (sievegate::mail::received) against the headers the real MTAs
//! write: a private Postfix (tests/it/support/postfix) and Debian's Exim 4.96, unpacked by
//! `scripts/lib.sh`'s `ensure_exim` (it conflicts with postfix as a package) and run as
//! `exim4 -C CONFIG -bs -oMa ADDR`, the client address given as a trusted caller may.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sievegate::mail::header;
use sievegate::mail::received::ReceivedFormat::{Exim, Postfix, Sendmail};

use crate::support::clamd::Clamd;
use crate::support::env::Options;
use crate::support::postfix::{Gate, Lmtp};

/// Where `ensure_exim` unpacks Exim (`EXIM_ROOT`, as in scripts/lib.sh).
fn exim_binary() -> PathBuf {
    let root =
        std::env::var("EXIM_ROOT").unwrap_or_else(|_| "/var/cache/sievegate-test/exim".to_string());
    let bin = Path::new(&root).join("usr/sbin/exim4");
    assert!(
        bin.exists(),
        "{} missing: run `. scripts/lib.sh; ensure_exim` (as root)",
        bin.display()
    );
    bin
}

/// The topmost Received value (unfolded) in `message`.
fn top_received(message: &[u8]) -> String {
    header::fields(message)
        .find(|f| f.is("received"))
        .map(|f| f.unfolded())
        .unwrap_or_else(|| panic!("no Received in {:?}", String::from_utf8_lossy(message)))
}

/// One SMTP session with the real Exim in `-bs` mode from `addr` (and `name`, as a verified
/// host name when given), saying `helo`; returns Exim's replies and the Received value it
/// wrote into its spool, if it took the message.
fn exim_session(addr: &str, name: Option<&str>, helo: &str) -> (String, Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = d.join("exim.conf");
    std::fs::write(
        &config,
        format!(
            "primary_hostname = mx.exim.test\nspool_directory = {0}/spool\nlog_file_path = {0}/%slog\n\
             exim_user = root\nexim_group = root\nnever_users =\ntrusted_users = root\n\
             host_lookup =\nrfc1413_hosts =\nkeep_environment =\nacl_smtp_rcpt = acl_rcpt\n\
             begin acl\nacl_rcpt:\n  accept\nbegin routers\nbegin transports\n",
            d.display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(exim_binary());
    cmd.arg("-C")
        .arg(&config)
        .args(["-odq", "-bs", "-oMa", addr]);
    if let Some(name) = name {
        cmd.args(["-oMs", name]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run exim");
    let script = format!(
        "EHLO {helo}\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\
         Subject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("exim output");
    let replies = String::from_utf8_lossy(&out.stdout).into_owned();
    let input = d.join("spool/input");
    let header_file = std::fs::read_dir(&input)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-H"));
    let received = header_file.map(|p| {
        // The -H file: one header per entry `NNNX Name: value` (folded); the header lines
        // start after the recipients' blank line.
        let text = std::fs::read_to_string(p).expect("read -H");
        let start = text.find(" Received:").expect("Received in -H");
        let rest = &text[start + 1..];
        top_received(rest.as_bytes())
    });
    (replies, received)
}

#[test]
fn exim_received_lines_name_the_real_client() {
    // No reverse DNS: `from [ADDR] (helo=HELO)`: the case, a HELO that is a
    // bracketed address of someone else.
    let (replies, received) = exim_session("198.51.100.99", None, "[192.0.2.77]");
    let received = received.unwrap_or_else(|| panic!("Exim took nothing: {replies}"));
    println!("exim (no rDNS): {received}");
    assert!(
        received.starts_with("from [198.51.100.99] (helo=[192.0.2.77]"),
        "{received}"
    );
    assert_eq!(Exim.client_ip(&received), "198.51.100.99".parse().ok());
    for other in [Postfix, Sendmail] {
        assert_eq!(
            other.client_ip(&received),
            None,
            "{other:?} must not read Exim's line"
        );
    }
    // A verified host name: `from NAME ([ADDR] helo=HELO)`.
    let (replies, received) =
        exim_session("203.0.113.10", Some("host.example.net"), "[198.51.100.1]");
    let received = received.unwrap_or_else(|| panic!("Exim took nothing: {replies}"));
    println!("exim (rDNS): {received}");
    assert_eq!(Exim.client_ip(&received), "203.0.113.10".parse().ok());
    // IPv6.
    let (replies, received) = exim_session("2001:db8::99", None, "evil.example");
    let received = received.unwrap_or_else(|| panic!("Exim took nothing: {replies}"));
    println!("exim (IPv6): {received}");
    assert_eq!(Exim.client_ip(&received), "2001:db8::99".parse().ok());
    // A HELO that tries to write a client comment of its own: Exim refuses it.
    let (replies, received) = exim_session("198.51.100.99", None, "x ([203.0.113.66])");
    assert!(replies.contains("\n501 "), "{replies}");
    assert_eq!(received, None);
}

/// One SMTP transaction to Postfix's smtpd from 127.0.0.1 with `helo`.
fn postfix_session(addr: std::net::SocketAddr, helo: &str, tag: &str) {
    let stream = TcpStream::connect(addr).expect("connect smtpd");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut expect = |code: &str| {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(all.starts_with(code), "{all}");
    };
    expect("220");
    for (line, code) in [
        (format!("EHLO {helo}"), "250"),
        ("MAIL FROM:<a@remote.example>".to_string(), "250"),
        ("RCPT TO:<alice@example.test>".to_string(), "250"),
        ("DATA".to_string(), "354"),
        (
            format!("Subject: {tag}\r\nMessage-ID: <{tag}@remote.example>\r\n\r\nhi\r\n."),
            "250",
        ),
        ("QUIT".to_string(), "221"),
    ] {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        expect(code);
    }
}

#[test]
fn postfix_received_lines_name_the_real_client() {
    let gate = Gate::start(Lmtp::Unix, Options::new(Clamd::shared().addr()));
    let postfix = gate.postfix(|_| {});
    let helos = [
        ("plain", "client.remote.example"),
        ("literal", "[192.0.2.77]"),
        // A HELO that forges a client comment: Postfix writes its spaces and
        // parentheses as `?` (seen here), and the parser would refuse two comments anyway.
        ("forged comment", "x (unknown [203.0.113.66])"),
    ];
    for (tag, helo) in helos {
        postfix_session(postfix.smtp_addr(), helo, tag);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = gate.stored("alice");
        if stored.len() == helos.len() || std::time::Instant::now() > deadline {
            break stored;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stored.len(), helos.len(), "{}", postfix.maillog());
    let want: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    for (_, message) in &stored {
        // The topmost is sievegate's own (LMTP); below it, Postfix's.
        let received = header::fields(message)
            .filter(|f| f.is("received"))
            .nth(1)
            .map(|f| f.unfolded())
            .expect("Postfix's Received");
        let text = String::from_utf8_lossy(message);
        println!("postfix: {received}");
        let parsed = Postfix.client_ip(&received);
        if text.contains("Subject: forged comment") {
            assert!(
                received.starts_with("from x??unknown?[203.0.113.66]? (localhost [127.0.0.1])"),
                "{received}"
            );
            assert_eq!(parsed, Some(want), "{received}");
        } else {
            assert_eq!(parsed, Some(want), "{received}");
        }
        for other in [Exim, Sendmail] {
            assert_eq!(other.client_ip(&received), None, "{other:?}: {received}");
        }
    }
}
