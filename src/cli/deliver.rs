//! `sievegate deliver`: LDA mode's logging and stdin; the pipeline is `sievegate::lda`.

use std::path::PathBuf;
use std::process::ExitCode;

/// `sievegate deliver`: logs on stderr at `warn` unless RUST_LOG says otherwise (the MTA
/// copies stderr into bounces; see `sievegate::lda`).
pub fn deliver(config: PathBuf, request: sievegate::lda::Request) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // Process-wide, once, before the runtime starts: see `delivery::budget`.
    sievegate::delivery::budget::tune_allocator();
    let stdin = std::io::stdin();
    ExitCode::from(sievegate::lda::run(&config, &request, stdin.lock()))
}
