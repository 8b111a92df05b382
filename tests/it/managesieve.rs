//! Issue 18, ManageSieve through the real binary: real clients nobody here wrote
//! (`sieve-connect` over STARTTLS verifying a test CA, PHP's `Net_Sieve` as Roundcube uses
//! it), the uploaded script running at delivery, and hostile sessions (huge literals, path
//! tricks, command floods, slow clients, plaintext logins, concurrent writers).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::binary::{converse, tcp, Running};
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, transaction};
use crate::support::tls::{self, TestPki};

const PASSWORD: &str = "s3cret pass";

struct Setup {
    env: Env,
    /// Holds the test PKI's files.
    _pki_dir: tempfile::TempDir,
    pki: TestPki,
    server: Running,
    /// The loopback listener (plaintext logins allowed there).
    local: SocketAddr,
    /// The wildcard listener: not loopback, so logins need STARTTLS.
    public: SocketAddr,
}

/// A server with `[managesieve]` on 127.0.0.1 (plaintext allowed) and 0.0.0.0 (TLS only),
/// alice's password stored as `doveadm pw` writes SHA512-CRYPT.
fn setup(extra: &[&str]) -> Setup {
    setup_with_mailbox(extra, &[])
}

/// [`setup`] with lines added to `[mailbox]`.
fn setup_with_mailbox(extra: &[&str], mailbox: &[&str]) -> Setup {
    let hash = Command::new("doveadm")
        .args(["pw", "-s", "SHA512-CRYPT", "-p", PASSWORD])
        .output()
        .expect("doveadm pw");
    assert!(hash.status.success(), "doveadm pw failed");
    let hash = String::from_utf8(hash.stdout).expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = tls::make(&dir.path().join("pki"));
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some(format!(
        "alice@example.test:{}::::\nbob@example.test:{{PLAIN}}bobpw::::\n",
        hash.trim()
    ));
    options.sieve_extra = vec!["personal_dir = \"mail/%d/%n/sieve\"".into()];
    options.mailbox_extra = mailbox.iter().map(|l| l.to_string()).collect();
    // An `extra` line `listen = [...]` replaces the two default listeners (it must keep
    // one loopback and one wildcard listener, which the tests use).
    let listen = extra
        .iter()
        .find(|l| l.starts_with("listen"))
        .map_or("listen = [\"127.0.0.1:0\", \"0.0.0.0:0\"]", |l| l);
    let mut section = format!(
        "[managesieve]\n{listen}\ntls_cert = \"{}\"\ntls_key = \"{}\"\nallow_plaintext_auth = true\n",
        pki.cert.display(),
        pki.key.display()
    );
    for line in extra.iter().filter(|l| !l.starts_with("listen")) {
        section.push_str(line);
        section.push('\n');
    }
    options.extra_sections = vec![section];
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    let addrs = listeners(&server.wait_for_log("managesieve at 0.0.0.0"));
    let local = *addrs
        .iter()
        .find(|a| a.ip().is_loopback())
        .expect("loopback listener");
    let public = addrs
        .iter()
        .find(|a| a.ip().is_unspecified())
        .map(|a| SocketAddr::from(([127, 0, 0, 1], a.port())))
        .expect("wildcard listener");
    Setup {
        env,
        _pki_dir: dir,
        pki,
        server,
        local,
        public,
    }
}

