//! `[quarantine.digest]`: the periodic message to each recipient listing what the
//! quarantine holds for them; [`RawDigest`] as written, [`DigestConfig`] validated, and
//! the [`Schedule`] grammar.
//!
//! Schedules are in UTC, not the host's local time: hosts sharing one state store
//! (PostgreSQL) must agree on which period a run belongs to, whatever their time zone, and
//! a UTC slot never repeats or vanishes at a daylight-saving change.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// `[quarantine.digest]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDigest {
    /// Send digests at all (the server on its schedule; the CLI refuses otherwise).
    #[serde(default)]
    pub enabled: bool,
    /// `"hourly"`, `"daily at HH:MM"` or `"weekly on DAY at HH:MM"`, UTC.
    #[serde(default = "defaults::schedule")]
    pub schedule: String,
    /// The digests' `From:` (a plain address). Default: `[notify] from`.
    pub from: Option<String>,
    /// The digests' `Subject:`.
    #[serde(default = "defaults::subject")]
    pub subject: String,
    /// Entries listed one by one in one digest; beyond, "and N more".
    #[serde(default = "defaults::max_entries")]
    pub max_entries: usize,
    /// Recipient domains that get no digest (a domain's opt-out).
    #[serde(default)]
    pub skip_domains: Vec<String>,
}

impl Default for RawDigest {
    fn default() -> Self {
        RawDigest {
            enabled: false,
            schedule: defaults::schedule(),
            from: None,
            subject: defaults::subject(),
            max_entries: defaults::max_entries(),
            skip_domains: Vec::new(),
        }
    }
}

/// Validated `[quarantine.digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// Digests are sent (by the server on [`DigestConfig::schedule`], or by the CLI).
    pub enabled: bool,
    /// When digests fall due.
    pub schedule: Schedule,
    /// `From:`: a plain addr-spec.
    pub from: String,
    /// `Subject:` (sanitised again when written).
    pub subject: String,
    /// At least 1.
    pub max_entries: usize,
    /// Lowercased domains whose recipients get no digest.
    pub skip_domains: Vec<String>,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: false,
            schedule: Schedule::Daily { minute: 7 * 60 },
            from: String::new(),
            subject: defaults::subject(),
            max_entries: defaults::max_entries(),
            skip_domains: Vec::new(),
        }
    }
}

/// When digests fall due, in UTC. Each schedule cuts time into periods that start at a
/// slot; one run per slot sends (see `quarantine::digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// At the start of every hour.
    Hourly,
    /// Every day at `minute` minutes after midnight.
    Daily {
        /// 0..1440.
        minute: u32,
    },
    /// Every week on `weekday` (0 = Monday) at `minute` minutes after midnight.
    Weekly {
        /// 0..7, Monday first (ISO 8601).
        weekday: u32,
        /// 0..1440.
        minute: u32,
    },
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Schedule {
    /// Parses `hourly`, `daily at HH:MM`, `weekly on DAY at HH:MM` (DAY in English, any
    /// case; HH:MM on a 24-hour clock, UTC). Words are separated by white space.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let bad = || {
            format!(
                "{text:?} is not a schedule: use \"hourly\", \"daily at HH:MM\" or \"weekly on DAY at HH:MM\" (UTC)"
            )
        };
        match words.as_slice() {
            ["hourly"] => Ok(Schedule::Hourly),
            ["daily", "at", time] => Ok(Schedule::Daily {
                minute: clock(time).ok_or_else(bad)?,
            }),
            ["weekly", "on", day, "at", time] => Ok(Schedule::Weekly {
                weekday: WEEKDAYS.iter().position(|d| d == day).ok_or_else(bad)? as u32,
                minute: clock(time).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }

    /// The length of one period: an hour, a day or a week.
    pub fn period(&self) -> Duration {
        Duration::from_secs(match self {
            Schedule::Hourly => 3600,
            Schedule::Daily { .. } => 86_400,
            Schedule::Weekly { .. } => 7 * 86_400,
        })
    }

    /// The latest slot at or before `now` (seconds since the Unix epoch, UTC).
    pub fn latest_slot(&self, now: u64) -> u64 {
        let day = now / 86_400;
        let slot = match self {
            Schedule::Hourly => return now - now % 3600,
            Schedule::Daily { minute } => day * 86_400 + u64::from(*minute) * 60,
            Schedule::Weekly { weekday, minute } => {
                // 1970-01-01 was a Thursday (weekday 3 counted from Monday).
                let monday = day - (day + 3) % 7;
                (monday + u64::from(*weekday)) * 86_400 + u64::from(*minute) * 60
            }
        };
        let period = self.period().as_secs();
        if slot > now {
            slot.saturating_sub(period)
        } else {
            slot
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        match self {
            Schedule::Hourly => f.write_str("hourly"),
            Schedule::Daily { minute } => write!(f, "daily at {}", hm(*minute)),
            Schedule::Weekly { weekday, minute } => write!(
                f,
                "weekly on {} at {}",
                WEEKDAYS.get(*weekday as usize).unwrap_or(&"monday"),
                hm(*minute)
            ),
        }
    }
}

/// `HH:MM` → minutes after midnight.
fn clock(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl RawDigest {
    /// Checks `[quarantine.digest]`; `notify_from` is the default `from`. Enabled, it needs
    /// the quarantine (`quarantine_enabled`): there is nothing to list otherwise.
    pub(super) fn validate(
        self,
        notify_from: &str,
        quarantine_enabled: bool,
        problems: &mut Vec<String>,
    ) -> DigestConfig {
        let d = self;
        let schedule = match Schedule::parse(&d.schedule) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("quarantine.digest.schedule: {e}"));
                Schedule::Hourly
            }
        };
        let from = d.from.unwrap_or_else(|| notify_from.to_string());
        if !crate::mail::address::is_addr_spec(&from) {
            problems.push(format!(
                "quarantine.digest.from: {from:?} is not a plain address (local@domain)"
            ));
        }
        if d.max_entries == 0 {
            problems.push("quarantine.digest.max_entries: must be greater than 0".to_string());
        }
        if d.subject.chars().any(char::is_control) || d.subject.trim().is_empty() {
            problems
                .push("quarantine.digest.subject: must be one line of text, not empty".to_string());
        }
        let mut skip_domains = Vec::new();
        for domain in &d.skip_domains {
            let lower = domain.trim().to_ascii_lowercase();
            if lower.is_empty()
                || lower.contains('@')
                || lower.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(format!(
                    "quarantine.digest.skip_domains: {domain:?} is not a domain"
                ));
            } else {
                skip_domains.push(lower);
            }
        }
        if d.enabled && !quarantine_enabled {
            problems.push(
                "quarantine.digest.enabled: needs quarantine.enabled = true (there is nothing to list otherwise)"
                    .to_string(),
            );
        }
        DigestConfig {
            enabled: d.enabled,
            schedule,
            from,
            subject: d.subject,
            max_entries: d.max_entries,
            skip_domains,
        }
    }
}

