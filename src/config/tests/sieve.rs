//! `[sieve]`: the limits of the actions that send, the script layout and limits.
use super::*;

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
