//! Layer 2 for ManageSieve: the session over an in-memory stream with real script
//! directories; the transcript is replayed split at every byte and must answer the same.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sievegate::managesieve::auth::{AuthFailure, AuthFuture, Authenticate};
use sievegate::managesieve::tls::TlsCell;
use sievegate::managesieve::{Session, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};

/// Lets `bob@example.test` in with `pw`.
struct OnePassword;

impl Authenticate for OnePassword {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        pw: &'a [u8],
        _: Option<IpAddr>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            if user == "bob@example.test" && pw == b"pw" {
                Ok(user.to_string())
            } else {
                Err(AuthFailure::Rejected)
            }
        })
    }
}

fn env() -> Env {
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("bob@example.test:{PLAIN}pw::::\n".into());
    options.sieve_extra = vec!["personal_dir = \"mail/%d/%n/sieve\"".into()];
    Env::new(options)
}

/// Runs one session fed `input` in two writes cut at `cut`; everything it answered.
async fn run(env: &Env, input: &[u8], cut: usize) -> String {
    run_with(env, Arc::new(OnePassword), input, cut).await
}

/// [`run`] with another login backend.
async fn run_with(env: &Env, auth: Arc<dyn Authenticate>, input: &[u8], cut: usize) -> String {
    let (_tx, services) = tokio::sync::watch::channel(Arc::clone(&env.services));
    let shared = Arc::new(Shared {
        services,
        auth,
        tls: TlsCell::new(None),
    });
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let session = Session::new(Box::new(server), shared, None, true, stop);
    let task = tokio::spawn(session.run());
    client.write_all(&input[..cut]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(2)).await;
    client.write_all(&input[cut..]).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut out))
        .await
        .expect("session ends")
        .expect("read");
    task.await.expect("join").expect("session");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_split_at_every_byte() {
    use base64::Engine as _;
    let env = env();
    let b64 = base64::engine::general_purpose::STANDARD.encode("\0bob@example.test\0pw");
    let input = format!(
        "LISTSCRIPTS\r\nAUTHENTICATE \"PLAIN\" {{{}+}}\r\n{b64}\r\nPUTSCRIPT \"a\" {{6+}}\r\nkeep;\n\r\nLISTSCRIPTS\r\nSETACTIVE \"a\"\r\nGETSCRIPT \"a\"\r\nDELETESCRIPT \"a\"\r\nNOOP \"t\"\r\nSETACTIVE \"\"\r\nDELETESCRIPT \"a\"\r\nLOGOUT\r\n",
        b64.len()
    );
    let input = input.as_bytes();
    let whole = run(&env, input, input.len()).await;
    let tail = "NO \"Authenticate first\"\r\n\
OK \"Authenticate completed\"\r\n\
OK \"Putscript completed\"\r\n\
\"a\"\r\nOK \"Listscripts completed\"\r\n\
OK \"Setactive completed\"\r\n\
{6}\r\nkeep;\n\r\nOK \"Getscript completed\"\r\n\
NO (ACTIVE) \"The active script cannot be deleted\"\r\n\
OK (TAG \"t\") \"Done\"\r\n\
OK \"Setactive completed\"\r\n\
OK \"Deletescript completed\"\r\n\
OK \"Logout completed\"\r\n";
    assert!(whole.ends_with(tail), "{whole}");
    for cut in 0..input.len() {
        assert_eq!(run(&env, input, cut).await, whole, "cut at {cut}");
    }
}

/// Logins go through the decoder every login shares (`auth::plain`): an authzid naming
/// another user is refused, the user's own in another case is the user, a response that is
/// no base64 is malformed (not a failed login); UNAUTHENTICATE returns to the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzid_malformed_responses_and_unauthenticate() {
    use base64::Engine as _;
    let env = env();
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let input = format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\nAUTHENTICATE \"PLAIN\" \"!!\"\r\nAUTHENTICATE \"PLAIN\" \"{}\"\r\nLISTSCRIPTS\r\nUNAUTHENTICATE\r\nLISTSCRIPTS\r\nUNAUTHENTICATE\r\nLOGOUT\r\n",
        enc("alice@example.test\0bob@example.test\0pw"),
        enc("BOB@example.test\0bob@example.test\0pw"),
    );
    let input = input.as_bytes();
    let whole = run(&env, input, input.len()).await;
    let tail = "NO \"Authorization as another user is not supported\"\r\n\
NO \"Malformed PLAIN response: the response is not base64\"\r\n\
OK \"Authenticate completed\"\r\n\
OK \"Listscripts completed\"\r\n\
OK \"Unauthenticate completed\"\r\n\
NO \"Authenticate first\"\r\n\
NO \"Not authenticated\"\r\n\
OK \"Logout completed\"\r\n";
    assert!(whole.ends_with(tail), "{whole}");
    for cut in 0..input.len() {
        assert_eq!(run(&env, input, cut).await, whole, "cut at {cut}");
    }
}

