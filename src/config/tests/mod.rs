//! Config parsing and validation tables: what concerns the whole file here, one submodule
//! per section.
use super::*;
use crate::mail::net::ClamdAddr;
use std::time::Duration;

mod abuse;
mod mailbox;
mod policy;
mod quarantine;
mod scanner;
mod server;
mod sieve;

const MINIMAL: &str = r#"
[server]
listen = ["127.0.0.1:2424", "unix:run/lmtp.sock"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:run/clamd.sock"
[mailbox]
domains = ["Example.TEST"]
maildir = "vmail/%d/%n/Maildir"
"#;

#[test]
fn minimal_config_resolves_relative_paths_and_defaults() {
    let config =
        Config::from_toml(MINIMAL, Path::new("/etc/sievegate/sievegate.toml")).expect("valid");
    assert_eq!(
        config.server.listen,
        vec![
            ListenAddr::Tcp("127.0.0.1:2424".parse().expect("addr")),
            ListenAddr::Unix(PathBuf::from("/etc/sievegate/run/lmtp.sock")),
        ]
    );
    assert_eq!(
        config.scanner.clamd,
        ClamdAddr::Unix(PathBuf::from("/etc/sievegate/run/clamd.sock"))
    );
    assert_eq!(config.mailbox.maildir, "/etc/sievegate/vmail/%d/%n/Maildir");
    assert_eq!(config.mailbox.domains, vec!["example.test"]);
    assert_eq!(config.server.max_message_size, 52_428_800);
    assert_eq!(config.scanner.on_failure, OnScanFailure::Tempfail);
    // Safe defaults on a shared host: only the postfix user is trusted (if it exists), the
    // socket is not world-connectable, an eighth of the slots is kept for trusted peers.
    let acl = &config.server.xforward_from;
    assert!(!acl.allows_unix(None), "unknown unix peers are not trusted");
    assert!(!acl.allows_unix(Some(12345)));
    assert_eq!(
        acl.allows_unix(user_id("postfix")),
        user_id("postfix").is_some()
    );
    assert!(!acl.allows_ip("127.0.0.1".parse().expect("ip")));
    assert_eq!(config.server.socket_mode, 0o660);
    assert_eq!(config.server.socket_group, None);
    assert_eq!(config.server.reserved_connections, 256 / 8);
    assert_eq!(config.server.min_data_rate, 500);
    assert_eq!(
        config.server.data_allowance(1000),
        Duration::from_secs(302),
        "300 s plus 1000 bytes at 500 B/s"
    );
}

fn server_section(extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"unix:run/lmtp.sock\"]\nhostname = \"h\"\n{extra}\n[scanner]\nclamd = \"unix:c.sock\"\n[mailbox]\ndomains = [\"d.test\"]\nmaildir = \"m/%n\"\n"
    )
}

fn load_server(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&server_section(extra), Path::new("/x/s.toml"))
}

#[test]
fn all_problems_reported_at_once() {
    let text = r#"
[server]
listen = ["nonsense", "unix:"]
max_connections = 0
xforward_from = ["10.0.0.0/40", "unix"]
socket_mode = "999"
[scanner]
clamd = "smoke:signals"
on_failure = "bounce"
[mailbox]
domains = []
maildir = "/var/vmail/shared"
[sieve]
before = ["missing.sieve"]
"#;
    let Err(ConfigError::Invalid { problems, .. }) =
        Config::from_toml(text, Path::new("/nonexistent/x.toml"))
    else {
        panic!("expected problems");
    };
    let joined = problems.join("\n");
    for needle in [
        "\"nonsense\"",
        "\"unix:\" needs a path",
        "max_connections",
        "server.xforward_from",
        "socket_mode",
        "scanner.clamd",
        "on_failure",
        "mailbox.domains",
        "mailbox.maildir",
        "sieve.before",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let text = "[server]\nlisten = [\"127.0.0.1:1\"]\nlisen = 1\n";
    match Config::from_toml(text, Path::new("x.toml")) {
        Err(ConfigError::Parse { message, .. }) => {
            assert!(message.starts_with("3:1:"), "{message}")
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
