//! Logins through Dovecot's real auth service (the private Dovecot of the differential
//! tests, with a passwd-file passdb and an auth-client socket), and the same passwd-file read
//! by sievegate's own users_file backend: both must agree.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sievegate::auth::{Authenticator, Limits, Login, Origin, Outcome, Scheme};

use crate::support::dovecot::{Dovecot, Options};

/// `doveadm pw -s SCHEME -p <user>-pw` for each user.
const PASSWD: &str = "\
alice@example.test:{SHA512-CRYPT}$6$F55.FCsUlJl7oj6v$lLl6b03jCeSvtPaXQb1la1UavtNH5UaQav8KS5KQ3c5SysEne.zGd6iSDSu21ErTUln/YdX8ynzA9EfOYtNFG0::::/home/alice
bob@example.test:{BLF-CRYPT}$2y$05$zwKtLkSezl4rGgLJ/pYmiuJhVZkB4YIz0xcw527p1Z4DxkvE5mfm2
carol@example.test:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$xnVuQa8bcpOcCgKuC6D/rA$UhK5MR18iNdtiAXUGlB+H3knjzgxVJP9VB8i3UYgjEg
";

fn limits() -> Limits {
    Limits {
        failure_delay: Duration::ZERO,
        ..Limits::default()
    }
}

fn local(secured: bool) -> Origin {
    Origin {
        remote: Some(IpAddr::from([127, 0, 0, 1])),
        local: Some(IpAddr::from([127, 0, 0, 1])),
        secured,
    }
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_auth_service_and_users_file_agree() {
    let passwd = PASSWD.to_string();
    let mut dovecot = Dovecot::start_with(Options {
        passwd: Some(passwd.clone()),
        ..Options::default()
    });
    let socket = dovecot.auth_socket();
    let via_dovecot = Authenticator::dovecot("managesieve", &socket, limits());
    let path = dovecot.root().join("passwd");
    let domains = ["example.test".to_string()];
    let via_file =
        Authenticator::users_file("managesieve", &path, &domains, Scheme::Crypt, limits());

    // (user, password, the user logged in or None for a failure)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("alice@example.test", "alice-pw", Some("alice@example.test")),
        ("ALICE@example.test", "alice-pw", Some("alice@example.test")),
        ("alice@example.test", "bob-pw", None),
        ("bob@example.test", "bob-pw", Some("bob@example.test")),
        ("bob@example.test", "bob-pW", None),
        ("carol@example.test", "carol-pw", Some("carol@example.test")),
        ("carol@example.test", "alice-pw", None),
        ("nobody@example.test", "alice-pw", None),
    ];
    for (user, password, want) in cases {
        for (backend, auth) in [("dovecot", &via_dovecot), ("users_file", &via_file)] {
            let started = Instant::now();
            let got = auth.plain(&plain(user, password), local(true)).await;
            let ok = match &got {
                Outcome::Success(Login { user, .. }) => Some(user.as_str()),
                Outcome::Failed => None,
                other => panic!("{backend}: {user}/{password}: {other:?}\n{}", dovecot.log()),
            };
            assert_eq!(ok, *want, "{backend}: {user} / {password}");
            eprintln!(
                "{backend} {user}: {} in {:?}",
                got.label(),
                started.elapsed()
            );
        }
    }

    // A login from another host over TLS: `lip`, `rip` and `secured` are passed along.
    let remote = Origin {
        remote: Some(IpAddr::from([192, 0, 2, 7])),
        local: Some(IpAddr::from([192, 0, 2, 1])),
        secured: true,
    };
    let got = via_dovecot
        .plain(&plain("alice@example.test", "alice-pw"), remote)
        .await;
    assert_eq!(got.label(), "ok", "{got:?}");

    // Dovecot down: a temporary failure, quickly, not a crash or a "wrong password".
    dovecot.stop();
    let started = Instant::now();
    let got = via_dovecot
        .plain(&plain("alice@example.test", "alice-pw"), local(true))
        .await;
    assert_eq!(got, Outcome::Unavailable);
    assert!(got.is_temporary());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_auth_socket_times_out_as_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    // Accepts and never answers.
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let auth = sievegate::auth::DovecotAuth::new(&path, "managesieve", Duration::from_millis(500));
    let started = Instant::now();
    let got = auth.plain(b"\0alice\0pw", local(true)).await;
    assert!(
        matches!(got, sievegate::auth::dovecot::Reply::Unavailable { .. }),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    keep.abort();
}
