//! The `sievegate` command: `serve` runs the LMTP server, `check-config` validates a
//! configuration and compiles its global Sieve scripts, `quarantine ...` manages the
//! quarantine (logic in `sievegate::quarantine::cli`), `sieve check` / `sieve test` are
//! Pigeonhole's `sievec` / `sieve-test` (logic in `sievegate::filter::tools` and
//! `sievegate::sievetool`), `deliver` is LDA mode (logic in `sievegate::lda`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sievegate::config::{Config, ConfigError};
use sievegate::delivery::Services;
use sievegate::filter::{Filter, FilterConfig};
use sievegate::quarantine::cli as qcli;
use sievegate::server::Server;
use sievegate::users::Users;

#[derive(Parser)]
#[command(
    name = "sievegate",
    version,
    about = "LMTP delivery agent: ClamAV scan, Sieve with virustest, Maildir",
    after_help = "The Debian package's configuration: /etc/sievegate/sievegate.toml; every key \
                  with its default: /usr/share/doc/sievegate/examples/sievegate.toml (config/ \
                  in the source). `sievegate COMMAND --help` describes each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the LMTP server.
    ///
    /// Logs go to stderr, one line per recipient ([log] level/format; RUST_LOG overrides
    /// the level, e.g. RUST_LOG=sievegate=debug). SIGHUP reloads the configuration, the
    /// users file and the scripts (a bad new config is refused and the old one stays).
    /// SIGTERM or SIGINT: stop accepting, let deliveries in flight finish
    /// (server.shutdown_timeout_secs), exit 0. Under systemd (Type=notify, $NOTIFY_SOCKET)
    /// it reports ready once every listener is bound.
    Serve {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate the configuration and compile every global Sieve script; exit 0 or 1.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Compile Sieve scripts, or run a user's chain on a message without side effects.
    Sieve {
        #[command(subcommand)]
        action: SieveAction,
    },
    /// LDA mode, for Postfix's mailbox_command or pipe(8): deliver the message on stdin.
    /// Exit status per sysexits: 0 delivered/discarded, 67 unknown user, 75 try again
    /// later (also for configuration errors), 77 refused by Sieve, 65 too big.
    Deliver {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Envelope sender (default: the mbox "From " line, else the null sender).
        #[arg(short = 'f', value_name = "SENDER")]
        from: Option<String>,
        /// Envelope recipient (repeatable; one status covers them all).
        #[arg(short = 'a', value_name = "RECIPIENT", required = true, num_args = 1..)]
        rcpts: Vec<String>,
        /// The keep goes to this folder instead of INBOX (INBOX when it does not exist).
        #[arg(short = 'm', value_name = "FOLDER")]
        mailbox: Option<String>,
    },
    /// Inspect and manage quarantined messages.
    Quarantine {
        /// Configuration file (TOML).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: QuarantineAction,
    },
}

