//! The SQLite schema: versioned with `PRAGMA user_version`, one migration step per
//! version, applied by [`super::SqliteState::open`] in one exclusive transaction.

/// The schema version this build creates; each step of [`MIGRATIONS`] raises it by one.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`.
pub(in crate::state) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE quarantine (
    id           TEXT PRIMARY KEY NOT NULL,
    received_at  INTEGER NOT NULL,          -- microseconds since the epoch
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,             -- as given, one per line
    resolved     TEXT NOT NULL,             -- as resolved, one per line
    client_ip    TEXT,
    client_helo  TEXT,
    queue_id     TEXT,
    verdict      TEXT NOT NULL,
    virustest    INTEGER NOT NULL,
    viruses      TEXT NOT NULL,             -- one per line
    message_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    from_header  TEXT NOT NULL,
    size         INTEGER NOT NULL,
    backscatter  INTEGER NOT NULL,
    released_at  INTEGER,
    released_by  TEXT
);
-- Listing is by arrival; --since and the retention purge are range scans on it.
CREATE INDEX quarantine_received ON quarantine (received_at, id);
-- --rcpt: one row per address (given and resolved), lowercased, for an index lookup.
CREATE TABLE quarantine_rcpt (
    address  TEXT NOT NULL,
    entry    TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    PRIMARY KEY (address, entry)
) WITHOUT ROWID;
CREATE INDEX quarantine_rcpt_entry ON quarantine_rcpt (entry);
CREATE TABLE cache (
    key      TEXT PRIMARY KEY NOT NULL,
    value    TEXT NOT NULL,
    expires  INTEGER NOT NULL
);
CREATE TABLE rate (
    key           TEXT PRIMARY KEY NOT NULL,
    last_allowed  INTEGER NOT NULL,
    suppressed    INTEGER NOT NULL
);
CREATE TABLE outbound_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    sender        TEXT NOT NULL,
    recipients    TEXT NOT NULL,            -- one per line
    message       BLOB NOT NULL,
    attempts      INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    last_error    TEXT
);
CREATE INDEX outbound_queue_due ON outbound_queue (next_attempt, id);
"#,
    r#"
-- Release is per recipient: each held recipient once (issue 14).
CREATE TABLE quarantine_release (
    entry        TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    rcpt         TEXT NOT NULL,             -- as given in RCPT TO
    released_at  INTEGER NOT NULL,
    released_by  TEXT NOT NULL,
    PRIMARY KEY (entry, rcpt)
) WITHOUT ROWID;
-- The periodic expiry deletes by these (range scans, not a table scan per pass).
CREATE INDEX cache_expires ON cache (expires);
CREATE INDEX rate_last_allowed ON rate (last_allowed);
"#,
    // 2 → 3: a queued Sieve redirect records whose it is, for the failure keep. Existing rows
    // are our own mail (notices, reports, vacation): NULL, as for new ones of those kinds.
    r#"
ALTER TABLE outbound_queue ADD COLUMN redirect_for TEXT;
ALTER TABLE outbound_queue ADD COLUMN redirect_inbox_copy INTEGER NOT NULL DEFAULT 0;
"#,
    // 3 → 4: the sender leases the rows it sends (queue_claim); 0 = not leased.
    r#"
ALTER TABLE outbound_queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
"#,
    // 4 → 5: which entries each recipient's quarantine digest listed (issue 17); the rows
    // go with their entry.
    r#"
CREATE TABLE digest_listed (
    rcpt       TEXT NOT NULL,               -- resolved, lowercased
    entry      TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    listed_at  INTEGER NOT NULL,
    PRIMARY KEY (rcpt, entry)
) WITHOUT ROWID;
CREATE INDEX digest_listed_entry ON digest_listed (entry);
"#,
];

/// The schema version of this build (for `sievegate state status`).
pub const KNOWN_SCHEMA: i64 = SCHEMA_VERSION;
