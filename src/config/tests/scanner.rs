//! `[scanner]` and `[sieve]` size limits: defaults, the unscanned-gap warning, 0 refused.
use super::*;

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
    // (MINIMAL's untrusted TCP listener has its own warning, tested in server.rs.)
    let mut warnings = config.warnings();
    warnings.retain(|w| !w.starts_with("server.listen: TCP listener"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("max_scan_size"), "{warnings:?}");

    let text = MINIMAL.replace("[scanner]\n", "[scanner]\nmax_scan_size = 52428800\n");
    let config = Config::from_toml(&text, path).expect("valid");
    let mut warnings = config.warnings();
    warnings.retain(|w| !w.starts_with("server.listen: TCP listener"));
    assert!(warnings.is_empty(), "{warnings:?}");

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
fn pass_fd_defaults_on_and_applies_to_unix_sockets_only() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let config = Config::from_toml(MINIMAL, path).expect("valid");
    assert!(config.scanner.pass_fd, "on by default");
    let text = MINIMAL.replace("[scanner]\n", "[scanner]\npass_fd = false\n");
    let config = Config::from_toml(&text, path).expect("valid");
    assert!(!config.scanner.pass_fd);
    // (clamd address, pass_fd, whether scans go by descriptor)
    for (clamd, pass_fd, by_fd) in [
        ("unix:/run/clamav/clamd.ctl", true, true),
        ("unix:/run/clamav/clamd.ctl", false, false),
        ("tcp:127.0.0.1:3310", true, false),
    ] {
        let mut scanner = config.scanner.clone();
        scanner.clamd = clamd.parse().expect("address");
        scanner.pass_fd = pass_fd;
        let built = crate::delivery::build::scanner(&scanner);
        assert_eq!(built.passes_fd(), by_fd, "{clamd} pass_fd = {pass_fd}");
    }
}
