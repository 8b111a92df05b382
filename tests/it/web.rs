//! The quarantine's web page through the real binary: links minted with the test's own key
//! (an expired one by an expiry in the past), plain HTTP/1.1 over TCP, a real clamd.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sievegate::quarantine::link::{self, Action, LinkKey};

use crate::quarantine::{list, quarantine_options, send};
use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::Env;
use crate::support::messages::{clean_message, infected_message};
use crate::support::smtp_sink::free_port;

const KEY: &[u8] = b"test key for the web page, 48 bytes long.......\n";

/// One HTTP answer: status, headers (lower-case names), body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`).
pub(crate) fn http(port: u16, method: &str, path: &str, extra: &str, body: &str) -> Answer {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the web page");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A server with the quarantine, the web page on a free port, and a global script that
/// holds mail whose subject says "hold" (a policy quarantine of clean mail).
pub(crate) struct Site {
    pub env: Env,
    pub server: Running,
    pub port: u16,
    pub key: LinkKey,
    pub policy: PathBuf,
}

pub(crate) fn site(clamd: &Clamd) -> Site {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let key_path = dir.join("link.key");
    std::fs::write(&key_path, KEY).expect("key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let policy = dir.join("policy.sieve");
    std::fs::write(
        &policy,
        "require [\"vnd.sievegate.quarantine\"];\nif header :contains \"subject\" \"hold\" { quarantine; discard; stop; }\n",
    )
    .expect("policy");
    let mut options = quarantine_options(clamd);
    options.before = Some(vec![policy.display().to_string()]);
    options.extra_sections.push(format!(
        "[web]\nlisten = [\"127.0.0.1:{port}\"]\nbase_url = \"http://127.0.0.1:{port}\"\nsecret_file = \"{}\"\n",
        key_path.display()
    ));
    options
        .extra_sections
        .push("[notify]\npostmaster = \"postmaster@example.test\"\n".to_string());
    let env = Env::new(options);
    let server = Running::start(&env.config_path);
    server.wait_for_log("quarantine web page at");
    Site {
        env,
        server,
        port,
        key: LinkKey::from_bytes(KEY).expect("key"),
        policy,
    }
}

impl Site {
    /// The id of the newest entry.
    pub(crate) fn newest(&self) -> String {
        let entries = list(&self.env.config_path, &[]);
        entries
            .last()
            .and_then(|e| e["id"].as_str())
            .expect("an entry")
            .to_string()
    }

    pub(crate) fn token(&self, id: &str, rcpt: &str, action: Action) -> String {
        let expires = SystemTime::now() + Duration::from_secs(3600);
        link::sign(&self.key, id, rcpt, action, expires)
    }

    /// A list token for `rcpt`, valid an hour.
    pub(crate) fn list_token(&self, rcpt: &str) -> String {
        link::sign_list(
            &self.key,
            rcpt,
            SystemTime::now() + Duration::from_secs(3600),
        )
    }

    pub(crate) fn get(&self, token: &str) -> Answer {
        http(self.port, "GET", &format!("/q/{token}"), "", "")
    }

    /// POSTs `token` with its right nonce.
    pub(crate) fn post(&self, token: &str) -> Answer {
        let nonce = link::form_nonce(&self.key, token);
        http(
            self.port,
            "POST",
            &format!("/q/{token}"),
            "Content-Type: application/x-www-form-urlencoded\r\n",
            &format!("nonce={nonce}"),
        )
    }

    fn entry(&self, id: &str) -> serde_json::Value {
        list(&self.env.config_path, &[])
            .into_iter()
            .find(|e| e["id"] == id)
            .unwrap_or(serde_json::Value::Null)
    }

    /// The global script lets everything through (a release must not be held again).
    pub(crate) fn stop_holding(&self) {
        std::fs::write(&self.policy, "keep;\n").expect("policy");
        // SAFETY: kill(2) on the child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.server.pid(), libc::SIGHUP) };
        assert_eq!(rc, 0, "SIGHUP");
        self.server.wait_for_log("reloaded");
    }
}

fn assert_security_headers(a: &Answer) {
    let csp = a.header("content-security-policy").expect("CSP");
    for want in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(want), "{csp}");
    }
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(!a.body.contains("<script"), "no JavaScript");
}

