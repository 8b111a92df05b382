//! `[abuse]`: defaults (the private networks ignored) and every problem at once.
use super::*;
use std::net::IpAddr;

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