/// The ManageSieve listeners a server's startup log names (`managesieve at ADDR`).
fn listeners(logs: &str) -> Vec<SocketAddr> {
    logs.lines()
        .filter_map(|l| l.split("managesieve at ").nth(1))
        .filter_map(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
        .filter_map(|a| a.parse().ok())
        .collect()
}

impl Setup {
    /// A second server on this setup's config with `[sieve]` pointed at Pigeonhole's
    /// layout under `root` (`sieve = file:<root>/sieve/%n;active=.../personal.sieve`), and
    /// its loopback ManageSieve listener.
    fn on_pigeonhole_layout(&self, root: &Path) -> (Running, SocketAddr) {
        let root = root.display();
        let config = std::fs::read_to_string(&self.env.config_path).expect("config");
        let config = config
            .replace(
                "personal = \"mail/%d/%n/.dovecot.sieve\"",
                &format!("personal = \"{root}/sieve/%n/personal.sieve\""),
            )
            .replace(
                "personal_dir = \"mail/%d/%n/sieve\"",
                &format!("personal_dir = \"{root}/sieve/%n\""),
            );
        std::fs::write(&self.env.config_path, config).expect("config");
        let server = Running::start(&self.env.config_path);
        let addr = *listeners(&server.wait_for_log("managesieve at 127.0.0.1"))
            .iter()
            .find(|a| a.ip().is_loopback())
            .expect("loopback listener");
        (server, addr)
    }

    fn sieve_dir(&self, user: &str) -> PathBuf {
        self.env
            .dir
            .path()
            .join("mail/example.test")
            .join(user)
            .join("sieve")
    }
    fn active_link(&self, user: &str) -> PathBuf {
        self.env
            .dir
            .path()
            .join("mail/example.test")
            .join(user)
            .join(".dovecot.sieve")
    }
}

/// A line-oriented raw client (TCP or a unix socket).
struct Client {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let mut client = Client::tcp_unchecked(addr);
        client.greeted();
        client
    }

    /// Connected, the greeting not read yet.
    fn tcp_unchecked(addr: SocketAddr) -> Client {
        let stream = tcp(addr);
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            reader: BufReader::new(Box::new(stream.try_clone().expect("clone"))),
            writer: Box::new(stream),
        }
    }

    fn unix(path: &Path) -> Client {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect unix");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut client = Client {
            reader: BufReader::new(Box::new(stream.try_clone().expect("clone"))),
            writer: Box::new(stream),
        };
        client.greeted();
        client
    }

    fn greeted(&mut self) {
        let greeting = self.response();
        assert!(
            greeting.ends_with("OK \"sievegate ManageSieve ready\"\r\n"),
            "{greeting}"
        );
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Lines up to and including the next OK/NO/BYE line ("" if the server closed).
    fn response(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return out,
                Ok(_) => {}
            }
            out.push_str(&line);
            if line.starts_with("OK") || line.starts_with("NO") || line.starts_with("BYE") {
                return out;
            }
        }
    }

    fn command(&mut self, bytes: &[u8]) -> String {
        self.send(bytes);
        self.response()
    }

    fn login(&mut self, user: &str, password: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(format!("AUTHENTICATE \"PLAIN\" \"{b64}\"\r\n").as_bytes())
    }

    fn put(&mut self, name: &str, script: &str) -> String {
        let mut cmd = format!("PUTSCRIPT \"{name}\" {{{}+}}\r\n", script.len()).into_bytes();
        cmd.extend_from_slice(script.as_bytes());
        cmd.extend_from_slice(b"\r\n");
        self.command(&cmd)
    }

    /// Whether the server closed the connection (within the read timeout).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

fn vm_rss_kb(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Every file under `root`, relative.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path.clone());
            }
            out.push(
                path.strip_prefix(root)
                    .expect("under")
                    .display()
                    .to_string(),
            );
        }
    }
    out.sort();
    out
}

const SCRIPT: &str = "require [\"fileinto\", \"mailbox\"];\r\nif header :contains \"subject\" \"sort me\" {\r\n  fileinto :create \"Uploaded\";\r\n}\r\n";

