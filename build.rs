//! Writes the man page, `$OUT_DIR/sievegate.8`, from the clap definitions of the command
//! line (`src/cli/args.rs`, included here as the binary includes it), so it cannot drift
//! from `--help`: NAME, SYNOPSIS, DESCRIPTION from the top-level command, a COMMANDS section
//! with every subcommand (nested ones too) and its options, then the hand-written sections
//! of `contrib/sievegate.8.extra` (SIGNALS, ENVIRONMENT, EXIT STATUS, FILES, SEE ALSO).
//! `scripts/test-package` copies it where the Debian package takes it from.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

#[allow(dead_code)] // the build script only reads the definitions
mod args {
    include!("src/cli/args.rs");
}

/// The hand-written sections appended to the generated ones.
const EXTRA: &str = "contrib/sievegate.8.extra";

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed={EXTRA}");
    let out = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("OUT_DIR is not set"))?;
    let mut cmd = args::Cli::command();
    // Sets each subcommand's full name (`sievegate sieve test`) for its usage line.
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    writeln!(page, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands() {
        command(sub, &mut page)?;
    }
    page.extend_from_slice(&std::fs::read(EXTRA)?);
    man.render_version_section(&mut page)?;
    std::fs::write(out.join("sievegate.8"), page)
}

/// One subcommand: a subsection named by its full command line, its usage, its long help
/// and each option; then its own subcommands.
fn command(cmd: &clap::Command, page: &mut Vec<u8>) -> std::io::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    writeln!(page, ".SS \"{}\"", escape(name))?;
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim_start_matches("Usage:").trim();
    writeln!(page, ".B {}", escape(usage))?;
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        writeln!(page, ".PP")?;
        paragraphs(&about.to_string(), page)?;
    }
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("\\fB\\-{}\\fR", escape(&short.to_string())));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        let takes_value = arg.get_action().takes_values();
        let head = match (names.is_empty(), takes_value) {
            (true, _) => format!("\\fI{}\\fR", escape(&value)),
            (false, true) => format!("{} \\fI{}\\fR", names.join(", "), escape(&value)),
            (false, false) => names.join(", "),
        };
        writeln!(page, ".TP\n{head}")?;
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            paragraphs(&help.to_string(), page)?;
        }
    }
    for sub in cmd.get_subcommands() {
        command(sub, page)?;
    }
    Ok(())
}

/// Help text as roff paragraphs: blank lines separate them.
fn paragraphs(text: &str, page: &mut Vec<u8>) -> std::io::Result<()> {
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            writeln!(page, ".PP")?;
        }
        let joined: Vec<&str> = paragraph.lines().map(str::trim).collect();
        writeln!(page, "{}", escape(&joined.join(" ")))?;
    }
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, characters beyond ASCII as groff's
/// `\[uXXXX]`, and a leading `.` or `'` kept from being read as a request.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", c as u32)),
        }
    }
    let text = out;
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
