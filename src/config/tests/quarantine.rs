//! `[quarantine]` and `[state]`: defaults, what enabling needs, refused values.
use super::*;

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

    // PostgreSQL keeps the messages: no dir needed (and none resolved).
    let pg = format!(
        "{MINIMAL}[quarantine]\nenabled = true\n[state]\nbackend = \"postgres\"\nurl = \"host=db\"\n"
    );
    let config = Config::from_toml(&pg, path).expect("no quarantine.dir with PostgreSQL");
    assert!(config.quarantine.enabled);
    assert_eq!(config.quarantine.dir, PathBuf::new());

    let cases: &[(&str, &str)] = &[
        (
            "[quarantine]\nenabled = true\n[state]\ndir = \"s\"\n",
            "quarantine.dir: needed when quarantine.enabled = true (unless [state] backend = \"postgres\"",
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
fn state_lifetime_keys() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let config = Config::from_toml(MINIMAL, path).expect("valid");
    assert_eq!(config.state.expire_interval, Duration::from_secs(300));
    assert_eq!(config.state.rate_retention, Duration::from_secs(7 * 86_400));
    assert_eq!(config.state.memory_max_entries, 100_000);
    assert_eq!(config.rate_keep(), Duration::from_secs(7 * 86_400));

    // A retention shorter than a configured interval is raised to it: forgetting a rate
    // row never allows an event early.
    let short = format!(
        "{MINIMAL}[state]\nexpire_interval_secs = 0\nrate_retention_secs = 60\nmemory_max_entries = 500\n"
    );
    let config = Config::from_toml(&short, path).expect("valid");
    assert_eq!(config.state.expire_interval, Duration::from_secs(1));
    assert_eq!(config.state.memory_max_entries, 500);
    assert_eq!(
        config.rate_keep(),
        config
            .abuse
            .min_interval
            .max(config.sieve.notify_min_interval)
            .max(Duration::from_secs(60))
    );
    assert!(config.rate_keep() > Duration::from_secs(60));
}

#[test]
fn digest_section() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let base = format!(
        "{MINIMAL}[state]\ndir = \"/var/lib/sievegate\"\n[quarantine]\nenabled = true\ndir = \"q\"\n"
    );
    let config = Config::from_toml(&base, path).expect("valid");
    let d = &config.quarantine.digest;
    assert!(!d.enabled, "off by default");
    assert_eq!(d.schedule, crate::config::Schedule::Daily { minute: 420 });
    assert_eq!(d.max_entries, 50);
    assert_eq!(d.from, config.notify.from, "[notify] from by default");
    let web = "[web]\nbase_url = \"https://q.example.test\"\nsecret_file = \"k\"\n";
    let on = format!(
        "{base}[quarantine.digest]\nenabled = true\nschedule = \"weekly on Friday at 16:30\"\nfrom = \"q@example.test\"\nskip_domains = [\"Lists.Example.Test\"]\n{web}"
    );
    let d = Config::from_toml(&on, path)
        .expect("valid")
        .quarantine
        .digest;
    assert!(d.enabled);
    assert_eq!(d.schedule.to_string(), "weekly on friday at 16:30");
    assert_eq!(d.skip_domains, ["lists.example.test"]);
    let cases: &[(&str, &str)] = &[
        (
            "enabled = true\n",
            "web.base_url: needed when quarantine.digest.enabled = true",
        ),
        (
            "schedule = \"every day\"\n",
            "quarantine.digest.schedule: \"every day\" is not a schedule",
        ),
        (
            "from = \"Q <q@example.test>\"\n",
            "quarantine.digest.from: \"Q <q@example.test>\" is not a plain address",
        ),
        (
            "max_entries = 0\n",
            "quarantine.digest.max_entries: must be greater than 0",
        ),
        (
            "subject = \"a\\r\\nBcc: x\"\n",
            "quarantine.digest.subject: must be one line",
        ),
        (
            "skip_domains = [\"a@b\"]\n",
            "quarantine.digest.skip_domains: \"a@b\" is not a domain",
        ),
    ];
    for (keys, want) in cases {
        let text = format!("{base}[quarantine.digest]\n{keys}");
        match Config::from_toml(&text, path) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert!(
                    problems.iter().any(|p| p.contains(want)),
                    "{keys}: {problems:?}"
                )
            }
            other => panic!("{keys}: expected problems, got {other:?}"),
        }
    }
    // Enabled without the quarantine: nothing to list.
    let off = format!("{MINIMAL}[quarantine.digest]\nenabled = true\n{web}");
    match Config::from_toml(&off, path) {
        Err(ConfigError::Invalid { problems, .. }) => assert!(
            problems
                .iter()
                .any(|p| p.contains("needs quarantine.enabled = true")),
            "{problems:?}"
        ),
        other => panic!("expected problems, got {other:?}"),
    }
}
