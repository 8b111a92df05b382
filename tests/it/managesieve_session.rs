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
    let (_tx, services) = tokio::sync::watch::channel(Arc::clone(&env.services));
    let shared = Arc::new(Shared {
        services,
        auth: Arc::new(OnePassword),
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
