//! `[scanner]`: the clamd connection and what to do when it fails; [`RawScanner`] as
//! written, [`ScannerConfig`] validated.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use wildmatch::WildMatch;

use super::resolve;
use crate::mail::net::ClamdAddr;

/// `[scanner]`: the clamd connection and what to do when it fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanner {
    /// `false`: no message is sent to clamd; every one gets virustest 0 (`Not scanned`).
    #[serde(default = "defaults::scanner_enabled")]
    pub enabled: bool,
    /// `unix:PATH` or `tcp:HOST:PORT`.
    pub clamd: String,
    #[serde(default = "defaults::scan_timeout_secs")]
    pub timeout_secs: u64,
    /// `tempfail` (451, the MTA retries) or `deliver-unscanned` (virustest sees 0).
    #[serde(default = "defaults::on_failure")]
    pub on_failure: String,
    /// Signature name prefixes that mean "probably a virus" (virustest 4) rather than 5.
    #[serde(default = "defaults::heuristic_prefixes")]
    pub heuristic_prefixes: Vec<String>,
    /// Larger messages are not scanned; they are delivered with virustest 0.
    #[serde(default = "defaults::max_scan_size")]
    pub max_scan_size: u64,
    /// Seconds between PINGs while clamd is down (0: no probe, no gating at MAIL).
    #[serde(default = "defaults::health_interval_secs")]
    pub health_interval_secs: u64,
    /// Pass clamd a read-only descriptor of the message (FILDES) on a unix socket.
    #[serde(default = "defaults::pass_fd")]
    pub pass_fd: bool,
    /// Signature-name globs (`PUA.*`) whose matches count as clean for every recipient.
    #[serde(default)]
    pub ignore_signatures: Vec<String>,
}

/// Validated `[scanner]`.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// `[scanner] enabled`: false sends nothing to clamd (every message unscanned).
    pub enabled: bool,
    pub clamd: ClamdAddr,
    pub timeout: Duration,
    pub on_failure: OnScanFailure,
    pub heuristic_prefixes: Vec<String>,
    pub max_scan_size: usize,
    /// PING period while clamd is down; `None`: no health gating.
    pub health_interval: Option<Duration>,
    /// `[scanner] pass_fd`: FILDES instead of INSTREAM (applies to unix sockets only).
    pub pass_fd: bool,
    /// `[scanner] ignore_signatures`: the false positives an admin accepts, for every
    /// domain (a `[domain."..."]` table adds its own).
    pub ignore_signatures: SignatureGlobs,
}

/// What a scanner failure does to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnScanFailure {
    /// 451 for every recipient; nothing is delivered; the MTA retries.
    Tempfail,
    /// Deliver anyway; Sieve's `virustest` sees 0 (not scanned).
    DeliverUnscanned,
}

impl RawScanner {
    /// Checks `[scanner]`; `None` when `clamd` is not an address (a problem was reported).
    pub(super) fn validate(self, base: &Path, problems: &mut Vec<String>) -> Option<ScannerConfig> {
        let sc = self;
        let clamd = match sc.clamd.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Some(ClamdAddr::Unix(resolve(base, path))),
            _ => match sc.clamd.parse::<ClamdAddr>() {
                Ok(addr) => Some(addr),
                Err(e) => {
                    problems.push(format!("scanner.clamd: {:?}: {e}", sc.clamd));
                    None
                }
            },
        };
        let on_failure = match sc.on_failure.as_str() {
            "tempfail" => OnScanFailure::Tempfail,
            "deliver-unscanned" => OnScanFailure::DeliverUnscanned,
            other => {
                problems.push(format!(
                    "scanner.on_failure: {other:?} must be \"tempfail\" or \"deliver-unscanned\""
                ));
                OnScanFailure::Tempfail
            }
        };
        let ignore_signatures =
            SignatureGlobs::validate("scanner.ignore_signatures", sc.ignore_signatures, problems);
        let clamd = clamd?;
        Some(ScannerConfig {
            enabled: sc.enabled,
            clamd,
            timeout: Duration::from_secs(sc.timeout_secs),
            on_failure,
            heuristic_prefixes: sc.heuristic_prefixes,
            max_scan_size: sc.max_scan_size as usize,
            // Nothing to gate on when nothing is scanned.
            health_interval: health_interval(sc.health_interval_secs).filter(|_| sc.enabled),
            pass_fd: sc.pass_fd,
            ignore_signatures,
        })
    }
}