#[test]
fn sieve_connect_round_trip_over_starttls_and_the_script_runs_at_delivery() {
    let s = setup(&[]);
    let local = s.env.dir.path().join("rules.sieve");
    std::fs::write(&local, SCRIPT).expect("write");
    // Through the TLS-only listener: sieve-connect does STARTTLS and verifies our test CA.
    let run = |args: &[&str]| -> String {
        let mut child = Command::new("sieve-connect")
            .args([
                "--server",
                "localhost",
                "--4",
                "--port",
                &s.public.port().to_string(),
                "--user",
                "alice@example.test",
                "--authmech",
                "PLAIN",
                "--tlscafile",
                &s.pki.ca.display().to_string(),
                "--passwordfd",
                "0",
                "--noclearchan",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sieve-connect");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("password");
        let out = child.wait_with_output().expect("sieve-connect");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "sieve-connect {args:?}:\n{text}\n{}",
            s.server.logs()
        );
        text
    };
    let local_s = local.display().to_string();
    run(&[
        "--upload",
        "--localsieve",
        &local_s,
        "--remotesieve",
        "rules",
    ]);
    assert_eq!(
        std::fs::read(s.sieve_dir("alice").join("rules.sieve")).expect("stored"),
        SCRIPT.as_bytes()
    );
    let listed = run(&["--list"]);
    assert!(listed.contains("rules"), "{listed}");
    run(&["--activate", "--remotesieve", "rules"]);
    assert_eq!(
        std::fs::read_link(s.active_link("alice")).expect("link"),
        Path::new("sieve/rules.sieve")
    );
    let fetched = s.env.dir.path().join("fetched.sieve");
    run(&[
        "--download",
        "--remotesieve",
        "rules",
        "--localsieve",
        &fetched.display().to_string(),
    ]);
    assert_eq!(std::fs::read(&fetched).expect("fetched"), SCRIPT.as_bytes());

    // The engine that accepted it runs it.
    let got = converse(
        tcp(s.server.addr),
        &transaction(&["alice@example.test"], &clean_message("please sort me")),
    );
    assert!(got.contains("250 2.0.0"), "{got}");
    assert_eq!(
        s.env.messages("alice", ".Uploaded").len(),
        1,
        "{}",
        s.server.logs()
    );

    run(&["--deactivate"]);
    assert!(s.active_link("alice").symlink_metadata().is_err());
    run(&["--delete", "--remotesieve", "rules"]);
    assert!(!s.sieve_dir("alice").join("rules.sieve").exists());
    assert!(
        !s.server.logs().contains(PASSWORD),
        "no password in the log"
    );
}

#[test]
fn php_net_sieve_round_trip() {
    let s = setup(&[]);
    let php = s.env.dir.path().join("client.php");
    std::fs::write(
        &php,
        r#"<?php
require_once 'Net/Sieve.php';
function check($r, $what) {
    if (is_a($r, 'PEAR_Error')) { fwrite(STDERR, "$what: " . $r->getMessage() . "\n"); exit(1); }
    return $r;
}
$port = (int)$argv[1];
$ctx = array('ssl' => array('cafile' => $argv[2], 'peer_name' => 'localhost', 'verify_peer' => true));
$sieve = new Net_Sieve();
check($sieve->connect('127.0.0.1', $port, $ctx, true), 'connect');
check($sieve->login('alice@example.test', $argv[3], 'PLAIN'), 'login');
check($sieve->installScript('roundcube', file_get_contents($argv[4]), true), 'install');
$list = check($sieve->listScripts(), 'list');
echo "list:" . implode(',', $list) . "\n";
echo "active:" . check($sieve->getActive(), 'active') . "\n";
$body = check($sieve->getScript('roundcube'), 'get');
// Net_Sieve hands back the literal with the CRLF that ends the response line.
echo "same:" . (rtrim($body, "\r\n") === rtrim(file_get_contents($argv[4]), "\r\n") ? 'yes' : 'no') . "\n";
copy($argv[5] . '/roundcube.sieve', $argv[5] . '/../stored-copy');
check($sieve->setActive(''), 'deactivate');
check($sieve->removeScript('roundcube'), 'remove');
$list = check($sieve->listScripts(), 'list again');
echo "after:" . implode(',', $list) . "\n";
$sieve->disconnect();
"#,
    )
    .expect("php");
    let script = s.env.dir.path().join("rc.sieve");
    std::fs::write(&script, SCRIPT).expect("script");
    let out = Command::new("php")
        .arg(&php)
        .arg(s.public.port().to_string())
        .arg(&s.pki.ca)
        .arg(PASSWORD)
        .arg(&script)
        .arg(s.sieve_dir("alice"))
        .output()
        .expect("php");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.server.logs()
    );
    assert!(text.contains("list:roundcube\n"), "{text}");
    assert!(text.contains("active:roundcube\n"), "{text}");
    assert!(text.contains("same:yes\n"), "{text}");
    assert!(text.contains("after:\n"), "{text}");
    // Stored byte for byte as uploaded.
    let stored = s.sieve_dir("alice").join("../stored-copy");
    assert_eq!(std::fs::read(stored).expect("copy"), SCRIPT.as_bytes());
}

