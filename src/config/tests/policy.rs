//! The AV policy keys: `[scanner] ignore_signatures`, `[domain."..."]`,
//! `[quarantine] sample_recipients`.
use super::*;

const QUARANTINE: &str = "[quarantine]\nenabled = true\ndir = \"q\"\n[state]\ndir = \"s\"\n";

#[test]
fn signature_globs_match_like_clamd_names() {
    let mut problems = Vec::new();
    let globs = SignatureGlobs::validate(
        "t",
        vec![
            "PUA.*".into(),
            "Heuristics.Phishing.*".into(),
            "Win.Test.?-1".into(),
            "*.UNOFFICIAL".into(),
            "PUA.*".into(),
        ],
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(globs.patterns().count(), 4, "duplicates are folded");
    // (signature, the pattern that matches it)
    let cases: &[(&str, Option<&str>)] = &[
        ("PUA.Win.Packer.Upx-1", Some("PUA.*")),
        ("PUA.", Some("PUA.*")),
        ("pua.Win.Packer", None), // case-sensitive, like clamd's names
        (
            "Heuristics.Phishing.Email.SpoofedDomain",
            Some("Heuristics.Phishing.*"),
        ),
        ("Heuristics.Encrypted.PDF", None),
        ("Win.Test.A-1", Some("Win.Test.?-1")),
        ("Win.Test.AB-1", None),
        ("Win.Test.-1", None),
        ("Eicar-Signature", None),
        ("Sievegate.Test.UNOFFICIAL", Some("*.UNOFFICIAL")),
        ("XPUA.Win", None), // anchored at both ends
        ("", None),
    ];
    for (name, want) in cases {
        assert_eq!(globs.matching(name), *want, "{name:?}");
    }
    assert_eq!(SignatureGlobs::default().matching("PUA.X"), None);
}

#[test]
fn bad_signature_patterns_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("\"\"", "empty pattern"),
        ("\"*\"", "matches every signature"),
        ("\"?*\"", "matches every signature"),
        ("\"PUA.[AB]*\"", "only * and ? are wildcards"),
        ("\"PUA.{A,B}\"", "only * and ? are wildcards"),
        ("\"PUA\\\\.x\"", "only * and ? are wildcards"),
        ("\"PUA.\\u0007\"", "control characters"),
    ];
    let path = Path::new("/etc/sievegate/sievegate.toml");
    for (pattern, want) in cases {
        let global = MINIMAL.replace(
            "[scanner]\n",
            &format!("[scanner]\nignore_signatures = [{pattern}]\n"),
        );
        let err = Config::from_toml(&global, path).expect_err(pattern);
        let text = err.to_string();
        assert!(
            text.contains("scanner.ignore_signatures: ") && text.contains(want),
            "{pattern}: {text}"
        );
        let domain =
            format!("{MINIMAL}[domain.\"example.test\"]\nignore_signatures = [{pattern}]\n");
        let err = Config::from_toml(&domain, path).expect_err(pattern);
        let text = err.to_string();
        assert!(
            text.contains("domain.\"example.test\".ignore_signatures: ") && text.contains(want),
            "{pattern}: {text}"
        );
    }
    let long = format!("\"PUA.{}\"", "x".repeat(200));
    let global = MINIMAL.replace(
        "[scanner]\n",
        &format!("[scanner]\nignore_signatures = [{long}]\n"),
    );
    let err = Config::from_toml(&global, path).expect_err("long");
    assert!(err.to_string().contains("longer than 200"), "{err}");
}

