//! `[log]`: what the server logs (`level`) and how each line is written (`format`: text
//! for people, JSON for log pipelines). Kept apart from `mod.rs` so the section reads in
//! one place.

use serde::Deserialize;

/// `[log]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (one human-readable line per event) or `json` (one JSON object per line).
    #[serde(default = "default_format")]
    pub format: String,
    /// A `tracing` filter: a level (`info`) or directives (`info,sievegate::scan=debug`).
    /// `RUST_LOG` in the environment, when set, wins over it.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_format(),
            level: default_level(),
        }
    }
}

fn default_format() -> String {
    "text".into()
}

fn default_level() -> String {
    "info".into()
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `tracing`'s compact human-readable line: time, level, spans, message, `key=value`s.
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Validated `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A filter `tracing_subscriber::EnvFilter` accepts (checked here).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

impl RawLog {
    /// Checks both keys; problems go to `problems`, and the defaults stand in for them.
    pub fn validate(self, problems: &mut Vec<String>) -> LogConfig {
        let format = match self.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                problems.push(format!(
                    "log.format: {other:?} must be \"text\" or \"json\""
                ));
                LogFormat::Text
            }
        };
        let level = match tracing_subscriber::EnvFilter::builder().parse(&self.level) {
            Ok(_) => self.level,
            Err(e) => {
                problems.push(format!(
                    "log.level: {:?} is not a level (error, warn, info, debug, trace) or a filter like \"info,sievegate::scan=debug\": {e}",
                    self.level
                ));
                default_level()
            }
        };
        LogConfig { format, level }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_format_and_level() {
        let cases: &[(&str, &str, Option<LogFormat>)] = &[
            ("text", "info", Some(LogFormat::Text)),
            ("json", "debug", Some(LogFormat::Json)),
            ("json", "info,sievegate::scan=debug", Some(LogFormat::Json)),
            ("xml", "info", None),
            ("text", "sievegate=loud", None),
            ("text", "[{", None),
        ];
        for (format, level, want) in cases {
            let mut problems = Vec::new();
            let raw = RawLog {
                format: format.to_string(),
                level: level.to_string(),
            };
            let got = raw.validate(&mut problems);
            match want {
                Some(f) => {
                    assert!(problems.is_empty(), "{format} {level}: {problems:?}");
                    assert_eq!(got.format, *f);
                    assert_eq!(got.level, *level);
                }
                None => assert_eq!(problems.len(), 1, "{format} {level}: {problems:?}"),
            }
        }
    }
}