#[test]
fn authenticate_needs_tls_on_a_network_listener() {
    let s = setup(&[]);
    let mut c = Client::connect(s.public);
    let caps = c.command(b"CAPABILITY\r\n");
    assert!(caps.contains("\"SASL\" \"\"\r\n"), "{caps}");
    assert!(caps.contains("\"STARTTLS\"\r\n"), "{caps}");
    let r = c.login("alice@example.test", PASSWORD);
    assert!(r.starts_with("NO (ENCRYPT-NEEDED)"), "{r}");
    // The loopback listener allows it (allow_plaintext_auth) and lists the extensions.
    let mut c = Client::connect(s.local);
    let caps = c.command(b"CAPABILITY\r\n");
    assert!(caps.contains("\"SASL\" \"PLAIN\""), "{caps}");
    assert!(
        caps.contains("fileinto") && caps.contains("virustest"),
        "{caps}"
    );
    assert!(!caps.contains("vnd.dovecot"), "{caps}");
    let r = c.login("alice@example.test", "wrong");
    assert!(r.starts_with("NO"), "{r}");
    let r = c.login("alice@example.test", PASSWORD);
    assert!(r.starts_with("OK"), "{r}");
}

#[test]
fn scripts_are_checked_like_delivery_and_quotas_hold() {
    let s = setup(&["max_scripts = 2"]);
    let mut c = Client::connect(s.local);
    assert!(c.login("bob@example.test", "bobpw").starts_with("OK"));
    // A compile error with the compiler's line; nothing stored.
    let r = c.put("broken", "keep;\r\nif true {\r\n");
    assert!(r.starts_with("NO") && r.contains("broken:"), "{r}");
    // Pigeonhole-only extensions are refused at upload, not skipped at delivery.
    let r = c.put("dovecot", "require \"vnd.dovecot.debug\";\r\nkeep;\r\n");
    assert!(r.starts_with("NO \"dovecot:1:1: extension"), "{r}");
    let special = "require \"special-use\";\r\n";
    let r = c.command(format!("CHECKSCRIPT {{{}+}}\r\n{special}\r\n", special.len()).as_bytes());
    assert!(r.starts_with("OK"), "{r}");
    assert!(c.put("one", "keep;").starts_with("OK"));
    assert!(c.put("two", "keep;").starts_with("OK"));
    let r = c.put("three", "keep;");
    assert!(r.starts_with("NO (QUOTA/MAXSCRIPTS)"), "{r}");
    let r = c.command(b"HAVESPACE \"x\" 99999999\r\n");
    assert!(r.starts_with("NO (QUOTA/MAXSIZE)"), "{r}");
    assert!(c.command(b"SETACTIVE \"one\"\r\n").starts_with("OK"));
    let r = c.command(b"DELETESCRIPT \"one\"\r\n");
    assert!(r.starts_with("NO (ACTIVE)"), "{r}");
    let r = c.command(b"RENAMESCRIPT \"one\" \"two\"\r\n");
    assert!(r.starts_with("NO (ALREADYEXISTS)"), "{r}");
    let r = c.command(b"GETSCRIPT \"nope\"\r\n");
    assert!(r.starts_with("NO (NONEXISTENT)"), "{r}");
    assert!(c
        .command(b"RENAMESCRIPT \"one\" \"uno\"\r\n")
        .starts_with("OK"));
    let r = c.command(b"LISTSCRIPTS\r\n");
    assert_eq!(
        r,
        "\"two\"\r\n\"uno\" ACTIVE\r\nOK \"Listscripts completed\"\r\n"
    );
    let dir = s.sieve_dir("bob");
    assert_eq!(tree(&dir), vec!["tmp", "two.sieve", "uno.sieve"]);
}

/// `[mailbox] namespace_prefix = "INBOX."` (Courier style): a constant `fileinto` outside
/// the prefix would be stored in INBOX at delivery, so PUTSCRIPT and CHECKSCRIPT refuse it
/// with its line; inside the prefix it is accepted and files into `.Sub`.
#[test]
fn folders_are_checked_under_the_namespace_prefix() {
    let s = setup_with_mailbox(&[], &["namespace_prefix = \"INBOX.\""]);
    let mut c = Client::connect(s.local);
    assert!(c.login("bob@example.test", "bobpw").starts_with("OK"));
    let outside = "require \"fileinto\";\r\n# sort\r\nfileinto \"Sub\";\r\n";
    let r = c.put("outside", outside);
    assert!(
        r.starts_with("NO \"outside:3:")
            && r.contains("Sub")
            && r.contains("outside the namespace prefix"),
        "{r}"
    );
    let r = c.command(format!("CHECKSCRIPT {{{}+}}\r\n{outside}\r\n", outside.len()).as_bytes());
    assert!(r.starts_with("NO") && r.contains(":3:"), "{r}");
    assert!(!s.sieve_dir("bob").join("outside.sieve").exists());
    let inside = "require [\"fileinto\", \"mailbox\"];\r\nfileinto :create \"INBOX.Sub\";\r\n";
    assert!(c.put("inside", inside).starts_with("OK"));
    assert!(c.command(b"SETACTIVE \"inside\"\r\n").starts_with("OK"));
    let got = converse(
        tcp(s.server.addr),
        &transaction(&["bob@example.test"], &clean_message("sorted")),
    );
    assert!(got.contains("250 2.0.0"), "{got}");
    assert_eq!(
        s.env.messages("bob", ".Sub").len(),
        1,
        "{}",
        s.server.logs()
    );
}

