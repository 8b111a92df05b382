//! Layer 3: the real binary on 127.0.0.1:0 (and a unix socket) with a real clamd, driven by
//! an independent LMTP client (swaks) and by raw sockets.

use std::process::Command;
use std::time::Duration;

use crate::support::binary::{bin, converse, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::fake_clamd::{FakeClamd, Mode};
use crate::support::messages::{clean_message, infected_message, transaction};

fn swaks() -> &'static str {
    assert!(
        std::path::Path::new("/usr/bin/swaks").exists(),
        "swaks not found: apt-get install swaks (scripts/test installs it)"
    );
    "/usr/bin/swaks"
}

#[test]
fn swaks_delivers_clean_and_infected_mail_to_several_recipients() {
    let mut options = Options::new(Clamd::shared().addr());
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("lmtp.sock");
    options.listen = vec!["127.0.0.1:0".into(), format!("unix:{}", sock.display())];
    let env = Env::new(options);
    env.set_personal(
        "bob",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Inbound\";\n",
    );
    let server = Running::start(&env.config_path);

    let clean = clean_message("swaks clean");
    let clean_file = env.dir.path().join("clean.eml");
    // swaks ends DATA with "\r\n.\r\n" after the file's content, so the file leaves out
    // the message's last CRLF.
    std::fs::write(&clean_file, &clean[..clean.len() - 2]).expect("write");
    let infected_file = env.dir.path().join("infected.eml");
    let infected = infected_message();
    std::fs::write(&infected_file, &infected[..infected.len() - 2]).expect("write");

    for (file, what) in [(&clean_file, "clean"), (&infected_file, "infected")] {
        let out = Command::new(swaks())
            .args([
                "--server",
                &server.addr.ip().to_string(),
                "--port",
                &server.addr.port().to_string(),
            ])
            .args([
                "--protocol",
                "LMTP",
                "--helo",
                "client.example",
                "--from",
                "sender@remote.example",
            ])
            .args([
                "--to",
                "alice@example.test,bob@example.test,carol@example.test",
            ])
            .arg("--data")
            .arg(format!("@{}", file.display()))
            .output()
            .expect("run swaks");
        let text = String::from_utf8_lossy(&out.stdout);
        let finals = text
            .lines()
            .filter(|l| l.starts_with("<-  250 2.0.0 <"))
            .count();
        assert_eq!(
            finals,
            3,
            "{what}: one 250 per recipient from swaks:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{what}: swaks failed:\n{text}");
    }

    for (user, folder) in [("alice", ""), ("bob", ".Inbound"), ("carol", "")] {
        let stored = env.messages(user, folder);
        assert_eq!(
            stored.len(),
            1,
            "{user}: only the clean message, in {folder:?}"
        );
        let (_, body) = split_trace(&stored[0].1);
        assert_eq!(
            body,
            &clean[..],
            "{user}: byte-identical below the added headers"
        );
    }
    assert_eq!(
        env.total_messages(),
        3,
        "the infected message landed nowhere"
    );

    // The unix socket serves too.
    let unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect unix");
    let got = converse(
        unix,
        &transaction(&["dave@example.test"], &clean_message("via unix"))[..],
    );
    assert!(got.contains("250 2.0.0 <dave@example.test>"), "{got}");
    let logs = server.logs();
    assert!(logs.contains("listening on unix:"), "{logs}");
    assert!(
        logs.contains("to=alice@example.test"),
        "per-recipient log lines: {logs}"
    );
}

#[test]
fn clamd_down_gives_451_then_recovers_without_restart() {
    let mut clamd = Clamd::start();
    let env = Env::new(Options::new(clamd.addr()));
    let server = Running::start(&env.config_path);
    let input = transaction(
        &["alice@example.test", "bob@example.test"],
        &clean_message("recovery"),
    );

    let got = converse(tcp(server.addr), &input);
    assert_eq!(got.matches("Saved\r\n").count(), 2, "{got}");

    clamd.stop();
    let got = converse(tcp(server.addr), &input);
    // Either the scan after DATA fails (451 4.7.0 per recipient), or the health probe
    // noticed first and MAIL is refused (451 4.7.1): nothing is delivered either way.
    assert!(
        got.matches("451 4.7.0").count() == 2 || got.contains("451 4.7.1"),
        "clamd down: 451: {got}"
    );

    clamd.restart();
    // The failed scan marked clamd down; the probe (every 2 s) notices it is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !converse(
        tcp(server.addr),
        b"LHLO x\r\nMAIL FROM:<a@remote.example>\r\nQUIT\r\n",
    )
    .contains("250 2.1.0")
    {
        assert!(std::time::Instant::now() < deadline, "MAIL still refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = converse(tcp(server.addr), &input);
    assert_eq!(got.matches("Saved\r\n").count(), 2, "clamd back: {got}");
    assert_eq!(env.messages("alice", "").len(), 2);
}

#[test]
fn sigterm_sends_421_to_idle_sessions_and_exits_0() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    let mut server = Running::start(&env.config_path);
    let mut idle = tcp(server.addr);
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut idle, &mut buf).expect("greeting");
    assert!(buf[..n].starts_with(b"220 "));
    std::io::Write::write_all(&mut idle, b"LHLO x\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let status = server.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.logs()
    );
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut idle, &mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("421 4.3.2"), "{rest}");
}

