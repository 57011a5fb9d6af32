"""The only owner of a workspace's tostrack.db and snapshots/ (or [store] evidence).

store.py     the Store: versions, diffs, failures and source states, and capture folders on disk
schema.py    the tables and the migrations keyed on SCHEMA_VERSION
outbox.py    the tables behind exactly-once email (mixed into Store)
leases.py    leases that let workers sharing a PostgreSQL split hosts and the outbox (mixed in)
connection.py  SQLite's connection, and PostgreSQL's behind the same interface (psycopg)
codecs.py    JSON for clauses, documents and changes; text digests
files.py     atomic writes, capture folders read back
evidence.py  raw bodies stored once per sha256, `store check` (database and evidence agree),
             copying an evidence folder into a shared one
transfer.py  `store migrate`: every table copied into another database, verified by checksums

Import from here (`from tostrack.store import Store`); the modules of this package import each
other directly, never this __init__, so re-exporting here makes no import loop.
"""

from tostrack.store.codecs import combined_sha, text_digest
from tostrack.store.files import (
    Capture,
    capture_folders,
    capture_order,
    cross_host,
    read_capture,
    stamp,
    write_atomic,
)
from tostrack.store.outbox import OutgoingMessage
from tostrack.store.schema import SCHEMA_VERSION
from tostrack.store.store import DatabaseUnreadable, DiffHeader, Store, StoredDiff, Version

__all__ = [
    "SCHEMA_VERSION",
    "Capture",
    "DatabaseUnreadable",
    "DiffHeader",
    "OutgoingMessage",
    "Store",
    "StoredDiff",
    "Version",
    "capture_folders",
    "capture_order",
    "combined_sha",
    "cross_host",
    "read_capture",
    "stamp",
    "text_digest",
    "write_atomic",
]