#[test]
fn links_are_refused_when_expired_tampered_or_for_another_rcpt_or_action() {
    let clamd = Clamd::shared();
    let site = site(clamd);
    let out = send(
        &site.server,
        "s@remote.example",
        &["alice@example.test", "bob@example.test"],
        &clean_message("please hold this"),
    );
    assert_eq!(out.matches("250 2.0.0 <").count(), 2, "{out}");
    let id = site.newest();
    assert_eq!(site.env.total_messages(), 0);

    // The entry page for alice: what it shows, its buttons, never the body.
    let view = site.token(&id, "alice@example.test", Action::View);
    let page = site.get(&view);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page);
    assert!(page.body.contains("please hold this"), "{}", page.body);
    assert!(
        page.body.contains("Message-ID: &lt;clean."),
        "headers as escaped text: {}",
        page.body
    );
    assert!(
        !page.body.contains("this is a clean test message"),
        "never the body"
    );
    assert!(page.body.contains("Release to my mailbox") && page.body.contains("Delete"));
    let css = http(site.port, "GET", "/static/sievegate.css", "", "");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_security_headers(&css);

    // Refused: expired 410, tampered 403, garbage 400, unknown entry 404; for another
    // recipient or another action: what it names, nothing else.
    let expired = link::sign(
        &site.key,
        &id,
        "alice@example.test",
        Action::Release,
        SystemTime::now() - Duration::from_secs(1),
    );
    let release = site.token(&id, "alice@example.test", Action::Release);
    let mut tampered: Vec<char> = release.chars().collect();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let other_key = link::sign(
        &LinkKey::from_bytes(&[9u8; 32]).expect("key"),
        &id,
        "alice@example.test",
        Action::Release,
        SystemTime::now() + Duration::from_secs(60),
    );
    for (token, status) in [
        (expired.as_str(), 410),
        (tampered.as_str(), 403),
        (other_key.as_str(), 403),
        ("not-a-token", 400),
        (&"A".repeat(5000), 400),
    ] {
        for a in [site.get(token), site.post(token)] {
            assert_eq!(a.status, status, "{token}: {}", a.body);
            assert_security_headers(&a);
        }
    }
    let unknown = site.token("no-such-entry", "alice@example.test", Action::Release);
    assert_eq!(site.post(&unknown).status, 404);
    let carol = site.token(&id, "carol@example.test", Action::Release);
    assert_eq!(
        site.post(&carol).status,
        404,
        "not a recipient of the entry"
    );
    // A view token posted does nothing; a release token without its nonce, or from another
    // site, is refused.
    assert_eq!(site.post(&view).status, 400);
    let no_nonce = http(
        site.port,
        "POST",
        &format!("/q/{release}"),
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "nonce=AAAA",
    );
    assert_eq!(no_nonce.status, 403, "{}", no_nonce.body);
    let nonce = link::form_nonce(&site.key, &release);
    let cross = http(
        site.port,
        "POST",
        &format!("/q/{release}"),
        "Content-Type: application/x-www-form-urlencoded\r\nOrigin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n",
        &format!("nonce={nonce}"),
    );
    assert_eq!(cross.status, 403);
    // GET with any entry token never acts.
    for action in Action::ENTRY {
        assert_eq!(
            site.get(&site.token(&id, "alice@example.test", action))
                .status,
            200
        );
    }
    assert_eq!(site.env.total_messages(), 0, "nothing changed");
    assert!(
        site.entry(&id)["releases"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{}",
        site.entry(&id)
    );

    // Bob deletes his copy: alice's is still held, and bob's delete link works once.
    let delete = site.token(&id, "bob@example.test", Action::Delete);
    let done = site.post(&delete);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("deleted"), "{}", done.body);
    assert_eq!(site.post(&delete).status, 409);
    assert_eq!(
        site.post(&site.token(&id, "bob@example.test", Action::Release))
            .status,
        409
    );

    // Alice releases: once.
    site.stop_holding();
    let done = site.post(&release);
    assert_eq!(done.status, 200, "{}\n{}", done.body, site.server.logs());
    assert!(done.body.contains("released to you"), "{}", done.body);
    assert_eq!(site.env.messages("alice", "").len(), 1);
    assert!(site.env.messages("bob", "").is_empty());
    let again = site.post(&release);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains("already released to you on"),
        "{}",
        again.body
    );
    assert_eq!(site.env.messages("alice", "").len(), 1, "delivered once");
    let entry = site.entry(&id);
    assert!(
        entry.to_string().contains("web:alice@example.test"),
        "{entry}"
    );
    let page = site.get(&view);
    assert!(
        page.body.contains("was released to you on"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<form"), "no buttons once released");
}

#[test]
fn a_user_never_releases_infected_mail_but_can_ask_the_postmaster() {
    let clamd = Clamd::shared();
    let site = site(clamd);
    let out = send(
        &site.server,
        "s@remote.example",
        &["alice@example.test"],
        &infected_message(),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let id = site.newest();
    let page = site.get(&site.token(&id, "alice@example.test", Action::View));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("EICAR"), "the virus name: {}", page.body);
    assert!(
        !page.body.contains("Release to my mailbox"),
        "no release button"
    );
    assert!(!page.body.contains(">Delete<"), "no delete button");
    assert!(page.body.contains("Ask the postmaster"), "{}", page.body);
    // Forged: a correctly signed release or delete token with its nonce is still refused.
    for action in [Action::Release, Action::Delete] {
        let a = site.post(&site.token(&id, "alice@example.test", action));
        assert_eq!(a.status, 403, "{action}: {}", a.body);
    }
    assert!(site.env.messages("alice", "").is_empty());
    let entry = site.entry(&id);
    assert!(
        entry["releases"].as_array().is_none_or(|r| r.is_empty()),
        "{entry}"
    );

    // The request: queued for the postmaster once per hour.
    let request = site.token(&id, "alice@example.test", Action::RequestRelease);
    let a = site.post(&request);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("postmaster was asked"), "{}", a.body);
    site.server
        .wait_for_log("release requested from the postmaster");
    assert_eq!(site.post(&request).status, 429);
    assert!(
        site.env.messages("alice", "").is_empty(),
        "nothing delivered to alice"
    );
    // The postmaster is local: the outbox stores the request into their INBOX.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let subject = format!("Release requested: quarantine {id}");
    let request = loop {
        let found = site
            .env
            .messages("postmaster", "")
            .into_iter()
            .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
            .find(|m| m.contains(&subject));
        match found {
            Some(m) => break m,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            None => panic!("no request for the postmaster:\n{}", site.server.logs()),
        }
    };
    assert!(
        request.contains("alice@example.test asks for the release"),
        "{request}"
    );
    assert!(
        request.contains(&format!(
            "sievegate quarantine release {id} --rcpt alice@example.test"
        )),
        "{request}"
    );
}

