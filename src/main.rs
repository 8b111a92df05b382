//! The `sievegate` command: `serve` runs the LMTP server, `check-config` validates a
//! configuration and compiles its global Sieve scripts, `quarantine ...` manages the
//! quarantine, `state status` / `state migrate` show and migrate the state store's
//! schema, `sieve check` / `sieve test` are Pigeonhole's `sievec` / `sieve-test`,
//! `deliver` is LDA mode.
//!
//! Every subcommand's body is in `cli/` (modules of the binary, not of the library): they
//! parse and print, and call library functions (`sievegate::delivery`, `::lda`,
//! `::quarantine::admin`, `::filter::tools`): `cli::serve`, `cli::check_config`,
//! `cli::sieve`, `cli::quarantine`, `cli::deliver`. The clap definitions are in `cli::args`,
//! which `build.rs` also reads to write the man page.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command, QuarantineAction, SieveAction, StateAction};
use cli::check_config::check_config;
use cli::deliver::deliver;
use cli::quarantine::quarantine;
use cli::serve::serve;
use cli::sieve::sieve;
use cli::state::state;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A bad `deliver` command line (a master.cf slip) must not make Postfix bounce
            // every message, infected ones included: 75 keeps them queued.
            let lda = is_lda(std::env::args_os().skip(1));
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ if lda => ExitCode::from(sievegate::lda::exit::TEMPFAIL),
                code => ExitCode::from(u8::try_from(code).unwrap_or(2)),
            };
        }
    };
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { probe: true, .. } => cli::check_config::probe_child(),
        Command::CheckConfig {
            config,
            as_user,
            unit,
            probe: false,
        } => check_config(cli::check_config::Request {
            config,
            as_user,
            unit,
        }),
        Command::Quarantine { config, action } => quarantine(config, action),
        Command::State { config, action } => state(config, action),
        Command::Sieve { action } => sieve(action),
        Command::Deliver {
            config,
            from,
            rcpts,
            mailbox,
        } => deliver(
            config,
            sievegate::lda::Request {
                from,
                rcpts,
                mailbox,
            },
        ),
    }
}

/// True when a command line that clap refused was meant for LDA mode: `deliver` appears as
/// any argument, not only the first. A master.cf slip such as `sievegate -c F deliver ...`
/// (options before the verb) puts it later, and an exit status other than 75 there makes
/// Postfix bounce every message, infected ones included. A usage error of another verb
/// that happens to carry the word (`sieve test --to deliver`) then exits 75 instead of 2:
/// harmless for a command typed at a terminal.
fn is_lda(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "deliver")
}

#[cfg(test)]
mod tests {
    use super::is_lda;
    use clap::CommandFactory;

    /// The man page build.rs wrote from the same clap definitions this binary parses with.
    const MAN_PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/sievegate.8"));

    /// Every (sub)command's full name, as the man page titles it (roff-escaped).
    fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix} {}", sub.get_name());
            out.push(name.clone());
            commands(sub, &name, out);
        }
    }

    #[test]
    fn the_man_page_names_every_subcommand() {
        let mut names = Vec::new();
        commands(&super::Cli::command(), "sievegate", &mut names);
        assert!(names.len() >= 12, "{names:?}");
        for name in &names {
            let title = format!(".SS \"{}\"", name.replace('-', "\\-"));
            assert!(MAN_PAGE.contains(&title), "no {title} in the man page");
        }
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH SIGNALS",
            ".SH EXIT STATUS",
            ".SH FILES",
            ".SH SEE ALSO",
        ] {
            assert!(MAN_PAGE.contains(section), "no {section} in the man page");
        }
        assert!(MAN_PAGE.starts_with(".ie") || MAN_PAGE.contains(".TH sievegate 8"));
    }

    #[test]
    fn lda_is_recognised_wherever_the_verb_stands() {
        for (args, lda) in [
            (&["deliver", "-a", "x"][..], true),
            (&["-c", "F", "deliver", "-a", "x"][..], true),
            (&["--config=F", "deliver"][..], true),
            (&["-x", "deliver"][..], true),
            (&["serve", "-c", "F"][..], false),
            (&["check-config"][..], false),
            (&[][..], false),
            (&["serve", "--", "deliver"][..], false),
        ] {
            let owned: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            assert_eq!(is_lda(owned.into_iter()), lda, "{args:?}");
        }
    }
}
