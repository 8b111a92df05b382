//! The scan read per recipient: a table over domains, verdicts and sample mailboxes.
use std::path::Path;

use super::*;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:2424"]
hostname = "mx.example.test"
[scanner]
clamd = "unix:run/clamd.sock"
ignore_signatures = ["Global.*"]
[mailbox]
domains = ["ignoring.test", "strict.test", "plain.test"]
maildir = "vmail/%d/%n/Maildir"
[quarantine]
enabled = true
dir = "q"
min_virustest = 4
sample_recipients = ["abuse@plain.test"]
[state]
dir = "s"
[domain."ignoring.test"]
ignore_signatures = ["PUA.Test.*"]
notices = false
[domain."strict.test"]
min_virustest = 5
"#;

fn config() -> Config {
    Config::from_toml(CONFIG, Path::new("/etc/sievegate/sievegate.toml")).expect("valid")
}

fn rcpt(address: &str) -> Recipient {
    let domains = ["ignoring.test", "strict.test", "plain.test"].map(String::from);
    Recipient::resolve(address, &domains, "+").expect("recipient")
}

fn infected(name: &str, heuristic: bool) -> Verdict {
    Verdict::Infected {
        name: name.to_string(),
        heuristic,
    }
}

#[test]
fn one_scan_read_per_recipient() {
    let config = config();
    let pua = infected("PUA.Test.Sample-1", true);
    let global = infected("Global.Thing", false);
    let virus = infected("Eicar-Signature", false);
    let heur = infected("Heuristics.Test.Phish", true);
    // (recipient, verdict, effective virustest, ignored pattern, held, sample, notice)
    type Row<'a> = (&'a str, &'a Verdict, u8, Option<&'a str>, bool, bool, bool);
    let cases: &[Row] = &[
        (
            "a@ignoring.test",
            &pua,
            1,
            Some("PUA.Test.*"),
            false,
            false,
            false,
        ),
        ("b@strict.test", &pua, 4, None, false, false, true),
        ("c@plain.test", &pua, 4, None, true, false, true),
        (
            "a@ignoring.test",
            &global,
            1,
            Some("Global.*"),
            false,
            false,
            false,
        ),
        (
            "b@strict.test",
            &global,
            1,
            Some("Global.*"),
            false,
            false,
            false,
        ),
        ("a@ignoring.test", &virus, 5, None, true, false, false),
        ("b@strict.test", &virus, 5, None, true, false, true),
        ("b@strict.test", &heur, 4, None, false, false, true),
        ("c@plain.test", &heur, 4, None, true, false, true),
        ("abuse@plain.test", &virus, 5, None, true, true, true),
        ("Abuse+x@PLAIN.test", &heur, 4, None, true, true, true),
        (
            "abuse@plain.test",
            &global,
            1,
            Some("Global.*"),
            false,
            false,
            false,
        ),
        (
            "abuse@plain.test",
            &Verdict::Clean,
            1,
            None,
            false,
            false,
            false,
        ),
        (
            "abuse@plain.test",
            &Verdict::TooLarge,
            0,
            None,
            false,
            false,
            false,
        ),
        (
            "c@plain.test",
            &Verdict::Unscanned,
            0,
            None,
            false,
            false,
            false,
        ),
    ];
    for (address, verdict, virustest, pattern, held, sample, notice) in cases {
        let p = for_recipient(&config, &rcpt(address), verdict);
        let what = format!("{address} {verdict}");
        assert_eq!(p.verdict.virustest(), *virustest, "{what}");
        assert_eq!(
            p.ignored.as_ref().map(|i| i.pattern.as_str()),
            *pattern,
            "{what}"
        );
        assert_eq!(p.held, *held, "{what}: held");
        assert_eq!(p.sample, *sample, "{what}: sample");
        assert_eq!(p.notice, *notice, "{what}: notice");
        assert_eq!(p.infected(), *virustest >= 4, "{what}");
        if pattern.is_some() {
            assert_eq!(p.verdict, Verdict::Clean, "{what}");
            let note = p.note().expect("a note");
            assert!(note.contains(verdict.virus_name().unwrap_or("?")), "{note}");
        } else {
            assert_eq!(&p.verdict, *verdict, "{what}: unchanged");
            assert_eq!(p.note(), None);
        }
    }
}

#[test]
fn without_a_quarantine_nothing_is_held() {
    let text = CONFIG
        .replace("enabled = true\n", "enabled = false\n")
        .replace("sample_recipients = [\"abuse@plain.test\"]\n", "");
    let config =
        Config::from_toml(&text, Path::new("/etc/sievegate/sievegate.toml")).expect("valid");
    let p = for_recipient(&config, &rcpt("c@plain.test"), &infected("X", false));
    assert!(p.infected() && !p.held && p.notice);
    let forced = RcptPolicy::as_scanned(&infected("X", false));
    assert!(forced.infected() && !forced.held && !forced.sample && !forced.notice);
}