/// Defaults of the `[quarantine.digest]` keys.
mod defaults {
    pub fn schedule() -> String {
        "daily at 07:00".to_string()
    }
    pub fn subject() -> String {
        "Quarantine: messages held for you".to_string()
    }
    pub fn max_entries() -> usize {
        50
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_grammar() {
        let cases: &[(&str, Option<Schedule>)] = &[
            ("hourly", Some(Schedule::Hourly)),
            (" Hourly ", Some(Schedule::Hourly)),
            ("daily at 07:00", Some(Schedule::Daily { minute: 420 })),
            ("daily at 7:05", Some(Schedule::Daily { minute: 425 })),
            ("daily  AT 23:59", Some(Schedule::Daily { minute: 1439 })),
            (
                "weekly on Monday at 07:00",
                Some(Schedule::Weekly {
                    weekday: 0,
                    minute: 420,
                }),
            ),
            (
                "weekly on sunday at 00:00",
                Some(Schedule::Weekly {
                    weekday: 6,
                    minute: 0,
                }),
            ),
            ("daily at 24:00", None),
            ("daily at 07:60", None),
            ("daily at 7", None),
            ("daily at 07:0", None),
            ("daily", None),
            ("weekly on mon at 07:00", None),
            ("weekly at 07:00", None),
            ("every day", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(Schedule::parse(text).ok(), *want, "{text:?}");
            if let Some(s) = want {
                assert_eq!(Schedule::parse(&s.to_string()).ok(), *want, "{s}");
            }
        }
    }

    #[test]
    fn latest_slot_table() {
        // 2026-12-05 (a Saturday) 17:10:00 UTC.
        let now = 1_796_490_600;
        let day = now - now % 86_400;
        let daily = Schedule::Daily { minute: 7 * 60 };
        assert_eq!(Schedule::Hourly.latest_slot(now), day + 17 * 3600);
        assert_eq!(daily.latest_slot(now), day + 7 * 3600);
        // Before today's slot: yesterday's.
        assert_eq!(daily.latest_slot(day + 3600), day - 86_400 + 7 * 3600);
        // Exactly at the slot: that slot.
        assert_eq!(daily.latest_slot(day + 7 * 3600), day + 7 * 3600);
        // Monday 07:00 before: 2026-11-30.
        let monday = day - 5 * 86_400;
        let weekly = |weekday| Schedule::Weekly {
            weekday,
            minute: 420,
        };
        assert_eq!(weekly(0).latest_slot(now), monday + 7 * 3600);
        // Saturday 07:00 is today; Sunday 07:00 was six days ago.
        assert_eq!(weekly(5).latest_slot(now), day + 7 * 3600);
        assert_eq!(weekly(6).latest_slot(now), day - 6 * 86_400 + 7 * 3600);
    }
}
