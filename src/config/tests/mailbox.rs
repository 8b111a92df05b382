//! `[mailbox]`: the users file and `%h`, the maildir template, `special_use` (with
//! `[sieve]`'s spam score keys).
use super::*;

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
