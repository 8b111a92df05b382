// The command line's clap definitions: the binary parses with them, and `build.rs`
// includes this file to write the man page from them (so no inner doc comments here, and
// nothing but clap and std).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sievegate",
    version,
    about = "LMTP delivery agent: ClamAV scan, Sieve with virustest, Maildir",
    after_help = "The Debian package's configuration: /etc/sievegate/sievegate.toml; every key \
                  with its default: /usr/share/doc/sievegate/examples/sievegate.toml (config/ \
                  in the source). `sievegate COMMAND --help` describes each command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Validate the configuration and compile every global Sieve script, then check as the
    /// user that runs `serve` that it can read, write and connect to what the configuration
    /// names; every problem says what to do. Exit 0 or 1.
    ///
    /// Run as root, the file checks run as the installed sievegate.service's User= (with
    /// its Group=, the user's groups and the SupplementaryGroups= of the unit and its
    /// drop-ins), or as --as-user; otherwise as the calling user. The first line says whom.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Run the file checks as this user (needs root).
        #[arg(long, value_name = "NAME")]
        as_user: Option<String>,
        /// Take User=, Group= and SupplementaryGroups= from this unit file (and its drop-ins
        /// in FILE.d/) instead of the installed sievegate.service.
        #[arg(long, value_name = "FILE")]
        unit: Option<PathBuf>,
        // The child that runs the file checks as another user: probes on stdin, outcomes
        // on stdout (see cli::check_config::probe).
        #[arg(long, hide = true)]
        probe: bool,
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
    /// The state store ([state]): its schema, and migrating it by hand.
    ///
    /// The server migrates the schema at startup (under a lock, so hosts starting together
    /// migrate once) and refuses a schema newer than it knows.
    State {
        /// Configuration file (TOML).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: StateAction,
    },
}

#[derive(Subcommand)]
pub enum StateAction {
    /// Print the backend, where the store is (no password), its schema version and this
    /// sievegate's, and the rows per table. Changes nothing. Exit 1 when the store cannot
    /// be reached or its schema is newer than this sievegate.
    Status,
    /// Bring the schema to this sievegate's version (what the server does at startup).
    Migrate,
}

#[derive(Subcommand)]
pub enum SieveAction {
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
pub enum QuarantineAction {
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
    /// Send the quarantine digests due now ([quarantine.digest] schedule, UTC): one message
    /// per recipient listing the entries no earlier digest listed. For cron and tests; the
    /// server runs the same on its schedule (one run per slot across hosts).
    Digest {
        /// Every recipient with unlisted entries gets one now, whatever the schedule and
        /// the once-per-period limit.
        #[arg(long)]
        force: bool,
        /// Act as if it were this time (RFC 3339, UTC): which slot is due, which entries
        /// have expired. For testing a schedule; default: now.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Delete every entry older than DAYS days.
    Purge {
        /// Entries received more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
    },
}