#[test]
fn hostile_literals_names_and_floods() {
    let s = setup(&["max_commands = 1000"]);
    let pid = s.server.pid();
    let mut c = Client::connect(s.local);
    assert!(c.login("bob@example.test", "bobpw").starts_with("OK"));
    // Over the size cap (1 MiB by default) but not absurd: dropped, then refused.
    let mut big = b"PUTSCRIPT \"big\" {3000000+}\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'#', 3_000_000));
    big.extend_from_slice(b"\r\n");
    let r = c.command(&big);
    assert!(r.starts_with("NO (QUOTA/MAXSIZE)"), "{r}");
    // Path tricks.
    for name in ["../evil", "a/b", "..", ".dovecot"] {
        let r = c.put(name, "keep;");
        assert!(r.starts_with("NO"), "{name}: {r}");
    }
    let r = c.command(b"PUTSCRIPT {3+}\r\na\0b {5+}\r\nkeep;\r\n");
    assert!(r.starts_with("NO"), "NUL: {r}");
    let r = c.command(b"GETSCRIPT \"../../../../etc/passwd\"\r\n");
    assert!(r.starts_with("NO"), "{r}");
    assert!(c.put("fine", "keep;").starts_with("OK"));
    let home = s.env.dir.path().join("mail/example.test/bob");
    assert_eq!(
        tree(&home),
        vec!["sieve", "sieve/fine.sieve", "sieve/tmp"],
        "nothing outside"
    );

    // A 2 GB literal announced: refused at once, nothing buffered.
    let before = vm_rss_kb(pid);
    let started = Instant::now();
    let r = c.command(b"PUTSCRIPT \"huge\" {2147483648+}\r\n");
    assert!(r.starts_with("BYE"), "{r}");
    assert!(c.closed());
    assert!(started.elapsed() < Duration::from_secs(5));
    let after = vm_rss_kb(pid);
    assert!(after < before + 8 * 1024, "VmRSS {before} kB -> {after} kB");

    // 10,000 commands in one session: cut off at max_commands.
    let mut c = Client::connect(s.local);
    let flood = b"NOOP\r\n".repeat(10_000);
    c.send(&flood);
    let mut all = String::new();
    c.reader.read_to_string(&mut all).ok();
    assert_eq!(all.matches("OK \"Done\"").count(), 1000);
    assert!(
        all.ends_with("BYE \"Too many commands in one session\"\r\n"),
        "{}",
        &all[all.len() - 80..]
    );
    let after_flood = vm_rss_kb(pid);
    eprintln!("VmRSS: {before} kB before the 2 GB literal, {after} kB after, {after_flood} kB after the flood");
    assert!(
        after_flood < before + 16 * 1024,
        "VmRSS {before} kB -> {after_flood} kB"
    );
}