/// [`OnePassword`], and `down@example.test` finds the backend unavailable (Dovecot's auth
/// service down or silent).
struct BackendDownForOne;

impl Authenticate for BackendDownForOne {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        pw: &'a [u8],
        peer: Option<IpAddr>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            if user == "down@example.test" {
                return Err(AuthFailure::Unavailable("auth socket silent".into()));
            }
            OnePassword.authenticate(user, pw, peer).await
        })
    }
}

/// What the config says reaches the client: the `SIEVE` line lacks a disabled extension,
/// `max_total_size` is answered with `QUOTA/MAXSIZE` at PUTSCRIPT and HAVESPACE, a backend
/// that cannot answer is `TRYLATER` (never "wrong password"), and the third failed login
/// of a session ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_limits_backend_failures_and_the_failed_login_bye() {
    use base64::Engine as _;
    let mut options = Options::new(Clamd::shared().addr());
    options.users = Some("bob@example.test:{PLAIN}pw::::\n".into());
    options.sieve_extra = vec![
        "personal_dir = \"mail/%d/%n/sieve\"".into(),
        "disabled_extensions = [\"vacation\"]".into(),
    ];
    options.extra_sections = vec!["[managesieve]\nmax_total_size = 30\n".into()];
    let env = Env::new(options);
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth: Arc<dyn Authenticate> = Arc::new(BackendDownForOne);
    let put = |name: &str, script: &str| {
        format!("PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n", script.len())
    };
    let input = [
        format!(
            "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
            enc("\0down@example.test\0pw")
        ),
        format!(
            "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
            enc("\0bob@example.test\0pw")
        ),
        // 20 bytes of 30.
        put("a", &format!("keep; #{}\n", "x".repeat(12))),
        "HAVESPACE \"b\" 10\r\nHAVESPACE \"b\" 11\r\n".to_string(),
        put("b", &format!("keep; #{}\n", "x".repeat(3))),
        // Replacing a counts its new size in place of the old one: 25 of 30.
        put("a", &format!("keep; #{}\n", "x".repeat(17))),
        "LOGOUT\r\n".to_string(),
    ]
    .concat();
    let out = run_with(&env, Arc::clone(&auth), input.as_bytes(), input.len()).await;
    let sieve_line = out
        .lines()
        .find(|l| l.starts_with("\"SIEVE\""))
        .expect("a SIEVE capability");
    assert!(
        sieve_line.contains(" fileinto ")
            && !sieve_line
                .trim_matches('"')
                .split(' ')
                .any(|e| e == "vacation"),
        "{sieve_line}"
    );
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("NO") || l.starts_with("OK") || l.starts_with("BYE"))
        .collect();
    assert_eq!(answers.len(), 9, "{out}");
    assert_eq!(
        answers[1..3],
        [
            "NO (TRYLATER) \"Authentication is unavailable; try later\"",
            "OK \"Authenticate completed\"",
        ],
        "{out}"
    );
    assert_eq!(answers[3], "OK \"Putscript completed\"", "{out}");
    assert!(answers[4].starts_with("OK"), "{out}");
    assert!(answers[5].starts_with("NO (QUOTA/MAXSIZE)"), "{out}");
    assert!(answers[6].starts_with("NO (QUOTA/MAXSIZE)"), "{out}");
    assert_eq!(answers[7], "OK \"Putscript completed\"", "{out}");
    assert_eq!(answers[8], "OK \"Logout completed\"", "{out}");

    let wrong = enc("\0bob@example.test\0nope");
    let input = format!("AUTHENTICATE \"PLAIN\" \"{wrong}\"\r\n").repeat(4);
    let out = run_with(&env, auth, input.as_bytes(), input.len()).await;
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("NO") || l.starts_with("BYE"))
        .collect();
    assert_eq!(
        answers,
        [
            "NO \"Authentication failed\"",
            "NO \"Authentication failed\"",
            "BYE \"Too many failed logins\""
        ],
        "{out}"
    );
}