#[derive(Subcommand)]
enum SieveAction {
    /// Compile each FILE; errors as `file:line:col: message`; exit 1 on any error.
    Check {
        /// Configuration file: its [sieve] limits and disabled_extensions apply.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Scripts to compile.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the chain a delivery would run (before, personal or --script, after) and print
    /// the resulting plan. Nothing is stored, sent or written.
    Test {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Run this script in the personal slot instead of the user's own.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// The user whose chain runs (default: --to).
        #[arg(long, value_name = "ADDR")]
        user: Option<String>,
        /// Envelope sender (default: the null sender).
        #[arg(long, value_name = "ADDR")]
        from: Option<String>,
        /// Envelope recipient (default: --user).
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
        /// The virustest value the scripts see (0-5); without it, clamd scans the message.
        #[arg(long, value_name = "0-5")]
        virus_status: Option<u8>,
        /// The spam score an upstream filter would have written: spamtest/spamtestplus read
        /// it from `[sieve] spam_score_header` (X-Spam-Score when unset).
        #[arg(long, value_name = "X")]
        spam_score: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// The message (RFC 5322 file).
        message: PathBuf,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// List entries, oldest first: a table, or one JSON array with --json.
    List {
        /// Print one JSON array of objects.
        #[arg(long)]
        json: bool,
        /// Only entries received at or after this time: YYYY-MM-DD or RFC 3339 (UTC).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only entries with a virus name containing this text (case-insensitive).
        #[arg(long, value_name = "PATTERN")]
        virus: Option<String>,
        /// Only entries for this recipient (as given or as resolved).
        #[arg(long, value_name = "ADDR")]
        rcpt: Option<String>,
    },
    /// Show an entry's metadata and headers, or with --raw its original bytes.
    Show {
        /// The entry's id, as `quarantine list` shows it.
        id: String,
        /// The message exactly as received, on stdout.
        #[arg(long)]
        raw: bool,
    },
    /// Rescan and deliver: clean now → the full pipeline (Sieve included).
    Release {
        /// The entry's id, as `quarantine list` shows it.
        id: String,
        /// Only these recipients of the entry (repeatable); default: all.
        #[arg(long = "rcpt", value_name = "ADDR")]
        rcpts: Vec<String>,
        /// Still infected: store into the recipients' INBOX without Sieve anyway.
        #[arg(long)]
        force: bool,
    },
    /// Delete an entry (file and index).
    Delete {
        /// The entry's id, as `quarantine list` shows it.
        id: String,
    },
    /// Delete every entry older than DAYS days.
    Purge {
        /// Entries received more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A bad `deliver` command line (a master.cf slip) must not make Postfix bounce
            // every message, infected ones included: 75 keeps them queued.
            let lda = std::env::args().nth(1).as_deref() == Some("deliver");
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ if lda => ExitCode::from(sievegate::lda::exit::TEMPFAIL),
                code => ExitCode::from(u8::try_from(code).unwrap_or(2)),
            };
        }
    };
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Quarantine { config, action } => quarantine(config, action),
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

/// `sievegate deliver`: logs on stderr at `warn` unless RUST_LOG says otherwise (the MTA
/// copies stderr into bounces; see `sievegate::lda`).
fn deliver(config: PathBuf, request: sievegate::lda::Request) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let stdin = std::io::stdin();
    ExitCode::from(sievegate::lda::run(&config, &request, stdin.lock()))
}