#[test]
fn sigterm_lets_an_in_flight_delivery_finish() {
    let fake = FakeClamd::start(Mode::SlowOk);
    let env = Env::new(Options::new(fake.addr()));
    let mut server = Running::start(&env.config_path);
    let client = std::thread::spawn({
        let addr = server.addr;
        let input = transaction(
            &["alice@example.test", "bob@example.test"],
            &clean_message("in flight"),
        );
        move || converse(tcp(addr), &input)
    });
    // The scan takes 1.5 s: SIGTERM arrives while the message is being processed.
    std::thread::sleep(Duration::from_millis(500));
    let status = server.terminate(Duration::from_secs(15));
    let Ok(got) = client.join() else {
        panic!("client failed; server log:\n{}", server.logs());
    };
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.logs()
    );
    assert_eq!(
        got.matches(" Saved\r\n").count(),
        2,
        "both recipients answered 250 before exit: {got}"
    );
    assert_eq!(env.messages("alice", "").len(), 1);
    assert_eq!(env.messages("bob", "").len(), 1);
}

#[test]
fn max_connections_refuses_with_421() {
    let mut options = Options::new(Clamd::shared().addr());
    options.max_connections = 1;
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let mut first = tcp(server.addr);
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut first, &mut buf).expect("greeting");
    assert!(buf[..n].starts_with(b"220 "));
    let got = converse(tcp(server.addr), b"");
    assert!(got.starts_with("421 4.3.2"), "{got}");
}