/// The `href` values of a page's links (`<a href="...">`), in order.
fn hrefs(body: &str) -> Vec<String> {
    body.split("<a href=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(h, _)| h.to_string()))
        .collect()
}

#[test]
fn a_list_link_shows_what_is_held_for_its_recipient_and_does_nothing_else() {
    let clamd = Clamd::shared();
    let site = site(clamd);
    // carol: three held for her alone, one shared with dave; dave: one of his own.
    let subjects = ["hold carol a", "hold carol bb", "hold carol ccc <b>x</b>"];
    for subject in subjects {
        let out = send(
            &site.server,
            "s@remote.example",
            &["carol@example.test"],
            &clean_message(subject),
        );
        assert!(out.contains("250 2.0.0 <carol@example.test>"), "{out}");
    }
    let out = send(
        &site.server,
        "s@remote.example",
        &["dave@example.test", "carol@example.test"],
        &clean_message("hold shared dddd"),
    );
    assert_eq!(out.matches("250 2.0.0 <").count(), 2, "{out}");
    send(
        &site.server,
        "s@remote.example",
        &["dave@example.test"],
        &clean_message("hold only dave eeeee"),
    );
    let entries = list(&site.env.config_path, &[]);
    assert_eq!(entries.len(), 5);
    let id_of = |subject: &str| {
        entries
            .iter()
            .find(|e| e["subject"] == subject)
            .and_then(|e| e["id"].as_str())
            .expect("entry")
            .to_string()
    };
    // One released to carol (the CLI), one deleted by her (the web): neither is listed;
    // the shared one stays listed for carol after dave deletes his copy.
    site.stop_holding();
    crate::quarantine::ok(&crate::quarantine::cli(
        &site.env.config_path,
        &[
            "release",
            &id_of("hold carol a"),
            "--rcpt",
            "carol@example.test",
        ],
    ));
    let deleted = site.post(&site.token(
        &id_of("hold carol bb"),
        "carol@example.test",
        Action::Delete,
    ));
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let dave = site.post(&site.token(
        &id_of("hold shared dddd"),
        "dave@example.test",
        Action::Delete,
    ));
    assert_eq!(dave.status, 200, "{}", dave.body);
    let delivered = site.env.total_messages();

    let list_token = site.list_token("carol@example.test");
    let page = site.get(&list_token);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page);
    assert!(page.body.contains("Held messages"), "{}", page.body);
    assert!(
        page.body
            .contains("2 messages are held for carol@example.test"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("hold carol ccc &lt;b&gt;x&lt;/b&gt;"),
        "escaped: {}",
        page.body
    );
    assert!(!page.body.contains("<b>x</b>"), "{}", page.body);
    assert!(page.body.contains("hold shared dddd"), "{}", page.body);
    for absent in [
        "hold carol a<",
        "hold carol bb",
        "hold only dave",
        "this is a clean test message",
    ] {
        assert!(!page.body.contains(absent), "{absent}: {}", page.body);
    }
    assert!(!page.body.contains("<form"), "the list acts on nothing");
    // Newest first; each link a view token for carol and its entry, whose page works.
    assert!(
        page.body.find("hold shared dddd") < page.body.find("hold carol ccc"),
        "newest first"
    );
    let links = hrefs(&page.body);
    let views: Vec<_> = links
        .iter()
        .filter_map(|h| link::verify(&site.key, h, SystemTime::now()).ok())
        .collect();
    assert_eq!(views.len(), 2, "{links:?}");
    assert_eq!(views[0].entry_id, id_of("hold shared dddd"));
    assert_eq!(views[1].entry_id, id_of("hold carol ccc <b>x</b>"));
    for (token, claims) in links.iter().zip(&views) {
        assert_eq!(
            (claims.rcpt.as_str(), claims.action),
            ("carol@example.test", Action::View)
        );
        assert!(claims.expires <= SystemTime::now() + Duration::from_secs(3600));
        let entry = site.get(token);
        assert_eq!(entry.status, 200, "{}", entry.body);
        assert!(
            entry.body.contains("Release to my mailbox"),
            "{}",
            entry.body
        );
    }
    // dave's list: his own entry only (his copy of the shared one is deleted).
    let page = site.get(&site.list_token("dave@example.test"));
    assert!(
        page.body.contains("hold only dave eeeee") && !page.body.contains("hold shared"),
        "{}",
        page.body
    );
    // Nobody's: an empty list, not an error.
    let page = site.get(&site.list_token("nobody@example.test"));
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Nothing is held for nobody@example.test"),
        "{}",
        page.body
    );

    // Refused like entry tokens: expired 410, tampered 403, another key 403.
    let expired = link::sign_list(
        &site.key,
        "carol@example.test",
        SystemTime::now() - Duration::from_secs(1),
    );
    let mut tampered: Vec<char> = list_token.chars().collect();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let other_key = link::sign_list(
        &LinkKey::from_bytes(&[9u8; 32]).expect("key"),
        "carol@example.test",
        SystemTime::now() + Duration::from_secs(60),
    );
    for (token, status) in [
        (expired.as_str(), 410),
        (tampered.as_str(), 403),
        (other_key.as_str(), 403),
    ] {
        for a in [site.get(token), site.post(token)] {
            assert_eq!(a.status, status, "{token}: {}", a.body);
            assert_security_headers(&a);
        }
    }
    // A list token at the action route (with its right nonce) does nothing; a list token
    // naming an entry, or an entry action naming none, is not a link at all.
    let posted = site.post(&list_token);
    assert_eq!(posted.status, 400, "{}", posted.body);
    assert!(
        posted.body.contains("only shows the list"),
        "{}",
        posted.body
    );
    let ccc = id_of("hold carol ccc <b>x</b>");
    let forged = link::sign(
        &site.key,
        &ccc,
        "carol@example.test",
        Action::List,
        SystemTime::now() + Duration::from_secs(60),
    );
    assert_eq!(site.get(&forged).status, 400);
    assert_eq!(site.post(&forged).status, 400);
    let no_entry = link::sign(
        &site.key,
        link::LIST_ENTRY,
        "carol@example.test",
        Action::Release,
        SystemTime::now() + Duration::from_secs(60),
    );
    assert_eq!(site.post(&no_entry).status, 400);
    // An entry token opens its entry, never a list.
    let view = site.get(&site.token(&ccc, "carol@example.test", Action::View));
    assert!(
        view.body.contains("Held message<") && !view.body.contains("hold shared dddd"),
        "{}",
        view.body
    );
    assert_eq!(site.env.total_messages(), delivered, "nothing changed");
    assert!(
        site.entry(&ccc)["releases"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{}",
        site.entry(&ccc)
    );
}

/// The key must be secret: a group-readable one stops the start.
#[test]
fn a_readable_key_stops_the_start() {
    let clamd = Clamd::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    std::fs::write(&key, KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut options = quarantine_options(clamd);
    let port = free_port();
    options.extra_sections.push(format!(
        "[web]\nlisten = [\"127.0.0.1:{port}\"]\nbase_url = \"http://127.0.0.1:{port}\"\nsecret_file = \"{}\"\n",
        key.display()
    ));
    let env = Env::new(options);
    let out = std::process::Command::new(crate::support::binary::bin())
        .args(["serve", "-c"])
        .arg(&env.config_path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("accessible by group or others"), "{err}");
}
