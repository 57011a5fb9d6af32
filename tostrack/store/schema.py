"""tostrack.db's tables, and the migrations that bring an older database up to them.

SCHEMA_VERSION is written to meta on every upgrade; opening a database runs, in order, the
migration of each version above the one it records. Each migration is safe to run twice (an
upgrade killed halfway runs it again).
"""

from __future__ import annotations

from collections.abc import Callable

from tostrack.errors import StorageError
from tostrack.store.connection import Database

SCHEMA_VERSION = 6

# The records: sources, versions, the diffs between them and their changes, failures.
RECORDS = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    last_checked_at TEXT,
    last_success_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_failure_reason TEXT,
    broken_since TEXT,
    last_snapshot_sha256 TEXT,
    etag TEXT,
    last_modified TEXT
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    path TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    snapshot_sha256 TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    effective_date TEXT,
    clause_count INTEGER NOT NULL,
    origin TEXT NOT NULL DEFAULT 'fetch',
    redirect TEXT
);
CREATE INDEX IF NOT EXISTS versions_by_source ON versions (source_id, captured_at);
CREATE TABLE IF NOT EXISTS diffs (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    from_version INTEGER NOT NULL REFERENCES versions(id),
    to_version INTEGER NOT NULL REFERENCES versions(id),
    detected_at TEXT NOT NULL,
    summary TEXT NOT NULL,
    substantive INTEGER NOT NULL,
    severity TEXT NOT NULL,
    notify INTEGER NOT NULL DEFAULT 1,
    kind TEXT NOT NULL DEFAULT 'clauses'
);
CREATE INDEX IF NOT EXISTS diffs_by_source ON diffs (source_id, detected_at);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    diff_id INTEGER NOT NULL REFERENCES diffs(id),
    position INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_diff ON changes (diff_id, position);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS failures_by_source ON failures (source_id, at);
"""

# Exactly-once email: the outbox of messages, the diffs kept for digests, the diffs already
# handled, and the once-per-breakage flag of operator alerts (owned by notify before schema 3).
OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    sent_at TEXT,
    delivered_to TEXT,
    channel TEXT NOT NULL DEFAULT 'email',
    claimed_by TEXT,
    claimed_until TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, id);
CREATE TABLE IF NOT EXISTS digest_items (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    mode TEXT NOT NULL,
    diff_id INTEGER NOT NULL,
    report_path TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    message_key TEXT,
    UNIQUE (diff_id, recipient, mode)
);
CREATE TABLE IF NOT EXISTS notified_diffs (
    diff_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operator_alerts (
    source_id TEXT PRIMARY KEY,
    broken INTEGER NOT NULL DEFAULT 0,
    incident INTEGER NOT NULL DEFAULT 0,
    since TEXT
);
"""

# Workers sharing a PostgreSQL: who holds which host (and the outbox) until when.
LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT,
    expires_at TEXT
);
"""

SCHEMA = RECORDS + OUTBOX + LEASES


def _diff_kinds_and_redirects(db: Database) -> None:
    """Schema 2: diffs.kind (effective-date-only diffs) and versions.redirect."""
    for table, column, definition in (
        ("versions", "redirect", "TEXT"),
        ("diffs", "kind", "TEXT NOT NULL DEFAULT 'clauses'"),
    ):
        if column not in columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _outbox_tables(db: Database) -> None:
    """Schema 3: the notify tables belong to the store (a schema-2 database may hold them)."""
    run_script(db, OUTBOX)


def _outbox_channels(db: Database) -> None:
    """Schema 4: outbox.channel, "email" or "apprise" (chat and webhooks)."""
    if "channel" not in columns(db, "outbox"):
        db.execute("ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email'")


def _leases_table(db: Database) -> None:
    """Schema 5: leases, for several workers on one PostgreSQL."""
    run_script(db, LEASES)


def _outbox_claims(db: Database) -> None:
    """Schema 6: outbox.claimed_by and claimed_until, so that each message is sent by the one
    worker that claimed it (and claimed again when that worker died before sending it)."""
    have = columns(db, "outbox")
    for column in ("claimed_by", "claimed_until"):
        if column not in have:
            db.execute(f"ALTER TABLE outbox ADD COLUMN {column} TEXT")


# version -> the migration that brings a database at the version below up to it
MIGRATIONS: dict[int, Callable[[Database], None]] = {
    2: _diff_kinds_and_redirects,
    3: _outbox_tables,
    4: _outbox_channels,
    5: _leases_table,
    6: _outbox_claims,
}


def columns(db: Database, table: str) -> set[str]:
    return db.columns(table)


def run_script(db: Database, script: str) -> None:
    """Each statement of script, inside the caller's transaction (executescript would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def recorded_version(db: Database) -> int | None:
    """The schema version the database says it has; None for a database with no tables yet
    (1 for one made before versions were written)."""
    tables = db.tables()
    if "versions" not in tables:
        return None
    if "meta" not in tables:
        return 1
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 1
    except ValueError:
        raise StorageError(f"tostrack.db records schema version {row[0]!r}, not a number") from None


def upgrade(db: Database) -> int:
    """Create the tables of a new database, or migrate an older one; returns the version it had
    (SCHEMA_VERSION for a new one). A database from a newer tostrack is refused, untouched."""
    found = recorded_version(db)
    if found is not None and found > SCHEMA_VERSION:
        raise StorageError(
            f"tostrack.db has schema version {found}, made by a newer tostrack than this one "
            f"(which knows {SCHEMA_VERSION}); upgrade tostrack to use this workspace"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        db.lock_for_migration()
        found = recorded_version(db)  # another worker may have migrated while we waited
        if found is None:
            run_script(db, SCHEMA)
        else:
            run_script(db, RECORDS)  # a table or index a hand-edited database lost
            for version in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return SCHEMA_VERSION if found is None else found