#[test]
fn domain_tables() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let config = Config::from_toml(MINIMAL, path).expect("valid");
    assert!(config.domains.is_empty());
    assert!(config.scanner.ignore_signatures.is_empty());
    assert!(config.quarantine.sample_recipients.is_empty());

    let text = MINIMAL.replace(
        "[scanner]\n",
        "[scanner]\nignore_signatures = [\"PUA.*\"]\n",
    ) + "[domain.\"Example.Test\"]\nignore_signatures = [\"Heuristics.*\"]\nmin_virustest = 5\nnotices = false\n";
    let config = Config::from_toml(&text, path).expect("valid");
    assert_eq!(
        config.scanner.ignore_signatures.matching("PUA.X"),
        Some("PUA.*")
    );
    let policy = config.domains.get("example.test").expect("lowercased key");
    assert_eq!(policy.min_virustest, Some(5));
    assert!(!policy.notices);
    assert_eq!(
        policy.ignore_signatures.matching("Heuristics.Y"),
        Some("Heuristics.*")
    );
    assert_eq!(
        policy.ignore_signatures.matching("PUA.X"),
        None,
        "its own list only"
    );

    let config = Config::from_toml(&format!("{MINIMAL}[domain.\"example.test\"]\n"), path)
        .expect("an empty table");
    assert_eq!(
        config.domains.get("example.test"),
        Some(&DomainPolicy::default())
    );
    assert!(
        DomainPolicy::default().notices,
        "notices stay on unless turned off"
    );

    let cases: &[(&str, &str)] = &[
        (
            "[domain.\"other.test\"]\nnotices = false\n",
            "domain.\"other.test\": not one of mailbox.domains",
        ),
        (
            "[domain.\"example.test\"]\nmin_virustest = 3\n",
            "domain.\"example.test\".min_virustest: 3 must be 4",
        ),
        (
            "[domain.\"example.test\"]\nmin_virustest = 6\n",
            "domain.\"example.test\".min_virustest: 6 must be 4",
        ),
        (
            "[domain.\"example.test\"]\nnotice = false\n",
            "unknown field `notice`",
        ),
        (
            "[domain.\"example.test\"]\nmin_virustest = \"high\"\n",
            "invalid type",
        ),
        (
            "[domain.\"example.test\"]\n[domain.\"EXAMPLE.test\"]\n",
            "given twice",
        ),
    ];
    for (extra, want) in cases {
        let err = Config::from_toml(&format!("{MINIMAL}{extra}"), path).expect_err(extra);
        assert!(err.to_string().contains(want), "{extra}: {err}");
    }
}

#[test]
fn sample_recipients() {
    let path = Path::new("/etc/sievegate/sievegate.toml");
    let text = format!("{MINIMAL}{QUARANTINE}").replace(
        "[quarantine]\n",
        "[quarantine]\nsample_recipients = [\"Abuse@Example.test\", \"abuse@example.test\"]\n",
    );
    let config = Config::from_toml(&text, path).expect("valid");
    assert_eq!(config.quarantine.sample_recipients, ["abuse@example.test"]);
    assert!(config.quarantine.is_sample_recipient("abuse@example.test"));
    assert!(config.quarantine.is_sample_recipient("ABUSE@example.test"));
    assert!(!config.quarantine.is_sample_recipient("abuse2@example.test"));
    assert!(config.warnings().iter().all(|w| !w.contains("sample")));

    let off = format!("{MINIMAL}[quarantine]\nsample_recipients = [\"abuse@example.test\"]\n");
    let config = Config::from_toml(&off, path).expect("valid, with a warning");
    assert!(
        (config.warnings().iter())
            .any(|w| w
                .contains("quarantine.sample_recipients is set but quarantine.enabled = false")),
        "{:?}",
        config.warnings()
    );

    let cases: &[(&str, &str)] = &[
        (
            "[quarantine]\nenabled = true\ndir = \"q\"\nsample_recipients = [\"abuse\"]\n[state]\ndir = \"s\"\n",
            "\"abuse\" is not a plain address",
        ),
        (
            "[quarantine]\nenabled = true\ndir = \"q\"\nsample_recipients = [\"a b@example.test\"]\n[state]\ndir = \"s\"\n",
            "is not a plain address",
        ),
        (
            "[quarantine]\nenabled = true\ndir = \"q\"\nsample_recipients = [\"abuse@elsewhere.test\"]\n[state]\ndir = \"s\"\n",
            "\"abuse@elsewhere.test\" is not at one of mailbox.domains",
        ),
    ];
    for (extra, want) in cases {
        let err = Config::from_toml(&format!("{MINIMAL}{extra}"), path).expect_err(extra);
        assert!(err.to_string().contains(want), "{extra}: {err}");
    }
}
