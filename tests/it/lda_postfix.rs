//! LDA mode behind a real Postfix: a private instance (own config, queue and data
//! directories, `maillog_file`) accepts SMTP on loopback and delivers through a `pipe(8)`
//! service that runs `sievegate deliver` as the `mail` user. What Postfix makes of the exit
//! statuses is the point: infected mail is `status=sent` and never bounced, also for an
//! unknown user; clamd down is `status=deferred`, delivered once clamd is back.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::binary::bin;
use crate::support::clamd::Clamd;
use crate::support::dovecot::MailUser;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message};
use crate::support::smtp_sink::free_port;

/// A private Postfix whose virtual domain `example.test` goes to `sievegate deliver`.
struct Postfix {
    dir: TempDir,
    port: u16,
}

impl Postfix {
    fn start(sievegate_config: &Path) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "postfix not found: apt-get install postfix"
        );
        let dir = tempfile::Builder::new()
            .prefix("sievegate-postfix-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir(root.join(sub)).expect("mkdir");
        }
        // The master's lock file lives in data_directory, which Postfix wants as its own.
        let postfix = nix::unistd::User::from_name("postfix")
            .expect("passwd")
            .expect("a `postfix` user (apt-get install postfix)");
        std::os::unix::fs::chown(root.join("data"), Some(postfix.uid.as_raw()), None)
            .expect("chown data");
        let port = free_port();
        let r = root.display();
        std::fs::write(
            root.join("conf/main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {r}/queue\n\
                 data_directory = {r}/data\n\
                 myhostname = mx.example.test\n\
                 mydestination =\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 maillog_file = {r}/maillog\n\
                 maillog_file_prefixes = {r}\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtpd_recipient_restrictions = permit_mynetworks, reject\n\
                 virtual_mailbox_domains = example.test\n\
                 virtual_mailbox_maps = static:OK\n\
                 virtual_transport = sievegate\n\
                 sievegate_destination_recipient_limit = 1\n\
                 default_transport = error:no remote delivery in this test\n"
            ),
        )
        .expect("main.cf");
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n{}\n\
             sievegate unix - n n - - pipe\n  flags=hu user=mail argv={} deliver -c {} -f ${{sender}} -a ${{recipient}}\n",
            services.join("\n"),
            bin(),
            sievegate_config.display()
        );
        std::fs::write(root.join("conf/master.cf"), master).expect("master.cf");
        let status = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(root.join("conf"))
            .arg("start")
            .status()
            .expect("postfix start");
        assert!(status.success(), "postfix start failed");
        let pf = Postfix { dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix does not listen:\n{}",
                pf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pf
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Sends one message over SMTP; returns Postfix's queue id.
    fn send(&self, from: &str, to: &str, message: &[u8]) -> String {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut w = stream;
        // The last line of a (possibly multi-line) reply.
        let mut reply = || loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        };
        reply();
        for cmd in [
            "EHLO client.example".to_string(),
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{to}>"),
            "DATA".to_string(),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
            let r = reply();
            assert!(r.starts_with('2') || r.starts_with('3'), "{cmd}: {r}");
        }
        w.write_all(message).expect("write");
        w.write_all(b".\r\n").expect("write");
        let r = reply();
        assert!(r.starts_with("250"), "end of data: {r}");
        // "250 2.0.0 Ok: queued as ABC123"
        let queue_id = r.trim().rsplit(' ').next().unwrap_or_default().to_string();
        w.write_all(b"QUIT\r\n").expect("write");
        queue_id
    }

    /// Waits for a maillog line of `queue_id` with `status=`; returns that line.
    fn wait_status(&self, queue_id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains(&format!("{queue_id}: to=")) && l.contains("status="))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no delivery status for {queue_id}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .status();
    }
}

/// Lets the `mail` user reach `dir` (a test's private, root-only temp directory).
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn postfix_pipe_never_bounces_infected_mail_and_defers_while_clamd_is_down() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "needs root to run Postfix"
    );
    let user = MailUser::lookup();
    let mut clamd = Clamd::start();
    open_up(clamd.socket().parent().expect("clamd dir"));
    let mut options = Options::new(clamd.addr());
    options.users = Some("bob@example.test\n".into());
    let env = Env::new(options);
    open_up(env.dir.path());
    let mail = env.dir.path().join("mail");
    std::fs::create_dir(&mail).expect("mkdir");
    user.chown(&mail);
    let postfix = Postfix::start(&env.config_path);

    let clean = postfix.send(
        "sender@remote.example",
        "bob@example.test",
        &clean_message("via postfix"),
    );
    let line = postfix.wait_status(&clean);
    assert!(line.contains("status=sent"), "{line}\n{}", postfix.log());
    assert_eq!(env.messages("bob", "").len(), 1);

    for to in ["bob@example.test", "nobody@example.test"] {
        let id = postfix.send("mallory@forged.example", to, &infected_message());
        let line = postfix.wait_status(&id);
        assert!(line.contains("status=sent"), "{to}: {line}");
    }
    assert_eq!(env.messages("bob", "").len(), 1, "infected mail stored");
    let log = postfix.log();
    assert!(!log.contains("status=bounced"), "{log}");
    assert!(!log.contains("sender non-delivery notification"), "{log}");

    clamd.stop();
    let id = postfix.send(
        "sender@remote.example",
        "bob@example.test",
        &clean_message("later"),
    );
    let line = postfix.wait_status(&id);
    assert!(line.contains("status=deferred"), "{line}");
    clamd.restart();
    let flushed = Command::new("/usr/sbin/postqueue")
        .arg("-c")
        .arg(postfix.conf())
        .arg("-f")
        .status()
        .expect("postqueue");
    assert!(flushed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !postfix
        .log()
        .lines()
        .any(|l| l.contains(&format!("{id}: to=")) && l.contains("status=sent"))
    {
        assert!(
            Instant::now() < deadline,
            "not delivered after the flush:\n{}",
            postfix.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.messages("bob", "").len(), 2);
}
