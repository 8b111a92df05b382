//! Config parsing and validation tables.
use super::*;
use std::net::IpAddr;

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

fn load_acl(acl: &str) -> Result<Config, ConfigError> {
    load_server(&format!("xforward_from = [{acl}]"))
}

#[test]
fn xforward_from_entries() {
    let config =
        load_acl(r#""unix:root", "unix:4242", "127.0.0.1", "2001:db8::/32", "10.1.2.3/8""#)
            .expect("valid");
    let acl = &config.server.xforward_from;
    assert!(acl.allows_unix(Some(0)), "unix:root is uid 0");
    assert!(acl.allows_unix(Some(4242)));
    assert!(!acl.allows_unix(Some(4243)));
    assert!(
        !acl.allows_unix(None),
        "unknown credentials are not trusted"
    );
    for (ip, want) in [
        ("127.0.0.1", true),
        ("::ffff:127.0.0.1", true),
        ("127.0.0.2", false),
        ("2001:db8:ffff::1", true),
        ("2001:db9::1", false),
        ("10.200.0.1", true),
        ("11.0.0.1", false),
    ] {
        assert_eq!(acl.allows_ip(ip.parse().expect("ip")), want, "{ip}");
    }
    assert!(
        config.server.warnings.is_empty(),
        "{:?}",
        config.server.warnings
    );

    // "unix" is any local peer that can open the socket: fine at 0660, a warning at 0666.
    let config = load_acl(r#""unix""#).expect("valid");
    assert!(config.server.xforward_from.allows_unix(None));
    assert!(config.server.warnings.is_empty());
    let config = load_server("xforward_from = [\"unix\"]\nsocket_mode = \"0666\"").expect("valid");
    assert!(
        config
            .server
            .warnings
            .iter()
            .any(|w| w.contains("forge XFORWARD")),
        "{:?}",
        config.server.warnings
    );

    // A user that does not exist is a warning, and trusts no one.
    let config = load_acl(r#""unix:no-such-user-here""#).expect("valid");
    assert!(!config.server.xforward_from.allows_unix(Some(0)));
    assert!(
        config.server.warnings[0].contains("no-such-user-here"),
        "{:?}",
        config.server.warnings
    );

    for bad in ["unix:", "host/8", "1.2.3.4/33", "::/129", "1.2.3.4/x", ""] {
        let Err(ConfigError::Invalid { problems, .. }) = load_acl(&format!("{bad:?}")) else {
            panic!("{bad} should be refused");
        };
        assert!(problems[0].contains("server.xforward_from"), "{problems:?}");
    }
}

#[test]
fn reserved_connections_and_socket_group() {
    let c = load_server("max_connections = 10\nreserved_connections = 9\nsocket_group = \"root\"")
        .expect("valid");
    assert_eq!(c.server.reserved_connections, 9);
    assert_eq!(c.server.socket_group, Some(0));
    let c = load_server("max_connections = 1").expect("valid");
    assert_eq!(c.server.reserved_connections, 0);
    let c = load_server("socket_group = \"4711\"").expect("valid");
    assert_eq!(c.server.socket_group, Some(4711));
    for (extra, needle) in [
        (
            "max_connections = 4\nreserved_connections = 4",
            "reserved_connections",
        ),
        ("socket_group = \"no-such-group-here\"", "socket_group"),
        ("min_data_rate = 0", "min_data_rate"),
    ] {
        let Err(ConfigError::Invalid { problems, .. }) = load_server(extra) else {
            panic!("{extra} should be refused");
        };
        assert!(problems.join("\n").contains(needle), "{problems:?}");
    }
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

#[test]
fn users_file_and_home_table() {
    type Want<'a> = Result<(&'a str, bool), &'a [&'a str]>;
    let cases: &[(&str, Option<&str>, Option<&str>, Want)] = &[
        (
            "maildir = \"vmail/%d/%n/Maildir\"",
            None,
            None,
            Ok(("/CFG/vmail/%d/%n/Maildir", false)),
        ),
        (
            "maildir = \"%h/Maildir\"\nusers_file = \"users\"",
            None,
            Some("alice@example.test:x:::: /home/alice\n"),
            Ok(("%h/Maildir", true)),
        ),
        (
            "maildir = \"vmail/%d/%n\"\nusers_file = \"users\"",
            Some("%h/.dovecot.sieve"),
            Some("bob\n"),
            Ok(("/CFG/vmail/%d/%n", true)),
        ),
        (
            "maildir = \"%h/Maildir\"",
            Some("%h/sieve"),
            None,
            Err(&[
                "mailbox.maildir: %h (the user's home) needs mailbox.users_file",
                "sieve.personal: %h (the user's home) needs mailbox.users_file",
            ]),
        ),
        (
            "maildir = \"vmail/%d/%n\"\nusers_file = \"users\"",
            None,
            Some("good\nbad user\n"),
            Err(&["mailbox.users_file: /CFG/users:2: user name \"bad user\""]),
        ),
        (
            "maildir = \"vmail/%d/%n\"\nusers_file = \"missing\"",
            None,
            None,
            Err(&["mailbox.users_file: /CFG/missing: cannot read"]),
        ),
        (
            "maildir = \"vmail/100%%h\"",
            None,
            None,
            Err(&["mailbox.maildir: \"vmail/100%%h\" must contain %n, %u or %h"]),
        ),
    ];
    for (mailbox, personal, users, want) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = tmp.path().to_string_lossy().into_owned();
        if let Some(users) = users {
            std::fs::write(tmp.path().join("users"), users).expect("write");
        }
        let sieve = personal
            .map(|p| format!("[sieve]\npersonal = \"{p}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\nhostname = \"mx\"\n[scanner]\nclamd = \"unix:c\"\n\
             [mailbox]\ndomains = [\"example.test\"]\n{mailbox}\n{sieve}"
        );
        let got = Config::from_toml(&text, &tmp.path().join("x.toml"));
        match (got, want) {
            (Ok(config), Ok((maildir, needs_home))) => {
                assert_eq!(
                    config.mailbox.maildir,
                    maildir.replace("/CFG", &cfg),
                    "{mailbox}"
                );
                assert_eq!(config.mailbox.needs_home, *needs_home, "{mailbox}");
                assert_eq!(
                    config.mailbox.users_file.is_some(),
                    users.is_some(),
                    "{mailbox}"
                );
                if let Some(p) = personal {
                    assert_eq!(config.sieve.personal.as_deref(), Some(*p), "{mailbox}");
                }
            }
            (Err(ConfigError::Invalid { problems, .. }), Err(needles)) => {
                assert_eq!(problems.len(), needles.len(), "{problems:?}");
                for (problem, needle) in problems.iter().zip(needles.iter()) {
                    let needle = needle.replace("/CFG", &cfg);
                    assert!(problem.starts_with(&needle), "{problem:?} vs {needle:?}");
                }
            }
            (got, want) => panic!("{mailbox}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn scan_and_parse_limits_default_and_warn() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let config = Config::from_toml(MINIMAL, path).expect("valid");
    assert_eq!(config.scanner.max_scan_size, 25 * 1024 * 1024);
    assert_eq!(
        config.sieve.limits,
        MessageLimits {
            max_header_fields: 1000,
            max_header_size: 256 * 1024,
        }
    );
    // 50 MiB messages, 25 MiB scans: the gap is delivered unscanned, so say so.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("max_scan_size"), "{warnings:?}");

    let text = MINIMAL.replace("[scanner]\n", "[scanner]\nmax_scan_size = 52428800\n");
    let config = Config::from_toml(&text, path).expect("valid");
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());

    let text = MINIMAL.replace("[scanner]\n", "[scanner]\nmax_scan_size = 0\n");
    let Err(ConfigError::Invalid { problems, .. }) = Config::from_toml(&text, path) else {
        panic!("max_scan_size = 0 must be refused");
    };
    assert!(
        problems.iter().any(|p| p.contains("scanner.max_scan_size")),
        "{problems:?}"
    );
}

#[test]
fn quarantine_and_state_sections() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let config = Config::from_toml(MINIMAL, path).expect("valid");
    assert!(!config.quarantine.enabled, "off by default");
    assert_eq!(config.quarantine.min_virustest, 4);
    assert_eq!(
        config.quarantine.retention,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(config.state.dir, None);

    let on = format!(
        "{MINIMAL}[quarantine]\nenabled = true\ndir = \"q\"\nmin_virustest = 5\nretention_days = 7\n[state]\ndir = \"/var/lib/sievegate\"\n"
    );
    let config = Config::from_toml(&on, path).expect("valid");
    assert!(config.quarantine.enabled);
    assert_eq!(config.quarantine.dir, PathBuf::from("/etc/sievegate/q"));
    assert_eq!(config.quarantine.min_virustest, 5);
    assert_eq!(config.quarantine.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(config.state.dir, Some(PathBuf::from("/var/lib/sievegate")));

    let cases: &[(&str, &str)] = &[
        (
            "[quarantine]\nenabled = true\n[state]\ndir = \"s\"\n",
            "quarantine.dir: needed",
        ),
        (
            "[quarantine]\nenabled = true\ndir = \"q\"\n",
            "state.dir: needed",
        ),
        (
            "[quarantine]\nmin_virustest = 3\n",
            "quarantine.min_virustest: 3 must be 4",
        ),
        (
            "[quarantine]\nmin_virustest = 6\n",
            "quarantine.min_virustest: 6 must be 4",
        ),
        (
            "[quarantine]\nretention_days = 0\n",
            "quarantine.retention_days: must be greater than 0",
        ),
        ("[quarantine]\nenable = true\n", "unknown field `enable`"),
        ("[state]\npath = \"x\"\n", "unknown field `path`"),
    ];
    for (extra, want) in cases {
        let err = Config::from_toml(&format!("{MINIMAL}{extra}"), path).expect_err(extra);
        assert!(err.to_string().contains(want), "{extra}: {err}");
    }
}

#[test]
fn abuse_defaults_and_validation() {
    let config = Config::from_toml(MINIMAL, Path::new("/etc/sievegate/s.toml")).expect("valid");
    let a = &config.abuse;
    assert!(!a.enabled && !a.dry_run);
    assert_eq!(a.min_interval, Duration::from_secs(86_400));
    assert_eq!(a.rdap_cache_ttl, Duration::from_secs(86_400));
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
    ] {
        assert!(
            a.ignore_networks.iter().any(|n| n.contains(&ip(private))),
            "{private}"
        );
    }
    assert!(!a
        .ignore_networks
        .iter()
        .any(|n| n.contains(&ip("203.0.113.7"))));

    let good = format!(
        "{MINIMAL}[abuse]\nenabled = true\nreport_from = \"abuse-reports@example.test\"\ntrusted_relays = [\"192.0.2.0/24\", \"2001:db8::1\"]\noverrides = {{ \"198.51.100.0/24\" = \"abuse@example.net\", \"198.51.100.7\" = \"host@example.net\" }}\nrdap_base_urls = [\"http://127.0.0.1:8080/rdap/\"]\nmin_interval_secs = 60\n"
    );
    let config = Config::from_toml(&good, Path::new("/etc/s.toml")).expect("valid abuse");
    assert_eq!(
        config.abuse.rdap_base_urls,
        vec!["http://127.0.0.1:8080/rdap"]
    );
    assert_eq!(config.abuse.overrides.len(), 2);
    assert_eq!(config.abuse.trusted_relays.len(), 2);

    // Every problem at once.
    let bad = format!(
        "{MINIMAL}[abuse]\nenabled = true\ntrusted_relays = [\"nope\"]\nignore_networks = [\"10.0.0.0/33\"]\noverrides = {{ \"x\" = \"abuse@example.net\", \"192.0.2.0/24\" = \"not-an-address\" }}\nrdap_base_urls = [\"ftp://x\"]\nrdap_bootstrap = \"/nonexistent/ipv4.json\"\nrdap_cache_secs = 0\n"
    );
    let Err(ConfigError::Invalid { problems, .. }) =
        Config::from_toml(&bad, Path::new("/etc/s.toml"))
    else {
        panic!("expected problems");
    };
    let joined = problems.join("\n");
    for needle in [
        "abuse.report_from: required",
        "abuse.trusted_relays: \"nope\"",
        "abuse.ignore_networks: \"10.0.0.0/33\"",
        "abuse.overrides: \"x\"",
        "not-an-address",
        "abuse.rdap_base_urls: \"ftp://x\"",
        "abuse.rdap_bootstrap: /nonexistent/ipv4.json",
        "abuse.rdap_cache_secs",
    ] {
        assert!(joined.contains(needle), "{needle} missing in {joined}");
    }
}

/// `[mailbox] special_use` and `[sieve] spam_score_*`: defaults, accepted and refused values.
#[test]
fn special_use_and_spam_score() {
    let config = Config::from_toml(MINIMAL, Path::new("/etc/x.toml")).expect("valid");
    assert_eq!(
        config.sieve.special_use,
        crate::filter::DEFAULT_SPECIAL_USE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(config.sieve.spam_score, None);
    let text = format!(
        "{MINIMAL}special_use = {{ \"\\\\Junk\" = \"Spam\" }}\n[sieve]\nspam_score_header = \"X-Spam-Score\"\nspam_score_max = 10.0\n"
    );
    let config = Config::from_toml(&text, Path::new("/etc/x.toml")).expect("valid");
    assert_eq!(
        config.sieve.special_use,
        vec![("\\Junk".to_string(), "Spam".to_string())]
    );
    assert_eq!(
        config.sieve.spam_score,
        Some(crate::filter::SpamScore {
            header: "X-Spam-Score".into(),
            max: 10.0
        })
    );
    for (extra, needle) in [
        (
            "special_use = { \"Junk\" = \"Spam\" }\n",
            "mailbox.special_use: \"Junk\"",
        ),
        (
            "special_use = { \"\\\\Junk\" = \".hidden\" }\n",
            "mailbox.special_use: \".hidden\"",
        ),
        (
            "[sieve]\nspam_score_header = \"X Spam\"\n",
            "sieve.spam_score_header",
        ),
        (
            "[sieve]\nspam_score_header = \"X-Spam-Score\"\nspam_score_max = 0.0\n",
            "sieve.spam_score_max",
        ),
    ] {
        let text = format!("{MINIMAL}{extra}");
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::from_toml(&text, Path::new("/etc/x.toml"))
        else {
            panic!("{extra} should be refused");
        };
        assert!(problems.join("\n").contains(needle), "{problems:?}");
    }
}

/// `[sieve]` limits of the actions that send: Dovecot-like defaults, and what is refused.
#[test]
fn sieve_send_limits_default_and_validate() {
    let config = Config::from_toml(MINIMAL, Path::new("/etc/sievegate/x.toml")).expect("valid");
    assert_eq!(config.sieve.max_redirects, 4);
    assert_eq!(config.sieve.redirect_timeout, Duration::from_secs(30));
    assert_eq!(config.sieve.vacation_days, (1, 7, 60));
    assert_eq!(config.sieve.notify_min_interval, Duration::from_secs(60));
    let cases = [
        ("max_redirects = 0", None),
        ("max_redirects = 33", Some("sieve.max_redirects")),
        (
            "redirect_timeout_secs = 0",
            Some("sieve.redirect_timeout_secs"),
        ),
        ("vacation_min_days = 0", Some("sieve.vacation_min_days")),
        (
            "vacation_default_days = 90",
            Some("sieve.vacation_default_days"),
        ),
        (
            "vacation_min_days = 10\nvacation_default_days = 7",
            Some("sieve.vacation_default_days"),
        ),
        ("vacation_max_days = 365\nvacation_default_days = 30", None),
    ];
    for (lines, problem) in cases {
        let text = format!("{MINIMAL}[sieve]\n{lines}\n");
        match (
            Config::from_toml(&text, Path::new("/nonexistent/x.toml")),
            problem,
        ) {
            (Ok(_), None) => {}
            (Err(ConfigError::Invalid { problems, .. }), Some(want)) => {
                assert!(
                    problems.iter().any(|p| p.contains(want)),
                    "{lines}: {problems:?}"
                )
            }
            (Ok(_), Some(want)) => panic!("{lines}: accepted, want {want}"),
            (Err(e), _) => panic!("{lines}: {e}"),
        }
    }
}

#[test]
fn sieve_layout_and_limits() {
    let config =
        Config::from_toml(MINIMAL, Path::new("/etc/sievegate/sievegate.toml")).expect("valid");
    // Dovecot/Pigeonhole defaults.
    assert_eq!(
        config.sieve.scripts,
        crate::filter::ScriptSettings::default()
    );
    assert_eq!(config.sieve.scripts.max_script_size, 1024 * 1024);
    assert_eq!(config.sieve.scripts.max_actions, 32);
    assert_eq!(config.sieve.scripts.max_include_depth, 10);
    assert_eq!(config.sieve.scripts.user_log_size, 64 * 1024);

    let dir = tempfile::tempdir().expect("tempdir");
    let global = dir.path().join("global");
    std::fs::create_dir(&global).expect("mkdir");
    let text = format!(
        "{MINIMAL}[sieve]\npersonal_dir = \"u/%d/%n/sieve\"\nglobal_dir = \"global\"\nmax_actions = 5\ndisabled_extensions = [\"redirect\", \"vacation\"]\n"
    );
    let config = Config::from_toml(&text, &dir.path().join("c.toml")).expect("valid");
    let scripts = &config.sieve.scripts;
    assert_eq!(
        scripts.personal_dir.as_deref(),
        Some(format!("{}/u/%d/%n/sieve", dir.path().display()).as_str())
    );
    assert_eq!(scripts.global_dir.as_deref(), Some(global.as_path()));
    assert_eq!(scripts.max_actions, 5);
    assert_eq!(scripts.disabled_extensions, vec!["redirect", "vacation"]);

    let bad = format!(
        "{MINIMAL}[sieve]\nglobal_dir = \"missing\"\nmax_actions = 0\nmax_include_depth = 0\ndisabled_extensions = [\"frobnicate\"]\n"
    );
    let Err(ConfigError::Invalid { problems, .. }) =
        Config::from_toml(&bad, &dir.path().join("c.toml"))
    else {
        panic!("invalid config accepted");
    };
    let all = problems.join("\n");
    for key in [
        "sieve.global_dir",
        "sieve.max_actions",
        "sieve.max_include_depth",
        "sieve.disabled_extensions: \"frobnicate\"",
    ] {
        assert!(all.contains(key), "{key}: {all}");
    }
}

#[test]
fn metrics_listen_and_log_section() {
    let c = load_server("").expect("valid");
    assert_eq!(c.server.metrics_listen, None, "metrics are off by default");
    assert_eq!(c.log, crate::config::LogConfig::default());
    let c = load_server("metrics_listen = \"127.0.0.1:9425\"").expect("valid");
    assert_eq!(
        c.server.metrics_listen,
        Some("127.0.0.1:9425".parse().expect("addr"))
    );
    let text = server_section("") + "[log]\nformat = \"json\"\nlevel = \"debug\"\n";
    let c = Config::from_toml(&text, Path::new("/x/s.toml")).expect("valid");
    assert_eq!(c.log.format, crate::config::LogFormat::Json);
    assert_eq!(c.log.level, "debug");
    for extra in [
        "metrics_listen = \"localhost:9425\"",
        "metrics_listen = \"9425\"",
    ] {
        let Err(ConfigError::Invalid { problems, .. }) = load_server(extra) else {
            panic!("{extra} should be refused");
        };
        assert!(
            problems.join("\n").contains("server.metrics_listen"),
            "{problems:?}"
        );
    }
}