/// `sievegate sieve check|test`: problems on stderr, the result on stdout.
fn sieve(action: SieveAction) -> ExitCode {
    use sievegate::filter::{tools, ScriptSettings};
    match action {
        SieveAction::Check { config, files } => {
            let settings = match config {
                Some(path) => match Config::load(&path) {
                    Ok(config) => config.sieve.scripts,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => ScriptSettings::default(),
            };
            let problems = tools::check_files(&files, &settings);
            for problem in &problems {
                eprintln!("{problem}");
            }
            if problems.is_empty() {
                println!("OK: {} script(s) compiled", files.len());
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        SieveAction::Test {
            config,
            script,
            user,
            from,
            to,
            virus_status,
            spam_score,
            json,
            message,
        } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let message = match std::fs::read(&message) {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("sievegate sieve test: {}: {e}", message.display());
                    return ExitCode::FAILURE;
                }
            };
            let request = sievegate::sievetool::TestRequest {
                script,
                user,
                from,
                to,
                virus_status,
                spam_score,
                message,
            };
            match sievegate::sievetool::run(&config, &request) {
                Ok(report) if json => {
                    println!("{}", report.json());
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sievegate sieve test: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `sievegate quarantine ...`: every failure is one message on stderr and exit status 1.
fn quarantine(config: Option<PathBuf>, action: QuarantineAction) -> ExitCode {
    use std::io::IsTerminal;
    use std::io::Write;
    let Some(path) = config else {
        eprintln!("sievegate quarantine: -c/--config FILE is required");
        return ExitCode::FAILURE;
    };
    // Release runs the delivery pipeline, whose log lines (who released what, where it
    // went) belong on stderr like the server's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let services = match Services::open(config) {
        Ok(services) => Arc::new(services),
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = (|| -> Result<(), qcli::CliError> {
        let q = qcli::open(&services)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match action {
            QuarantineAction::List {
                json,
                since,
                virus,
                rcpt,
            } => {
                let filter = sievegate::state::QuarantineFilter {
                    since: since.as_deref().map(qcli::parse_date).transpose()?,
                    virus,
                    rcpt,
                    limit: None,
                };
                qcli::list(&q, &filter, json, &mut out)?;
            }
            QuarantineAction::Show { id, raw } => qcli::show(&q, &id, raw, &mut out)?,
            QuarantineAction::Release { id, rcpts, force } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(qcli::CliError::Runtime)?;
                let user = qcli::invoking_user();
                let released =
                    runtime.block_on(qcli::release(&services, &q, &id, &rcpts, force, &user))?;
                for r in &released {
                    writeln!(out, "{}: {}", r.rcpt, r.outcome.summary())?;
                }
                writeln!(out, "{id}: released by {user}")?;
            }
            QuarantineAction::Delete { id } => {
                qcli::delete(&q, &id)?;
                writeln!(out, "{id}: deleted")?;
            }
            QuarantineAction::Purge { older_than } => {
                let tty = std::io::stderr().is_terminal();
                let n = qcli::purge(
                    &q,
                    older_than,
                    std::time::SystemTime::now(),
                    |done, total| {
                        if tty && (done % 100 == 0 || done == total) {
                            eprint!("\rpurging: {done}/{total}");
                            if done == total {
                                eprintln!();
                            }
                        }
                    },
                )?;
                writeln!(out, "{n} entries purged")?;
            }
        }
        out.flush()?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sievegate quarantine: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Purges quarantine entries older than `[quarantine] retention_days` now and every hour,
/// in a thread: deleting thousands of files must not hold up deliveries. Each pass uses the
/// current services, so a reload that enables the quarantine or changes the retention
/// applies from the next pass.
fn start_quarantine_purge(current: sievegate::reload::Current) {
    let spawned = std::thread::Builder::new()
        .name("quarantine-purge".into())
        .spawn(move || loop {
            let services = current.get();
            if let Some(q) = &services.quarantine {
                let before = std::time::SystemTime::now()
                    .checked_sub(services.config.quarantine.retention)
                    .unwrap_or(std::time::UNIX_EPOCH);
                match q.purge(before, |_, _| {}) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(purged = n, "quarantine: {n} entries past retention purged")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "quarantine purge failed; retrying in an hour")
                    }
                }
            }
            drop(services);
            std::thread::sleep(std::time::Duration::from_secs(3600));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the quarantine purge");
    }
}

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
            if let ConfigError::Invalid { sieve, .. } = e {
                // The personal script is per user: nothing to compile here.
                let sieve = sievegate::config::SieveConfig {
                    personal: None,
                    ..*sieve
                };
                let filter = Filter::new(FilterConfig::from_sieve(&sieve, "localhost"));
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
        match Services::open(config) {
            Ok(services) => services,
            Err(e) => {
                say.problem(&format!("{}: {e}", path.display()));
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
            "recipients: the {} users in {} (others get 550 5.1.1)",
            table.len(),
            file.path().display()
        ),
        (Users::File(file), None) => format!(
            "recipients: {} could not be read: every recipient gets 451 until it can",
            file.path().display()
        ),
    }
}

/// Removes crash leftovers from every Maildir's `tmp/` in a background thread: the walk may
/// be long and must not delay serving (deliveries clean their own folder anyway).
fn start_tmp_sweep(services: &Services) {
    let mailbox = services.config.mailbox.clone();
    let table = services.users.table();
    let spawned = std::thread::Builder::new()
        .name("tmp-sweep".into())
        .spawn(move || {
            let sweep = sievegate::store::cleanup::startup_sweep(&mailbox, table.as_deref());
            tracing::info!(
                maildirs = sweep.maildirs,
                removed = sweep.removed,
                truncated = sweep.truncated,
                "tmp/ sweep done: {} leftover files removed from {} Maildirs",
                sweep.removed,
                sweep.maildirs
            );
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the tmp/ sweep; deliveries still clean their folders");
    }
}

fn check_config(path: PathBuf) -> ExitCode {
    match load(&path, false, Say::Stderr) {
        Some(services) => {
            println!("{}: configuration ok", path.display());
            println!("{}", recipients_note(&services));
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

fn serve(path: PathBuf) -> ExitCode {
    // The log writer follows [log], so the file is read for it first; when it cannot be
    // read, `load` below logs why and the default writer is as good as any. From here on
    // everything goes through the log writer, so a JSON log stays one object per line.
    let log_config = Config::load(&path).map(|c| c.log).unwrap_or_default();
    let mut log = sievegate::logging::init(&log_config);
    let Some(services) = load(&path, true, Say::Log) else {
        tracing::error!("not starting: fix the configuration above");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Signal handlers first: a SIGTERM during startup must still mean a clean exit, and
        // a SIGHUP must not kill the process (its default action).
        let (shutdown, mut hangup) = match (
            shutdown_signal(),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
        ) {
            (Ok(shutdown), Ok(hangup)) => (shutdown, hangup),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let services = Arc::new(services);
        let server = match Server::bind(Arc::clone(&services)).await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let metrics = match services.config.server.metrics_listen {
            Some(addr) => match sievegate::metrics::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::error!("cannot serve metrics on {addr} (server.metrics_listen): {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        for addr in server.local_addrs() {
            tracing::info!(%addr, "listening on {addr}");
        }
        sievegate::systemd::ready();
        tracing::info!("{}", recipients_note(&services));
        let current = server.current();
        start_tmp_sweep(&services);
        start_quarantine_purge(current.clone());
        // The clamd probe (health gating at MAIL); its own task, so a hung clamd cannot
        // hold startup for the whole scan timeout.
        let mut probe = tokio::spawn(sievegate::scan::health::watch(
            services.scanner.clone(),
            services.config.scanner.health_interval,
        ));
        // One shutdown signal for the server and the background senders: the notifier
        // queues a pending digest when it stops, the outbox finishes its pass.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        if let Some(listener) = metrics {
            // Not "listening on": that phrase names the LMTP listeners in the log.
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
            }
            tokio::spawn(sievegate::metrics::serve(
                listener,
                stopped(stop_rx.clone()),
            ));
        }
        // SIGHUP: one log line per reload (reloaded, or refused with every problem). The
        // outbox and the notifier started below belong to the process, not to a config:
        // reloads reuse them.
        let reload_path = path.clone();
        let reload_current = current.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                sievegate::systemd::reloading();
                let old = reload_current.get();
                if let Some(new) = sievegate::reload::apply(&reload_path, &reload_current).await {
                    log.set_level(&new.config.log.level);
                    // New clamd settings: a new scanner, whose health only a new probe keeps.
                    if !sievegate::reload::same_probe(&old, &new) {
                        probe.abort();
                        probe = tokio::spawn(sievegate::scan::health::watch(
                            new.scanner.clone(),
                            new.config.scanner.health_interval,
                        ));
                    }
                }
                drop(old);
                sievegate::systemd::ready();
            }
        });
        let outbox = services.outbox.clone();
        let outbox_task = tokio::spawn(outbox.run(stopped(stop_rx.clone())));
        let notifier_task = services.notifier.clone().map(|notifier| {
            let stop = stopped(stop_rx.clone());
            tokio::spawn(async move { notifier.run(stop).await })
        });
        // The startup services stay referenced only through `current` from here on, so a
        // reload lets them go once their sessions are done.
        drop(services);
        server
            .run(async move {
                shutdown.await;
                sievegate::systemd::stopping();
                let _ = stop_tx.send(true);
            })
            .await;
        if let Some(task) = notifier_task {
            let _ = task.await;
        }
        // Bounded: a relay that hangs must not keep the process alive; what is not sent
        // stays queued in the state store for the next start.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), outbox_task).await;
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM and SIGINT handlers now; the returned future resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