/// A unix listener (a webmail on the same host): plaintext logins allowed there, the socket
/// counted against `max_connections` like TCP; over the limit a client gets BYE at once,
/// and a freed slot serves the next.
#[test]
fn a_unix_listener_and_the_connection_limit() {
    let s = setup(&[
        "listen = [\"127.0.0.1:0\", \"0.0.0.0:0\", \"unix:ms.sock\"]",
        "max_connections = 1",
    ]);
    let sock = s.env.config_path.parent().expect("dir").join("ms.sock");
    let mut c = Client::unix(&sock);
    assert!(
        c.login("bob@example.test", "bobpw").starts_with("OK"),
        "{}",
        s.server.logs()
    );
    assert!(c.put("via-unix", "keep;\r\n").starts_with("OK"));
    assert!(s.sieve_dir("bob").join("via-unix.sieve").is_file());
    let mut refused = Client::tcp_unchecked(s.local);
    let r = refused.response();
    assert_eq!(r, "BYE \"Too many connections; try later\"\r\n");
    assert!(refused.closed());
    assert!(c.command(b"LOGOUT\r\n").starts_with("OK"));
    drop(c);
    // The slot is given back when the session ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = Client::tcp_unchecked(s.local);
        let r = next.response();
        if r.ends_with("OK \"sievegate ManageSieve ready\"\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_clients_are_disconnected() {
    let s = setup(&["idle_timeout_secs = 2", "command_timeout_secs = 3"]);
    let mut idle = Client::connect(s.local);
    let started = Instant::now();
    let r = idle.response();
    assert!(r.starts_with("BYE \"Disconnected for inactivity\""), "{r}");
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(10)
    );
    // A command that starts and stalls (a literal never finished).
    let mut stall = Client::connect(s.local);
    assert!(stall.login("bob@example.test", "bobpw").starts_with("OK"));
    stall.send(b"PUTSCRIPT \"x\" {100+}\r\nkeep;");
    let started = Instant::now();
    let r = stall.response();
    assert!(r.starts_with("BYE"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!s.sieve_dir("bob").join("x.sieve").exists());
}

#[test]
fn concurrent_putscript_and_setactive_leave_a_consistent_directory() {
    let s = setup(&[]);
    let addr = s.local;
    let workers: Vec<_> = (0..2)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                assert!(c.login("bob@example.test", "bobpw").starts_with("OK"));
                for i in 0..40 {
                    let name = format!("s{}", (i + w) % 3);
                    let r = c.put(&name, &format!("# {w} {i}\r\nkeep;\r\n"));
                    assert!(r.starts_with("OK"), "{r}");
                    let r = c.command(format!("SETACTIVE \"{name}\"\r\n").as_bytes());
                    assert!(r.starts_with("OK"), "{r}");
                }
                c.command(b"LOGOUT\r\n")
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().expect("worker").starts_with("OK"));
    }
    let dir = s.sieve_dir("bob");
    assert_eq!(tree(&dir), vec!["s0.sieve", "s1.sieve", "s2.sieve", "tmp"]);
    let target = std::fs::read_link(s.active_link("bob")).expect("link");
    let resolved = s.active_link("bob").parent().expect("home").join(&target);
    let text = std::fs::read_to_string(&resolved).expect("active script exists");
    assert!(text.ends_with("keep;\r\n"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(s.active_link("bob").parent().expect("home"))
        .expect("home")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("sievegate-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn logins_through_dovecots_auth_service() {
    // Dovecot's passdb knows bob with another password than the users file: the answer
    // must be Dovecot's.
    let dovecot = crate::support::dovecot::Dovecot::start_with(crate::support::dovecot::Options {
        passwd: Some("bob@example.test:{PLAIN}dovecot-pw::::\n".into()),
        ..Default::default()
    });
    let socket = format!(
        "dovecot_auth_socket = \"{}\"",
        dovecot.auth_socket().display()
    );
    let s = setup(&["auth = \"dovecot\"", &socket]);
    let mut c = Client::connect(s.local);
    let r = c.login("bob@example.test", "bobpw");
    assert!(r.starts_with("NO"), "{r}");
    let r = c.login("bob@example.test", "dovecot-pw");
    assert!(r.starts_with("OK"), "{r}\n{}", s.server.logs());
    assert!(c.put("via-dovecot", "keep;").starts_with("OK"));
    assert!(s.sieve_dir("bob").join("via-dovecot.sieve").is_file());
    assert!(
        !s.server.logs().contains("dovecot-pw"),
        "no password in the log"
    );
}

/// Whether a STARTTLS handshake on `addr` verifies against `ca`.
fn handshake_verifies(addr: SocketAddr, ca: &Path) -> bool {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-starttls",
            "sieve",
        ])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    out.status.success()
}