/// Glob patterns over clamd signature names (`*`: any run of characters, `?`: one;
/// case-sensitive, as clamd names are), checked once at load. A message whose signature
/// matches one counts as clean: the admin's way to accept a false positive without turning
/// scanning off.
#[derive(Debug, Clone, Default)]
pub struct SignatureGlobs {
    /// Each pattern as written (for the log line and the metric) with its matcher.
    patterns: Vec<(String, WildMatch)>,
}

/// The longest pattern taken: signature names are far shorter, and a bound keeps a
/// mistaken paste out of every log line.
const MAX_PATTERN_LEN: usize = 200;

impl SignatureGlobs {
    /// Validates `patterns` of config key `key`; a bad one is reported and left out.
    pub(super) fn validate(key: &str, patterns: Vec<String>, problems: &mut Vec<String>) -> Self {
        let mut globs = SignatureGlobs::default();
        for pattern in patterns {
            match check_pattern(&pattern) {
                Ok(()) => {
                    if !globs.patterns.iter().any(|(p, _)| *p == pattern) {
                        let matcher = WildMatch::new(&pattern);
                        globs.patterns.push((pattern, matcher));
                    }
                }
                Err(why) => problems.push(format!("{key}: {pattern:?}: {why}")),
            }
        }
        globs
    }

    /// The first pattern matching signature `name`, if any.
    pub fn matching(&self, name: &str) -> Option<&str> {
        (self.patterns.iter())
            .find(|(_, m)| m.matches(name))
            .map(|(p, _)| p.as_str())
    }

    /// The patterns as written, in order.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }

    /// True when there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl PartialEq for SignatureGlobs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns().eq(other.patterns())
    }
}

/// Why `pattern` is refused, if it is.
fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.is_empty() {
        return Err("empty pattern");
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err("longer than 200 characters");
    }
    if pattern.chars().any(char::is_control) {
        return Err("control characters are not part of any signature name");
    }
    // Other glob dialects' syntax would be taken literally here and never match: say so
    // rather than let `PUA.[AB]*` silently ignore nothing.
    if pattern.contains(['[', ']', '{', '}', '\\']) {
        return Err("only * and ? are wildcards ([...], {...} and \\ are not supported)");
    }
    if pattern.chars().all(|c| c == '*' || c == '?') {
        return Err("matches every signature: that turns virus scanning off (use [scanner] enabled = false if that is meant)");
    }
    Ok(())
}

/// `[scanner] health_interval_secs`: `None` (0) turns the probe and the gating off.
fn health_interval(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Defaults of the `[scanner]` keys.
mod defaults {
    pub fn scanner_enabled() -> bool {
        true
    }
    pub fn health_interval_secs() -> u64 {
        2
    }
    pub fn scan_timeout_secs() -> u64 {
        60
    }
    pub fn on_failure() -> String {
        "tempfail".into()
    }
    pub fn heuristic_prefixes() -> Vec<String> {
        vec!["Heuristics.".into(), "PUA.".into()]
    }
    /// Debian's packaged clamd.conf has `MaxFileSize 25M` and `StreamMaxLength 25M`.
    pub fn max_scan_size() -> u64 {
        25 * 1024 * 1024
    }
    /// FILDES costs clamd no temporary file per message (see `crate::scan::fildes`).
    pub fn pass_fd() -> bool {
        true
    }
}
