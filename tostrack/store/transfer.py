"""Copying one store's records into another (a workspace's tostrack.db into a shared PostgreSQL),
with a report that proves the copy: rows and a checksum per table, on both sides.

The copy is one transaction on the target, verified before it commits: a copy interrupted at any
point (kill, lost connection, full disk) leaves the target as it was, and running it again starts
over. A checksum does not depend on row order or on the database: each row is digested from its
values by column name (bytes, text, integers and NULL each marked as such), and a table's checksum
is the digest of its rows' sorted digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tostrack import faults
from tostrack.errors import StorageError
from tostrack.store.connection import Database
from tostrack.store.store import Store

# Who holds which host right now: meaningless in another database, and never copied.
NOT_COPIED = frozenset({"leases"})
# Parents before children (foreign keys); tables of a later schema follow, by name.
COPY_ORDER = (
    "meta",
    "sources",
    "versions",
    "diffs",
    "changes",
    "failures",
    "outbox",
    "digest_items",
    "notified_diffs",
    "operator_alerts",
)
_BATCH = 1000


class TargetNotEmpty(StorageError):
    """The target database already holds records; nothing was copied."""


@dataclass(frozen=True)
class TableTally:
    """One table's rows and checksum in the source and in the target."""

    table: str
    source_rows: int
    source_checksum: str
    target_rows: int
    target_checksum: str

    @property
    def agrees(self) -> bool:
        return (self.source_rows, self.source_checksum) == (self.target_rows, self.target_checksum)


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    tables: tuple[TableTally, ...]
    replaced: int  # rows the target held and that were deleted first (replace=True)
    committed: bool  # False: the tallies differed and the copy was rolled back

    @property
    def agrees(self) -> bool:
        return all(t.agrees for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)


class _Mismatch(Exception):
    def __init__(self, tallies: list[TableTally]) -> None:
        self.tallies = tallies


def _where(table: str) -> str:
    # the schema version is each database's own, written by its migrations
    return " WHERE key <> 'schema_version'" if table == "meta" else ""


def _canonical(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": bytes(value).hex()}
    if isinstance(value, str):
        return {"s": value}
    return value  # int or None: JSON keeps them apart from text


def tally(db: Database, table: str, columns: Sequence[str]) -> tuple[int, str]:
    """(rows, checksum) of table, over `columns` (sorted names), in any row order."""
    cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table}{_where(table)}")
    digests = [
        hashlib.sha256(
            json.dumps([_canonical(v) for v in row], separators=(",", ":")).encode()
        ).digest()
        for row in cursor.fetchall()
    ]
    digests.sort()
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def copied_tables(source: Store, target: Store) -> list[tuple[str, list[str]]]:
    """The tables to copy with their columns (sorted), parents first."""
    found = source.db.tables() - NOT_COPIED
    missing = found - target.db.tables()
    if missing:
        raise StorageError(
            f"{target.where} has no table {', '.join(sorted(missing))}: it was made by another "
            "tostrack version than the source; upgrade tostrack on both sides"
        )
    ordered = [t for t in COPY_ORDER if t in found] + sorted(found - set(COPY_ORDER))
    tables = []
    for table in ordered:
        columns = source.db.columns(table)
        extra = columns - target.db.columns(table)
        if extra:
            raise StorageError(
                f"{target.where} has no column {table}.{', '.join(sorted(extra))}: upgrade "
                "tostrack where the target was made"
            )
        tables.append((table, sorted(columns)))
    return tables


def _rows(db: Database, table: str, columns: Sequence[str]) -> Iterable[list[tuple[Any, ...]]]:
    cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table}{_where(table)}")
    while batch := cursor.fetchmany(_BATCH):
        yield [tuple(row) for row in batch]


def held_rows(target: Store, tables: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """How many rows each copied table of the target holds (only tables holding some)."""
    counts = {}
    for table, _ in tables:
        (n,) = target.db.execute(f"SELECT COUNT(*) FROM {table}{_where(table)}").fetchone()
        if n:
            counts[table] = int(n)
    return counts


def refuse_held(source: Store, target: Store, *, replace: bool = False) -> dict[str, int]:
    """The rows the target holds per table; TargetNotEmpty when it holds any and not replace."""
    held = held_rows(target, copied_tables(source, target))
    if held and not replace:
        listed = ", ".join(f"{n} in {t}" for t, n in held.items())
        raise TargetNotEmpty(
            f"{target.where} already holds records ({listed}); nothing was copied. "
            "Point --to at an empty database, or give --replace to delete them and copy "
            "this workspace's records in their place."
        )
    return held


def copy_records(source: Store, target: Store, *, replace: bool = False) -> CopyReport:
    """Copy every record of source into target in one verified transaction.

    A target holding records is refused (TargetNotEmpty) unless replace: then its rows are
    deleted in the same transaction, so a failed copy keeps them. The report's tallies are read
    from the target inside the transaction; when any differs from the source's, the copy is
    rolled back (committed=False)."""
    tables = copied_tables(source, target)
    replaced = 0
    try:
        with target.transaction() as db:
            held = refuse_held(source, target, replace=replace)
            for table, _ in reversed(tables):
                if table in held:
                    db.execute(f"DELETE FROM {table}{_where(table)}")
            replaced = sum(held.values())
            for table, columns in tables:
                insert = (
                    f"INSERT INTO {table} ({', '.join(columns)})"
                    f" VALUES ({', '.join('?' for _ in columns)})"
                )
                for batch in _rows(source.db, table, columns):
                    db.executemany(insert, batch)
                db.reset_identity(table)
            faults.crash_point("before-copy-commit")
            tallies = [
                TableTally(table, *tally(source.db, table, columns), *tally(db, table, columns))
                for table, columns in tables
            ]
            if not all(t.agrees for t in tallies):
                raise _Mismatch(tallies)
    except _Mismatch as exc:
        return CopyReport(source.where, target.where, tuple(exc.tallies), 0, committed=False)
    return CopyReport(source.where, target.where, tuple(tallies), replaced, committed=True)


def compare_records(source: Store, target: Store) -> tuple[TableTally, ...]:
    """The tallies of both stores as they are now (to verify a copy made earlier)."""
    return tuple(
        TableTally(table, *tally(source.db, table, columns), *tally(target.db, table, columns))
        for table, columns in copied_tables(source, target)
    )
