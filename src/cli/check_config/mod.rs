//! `sievegate check-config`: [`super::load`] without the state store, problems on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, recipients_note, Say};

pub fn check_config(path: PathBuf) -> ExitCode {
    match load(&path, false, Say::Stderr) {
        Some(services) => {
            println!("{}: configuration ok", path.display());
            println!("{}", recipients_note(&services));
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}
