//! The admin view and the sample mailboxes through the real binary: `serve` with `[web]`,
//! a real clamd (infected mail quarantined, clean entries rescanned on release), plain
//! HTTP/1.1 requests from here (cookies and form nonces handled by hand, so every refusal
//! can be provoked), and the state store read back through the library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sievegate::quarantine::Quarantine;
use sievegate::state::{QuarantineEntry, SqliteState, StateStore};

use crate::quarantine::send;
use crate::support::binary::Running;
use crate::support::clamd::Clamd;
use crate::support::env::{Env, Options};
use crate::support::messages::{clean_message, infected_message};

/// The admin's password and its hash (`doveadm pw -s SHA512-CRYPT -p 'correct horse'`).
pub(crate) const ADMIN_PASSWORD: &str = "correct horse";
pub(crate) const ADMIN_HASH: &str = "{SHA512-CRYPT}$6$GUBQbQn9QXCQFM3b$QGFJkE9EU5hl/MphXXgHCjlsIfeL7d4E8.pvWAxtQx1J45lVJOPqV9UwJ6ewbq2FIUuus1HeFtyOo18pmnDZF.";

/// The sample mailbox and its users-file password.
pub(crate) const SAMPLE: &str = "abuse@example.test";
pub(crate) const SAMPLE_PASSWORD: &str = "samples please";

/// A config with the quarantine, a SQLite state store, `[web]` on 127.0.0.1 with `anna` as
/// the admin, a users file (alice, bob, carol and the sample mailbox), and `abuse@` as a
/// sample recipient.
pub(crate) fn web_env(clamd: &Clamd) -> Env {
    let mut options = Options::new(clamd.addr());
    options.users = Some(format!(
        "alice@example.test:{{PLAIN}}alice-pw::::\nbob@example.test::::::\ncarol@example.test::::::\n{SAMPLE}:{{PLAIN}}{SAMPLE_PASSWORD}::::\n"
    ));
    options.extra_sections = vec![
        format!(
            "[quarantine]\nenabled = true\ndir = \"quarantine\"\nsample_recipients = [\"{SAMPLE}\"]\n"
        ),
        "[state]\ndir = \"state\"\n".to_string(),
        format!(
            "[web]\nlisten = [\"127.0.0.1:0\"]\nbase_url = \"http://127.0.0.1\"\nsecret_file = \"web.key\"\nadmin_users = [\"anna:{ADMIN_HASH}\"]\n"
        ),
    ];
    write_key_then(options)
}

/// Writes the `[web]` key file (0600) before the config is loaded.
fn write_key_then(options: Options) -> Env {
    // Env::new loads the config, which checks the key file: make it in a directory the
    // config then points at by absolute path.
    let keydir = tempfile::tempdir().expect("tempdir").keep();
    let key = keydir.join("web.key");
    std::fs::write(&key, [7u8; 48]).expect("write key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    let mut options = options;
    for s in &mut options.extra_sections {
        *s = s.replace("\"web.key\"", &format!("{:?}", key.display().to_string()));
    }
    Env::new(options)
}

/// The web listener's address, from the server's log.
pub(crate) fn web_addr(server: &Running) -> SocketAddr {
    let logs = server.wait_for_log("quarantine web page at ");
    logs.lines()
        .filter_map(|l| l.split("quarantine web page at ").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .and_then(|a| a.parse().ok())
        })
        .next()
        .unwrap_or_else(|| panic!("no web listener in the log:\n{logs}"))
}

