//! The Authenticator with the users_file backend (Dovecot's backend is tested against a real
//! Dovecot in `tests/it/auth.rs`).

use super::*;
use std::net::IpAddr;

/// `doveadm pw -s SHA512-CRYPT -p alice-pw` and `doveadm pw -s BLF-CRYPT -p bob-pw`.
const USERS: &str = "\
alice@example.test:{SHA512-CRYPT}$6$F55.FCsUlJl7oj6v$lLl6b03jCeSvtPaXQb1la1UavtNH5UaQav8KS5KQ3c5SysEne.zGd6iSDSu21ErTUln/YdX8ynzA9EfOYtNFG0::::/home/alice
bob:{BLF-CRYPT}$2y$05$zwKtLkSezl4rGgLJ/pYmiuJhVZkB4YIz0xcw527p1Z4DxkvE5mfm2
carol@example.test::::::/home/carol
dave@example.test:{MD5-CRYPT}$1$uHPvsBNI$iN7CB9CvqA8EFTVLnb/MI/
erin@example.test:erin-pw
";

fn authenticator(dir: &tempfile::TempDir, limits: Limits, default: Scheme) -> Authenticator {
    let path = dir.path().join("users");
    std::fs::write(&path, USERS).expect("write users");
    let domains = ["example.test".to_string(), "other.test".to_string()];
    Authenticator::users_file("test", &path, &domains, default, limits)
}

fn no_delay() -> Limits {
    Limits {
        failure_delay: Duration::ZERO,
        ..Limits::default()
    }
}

fn from(ip: &str) -> Origin {
    Origin {
        remote: Some(ip.parse::<IpAddr>().expect("ip")),
        local: None,
        secured: true,
    }
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[tokio::test]
async fn users_file_logins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, no_delay(), Scheme::Plain);
    let ok = |user: &str, home: Option<&str>| {
        Outcome::Success(Login {
            user: user.into(),
            home: home.map(PathBuf::from),
        })
    };
    let cases: &[(&str, &str, Outcome)] = &[
        (
            "alice@example.test",
            "alice-pw",
            ok("alice@example.test", Some("/home/alice")),
        ),
        (
            "Alice@Example.TEST",
            "alice-pw",
            ok("alice@example.test", Some("/home/alice")),
        ),
        ("alice@example.test", "alice-pW", Outcome::Failed),
        ("alice@other.test", "alice-pw", Outcome::Failed),
        ("alice", "alice-pw", Outcome::Failed),
        // A bare entry logs in bare or at any served domain, not at others.
        ("bob", "bob-pw", ok("bob", None)),
        ("bob@other.test", "bob-pw", ok("bob@other.test", None)),
        ("bob@elsewhere.test", "bob-pw", Outcome::Failed),
        // No password field: no login.
        (
            "carol@example.test",
            "",
            Outcome::Malformed(PlainError::Shape),
        ),
        ("carol@example.test", "x", Outcome::Failed),
        // A scheme we do not verify: refused (and logged for the admin).
        ("dave@example.test", "correct horse", Outcome::Failed),
        // No prefix: the default scheme (PLAIN here).
        (
            "erin@example.test",
            "erin-pw",
            ok("erin@example.test", None),
        ),
        ("nobody@example.test", "x", Outcome::Failed),
    ];
    for (i, (user, password, want)) in cases.iter().enumerate() {
        // A fresh address each time: these are not about the limits.
        let got = auth
            .plain(&plain(user, password), from(&format!("192.0.2.{i}")))
            .await;
        assert_eq!(&got, want, "{user} / {password}");
    }
    assert_eq!(
        auth.plain_base64(
            "YWxpY2VAZXhhbXBsZS50ZXN0AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
            from("192.0.2.10")
        )
        .await
        .label(),
        "ok"
    );
    assert_eq!(
        auth.plain(b"bob\0alice@example.test\0alice-pw", from("192.0.2.10"))
            .await,
        Outcome::Malformed(PlainError::Authzid)
    );
}

