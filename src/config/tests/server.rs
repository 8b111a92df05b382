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
