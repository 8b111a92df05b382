//! The `Received` parsers (sievegate::mail::received) against the headers the real MTAs
//! write: a private Postfix (tests/it/support/postfix) and Debian's Exim 4.96, unpacked by
//! `scripts/lib.sh`'s `ensure_exim` (it conflicts with postfix as a package) and run as
//! `exim4 -C CONFIG -bs -oMa ADDR`, the client address given as a trusted caller may; and
//! Debian's Sendmail 8.17, unpacked by `ensure_sendmail` (the same conflict) and run as
//! inetd runs it: `-bs` on an accepted loopback connection, so it reads the client's
//! address from the socket (Sendmail has no `-oMa`).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
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

/// Where `ensure_sendmail` unpacks Sendmail (`SENDMAIL_ROOT`, as in scripts/lib.sh).
fn sendmail_root() -> PathBuf {
    let root = std::env::var("SENDMAIL_ROOT")
        .unwrap_or_else(|_| "/var/cache/sievegate-test/sendmail".to_string());
    let root = PathBuf::from(root);
    for part in [
        "usr/libexec/sendmail/sendmail",
        "usr/share/sendmail/cf/m4/cf.m4",
    ] {
        assert!(
            root.join(part).exists(),
            "{} missing: run `. scripts/lib.sh; ensure_sendmail` (as root)",
            root.join(part).display()
        );
    }
    root
}

/// The private Sendmail's `.mc`: the stock `Received:` of sendmail-cf (cfhead.m4), no
/// ident lookups (they would wait on the client's port 113), and open relay so that
/// loopback clients without a name may send to a remote domain: it only queues (`-odq`).
const SENDMAIL_MC: &str = "divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.sendmail.test')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confTO_IDENT', `0s')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`promiscuous_relay')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
";

/// Host names as this test's Sendmail sees them (a private /etc/hosts, `hosts: files`): no
/// query leaves the machine, 127.0.0.1 is `localhost`, 127.0.0.2 has no name.
const SENDMAIL_HOSTS: &str = "127.0.0.1 localhost\n127.0.0.3 mx.sendmail.test\n";

/// Runs Sendmail in a private UTS and mount namespace: a qualified host name (with the
/// machine's unqualified one, Sendmail sleeps 60 s before it starts) and the private
/// hosts and nsswitch files bound over /etc's.
const SENDMAIL_NS: &str = "mount --bind \"$SM_HOSTS\" /etc/hosts && \
    mount --bind \"$SM_NSS\" /etc/nsswitch.conf && hostname mx.sendmail.test && exec \"$0\" \"$@\"";

/// A TCP connection from `src` to a fresh loopback listener: (client, server side).
fn loopback_pair(src: IpAddr) -> (TcpStream, TcpStream) {
    use nix::sys::socket::SockaddrStorage;
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let (family, listen): (_, IpAddr) = if src.is_ipv6() {
        (AddressFamily::Inet6, "::1".parse().expect("::1"))
    } else {
        (AddressFamily::Inet, "127.0.0.1".parse().expect("127.0.0.1"))
    };
    let listener = TcpListener::bind((listen, 0)).expect("listen");
    let fd = socket(family, SockType::Stream, SockFlag::empty(), None).expect("socket");
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src, 0)),
    )
    .expect("bind client address");
    let to = listener.local_addr().expect("listener address");
    connect(fd.as_raw_fd(), &SockaddrStorage::from(to)).expect("connect");
    let (server, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip(), src);
    (TcpStream::from(fd), server)
}