#[tokio::test]
async fn default_scheme_crypt_reads_dollar_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, no_delay(), Scheme::Crypt);
    // erin's bare "erin-pw" is no crypt hash: refused under CRYPT.
    assert_eq!(
        auth.plain(&plain("erin@example.test", "erin-pw"), from("192.0.2.1"))
            .await,
        Outcome::Failed
    );
}

#[tokio::test]
async fn failures_are_limited_per_address_and_per_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        per_ip: 3,
        per_user: 2,
        ..no_delay()
    };
    let auth = authenticator(&dir, limits, Scheme::Plain);
    for _ in 0..2 {
        let got = auth
            .plain(&plain("alice@example.test", "guess"), from("192.0.2.1"))
            .await;
        assert_eq!(got, Outcome::Failed);
    }
    // alice is blocked, even with the right password, from another address too.
    let got = auth
        .plain(&plain("alice@example.test", "alice-pw"), from("192.0.2.2"))
        .await;
    assert_eq!(got, Outcome::RateLimited);
    // One more failure from 192.0.2.1 (another user) blocks the address for bob too.
    let got = auth
        .plain(&plain("nobody@example.test", "x"), from("192.0.2.1"))
        .await;
    assert_eq!(got, Outcome::Failed);
    let got = auth.plain(&plain("bob", "bob-pw"), from("192.0.2.1")).await;
    assert_eq!(got, Outcome::RateLimited);
    let got = auth.plain(&plain("bob", "bob-pw"), from("192.0.2.3")).await;
    assert_eq!(got.label(), "ok");
}

#[tokio::test]
async fn the_failure_delay_applies_to_failures_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        failure_delay: Duration::from_millis(300),
        ..Limits::default()
    };
    let auth = authenticator(&dir, limits, Scheme::Plain);
    let start = std::time::Instant::now();
    assert_eq!(
        auth.plain(&plain("bob", "bob-pw"), from("192.0.2.1"))
            .await
            .label(),
        "ok"
    );
    assert!(start.elapsed() < Duration::from_millis(300));
    let start = std::time::Instant::now();
    assert_eq!(
        auth.plain(&plain("bob", "nope"), from("192.0.2.1")).await,
        Outcome::Failed
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_unreadable_users_file_is_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domains = ["example.test".to_string()];
    let auth = Authenticator::users_file(
        "test",
        &dir.path().join("missing"),
        &domains,
        Scheme::Crypt,
        no_delay(),
    );
    let got = auth
        .plain(&plain("alice@example.test", "x"), from("192.0.2.1"))
        .await;
    assert_eq!(got, Outcome::Unavailable);
    assert!(got.is_temporary());
}

#[tokio::test]
async fn dovecot_down_is_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = Authenticator::dovecot("test", &dir.path().join("no-socket"), no_delay());
    let got = auth
        .plain(&plain("alice@example.test", "x"), from("192.0.2.1"))
        .await;
    assert_eq!(got, Outcome::Unavailable);
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_lines_name_the_user_and_outcome_never_the_password() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, no_delay(), Scheme::Plain);
    let secrets = ["alice-pw", "guess-1", "s3cr\u{e9}t\nforged line"];
    for password in secrets {
        auth.plain(&plain("alice@example.test", password), from("192.0.2.9"))
            .await;
    }
    auth.plain(&plain("dave@example.test", "guess-2"), from("192.0.2.9"))
        .await;
    auth.plain(b"\0x\0", from("192.0.2.9")).await;
    let log = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        log.contains("outcome=\"ok\"") || log.contains("outcome=ok"),
        "{log}"
    );
    assert!(log.contains("failed"), "{log}");
    assert!(
        log.contains("MD5-CRYPT"),
        "the admin learns the scheme: {log}"
    );
    for secret in secrets.iter().chain(&["guess-2", "$1$uHPvsBNI", "$6$F55"]) {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}