#[test]
fn sighup_reloads_the_certificate() {
    let s = setup(&[]);
    assert!(handshake_verifies(s.public, &s.pki.ca));
    // A new CA and certificate written over the configured files.
    let fresh = tempfile::tempdir().expect("tempdir");
    let new = tls::make(fresh.path());
    std::fs::copy(&new.cert, &s.pki.cert).expect("cert");
    std::fs::copy(&new.key, &s.pki.key).expect("key");
    assert!(
        handshake_verifies(s.public, &s.pki.ca),
        "old material until SIGHUP"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(s.server.pid(), libc::SIGHUP) };
    let logs = s.server.wait_for_log("TLS certificate and key reloaded");
    assert!(logs.contains("TLS certificate and key reloaded"), "{logs}");
    assert!(handshake_verifies(s.public, &new.ca));
    assert!(!handshake_verifies(s.public, &s.pki.ca));
    // A renewal gone wrong (a truncated certificate): logged, and the last good material
    // keeps serving.
    std::fs::write(&s.pki.cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").expect("cert");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(s.server.pid(), libc::SIGHUP) };
    let logs = s
        .server
        .wait_for_log("TLS material not reloaded; keeping the old");
    assert!(logs.contains("keeping the old"), "{logs}");
    assert!(handshake_verifies(s.public, &new.ca));
}

#[test]
fn a_script_uploaded_here_is_the_one_pigeonhole_runs() {
    use crate::support::dovecot::Dovecot;
    let dovecot = Dovecot::start();
    dovecot.add_user("alice");
    // The user's directory exists, owned by the mail user (as Dovecot's own would be).
    dovecot.set_personal_include("alice", "old", "keep;\r\n");
    let s = setup(&[]);
    // Point [sieve] at Pigeonhole's layout.
    let (_server, addr) = s.on_pigeonhole_layout(dovecot.root());
    let mut c = Client::connect(addr);
    assert!(c.login("alice@example.test", PASSWORD).starts_with("OK"));
    assert!(c.put("rules", SCRIPT).starts_with("OK"));
    let r = c.command(b"SETACTIVE \"rules\"\r\n");
    assert!(r.starts_with("OK"), "{r}");
    let r = c.command(b"LISTSCRIPTS\r\n");
    assert_eq!(
        r,
        "\"old\"\r\n\"rules\" ACTIVE\r\nOK \"Listscripts completed\"\r\n"
    );
    // Pigeonhole's LMTP runs it.
    let got = converse(
        tcp(dovecot.addr()),
        &transaction(&["alice@example.test"], &clean_message("please sort me")),
    );
    assert!(got.contains("250 2.0.0"), "{got}");
    let sorted = dovecot.maildir("alice").join(".Uploaded/new");
    let count = std::fs::read_dir(&sorted).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 1, "Pigeonhole filed into Uploaded: {got}");
}

#[test]
fn a_script_pigeonhole_activated_is_the_one_listed_here() {
    use crate::support::dovecot::Dovecot;
    let dovecot = Dovecot::start();
    dovecot.add_user("alice");
    dovecot.set_personal_include("alice", "old", "keep;\r\n");
    let script = dovecot.root().join("from-pigeonhole.sieve");
    std::fs::write(&script, SCRIPT).expect("script");
    // Pigeonhole's own tool stores and activates it in its layout.
    let out = Command::new("doveadm")
        .arg("-c")
        .arg(dovecot.config_path())
        .args(["sieve", "put", "-u", "alice@example.test", "-a", "theirs"])
        .stdin(std::fs::File::open(&script).expect("open"))
        .output()
        .expect("doveadm sieve put");
    assert!(
        out.status.success(),
        "doveadm sieve put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = setup(&[]);
    let (server, addr) = s.on_pigeonhole_layout(dovecot.root());
    let mut c = Client::connect(addr);
    assert!(c.login("alice@example.test", PASSWORD).starts_with("OK"));
    let r = c.command(b"LISTSCRIPTS\r\n");
    assert!(r.contains("\"theirs\" ACTIVE\r\n"), "{r}");
    let r = c.command(b"GETSCRIPT \"theirs\"\r\n");
    assert!(r.contains(SCRIPT), "{r}");
    // And sievegate's delivery runs the same script.
    let got = converse(
        tcp(server.addr),
        &transaction(&["alice@example.test"], &clean_message("please sort me")),
    );
    assert!(got.contains("250 2.0.0"), "{got}");
    assert_eq!(
        s.env.messages("alice", ".Uploaded").len(),
        1,
        "{}",
        server.logs()
    );
}
