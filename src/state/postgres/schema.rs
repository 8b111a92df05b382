//! The PostgreSQL schema, as versioned steps, and the advisory lock keys.

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`. Version 2 is the schema
/// SQLite's version 4 has (the same tables and meaning; booleans are `boolean`, the
/// message `bytea`); version 3 adds the quarantined messages.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE quarantine (
    id           text PRIMARY KEY,
    received_at  bigint NOT NULL,            -- microseconds since the epoch
    sender       text NOT NULL,
    recipients   text NOT NULL,              -- as given, one per line
    resolved     text NOT NULL,              -- as resolved, one per line
    client_ip    text,
    client_helo  text,
    queue_id     text,
    verdict      text NOT NULL,
    virustest    smallint NOT NULL,
    viruses      text NOT NULL,              -- one per line
    message_id   text NOT NULL,
    subject      text NOT NULL,
    from_header  text NOT NULL,
    size         bigint NOT NULL,
    backscatter  boolean NOT NULL,
    released_at  bigint,
    released_by  text
);
CREATE INDEX quarantine_received ON quarantine (received_at, id);
CREATE TABLE quarantine_rcpt (
    address  text NOT NULL,
    entry    text NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    PRIMARY KEY (address, entry)
);
CREATE INDEX quarantine_rcpt_entry ON quarantine_rcpt (entry);
CREATE TABLE quarantine_release (
    entry        text NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    rcpt         text NOT NULL,
    released_at  bigint NOT NULL,
    released_by  text NOT NULL,
    PRIMARY KEY (entry, rcpt)
);
CREATE TABLE cache (
    key      text PRIMARY KEY,
    value    text NOT NULL,
    expires  bigint NOT NULL
);
CREATE INDEX cache_expires ON cache (expires);
CREATE TABLE rate (
    key           text PRIMARY KEY,
    last_allowed  bigint NOT NULL,
    suppressed    bigint NOT NULL
);
CREATE INDEX rate_last_allowed ON rate (last_allowed);
CREATE TABLE outbound_queue (
    id                   bigserial PRIMARY KEY,
    kind                 text NOT NULL,
    sender               text NOT NULL,
    recipients           text NOT NULL,      -- one per line
    message              bytea NOT NULL,
    attempts             integer NOT NULL,
    next_attempt         bigint NOT NULL,
    last_error           text,
    redirect_for         text,
    redirect_inbox_copy  boolean NOT NULL DEFAULT false
);
CREATE INDEX outbound_queue_due ON outbound_queue (next_attempt, id);
"#,
    // 1 → 2: the sender leases the rows it sends (queue_claim); 0 = not leased.
    r#"
ALTER TABLE outbound_queue ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
"#,
    // 2 → 3: the quarantined messages themselves, so every host lists, shows and releases
    // them (a table of its own: listing never reads the bytes).
    r#"
CREATE TABLE quarantine_message (
    id       text PRIMARY KEY REFERENCES quarantine (id) ON DELETE CASCADE,
    message  bytea NOT NULL
);
"#,
    // 3 → 4: which entries each recipient's quarantine digest listed (issue 17; SQLite's
    // version 5); the rows go with their entry.
    r#"
CREATE TABLE digest_listed (
    rcpt       text NOT NULL,                -- resolved, lowercased
    entry      text NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    listed_at  bigint NOT NULL,
    PRIMARY KEY (rcpt, entry)
);
CREATE INDEX digest_listed_entry ON digest_listed (entry);
"#,
];

/// The schema version this build creates and knows.
pub const KNOWN_SCHEMA: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (one namespace per purpose, "sgate" in the high bytes).
pub(super) const MIGRATION_LOCK: i64 = 0x7367_6174_6500_0001;
pub(super) const EXPIRY_LOCK: i64 = 0x7367_6174_6500_0002;
