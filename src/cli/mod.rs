//! The subcommands of the `sievegate` binary, one file each (the clap definitions in
//! [`args`], the dispatch in `main.rs`); what `serve` and `check-config` share is here: loading the
//! config with every problem reported, and the note on who counts as a recipient.

/// The clap definitions of every command and option; `build.rs` writes the man page from
/// them.
pub mod args;
pub mod check_config;
pub mod deliver;
pub mod quarantine;
pub mod serve;
pub mod sieve;
pub mod state;

use sievegate::config::{Config, ConfigError};
use sievegate::delivery::Services;
use sievegate::filter::Filter;
use sievegate::users::Users;

/// Loads the config and compiles the global scripts; every problem goes to stderr. When the
/// config itself is invalid, the scripts it names are still compiled, so one run shows all.
/// `open_state`: open the state store of `[state] dir` (serve); `check-config` leaves it
/// alone, so checking a file never creates a database.
fn load(path: &std::path::Path, open_state: bool, say: Say) -> Option<Services> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            for line in e.to_string().lines() {
                say.problem(line);
            }
            // What to do about the files we may not read (the config itself, the users
            // file, the global scripts): the group or mode to change.
            let who = check_config::myself();
            let fixes = match &e {
                ConfigError::Read { path, .. } => {
                    serve::errors::config_file(&who, path).into_iter().collect()
                }
                ConfigError::Invalid { .. } => serve::errors::unreadable(&who, path),
                ConfigError::Parse { .. } => Vec::new(),
            };
            for fix in fixes {
                say.problem(&format!("{}: {fix}", path.display()));
            }
            if let ConfigError::Invalid { sieve, .. } = e {
                // The personal script is per user: nothing to compile here.
                let sieve = sievegate::config::SieveConfig {
                    personal: None,
                    ..*sieve
                };
                let filter = Filter::new(sievegate::delivery::build::filter_config(
                    &sieve,
                    "localhost",
                ));
                for p in filter.check() {
                    say.problem(&p.to_string());
                }
            }
            return None;
        }
    };
    for warning in config.warnings() {
        say.warning(&format!("{}: warning: {warning}", path.display()));
    }
    let services = if open_state {
        let copy = config.clone();
        match Services::open(config) {
            Ok(services) => services,
            Err(e) => {
                let who = check_config::myself();
                say.problem(&format!(
                    "{}: {}",
                    path.display(),
                    serve::errors::state(&copy, &who, &e)
                ));
                return None;
            }
        }
    } else {
        Services::new(config)
    };
    let problems = services.filter.check();
    for p in &problems {
        say.problem(&p.to_string());
    }
    if !problems.is_empty() {
        // A global script we may not read: the group or mode to change.
        for fix in serve::errors::unreadable(&check_config::myself(), path) {
            say.problem(&format!("{}: {fix}", path.display()));
        }
    }
    problems.is_empty().then_some(services)
}

/// Where [`load`] reports: `check-config` prints plain lines; `serve` logs them, so a
/// JSON log stays one object per line.
#[derive(Clone, Copy)]
enum Say {
    Stderr,
    Log,
}

impl Say {
    fn problem(self, text: &str) {
        match self {
            Say::Stderr => eprintln!("{text}"),
            Say::Log => tracing::error!("{text}"),
        }
    }

    fn warning(self, text: &str) {
        match self {
            Say::Stderr => eprintln!("{text}"),
            Say::Log => tracing::warn!("{text}"),
        }
    }
}

/// Who counts as a recipient, for `check-config` and the startup log: without a users file
/// any local part is accepted, which an admin should know.
fn recipients_note(services: &Services) -> String {
    let domains = services.config.mailbox.domains.join(", ");
    match (&services.users, services.users.table()) {
        (Users::Everyone, _) => {
            format!("recipients: every local part at {domains} is accepted (no mailbox.users_file)")
        }
        (Users::File(file), Some(table)) => format!(
            "recipients: the {} users in {} (others get 550 5.1.1 {})",
            table.len(),
            file.path().display(),
            match services.config.mailbox.unknown_users {
                sievegate::config::UnknownUsers::AfterScan => {
                    "after the scan, unless infected: mailbox.unknown_users = \"after-scan\""
                }
                sievegate::config::UnknownUsers::AtRcpt => {
                    "at RCPT: mailbox.unknown_users = \"at-rcpt\""
                }
            }
        ),
        (Users::File(file), None) => format!(
            "recipients: {} could not be read: every recipient gets 451 until it can",
            file.path().display()
        ),
    }
}
