//! The server's log writer, from `[log]`: text or JSON lines on stderr, filtered by
//! `level` (or `RUST_LOG` when set, which wins so a debugging session needs no config
//! edit). The level can change on reload ([`LogHandle::set_level`]); the format cannot.
//!
//! JSON lines carry the event's fields at the top level (`timestamp`, `level`, `message`,
//! then each field) and `spans`, the enclosing spans with their fields (`session`: `id`,
//! `peer`; `transaction`: `id`), outermost first. The README lists the per-recipient
//! line's fields.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogConfig, LogFormat};

/// Changes the level of the installed writer.
pub struct LogHandle {
    /// `None` when `RUST_LOG` decides the level.
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    level: String,
}

/// Installs the process's log writer for `config`. Call once, before anything logs.
pub fn init(config: &LogConfig) -> LogHandle {
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) if from_env => filter,
        // The level was validated with the config; `info` only if that somehow fails.
        _ => EnvFilter::builder()
            .parse(&config.level)
            .unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let (text, json) = match config.format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    // A second init (only possible in tests) keeps the first writer.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
    LogHandle {
        filter: (!from_env).then_some(handle),
        level: config.level.clone(),
    }
}

impl LogHandle {
    /// Applies `level` (a validated `[log] level`) if it differs from the current one;
    /// nothing when `RUST_LOG` decides.
    pub fn set_level(&mut self, level: &str) {
        let Some(handle) = &self.filter else {
            return;
        };
        if level == self.level {
            return;
        }
        match EnvFilter::builder().parse(level) {
            Ok(filter) => match handle.reload(filter) {
                Ok(()) => {
                    // At warn, so the line still shows when the new level is warn.
                    tracing::warn!(from = %self.level, to = %level, "log level changed");
                    self.level = level.to_string();
                }
                Err(e) => tracing::warn!(error = %e, "cannot change the log level"),
            },
            Err(e) => tracing::warn!(error = %e, level, "cannot change the log level"),
        }
    }
}