/// One HTTP answer.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of a `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The full `Set-Cookie` line for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value of the form field `name` (a hidden input) in the page.
    pub fn field(&self, name: &str) -> String {
        let text = self.text();
        let marker = format!("name=\"{name}\" value=\"");
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field in:\n{text}"))
            + marker.len();
        text[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// One request on a new connection (`Connection: close`), `cookies` as the `Cookie` header,
/// `form` as an url-encoded body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookies: &str,
    form: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect web");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        request.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read reply");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the reply header");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        data = &data[eol + 2..];
        out.extend_from_slice(&data[..size.min(data.len())]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Percent-encodes a form value.
pub(crate) fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Logs in at `path` (`/admin` or `/sample`) as `name`; the reply of the POST and the
/// session cookie (`name=value`) if one was set.
pub(crate) fn login(
    addr: SocketAddr,
    path: &str,
    name: &str,
    password: &str,
) -> (Reply, Option<String>) {
    let role = if path == "/admin" {
        "sg_admin"
    } else {
        "sg_sample"
    };
    let form = http(addr, "GET", &format!("{path}/login"), "", None);
    assert_eq!(form.status, 200, "{}", form.text());
    let nonce = form
        .cookie(&format!("{role}_login"))
        .expect("login nonce cookie");
    let token = form.field("csrf");
    let reply = http(
        addr,
        "POST",
        &format!("{path}/login"),
        &nonce,
        Some(&format!(
            "csrf={}&name={}&password={}",
            enc(&token),
            enc(name),
            enc(password)
        )),
    );
    let session = reply.cookie(role);
    (reply, session)
}

/// The admin's session cookie and the form nonce of its pages.
pub(crate) fn admin_session(addr: SocketAddr) -> (String, String) {
    let (reply, session) = login(addr, "/admin", "anna", ADMIN_PASSWORD);
    assert_eq!(reply.status, 303, "{}", reply.text());
    let session = session.expect("session cookie");
    let page = http(addr, "GET", "/admin", &session, None);
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = page.field("csrf");
    (session, csrf)
}

/// The quarantine of `env` (its SQLite index and directory), opened beside the server.
pub(crate) fn open_quarantine(env: &Env) -> Quarantine {
    let state: Arc<dyn StateStore> =
        Arc::new(SqliteState::open(&env.dir.path().join("state")).expect("open state"));
    Quarantine::new(env.dir.path().join("quarantine"), state)
}

/// An entry held for `rcpt`, with `message` as its bytes, received `age` ago.
pub(crate) fn entry(
    id: &str,
    sender: &str,
    rcpt: &str,
    subject: &str,
    virus: &str,
    age: Duration,
    message: &[u8],
) -> QuarantineEntry {
    QuarantineEntry {
        id: id.to_string(),
        received_at: SystemTime::now() - age,
        sender: sender.to_string(),
        recipients: vec![rcpt.to_string()],
        resolved: vec![rcpt.to_string()],
        client_ip: Some("203.0.113.7".to_string()),
        client_helo: Some("bad.example".to_string()),
        queue_id: None,
        verdict: "infected".to_string(),
        virustest: 5,
        viruses: vec![virus.to_string()],
        message_id: format!("<{id}@remote.example>"),
        subject: subject.to_string(),
        from: sender.to_string(),
        size: message.len() as u64,
        backscatter: false,
        released_at: None,
        released_by: None,
        releases: Vec::new(),
    }
}

fn entries_for(q: &Quarantine, rcpt: &str) -> Vec<QuarantineEntry> {
    q.state()
        .quarantine_list(&sievegate::state::QuarantineFilter {
            rcpt: Some(rcpt.to_string()),
            ..Default::default()
        })
        .expect("list")
}

#[test]
fn admin_login_wrong_then_right_and_failures_are_rate_limited() {
    let env = web_env(Clamd::shared());
    let server = Running::start(&env.config_path);
    let addr = web_addr(&server);

    // Not logged in: sent to the login form.
    let r = http(addr, "GET", "/admin", "", None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/admin/login"));

    // The form's nonce cookie is strict and HttpOnly.
    let form = http(addr, "GET", "/admin/login", "", None);
    let set = form.set_cookie("sg_admin_login").expect("nonce cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(form
        .header("content-security-policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));

    // Wrong password: 401, no session, logged without the password.
    let (r, session) = login(addr, "/admin", "anna", "wrong horse");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(session.is_none());
    assert!(r.text().contains("Wrong name or password"));
    // Unknown name: the same answer.
    let (r, _) = login(addr, "/admin", "nobody", ADMIN_PASSWORD);
    assert_eq!(r.status, 401);

    // Right: a signed session cookie, strict, HttpOnly (not Secure over http).
    let (r, session) = login(addr, "/admin", "anna", ADMIN_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/admin"));
    let set = r
        .set_cookie("sg_admin")
        .expect("session cookie")
        .to_string();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/admin")
            && !set.contains("Secure"),
        "{set}"
    );
    let good = session.expect("session");
    let page = http(addr, "GET", "/admin", &good, None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("anna"));
    let csrf = page.field("csrf");

    // A tampered cookie is no session.
    let tampered = good.replacen("sg_admin=", "sg_admin=x", 1);
    assert_eq!(http(addr, "GET", "/admin", &tampered, None).status, 303);

    // A login POST without the form's nonce: refused before the password is checked.
    let r = http(
        addr,
        "POST",
        "/admin/login",
        "",
        Some(&format!("name=anna&password={}", enc(ADMIN_PASSWORD))),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.cookie("sg_admin").is_none());

    // Five failures from one address (two above, three here) lock it: even the right
    // password is refused then, for any name.
    for _ in 0..3 {
        let (r, _) = login(addr, "/admin", "anna", "guess");
        assert_eq!(r.status, 401);
    }
    let (r, session) = login(addr, "/admin", "anna", ADMIN_PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(session.is_none());
    assert!(r.header("retry-after").is_some());
    let logs = server.wait_for_log("too many failed logins");
    assert!(logs.contains("web login failed"), "{logs}");
    assert!(
        !logs.contains("wrong horse") && !logs.contains("guess") && !logs.contains(ADMIN_PASSWORD),
        "passwords never logged:\n{logs}"
    );

    // Logout needs the session's nonce, and ends the session in the browser.
    let r = http(addr, "POST", "/admin/logout", &good, Some("csrf=forged"));
    assert_eq!(r.status, 403);
    let r = http(
        addr,
        "POST",
        "/admin/logout",
        &good,
        Some(&format!("csrf={}", enc(&csrf))),
    );
    assert_eq!(r.status, 303);
    assert!(r
        .set_cookie("sg_admin")
        .is_some_and(|c| c.contains("Max-Age=0")));
}

#[test]
fn admin_lists_filters_releases_once_and_deletes_with_the_clis_rules() {
    let env = web_env(Clamd::shared());
    env.set_personal(
        "alice",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Released\";\n",
    );
    let server = Running::start(&env.config_path);
    let addr = web_addr(&server);
    let q = open_quarantine(&env);

    // Two infected messages through LMTP, and a policy entry whose message is clean (a
    // false positive): the one a release delivers.
    let virus = infected_message();
    let out = send(
        &server,
        "mallory@forged.example",
        &["bob@example.test"],
        &virus,
    );
    assert!(out.contains("250 2.0.0 <bob@example.test>"), "{out}");
    let out = send(&server, "eve@bad.example", &["carol@example.test"], &virus);
    assert!(out.contains("250 2.0.0 <carol@example.test>"), "{out}");
    let clean = clean_message("false positive");
    q.store(
        &entry(
            "fp-1",
            "partner@remote.example",
            "alice@example.test",
            "false positive",
            "Heuristics.Phishing.Test",
            Duration::from_secs(60),
            &clean,
        ),
        &clean,
    )
    .expect("store entry");

    let (session, csrf) = admin_session(addr);
    let list = http(addr, "GET", "/admin", &session, None);
    assert!(list.text().contains("3 entries"), "{}", list.text());

    // Filters: recipient, sender, virus, state, date range.
    let count = |query: &str| -> String {
        let r = http(addr, "GET", &format!("/admin?{query}"), &session, None);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let t = r.text();
        let start = t.find("<p class=\"count\">").expect("count") + 17;
        t[start..].split(' ').next().unwrap_or_default().to_string()
    };
    assert_eq!(count("rcpt=BOB%40example.test"), "1");
    assert_eq!(count("sender=bad.example"), "1");
    assert_eq!(count("virus=phishing"), "1");
    assert_eq!(count("virus=eicar"), "2");
    assert_eq!(count("state=held"), "3");
    assert_eq!(count("state=released"), "0");
    assert_eq!(count("from=2000-01-01&to=2999-12-31"), "3");
    assert_eq!(count("to=2000-01-01"), "0");
    let bad = http(addr, "GET", "/admin?from=yesterday", &session, None);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("is not a date"));

    // The entry page: fields and headers as text, never the body.
    let page = http(addr, "GET", "/admin/entry/fp-1", &session, None);
    assert_eq!(page.status, 200);
    let t = page.text();
    assert!(
        t.contains("Heuristics.Phishing.Test") && t.contains("Subject: false positive"),
        "{t}"
    );
    assert!(!t.contains("this is a clean test message"), "no body: {t}");

    // Release without the form nonce: refused, nothing delivered.
    let r = http(
        addr,
        "POST",
        "/admin/entry/fp-1/release",
        &session,
        Some("rcpt=alice%40example.test"),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(env.total_messages(), 0);

    // Release: rescanned clean, through alice's Sieve script, recorded as admin:anna.
    let form = format!("csrf={}&rcpt=alice%40example.test", enc(&csrf));
    let r = http(
        addr,
        "POST",
        "/admin/entry/fp-1/release",
        &session,
        Some(&form),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("alice@example.test: stored Released"),
        "{}",
        r.text()
    );
    let stored = env.messages("alice", ".Released");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.ends_with(&clean), "the message as held");
    let e = q.get("fp-1").expect("entry");
    assert_eq!(e.releases.len(), 1);
    assert_eq!(e.releases[0].by, "admin:anna");
    assert_eq!(count("state=released"), "1");

    // The second release of the same recipient is refused, and delivers nothing.
    let r = http(
        addr,
        "POST",
        "/admin/entry/fp-1/release",
        &session,
        Some(&form),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already released"), "{}", r.text());
    assert_eq!(env.messages("alice", ".Released").len(), 1);

    // An infected entry: the rescan refuses it, as the CLI does without --force.
    let bob = entries_for(&q, "bob@example.test");
    let id = bob[0].id.clone();
    let r = http(
        addr,
        "POST",
        &format!("/admin/entry/{id}/release"),
        &session,
        Some(&format!("csrf={}&rcpt=bob%40example.test", enc(&csrf))),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("still infected"), "{}", r.text());
    assert!(env.messages("bob", "").is_empty());

    // Delete: CSRF first, then gone from the index.
    let r = http(
        addr,
        "POST",
        &format!("/admin/entry/{id}/delete"),
        &session,
        Some("csrf=forged"),
    );
    assert_eq!(r.status, 403);
    assert!(q.get(&id).is_ok());
    let r = http(
        addr,
        "POST",
        &format!("/admin/entry/{id}/delete"),
        &session,
        Some(&format!("csrf={}", enc(&csrf))),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(q.get(&id).is_err());
    assert_eq!(
        http(addr, "GET", &format!("/admin/entry/{id}"), &session, None).status,
        404
    );
    assert_eq!(count(""), "2");
}

#[test]
fn a_sample_mailbox_downloads_the_raw_message_and_nothing_else() {
    let env = web_env(Clamd::shared());
    let server = Running::start(&env.config_path);
    let addr = web_addr(&server);
    let virus = infected_message();
    let out = send(&server, "mallory@forged.example", &[SAMPLE], &virus);
    assert!(out.contains(&format!("250 2.0.0 <{SAMPLE}>")), "{out}");
    let out = send(
        &server,
        "mallory@forged.example",
        &["alice@example.test"],
        &virus,
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    assert_eq!(env.total_messages(), 0, "never into a Maildir");
    let q = open_quarantine(&env);
    let mine = entries_for(&q, SAMPLE);
    assert_eq!(mine.len(), 1);
    let alices = entries_for(&q, "alice@example.test");

    // alice is no sample mailbox: her right password does not open /sample.
    let (r, session) = login(addr, "/sample", "alice@example.test", "alice-pw");
    assert_eq!(r.status, 401);
    assert!(session.is_none());
    let (r, _) = login(addr, "/sample", SAMPLE, "wrong");
    assert_eq!(r.status, 401);

    let (r, session) = login(addr, "/sample", SAMPLE, SAMPLE_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let session = session.expect("session");
    let page = http(addr, "GET", "/sample", &session, None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains(&mine[0].id));
    assert!(!page.text().contains(&alices[0].id));

    let raw = http(
        addr,
        "GET",
        &format!("/sample/entry/{}/raw", mine[0].id),
        &session,
        None,
    );
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert_eq!(
        raw.header("content-disposition"),
        Some(format!("attachment; filename=\"{}.eml\"", mine[0].id).as_str())
    );
    assert_eq!(raw.body, virus, "the bytes as sent");

    // Another recipient's entry is not there for this mailbox; the admin cookie space is
    // not opened by a sample session.
    let other = http(
        addr,
        "GET",
        &format!("/sample/entry/{}/raw", alices[0].id),
        &session,
        None,
    );
    assert_eq!(other.status, 404);
    let as_admin = session.replacen("sg_sample=", "sg_admin=", 1);
    assert_eq!(http(addr, "GET", "/admin", &as_admin, None).status, 303);
}

/// Where the docs' screenshot is written when `SIEVEGATE_SCREENSHOT` is set (to anything).
fn screenshot_path() -> Option<std::path::PathBuf> {
    std::env::var_os("SIEVEGATE_SCREENSHOT")
        .map(|_| crate::support::env::repo().join("docs/src/images/quarantine-admin.png"))
}

#[test]
fn in_a_browser_the_admin_lists_and_filters_1000_entries_in_under_a_second_and_releases_one() {
    use crate::support::browser::Browser;
    let env = web_env(Clamd::shared());
    let q = open_quarantine(&env);
    // 1,000 entries through the library, as the server would have stored them: ten
    // recipients, a hundred senders, three signatures, spread over 21 days (inside the 30 days of retention).
    let senders = ["billing", "invoice", "dhl-notice", "hr", "scanner"];
    let viruses = [
        "Sievegate.Test.EICAR.UNOFFICIAL",
        "Heuristics.Phishing.Email.SpoofedDomain",
        "Doc.Downloader.Emotet-9870131-0",
    ];
    let rcpts = ["alice", "bob", "carol"];
    for n in 0..1000u64 {
        let subject = format!("Invoice {n:04} overdue");
        let message = clean_message(&subject);
        let sender = format!("{}@{}.example", senders[(n % 5) as usize], n % 100);
        let rcpt = format!("{}@example.test", rcpts[(n % 3) as usize]);
        let e = entry(
            &format!("e{n:04}"),
            &sender,
            &rcpt,
            &subject,
            viruses[(n % 3) as usize],
            Duration::from_secs(1800 * (n + 1)),
            &message,
        );
        q.state().quarantine_insert(&e).expect("insert");
        std::fs::create_dir_all(q.dir()).expect("quarantine dir");
        std::fs::write(q.path(&e.id), &message).expect("message file");
    }
    let server = Running::start(&env.config_path);
    let addr = web_addr(&server);
    let base = format!("http://{addr}");
    crate::support::browser::block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;

        // Log in through the form.
        c.goto(&format!("{base}/admin")).await.expect("goto");
        let url = browser.url().await;
        assert!(url.ends_with("/admin/login"), "{url}");
        browser.type_into("input[name=name]", "anna").await;
        browser
            .type_into("input[name=password]", ADMIN_PASSWORD)
            .await;
        browser.click_to_navigate("form.login button").await;
        let url = browser.url().await;
        assert!(
            url.ends_with("/admin"),
            "{url}: {}",
            c.source().await.unwrap_or_default()
        );
        let count = browser.text("p.count").await;
        assert!(count.starts_with("1000 entries"), "{count}");
        c.goto(&format!("{base}/admin")).await.expect("goto");
        let unfiltered = browser.load_ms().await;
        if let Some(path) = screenshot_path() {
            std::fs::write(path, c.screenshot().await.expect("screenshot"))
                .expect("write screenshot");
        }

        // Filter by recipient and signature, through the form.
        browser
            .type_into("input[name=rcpt]", "bob@example.test")
            .await;
        browser.type_into("input[name=virus]", "emotet").await;
        browser.click_to_navigate("form.filters button").await;
        let filtered = browser.load_ms().await;
        let count = browser.text("p.count").await;
        // bob: n % 3 == 1; Emotet: n % 3 == 2: none; bob with phishing instead.
        assert!(count.starts_with("0 entries"), "{count}");
        c.goto(&format!(
            "{base}/admin?rcpt=bob%40example.test&virus=phishing"
        ))
        .await
        .expect("goto");
        let count = browser.text("p.count").await;
        assert!(count.starts_with("333 entries"), "{count}");
        let by_rcpt = browser.load_ms().await;
        println!(
            "list of 1000: {unfiltered:.0} ms; filtered: {filtered:.0} ms and {by_rcpt:.0} ms"
        );
        for ms in [unfiltered, filtered, by_rcpt] {
            assert!(ms < 1000.0, "the list page took {ms} ms");
        }

        // Open the newest of them and release it: rescanned clean, into bob's INBOX.
        browser.click_to_navigate("table.entries tbody tr a").await;
        let url = browser.url().await;
        assert!(url.contains("/admin/entry/e0001"), "{url}");
        browser.click_to_navigate("form.release button").await;
        let shown = c.source().await.expect("source");
        assert!(shown.contains("bob@example.test: stored INBOX"), "{shown}");
        let stored = env.messages("bob", "");
        assert_eq!(stored.len(), 1);
        assert!(stored[0]
            .1
            .ends_with(&clean_message("Invoice 0001 overdue")));
        assert_eq!(q.get("e0001").expect("entry").releases[0].by, "admin:anna");
        browser.quit().await;
    });
}