/// Runs `sievegate serve`, expects it to exit non-zero at startup, returns its stderr.
fn serve_must_fail(config: &std::path::Path) -> String {
    let out = Command::new(bin())
        .args(["serve", "-c"])
        .arg(config)
        .output()
        .expect("run");
    assert!(!out.status.success(), "serve should have refused to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn port_in_use_exits_non_zero_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut options = Options::new(Clamd::shared().addr());
    options.listen = vec![taken.local_addr().expect("addr").to_string()];
    let env = Env::new(options);
    let err = serve_must_fail(&env.config_path);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    // What to do: which key, and how to find the other process.
    assert!(
        err.contains("server.listen: ")
            && err.contains("another process listens there (ss -ltnp")
            && err.contains("stop it, or change server.listen"),
        "{err}"
    );
}

/// The server's and the outbox's readers share one read of the users file: "users file
/// read" once at startup (each reader logged it before).
#[test]
fn the_users_file_is_read_once_at_startup() {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("alice@example.test\nbob@example.test\n".into());
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let logs = server.wait_for_log("recipients: the 2 users");
    assert_eq!(logs.matches("users file read").count(), 1, "{logs}");
}

#[test]
fn a_live_unix_socket_is_not_stolen_but_a_stale_one_is_replaced() {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("lmtp.sock");
    let mut options = Options::new(Clamd::shared().addr());
    options.listen = vec!["127.0.0.1:0".into(), format!("unix:{}", sock.display())];
    let env = Env::new(options);
    let first = Running::start(&env.config_path);
    let err = serve_must_fail(&env.config_path);
    assert!(err.contains("already answering"), "{err}");
    // The first server still serves on its socket.
    let unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    let got = converse(unix, b"QUIT\r\n");
    assert!(got.starts_with("220 "), "{got}");
    drop(first); // SIGKILL: the socket file stays behind, stale.
    assert!(sock.exists());
    let second = Running::start(&env.config_path);
    let unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    assert!(converse(unix, b"QUIT\r\n").starts_with("220 "));
    drop(second);
}

#[test]
fn check_config_accepts_the_shipped_example_and_reports_problems() {
    let shipped = crate::support::env::repo().join("config/sievegate.toml");
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&shipped)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let broken_script = dir.path().join("broken.sieve");
    std::fs::write(
        &broken_script,
        "require \"fileinto\";\nif true {\n  fileinto \"x\"\n",
    )
    .expect("write");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[scanner]\nclamd = \"unix:/nonexistent.sock\"\n[mailbox]\ndomains = [\"example.test\"]\nmaildir = \"m/shared\"\n[sieve]\nbefore = [\"broken.sieve\"]\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mailbox.maildir"), "config problems: {err}");
    assert!(
        err.contains(&format!("{}:", broken_script.display())),
        "file:line:col expected: {err}"
    );

    std::fs::write(&config, "[server]\nlisten = [\"127.0.0.1:0\"]\nbogus = 1\n").expect("write");
    let out = Command::new(bin())
        .args(["check-config", "-c"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3:1:"), "line:col of the unknown key: {err}");
}

/// Item 11 through the real binary: the headline smuggling case `<CRLF>.<CR><CR><LF>`
/// followed by a whole second transaction. It must be body text of the first message;
/// bob, the smuggled recipient, must get nothing.
#[test]
fn smuggled_message_through_the_binary_is_body_text() {
    let env = Env::new(Options::new(Clamd::shared().addr()));
    let server = Running::start(&env.config_path);
    let smuggled = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n";
    let mut input = b"LHLO client.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: first\r\n\r\nhello\r\n.\r\r\n".to_vec();
    input.extend_from_slice(smuggled);
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let got = converse(tcp(server.addr), &input);
    assert_eq!(got.matches("354 ").count(), 1, "one DATA: {got}");
    assert_eq!(got.matches(" Saved\r\n").count(), 1, "one delivery: {got}");
    assert!(got.contains("<alice@example.test>"), "{got}");
    assert!(got.ends_with("221 2.0.0 Bye\r\n"), "{got}");
    assert!(env.messages("bob", "").is_empty(), "smuggled delivery");
    let stored = env.messages("alice", "");
    assert_eq!(stored.len(), 1);
    let (_, body) = split_trace(&stored[0].1);
    let mut want = b"Subject: first\r\n\r\nhello\r\n\r\r\n".to_vec();
    want.extend_from_slice(smuggled);
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&want),
        "the smuggled commands are body text"
    );
}

/// What one dripping client saw: its output and how long it was connected.
struct Dripped {
    out: String,
    held: Duration,
}

/// Connects, sends `first`, then one byte of `drip` every `every` until the server closes.
fn dripper(addr: std::net::SocketAddr, first: &'static [u8], drip: &'static [u8]) -> Dripped {
    use std::io::{Read, Write};
    let mut s = tcp(addr);
    let start = std::time::Instant::now();
    let mut reader = s.try_clone().expect("clone");
    let read = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
    });
    let _ = s.write_all(first);
    for byte in drip.iter().cycle() {
        if read.is_finished() || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        if s.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (out, held) = read.join().expect("reader");
    Dripped { out, held }
}

