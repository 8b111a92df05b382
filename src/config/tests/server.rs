//! `[server]`: the trusted peers, the connection slots, the socket group, `metrics_listen`
//! (and `[log]`, read with it).
use super::*;

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

/// The packaged config's old pair: a TCP listener on 127.0.0.1 with `xforward_from` trusting
/// only `unix:postfix` is a warning (XFORWARD would stop silently over TCP); covered
/// listeners are not.
#[test]
fn a_tcp_listener_without_a_trusted_tcp_peer_is_a_warning() {
    let load = |listen: &str, acl: &str| {
        let text = server_section(&format!("xforward_from = [{acl}]")).replace(
            "listen = [\"unix:run/lmtp.sock\"]",
            &format!("listen = [{listen}]"),
        );
        let config = Config::from_toml(&text, Path::new("/x/s.toml")).expect("valid");
        config
            .server
            .warnings
            .into_iter()
            .filter(|w| w.starts_with("server.listen: TCP listener"))
            .collect::<Vec<_>>()
    };
    // (listen, xforward_from, warned, text in the warning)
    let cases = [
        (
            r#""unix:run/l.sock", "127.0.0.1:2424""#,
            r#""unix:postfix""#,
            Some("every local user"),
        ),
        (
            r#""127.0.0.1:2424""#,
            r#""unix""#,
            Some("add \"127.0.0.1\""),
        ),
        (
            r#""192.0.2.1:24""#,
            r#""127.0.0.1""#,
            Some("every host that reaches it"),
        ),
        (r#""0.0.0.0:24""#, r#""unix:root""#, Some("0.0.0.0")),
        (r#""127.0.0.1:2424""#, r#""127.0.0.0/8""#, None),
        (r#""[::1]:2424""#, r#""::1""#, None),
        (r#""0.0.0.0:24""#, r#""10.0.0.0/8""#, None),
        (r#""unix:run/l.sock""#, r#""unix:root""#, None),
    ];
    for (listen, acl, want) in cases {
        let got = load(listen, acl);
        match want {
            None => assert!(got.is_empty(), "{listen} / {acl}: {got:?}"),
            Some(text) => {
                assert_eq!(got.len(), 1, "{listen} / {acl}: {got:?}");
                assert!(got[0].contains(text), "{listen} / {acl}: {got:?}");
            }
        }
    }
}

/// The Debian package's config is consistent: no listener that XFORWARD cannot reach.
#[test]
fn the_packaged_config_has_no_untrusted_tcp_listener() {
    // The package installs the repository's sieve/ as /usr/share/sievegate/sieve.
    let text = include_str!("../../../contrib/sievegate.toml").replace(
        "/usr/share/sievegate/sieve/",
        concat!(env!("CARGO_MANIFEST_DIR"), "/sieve/"),
    );
    let text = text.as_str();
    let config =
        Config::from_toml(text, Path::new("/etc/sievegate/sievegate.toml")).expect("valid");
    assert!(
        config
            .server
            .listen
            .iter()
            .all(|l| !matches!(l, crate::config::ListenAddr::Tcp(_))),
        "{:?}",
        config.server.listen
    );
    let listener_warnings: Vec<_> = config
        .server
        .warnings
        .iter()
        .filter(|w| w.starts_with("server.listen"))
        .collect();
    assert!(listener_warnings.is_empty(), "{listener_warnings:?}");
    // The commented TCP alternative, uncommented as the comment says, is consistent too.
    let tcp = text
        .replace("#   listen = ", "listen = ")
        .replace("#   xforward_from = ", "xforward_from = ");
    let tcp = tcp.replacen("listen = [\"unix:/run/sievegate/lmtp.sock\"]\n", "", 1);
    let tcp = tcp.replacen("xforward_from = [\"unix:postfix\"]\n", "", 1);
    let config =
        Config::from_toml(&tcp, Path::new("/etc/sievegate/sievegate.toml")).expect("valid");
    assert_eq!(config.server.listen.len(), 2);
    assert!(
        !config
            .server
            .warnings
            .iter()
            .any(|w| w.starts_with("server.listen")),
        "{:?}",
        config.server.warnings
    );
}