/// One SMTP session with the real Sendmail from `src`, saying `helo`: Sendmail runs as
/// inetd would start it (`-bs`, the accepted connection as its stdin and stdout). Returns
/// the replies and the Received value it wrote into its queue file, if it took the message.
fn sendmail_session(src: IpAddr, helo: &str) -> (String, Option<String>) {
    let root = sendmail_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cf_dir = root.join("usr/share/sendmail/cf");
    let mc = d.join("test.mc");
    std::fs::write(&mc, SENDMAIL_MC).expect("mc");
    let m4 = Command::new("m4")
        .arg(format!("-D_CF_DIR_={}/", cf_dir.display()))
        .arg(cf_dir.join("m4/cf.m4"))
        .arg(&mc)
        .output()
        .expect("run m4 (scripts/lib.sh ensure_sendmail installs it)");
    assert!(m4.status.success(), "m4: {:?}", m4);
    let cf = d.join("sendmail.cf");
    std::fs::write(&cf, &m4.stdout).expect("cf");
    std::fs::write(d.join("hosts"), SENDMAIL_HOSTS).expect("hosts");
    std::fs::write(d.join("nsswitch.conf"), "hosts: files\n").expect("nsswitch");
    let queue = d.join("queue");
    std::fs::create_dir(&queue).expect("queue");

    let (client, server) = loopback_pair(src);
    let server_out = server.try_clone().expect("clone");
    let child = Command::new("unshare")
        .args(["--uts", "--mount", "sh", "-c", SENDMAIL_NS])
        .arg(root.join("usr/libexec/sendmail/sendmail"))
        .arg("-C")
        .arg(&cf)
        .arg("-O")
        .arg(format!("QueueDirectory={}", queue.display()))
        .args(["-O", "AliasFile=", "-odq", "-bs"])
        .env("SM_HOSTS", d.join("hosts"))
        .env("SM_NSS", d.join("nsswitch.conf"))
        .stdin(Stdio::from(OwnedFd::from(server)))
        .stdout(Stdio::from(OwnedFd::from(server_out)))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare + sendmail");

    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = client.try_clone().expect("clone");
    let mut reader = BufReader::new(client);
    let mut replies = String::new();
    let mut reply = |replies: &mut String| loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        replies.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    reply(&mut replies);
    for line in [
        format!("EHLO {helo}"),
        "MAIL FROM:<a@remote.example>".to_string(),
        "RCPT TO:<bob@example.test>".to_string(),
        "DATA".to_string(),
        "Subject: t\r\n\r\nhi\r\n.".to_string(),
        "QUIT".to_string(),
    ] {
        if writer.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            break;
        }
        reply(&mut replies);
    }
    drop(writer);
    let out = child.wait_with_output().expect("sendmail exit");
    assert!(
        replies.starts_with("220 "),
        "Sendmail did not greet: {replies:?}, {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The qf file: one line per header, `H??Name: value`, continuation lines indented.
    let qf = std::fs::read_dir(&queue)
        .expect("queue")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qf"))
        });
    let received = qf.map(|p| {
        let text = String::from_utf8_lossy(&std::fs::read(p).expect("read qf")).into_owned();
        let mut header = String::new();
        for line in text.lines() {
            if header.is_empty() {
                if let Some(at) = line.find("Received:").filter(|_| line.starts_with('H')) {
                    header = format!("{}\n", &line[at..]);
                }
            } else if line.starts_with([' ', '\t']) {
                header.push_str(line);
                header.push('\n');
            } else {
                break;
            }
        }
        header.push('\n');
        top_received(header.as_bytes())
    });
    (replies, received)
}

#[test]
fn sendmail_received_lines_name_the_real_client() {
    let ip = |s: &str| -> IpAddr { s.parse().expect("address") };
    let check = |src: &str, helo: &str, starts: &str| {
        let (replies, received) = sendmail_session(ip(src), helo);
        let received = received.unwrap_or_else(|| panic!("Sendmail took nothing: {replies}"));
        println!("sendmail ({src}, HELO {helo}): {received}");
        assert!(received.starts_with(starts), "{received}");
        assert_eq!(Sendmail.client_ip(&received), Some(ip(src)), "{received}");
        for other in [Postfix, Exim] {
            assert_eq!(other.client_ip(&received), None, "{other:?}: {received}");
        }
        replies
    };
    // No reverse DNS and a HELO that is someone else's address: the case.
    check(
        "127.0.0.2",
        "[192.0.2.77]",
        "from [192.0.2.77] ([127.0.0.2])",
    );
    check(
        "127.0.0.2",
        "[IPv6:2001:db8::1]",
        "from [IPv6:2001:db8::1] ([127.0.0.2])",
    );
    // A verified name.
    check(
        "127.0.0.1",
        "[192.0.2.77]",
        "from [192.0.2.77] (localhost [127.0.0.1])",
    );
    // IPv6: Sendmail writes the address uncompressed.
    check(
        "::1",
        "evil.example",
        "from evil.example ([IPv6:0:0:0:0:0:0:0:1])",
    );
    // A HELO that tries to write a client comment of its own: Sendmail refuses it (501),
    // takes the mail all the same and names the client by its address.
    let replies = check(
        "127.0.0.2",
        "x ([203.0.113.66])",
        "from [127.0.0.2] ([127.0.0.2])",
    );
    assert!(replies.contains("\n501 "), "{replies}");
}