/// Item 10 through the real binary: every general slot is held by a client dripping one
/// byte every 300 ms (half in a command line, half in DATA). Another untrusted client is
/// refused with 421 4.3.2, the trusted MTA (the unix socket, by uid) still delivers through
/// the reserved slots, and each dripper gets 421 4.4.2 within the 3 s deadline.
#[test]
fn slow_drippers_cannot_lock_out_the_mta() {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("lmtp.sock");
    let mut options = Options::new(Clamd::shared().addr());
    options.listen = vec!["127.0.0.1:0".into(), format!("unix:{}", sock.display())];
    options.max_connections = 64;
    options.idle_timeout_secs = 3;
    let uid = nix::unistd::geteuid().as_raw();
    options.xforward_from = vec![format!("unix:{uid}")];
    options.server_extra = vec!["reserved_connections = 8".into()];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let general = 64 - 8;

    let started = std::time::Instant::now();
    let drippers: Vec<_> = (0..general)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    dripper(addr, b"LHLO slow\r\n", b"NOOP NOOP NOOP ")
                } else {
                    dripper(
                        addr,
                        b"LHLO slow\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
                        b"Subject: slow\r\n\r\nslow\r\n",
                    )
                }
            })
        })
        .collect();
    // Let every dripper get its slot (they are served in well under a second).
    std::thread::sleep(Duration::from_millis(700));

    // Another untrusted client: every slot it may use is taken.
    let refused = converse(tcp(server.addr), b"");
    assert!(refused.starts_with("421 4.3.2"), "{refused}");

    // The MTA, trusted by uid on the unix socket, gets a reserved slot and delivers.
    let mta_start = std::time::Instant::now();
    let unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect unix");
    unix.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let got = converse(
        unix,
        &transaction(&["carol@example.test"], &clean_message("under attack")),
    );
    let mta_took = mta_start.elapsed();
    assert!(got.contains("250 XFORWARD "), "trusted: {got}");
    assert!(
        got.contains("250 2.0.0 <carol@example.test>") && got.contains(" Saved\r\n"),
        "{got}"
    );
    let during_attack = started.elapsed();

    let results: Vec<Dripped> = drippers
        .into_iter()
        .map(|d| d.join().expect("dripper"))
        .collect();
    let mut held: Vec<Duration> = results.iter().map(|d| d.held).collect();
    held.sort();
    for d in &results {
        assert!(
            d.out
                .ends_with("421 4.4.2 Timeout, closing transmission channel\r\n"),
            "{}",
            d.out
        );
        assert!(d.held < Duration::from_secs(8), "held a slot {:?}", d.held);
    }
    eprintln!(
        "{general} drippers (1 byte/300 ms), idle/data timeout 3 s: slot held min {:?}, median {:?}, max {:?}; \
         MTA delivered in {mta_took:?} at {during_attack:?} into the attack",
        held[0],
        held[held.len() / 2],
        held[held.len() - 1]
    );
    assert!(
        during_attack < held[0],
        "the MTA was served while every dripper held its slot"
    );

    // The drippers' slots are free again: an ordinary client is served.
    let got = converse(
        tcp(server.addr),
        &transaction(&["dave@example.test"], &clean_message("after")),
    );
    assert!(got.contains(" Saved\r\n"), "{got}");
    assert_eq!(env.total_messages(), 2, "only carol's and dave's messages");
}

/// Item 15 through the real binary: the socket is `0660` by default and `socket_group`
/// sets its group; trust on the unix socket follows the peer's uid (SO_PEERCRED). Root is
/// trusted (`unix:root`); `nobody`, let in through the socket's group, is not: no XFORWARD
/// advertised, and its forged XFORWARD is refused.
#[test]
fn unix_socket_trust_follows_the_peer_uid() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let sock_dir = tempfile::tempdir().expect("tempdir");
    // nobody must be able to reach the socket file.
    std::fs::set_permissions(sock_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let sock = sock_dir.path().join("lmtp.sock");
    let mut options = Options::new(Clamd::shared().addr());
    options.listen = vec!["127.0.0.1:0".into(), format!("unix:{}", sock.display())];
    options.xforward_from = vec!["unix:root".into()];
    options.server_extra = vec!["socket_group = \"nogroup\"".into()];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!(meta.mode() & 0o777, 0o660, "default socket_mode");
    assert_eq!(meta.gid(), 65534, "socket_group nogroup");

    let session = b"LHLO x\r\nXFORWARD NAME=forged.example ADDR=192.0.2.66\r\nQUIT\r\n";
    let unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    let root = converse(unix, session);
    assert!(
        root.contains("250 XFORWARD NAME ADDR"),
        "root is trusted: {root}"
    );
    assert!(!root.contains("550 5.7.0"), "{root}");

    let client = r#"
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!\n";
print $s "LHLO x\r\nXFORWARD NAME=forged.example ADDR=192.0.2.66\r\nQUIT\r\n";
print while <$s>;
"#;
    let as_user = |uid: &str, gid: &str| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "/usr/bin/perl",
                "-e",
                client,
            ])
            .arg(&sock)
            .output()
            .expect("run setpriv")
    };
    let out = as_user("65534", "65534");
    let nobody = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{nobody}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(nobody.starts_with("220 "), "{nobody}");
    assert!(
        !nobody.contains("XFORWARD NAME ADDR"),
        "not advertised: {nobody}"
    );
    assert!(
        nobody.contains("550 5.7.0 XFORWARD not permitted from this client"),
        "{nobody}"
    );
    // Any other local user cannot even connect.
    let out = as_user("4242", "4242");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = server.logs();
    assert!(logs.contains("XFORWARD refused"), "{logs}");
}
