"""Where a workspace keeps what it has seen: raw snapshots and versions on disk, an index in SQLite.

Layout under <workspace>/snapshots/<provider>/<document>/<stamp>/:
  raw-0.<ext> (raw-1 ... for combined pages)  the bytes exactly as fetched: the legal evidence
  snapshot.json                                url, status, headers, sha256, fetch time per raw file
  version.json                                 the extracted version: metadata + clauses with ids
  version.txt                                  the same clauses as plain text, for humans and grep

Every file is written to a temporary name, fsynced and renamed, and a stamp folder is renamed into
place only when complete; the SQLite row that makes it visible is written after, in one
transaction. Before the rename, the folder's name is noted in the database as pending: a crash
between the rename and the commit leaves an orphan folder that the next run finds by that note
and adopts (see recovery.py). An import notes all the folders its files may get at once and
commits their rows in batches, each after fsyncing the folders they name (Store.batched).
Everything the database says about versions and diffs can be recomputed from the folders
(`tostrack rebuild`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tostrack import faults
from tostrack.config import StoreConfig
from tostrack.errors import StorageError
from tostrack.media import extension_for
from tostrack.models import SEVERITY_RANK, Change, Clause, Diff, Document, Failure, Snapshot
from tostrack.store.codecs import (
    as_read_back,
    change_from_record,
    change_to_record,
    clause_from_json,
    combined_sha,
    document_from_json,
    json_bytes,
    read_json,
    text_digest,
    version_json,
    version_text,
)
from tostrack.store.connection import (
    Database,
    connect_postgres,
    connect_sqlite,
    database_errors,
)
from tostrack.store.evidence import object_for, write_object
from tostrack.store.files import (
    capture_folders,
    capture_order,
    fsync_dir,
    raw_path,
    stamp,
    write_unsynced,
)
from tostrack.store.leases import LeaseTables
from tostrack.store.outbox import OutboxTables
from tostrack.store.schema import SCHEMA_VERSION, recorded_version, upgrade

DIFF_KINDS = ("clauses", "effective-date")


# Columns added after schema 1: (table, column, definition), added to an older database on open.
_PENDING = (
    "pending:"  # meta key prefix: a capture folder renamed into place, its row not yet committed
)


class DatabaseUnreadable(StorageError):
    """tostrack.db cannot be read as a database (truncated, overwritten, not SQLite)."""


@dataclass(frozen=True)
class Version:
    """One extracted version of a document, as stored."""

    id: int
    source_id: str
    captured_at: str
    path: Path
    text_sha256: str
    snapshot_sha256: str
    title: str
    effective_date: str | None
    clause_count: int
    origin: str
    redirect: str | None = None  # "requested URL -> final URL" when the fetch ended on another host
    evidence: Path | None = None  # the evidence folder holding path (and its raw bodies' objects)

    def load(self) -> tuple[Document, tuple[Clause, ...]]:
        data = read_json(self.path / "version.json")
        return document_from_json(data["document"]), tuple(
            clause_from_json(c) for c in data["clauses"]
        )

    def raw_files(self) -> list[Path]:
        """The raw bodies of this version, in the order fetched (objects, or older captures'
        own raw-N files)."""
        try:
            return [path for _, path in self.raw_entries()]
        except (OSError, ValueError, KeyError):
            return sorted(self.path.glob("raw-*"))

    def raw_entries(self) -> list[tuple[dict[str, Any], Path]]:
        """Each raw body's snapshot.json entry with the file holding it."""
        return [(m, raw_path(self.path, self.evidence, m)) for m in self.snapshot_meta()]

    def snapshot_meta(self) -> list[dict[str, Any]]:
        return read_json(self.path / "snapshot.json")["snapshots"]

    def snapshots(self) -> tuple[Snapshot, ...]:
        """The raw captures of this version, as fetched (for re-extraction with today's rules)."""
        source_id = read_json(self.path / "snapshot.json").get("source_id", self.source_id)
        return tuple(
            Snapshot(
                source_id=source_id,
                url=m["url"],
                fetched_at=m["fetched_at"],
                status=m["status"],
                content_type=m["content_type"],
                body=path.read_bytes(),
                headers=tuple(m.get("headers", {}).items()),
                encoding=m.get("encoding"),
            )
            for m, path in self.raw_entries()
        )


@dataclass(frozen=True)
class StoredDiff:
    """A recorded comparison of two versions (one change report, one notification)."""

    id: int
    source_id: str
    from_version: Version
    to_version: Version
    detected_at: str
    summary: dict[str, int]
    substantive: bool
    severity: str
    changes: tuple[Change, ...]
    kind: str = "clauses"  # or "effective-date": only the announced date changed, no clause

    @property
    def effective_date_only(self) -> bool:
        return self.kind == "effective-date"


@dataclass(frozen=True)
class DiffHeader:
    """A recorded diff without its changes: what a page showing it needs to know whether it is
    current (tostrack.render keeps a manifest of these), read for every diff in milliseconds."""

    id: int
    source_id: str
    from_version: int
    to_version: int
    detected_at: str
    substantive: bool
    kind: str
    # The row itself and its changes' count and last row id: changes are only ever inserted, so
    # these tell a diff from any other, even one given the same id by a rebuilt database.
    fingerprint: str

    @property
    def effective_date_only(self) -> bool:
        return self.kind == "effective-date"


# -- atomic file writing ---------------------------------------------------------------------


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageError(
                f"disk full while {what}; nothing was recorded. Free space and run again."
            ) from None
        raise StorageError(f"cannot write while {what}: {exc.strerror or exc}") from None
    except database_errors() as exc:  # evaluated only when something was raised: psycopg lazily
        raise StorageError(f"database error while {what}: {exc}") from None


# -- the store -------------------------------------------------------------------------------


class Store(OutboxTables, LeaseTables):
    """The workspace's records. Open with Store(root); use as a context manager or call close()."""

    def __init__(
        self,
        root: Path,
        db_path: Path | None = None,
        *,
        read_only: bool = False,
        database: StoreConfig | None = None,
        evidence: Path | None = None,
    ) -> None:
        """database: a [store] PostgreSQL shared by workers; None: the embedded tostrack.db.
        evidence: the folder of capture folders and raw bodies ([store] evidence, shared by
        workers); None: the workspace's snapshots/."""
        self.root = Path(root)
        self.snapshots_dir = Path(evidence) if evidence is not None else self.root / "snapshots"
        self.db_path = db_path or self.root / "tostrack.db"
        self.read_only = read_only
        self.database = database
        self.db: Database
        # The last version saved here, as read back (an import diffs the next file against it),
        # and its clauses' JSON (the next version shares most of them).
        self._saved: tuple[int, tuple[Clause, ...]] | None = None
        self._clause_json: dict[Clause, str] = {}
        self._saved_as_read_back = False  # the clauses just written hold strings only
        self._batch: _Batch | None = None  # see batched()
        if database is not None:
            self._open_postgres(database)
            return
        if read_only:
            self._open_read_only()
            return
        with _storage_errors("opening the database"):
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = connect_sqlite(self.db_path, timeout=30)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.execute("PRAGMA foreign_keys=ON")
                upgrade(self.db)
            except sqlite3.DatabaseError as exc:
                self.db.close()
                if not _is_corrupt(exc):
                    raise
                raise DatabaseUnreadable(self._unreadable(exc)) from None
            except StorageError:
                self.db.close()
                raise

    def _open_postgres(self, database: StoreConfig) -> None:
        """Tables are made or migrated on first use, by whichever worker comes first; a
        read-only open migrates only a database that is not at SCHEMA_VERSION yet."""
        self.db = connect_postgres(database.url, database.password(), database.shown)
        try:
            with _storage_errors(f"opening the database {database.shown}"):
                if not self.read_only or recorded_version(self.db) != SCHEMA_VERSION:
                    upgrade(self.db)
        except BaseException:
            self.db.close()
            raise

    @property
    def where(self) -> str:
        """The database, as messages name it."""
        return self.database.shown if self.database else str(self.db_path)

    def _open_read_only(self) -> None:
        """For commands that only read (status, history, report): nothing is created or
        migrated, and a read-only workspace (mount, permissions) works. No database yet reads
        as an empty one."""
        with _storage_errors("opening the database read-only"):
            if not self.db_path.exists():
                self.db = connect_sqlite(":memory:")
                upgrade(self.db)
                return
            uri = self.db_path.resolve().as_uri()
            for mode in ("?mode=ro", "?mode=ro&immutable=1"):
                # immutable: a WAL database in a folder this process cannot write (no -shm can
                # be made); nothing else can be writing to it there either.
                self.db = connect_sqlite(uri + mode, uri=True, timeout=30)
                try:
                    self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                    return
                except sqlite3.DatabaseError as exc:
                    self.db.close()
                    if _is_corrupt(exc):
                        raise DatabaseUnreadable(self._unreadable(exc)) from None
                    last = exc
            raise last

    def _unreadable(self, exc: Exception) -> str:
        found = len(capture_folders(self.snapshots_dir))
        if found:
            return (
                f"{self.db_path} cannot be read ({exc}); the {found} capture(s) in "
                f"{self.snapshots_dir} are intact: run `tostrack rebuild` to recreate the database "
                "from them (the unreadable file is kept aside)"
            )
        return f"{self.db_path} cannot be read ({exc}); move it away and run again"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One transaction; inside batched(), a savepoint of the batch's open transaction."""
        batch = self._batch
        if batch is not None and batch.open_transaction:
            begin, undo, done = (
                "SAVEPOINT step",
                ("ROLLBACK TO step", "RELEASE step"),
                "RELEASE step",
            )
        else:
            begin, undo, done = "BEGIN IMMEDIATE", ("ROLLBACK",), "COMMIT"
        with _storage_errors("recording to the database"):
            self.db.execute(begin)
            try:
                yield self.db
            except BaseException:
                for statement in undo:
                    self.db.execute(statement)
                raise
            self.db.execute(done)

    @contextmanager
    def batched(self, source_id: str, captured_at: Sequence[str]) -> Iterator[None]:
        """Save the versions of these captures (an import's files) with few commits.

        Each capture folder the versions may get is noted as pending first, in one commit: a
        crash after a folder's rename leaves a known orphan, adopted by the next run or import
        (recovery.reconcile), as with the note save_version writes otherwise. Then the versions'
        rows go into one transaction, committed every BATCH_VERSIONS versions or BATCH_SECONDS
        (the write lock is not held long) and at the end, each time after fsyncing the folders
        the captures were renamed into: no row is committed before its files are on disk.
        Notes of captures never saved are removed at the end. Only for the embedded SQLite
        database (a shared PostgreSQL store notes and commits one version at a time)."""
        if self.database is not None or self.read_only or self._batch is not None:
            yield
            return
        expected: dict[str, str] = {}
        for at in captured_at:
            expected.setdefault(self.relative(self._stamp_folder(source_id, at)), at)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(_PENDING + rel, at) for rel, at in expected.items()],
            )
        self._batch = batch = _Batch(expected)
        # An import writes many pages and reads few back: a small page cache (SQLite spills
        # what does not fit to the write-ahead log) keeps its memory down.
        (cache_size,) = self.db.execute("PRAGMA cache_size").fetchone()
        self.db.execute(f"PRAGMA cache_size = {IMPORT_CACHE_SIZE}")
        try:
            yield
        except BaseException:
            try:  # what was saved stays saved, as when each version was committed alone
                self._commit_batch(batch, final=True)
            except BaseException:
                self._abandon_batch(batch)
            raise
        else:
            self._commit_batch(batch, final=True)
        finally:
            self._batch = None
            self.db.execute(f"PRAGMA cache_size = {int(cache_size)}")

    def _commit_batch(self, batch: _Batch, *, final: bool = False) -> None:
        """fsync the folders captures were renamed into, then commit their rows."""
        for folder in batch.renamed_into:
            fsync_dir(folder)
        batch.renamed_into.clear()
        if final:
            unused = [rel for rel in batch.expected if rel not in batch.renamed]
            batch.expected.clear()
            if unused:  # never renamed into place: nothing to adopt there
                with self.transaction() as db:
                    db.executemany(
                        "DELETE FROM meta WHERE key = ?", [(_PENDING + r,) for r in unused]
                    )
        if batch.open_transaction:
            with _storage_errors("recording to the database"):
                self.db.execute("COMMIT")
            batch.open_transaction = False
        batch.versions, batch.since = 0, time.monotonic()

    def _abandon_batch(self, batch: _Batch) -> None:
        """After a failed commit: roll back (renamed captures keep their notes: adopted)."""
        if batch.open_transaction:
            batch.open_transaction = False
            try:
                self.db.execute("ROLLBACK")
            except database_errors():
                pass

    def _batch_transaction(self, batch: _Batch) -> None:
        if not batch.open_transaction:
            with _storage_errors("recording to the database"):
                self.db.execute("BEGIN IMMEDIATE")
            batch.open_transaction = True

    def checkpoint(self) -> None:
        """Fold the write-ahead log into tostrack.db (before the file is moved into place)."""
        self.db.checkpoint()

    def version_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]

    # sources ---------------------------------------------------------------------------------

    def source_state(self, source_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()
        return dict(row) if row else None

    def all_source_states(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM sources ORDER BY id")]

    def _touch_source(self, db: Database, source_id: str, title: str, url: str) -> None:
        db.execute(
            "INSERT INTO sources (id, title, url) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET title = excluded.title, url = excluded.url",
            (source_id, title, url),
        )

    def record_check(
        self,
        source_id: str,
        at: str,
        *,
        title: str = "",
        url: str = "",
        snapshot_sha256: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """A fetch that worked (changed or not): resets the failure streak."""
        with self.transaction() as db:
            self._touch_source(db, source_id, title, url)
            db.execute(
                "UPDATE sources SET last_checked_at = ?, last_success_at = ?,"
                " consecutive_failures = 0,"
                " last_failure_reason = NULL, broken_since = NULL,"
                " last_snapshot_sha256 = COALESCE(?, last_snapshot_sha256),"
                " etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified)"
                " WHERE id = ?",
                (at, at, snapshot_sha256, etag, last_modified, source_id),
            )

    def record_failure(
        self,
        failure: Failure,
        *,
        title: str = "",
        url: str = "",
        also: Callable[[Database, int], None] | None = None,
    ) -> int:
        """Record a failed fetch; returns the number of consecutive failures so far.

        `also(db, count)` runs inside the same transaction (the operator's "broken" alert is
        queued there: a kill between the failure and its alert cannot keep one without the other).
        """
        with self.transaction() as db:
            self._touch_source(db, failure.source_id, title, url)
            db.execute(
                "INSERT INTO failures (source_id, at, reason, detail) VALUES (?, ?, ?, ?)",
                (failure.source_id, failure.at, failure.reason, failure.detail[:2000]),
            )
            db.execute(
                "UPDATE sources SET last_checked_at = ?,"
                " consecutive_failures = consecutive_failures + 1,"
                " last_failure_reason = ?, broken_since = COALESCE(broken_since, ?) WHERE id = ?",
                (failure.at, failure.reason, failure.at, failure.source_id),
            )
            row = db.execute(
                "SELECT consecutive_failures FROM sources WHERE id = ?", (failure.source_id,)
            ).fetchone()
            if also is not None:
                also(db, int(row[0]))
            faults.crash_point("in-failure-transaction")
        return int(row[0])

    def failures(self, source_id: str, limit: int = 100) -> list[Failure]:
        rows = self.db.execute(
            "SELECT * FROM failures WHERE source_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            (source_id, limit),
        )
        return [Failure(r["source_id"], r["at"], r["reason"], r["detail"]) for r in rows]

    # versions --------------------------------------------------------------------------------

    def _version(self, row: Any) -> Version:
        folder = self.folder(row["path"])
        return Version(
            id=row["id"],
            source_id=row["source_id"],
            captured_at=row["captured_at"],
            path=folder,
            text_sha256=row["text_sha256"],
            snapshot_sha256=row["snapshot_sha256"],
            title=row["title"],
            effective_date=row["effective_date"],
            clause_count=row["clause_count"],
            origin=row["origin"],
            redirect=_column(row, "redirect", None),
            evidence=self.evidence_of(folder),
        )

    def current_version(self, source_id: str) -> Version | None:
        row = self.db.execute(
            "SELECT * FROM versions WHERE source_id = ? ORDER BY captured_at DESC, id DESC LIMIT 1",
            (source_id,),
        ).fetchone()
        return self._version(row) if row else None

    def versions(self, source_id: str) -> list[Version]:
        rows = self.db.execute(
            "SELECT * FROM versions WHERE source_id = ? ORDER BY captured_at, id", (source_id,)
        )
        return [self._version(r) for r in rows]

    def versions_with_text(self, source_id: str, text_sha256: str, origin: str) -> list[Version]:
        """The versions of a source with this text and origin, in the order of versions():
        what flap detection looks for, without reading every version of a long history."""
        rows = self.db.execute(
            "SELECT * FROM versions WHERE source_id = ? AND text_sha256 = ? AND origin = ? "
            "ORDER BY captured_at, id",
            (source_id, text_sha256, origin),
        )
        return [self._version(r) for r in rows]

    def version(self, version_id: int) -> Version:
        row = self.db.execute("SELECT * FROM versions WHERE id = ?", (version_id,)).fetchone()
        if row is None:
            raise StorageError(f"no version {version_id} in {self.where}")
        return self._version(row)

    def tracked_source_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT source_id FROM versions ORDER BY 1")]

    def save_version(
        self,
        snapshots: Sequence[Snapshot],
        document: Document,
        clauses: Sequence[Clause],
        *,
        title: str = "",
        url: str = "",
        diff: Diff | None = None,
        previous: Version | None = None,
        origin: str = "fetch",
        notify: bool = True,
        kind: str = "clauses",
        redirect: str | None = None,
        requested_urls: Sequence[str] = (),
    ) -> tuple[Version, int | None]:
        """Store a new version (raw files, extracted clauses) and the diff from the previous one.

        Returns the version and the id of the recorded diff (None for a first version or a
        diff with no changes at all). kind "effective-date" records a diff with no clause
        changes: only the announced effective date moved.
        """
        if not snapshots:
            raise ValueError("a version needs at least one raw snapshot")
        source_id = snapshots[0].source_id
        folder = self._stamp_folder(source_id, snapshots[0].fetched_at)
        rel = self.relative(folder)

        batch = self._batch

        def note_pending() -> None:  # before the rename: a crash after it leaves a known orphan
            if batch is not None and rel in batch.expected:
                return  # noted when the batch began
            if batch is not None:
                self._commit_batch(batch)  # a note must be committed on its own
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (_PENDING + rel, snapshots[0].fetched_at),
                )

        with _storage_errors(f"saving a snapshot of {source_id}"):
            text_sha256 = self._write_stamp_folder(
                folder,
                snapshots,
                document,
                clauses,
                origin=origin,
                requested_urls=requested_urls,
                before_rename=note_pending,
                sync_folder=batch is None,
            )
        if batch is not None:
            batch.renamed.add(rel)
            batch.renamed_into.add(folder.parent)  # fsynced before the batch commits
            self._batch_transaction(batch)
        faults.crash_point("after-rename")
        self._saved = None
        version, diff_id = self.record_version(
            folder,
            snapshots,
            document,
            clauses,
            title=title,
            url=url,
            diff=diff,
            previous=previous,
            origin=origin,
            notify=notify,
            kind=kind,
            redirect=redirect,
            text_sha256=text_sha256,
        )
        if self._saved_as_read_back:  # strings only: as_read_back reads them back alike
            self._saved = (version.id, tuple(map(as_read_back, clauses)))
        if batch is not None:
            batch.versions += 1
            if batch.versions >= BATCH_VERSIONS or time.monotonic() - batch.since > BATCH_SECONDS:
                self._commit_batch(batch)
        return version, diff_id

    def stored_clauses(self, version: Version) -> tuple[Clause, ...]:
        """version.load()[1]; from memory for the version this store saved last (an import
        compares each file with the one it just stored)."""
        if self._saved is not None and self._saved[0] == version.id:
            return self._saved[1]
        return version.load()[1]

    def record_version(
        self,
        folder: Path,
        snapshots: Sequence[Snapshot],
        document: Document,
        clauses: Sequence[Clause],
        *,
        title: str = "",
        url: str = "",
        diff: Diff | None = None,
        previous: Version | None = None,
        origin: str = "fetch",
        notify: bool = True,
        kind: str = "clauses",
        redirect: str | None = None,
        text_sha256: str | None = None,
    ) -> tuple[Version, int | None]:
        """The rows for a capture folder already on disk (a new one, or one adopted or rebuilt).
        text_sha256: text_digest(clauses), when the caller has it."""
        if kind not in DIFF_KINDS:
            raise ValueError(f"diff kind must be one of {DIFF_KINDS}, not {kind!r}")
        source_id = snapshots[0].source_id
        captured_at = snapshots[0].fetched_at
        rel = self.relative(folder)
        snapshot_sha = combined_sha(snapshots)
        with self.transaction() as db:
            self._touch_source(db, source_id, title, url)
            # RETURNING id on both backends (PostgreSQL has no lastrowid); fetchall ends the
            # statement, which SQLite needs before COMMIT
            (version_id,) = db.execute(
                "INSERT INTO versions (source_id, captured_at, path, text_sha256, snapshot_sha256,"
                " title, effective_date, clause_count, origin, redirect)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    source_id,
                    captured_at,
                    rel,
                    text_sha256 or text_digest(clauses),
                    snapshot_sha,
                    document.title or title,
                    document.effective_date,
                    len(clauses),
                    origin,
                    redirect,
                ),
            ).fetchall()[0]
            diff_id = None
            if previous is not None and diff is not None and (diff.changes or kind != "clauses"):
                summary = diff.summary()
                severity = max(
                    (c.severity for c in diff.changes),
                    key=lambda s: SEVERITY_RANK.get(s, 0),
                    default="none",
                )
                (diff_id,) = db.execute(
                    "INSERT INTO diffs (source_id, from_version, to_version, detected_at, summary,"
                    " substantive, severity, notify, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " RETURNING id",
                    (
                        source_id,
                        previous.id,
                        version_id,
                        captured_at,
                        json.dumps(summary),
                        int(summary["substantive"] > 0),
                        severity,
                        int(notify),
                        kind,
                    ),
                ).fetchall()[0]
                db.executemany(  # one change's JSON at a time, not all of a long diff's at once
                    "INSERT INTO changes (diff_id, position, data) VALUES (?, ?, ?)",
                    (
                        (diff_id, i, _change_json(change_to_record(c)))
                        for i, c in enumerate(diff.changes)
                    ),
                )
            db.execute(
                "UPDATE sources SET last_snapshot_sha256 = ? WHERE id = ?",
                (snapshot_sha, source_id),
            )
            db.execute("DELETE FROM meta WHERE key = ?", (_PENDING + rel,))
        return self.version(version_id), diff_id

    # captures on disk (orphans, rebuild) -----------------------------------------------------

    def relative(self, folder: Path) -> str:
        """A capture folder as versions.path records it: snapshots/<provider>/<document>/<stamp>
        whatever the evidence folder is, so every worker finds it under its own mount."""
        return "snapshots/" + folder.relative_to(self.snapshots_dir).as_posix()

    def evidence_of(self, folder: Path) -> Path:
        """The evidence folder a capture folder is in: [store] evidence, or the workspace's own
        snapshots/ for one written before evidence was moved."""
        own = self.root / "snapshots"
        if folder.is_relative_to(self.snapshots_dir) or not folder.is_relative_to(own):
            return self.snapshots_dir
        return own

    def folder(self, path: str) -> Path:
        """The capture folder of a versions.path. One written before [store] evidence named a
        folder elsewhere is still read from the workspace's own snapshots/ (until copied)."""
        if not path.startswith("snapshots/"):
            return self.root / path
        found = self.snapshots_dir / path.removeprefix("snapshots/")
        own = self.root / path
        if found != own and not found.exists() and own.exists():
            return own
        return found

    def pending_captures(self) -> list[Path]:
        """Capture folders renamed into place whose database commit never happened (a crash).

        Notes for folders that never reached their final name are dropped here.
        """
        rows = self.db.execute(
            "SELECT key, value FROM meta WHERE key LIKE ?", (_PENDING + "%",)
        ).fetchall()
        # In the order they were captured, <stamp>.10 after <stamp>.9 (see capture_order)
        rows.sort(key=lambda row: (capture_order(row[1], Path(row[0])), row[0]))
        found = []
        for key, _ in rows:
            folder = self.folder(key[len(_PENDING) :])
            known = self.db.execute(
                "SELECT 1 FROM versions WHERE path = ?", (key[len(_PENDING) :],)
            ).fetchone()
            if known or not (folder / "version.json").is_file():
                with self.transaction() as db:
                    db.execute("DELETE FROM meta WHERE key = ?", (key,))
                continue
            found.append(folder)
        return found

    def unindexed_captures(self) -> list[Path]:
        """Capture folders holding a version that no row points at, oldest first."""
        known = {r[0] for r in self.db.execute("SELECT path FROM versions")}
        return [f for f in capture_folders(self.snapshots_dir) if self.relative(f) not in known]

    def has_versions(self) -> bool:
        return self.db.execute("SELECT 1 FROM versions LIMIT 1").fetchone() is not None

    def save_snapshot_only(self, snapshots: Sequence[Snapshot], version: Version) -> None:
        """Keep raw bytes that differ from the stored ones but extract to the same version."""
        folder = self._stamp_folder(snapshots[0].source_id, snapshots[0].fetched_at)
        with _storage_errors(f"saving a snapshot of {snapshots[0].source_id}"):
            self._write_stamp_folder(folder, snapshots, None, None, same_as=version)

    def _stamp_folder(self, source_id: str, captured_at: str) -> Path:
        base = self.snapshots_dir.joinpath(*source_id.split("/")) / stamp(captured_at)
        folder, n = base, 1
        while folder.exists():  # two captures in one second: keep both
            n += 1
            folder = base.with_name(f"{base.name}.{n}")
        return folder

    def _write_stamp_folder(
        self,
        folder: Path,
        snapshots: Sequence[Snapshot],
        document: Document | None,
        clauses: Sequence[Clause] | None,
        same_as: Version | None = None,
        *,
        origin: str = "fetch",
        requested_urls: Sequence[str] = (),
        before_rename: Callable[[], None] | None = None,
        sync_folder: bool = True,
    ) -> str | None:
        """Write the capture folder; returns the text digest of the version it holds (if any).

        The files are written straight into a private temporary folder (no one sees them before
        it is renamed into place, complete), each fsynced, new raw bodies' objects first;
        `before_rename` runs just before the rename (the note of the pending folder)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))

        def write(name: str, data: bytes) -> None:
            fd = write_unsynced(tmp / name, data)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            meta = []
            for i, snap in enumerate(snapshots):
                # stored once per content, before the folder naming it is renamed into place
                name, missing = object_for(
                    self.snapshots_dir, snap.sha256, extension_for(snap.content_type)
                )
                if missing:
                    write_object(self.snapshots_dir, name, snap.body)
                meta.append(
                    {
                        "object": name,
                        "url": snap.url,
                        "fetched_at": snap.fetched_at,
                        "status": snap.status,
                        "content_type": snap.content_type,
                        "encoding": snap.encoding,
                        "headers": dict(snap.headers),
                        "sha256": snap.sha256,
                        "bytes": len(snap.body),
                    }
                )
                if i < len(requested_urls) and requested_urls[i] != snap.url:
                    meta[-1]["requested_url"] = requested_urls[i]  # the fetch was redirected
            info: dict[str, Any] = {
                "source_id": snapshots[0].source_id,
                "origin": origin,
                "snapshots": meta,
            }
            if same_as is not None:
                info["same_version_as"] = same_as.captured_at
            write("snapshot.json", json_bytes(info))
            digest, self._saved_as_read_back = None, False
            if document is not None and clauses is not None:
                data, self._clause_json, strings_only = version_json(
                    document, clauses, self._clause_json
                )
                self._saved_as_read_back = strings_only
                write("version.json", data)
                text = version_text(clauses).encode("utf-8")
                write("version.txt", text)
                digest = hashlib.sha256(text).hexdigest()  # text_digest(clauses)
            if before_rename is not None:
                before_rename()
            os.replace(tmp, folder)
            if sync_folder:  # else the caller fsyncs it before any row names the folder
                fsync_dir(folder.parent)
            return digest
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # diffs -----------------------------------------------------------------------------------

    def _stored_diff(self, row: Any) -> StoredDiff:
        changes = tuple(
            change_from_record(json.loads(r["data"]))
            for r in self.db.execute(
                "SELECT data FROM changes WHERE diff_id = ? ORDER BY position", (row["id"],)
            )
        )
        return StoredDiff(
            id=row["id"],
            source_id=row["source_id"],
            from_version=self.version(row["from_version"]),
            to_version=self.version(row["to_version"]),
            detected_at=row["detected_at"],
            summary=json.loads(row["summary"]),
            substantive=bool(row["substantive"]),
            severity=row["severity"],
            changes=changes,
            kind=_column(row, "kind", "clauses"),
        )

    def last_diff_at(self, source_id: str, kind: str) -> str | None:
        """When the newest diff of this kind ("clauses", "effective-date") was detected."""
        try:
            row = self.db.execute(
                "SELECT MAX(detected_at) FROM diffs WHERE source_id = ? AND kind = ?",
                (source_id, kind),
            ).fetchone()
        except sqlite3.OperationalError:  # a schema-1 database opened read-only: no kinds yet
            return None
        return row[0] if row else None

    def diff(self, diff_id: int) -> StoredDiff:
        row = self.db.execute("SELECT * FROM diffs WHERE id = ?", (diff_id,)).fetchone()
        if row is None:
            raise StorageError(f"no recorded change {diff_id}")
        return self._stored_diff(row)

    def diffs(
        self,
        source_id: str | None = None,
        *,
        substantive_only: bool = False,
        limit: int | None = None,
    ) -> list[StoredDiff]:
        sql = "SELECT * FROM diffs WHERE 1=1"
        args: list[Any] = []
        if source_id:
            sql += " AND source_id = ?"
            args.append(source_id)
        if substantive_only:
            sql += " AND substantive = 1"
        sql += " ORDER BY detected_at DESC, id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._stored_diff(r) for r in self.db.execute(sql, args)]

    def diff_headers(self) -> list[DiffHeader]:
        """Every recorded diff without its changes, newest first (the order of diffs())."""
        marks = {
            r[0]: (r[1], r[2])
            for r in self.db.execute(
                "SELECT diff_id, COUNT(*), MAX(id) FROM changes GROUP BY diff_id"
            )
        }
        headers = []
        for row in self.db.execute("SELECT * FROM diffs ORDER BY detected_at DESC, id DESC"):
            values = dict(row)
            kind = _column(row, "kind", "clauses")
            headers.append(
                DiffHeader(
                    id=row["id"],
                    source_id=row["source_id"],
                    from_version=row["from_version"],
                    to_version=row["to_version"],
                    detected_at=row["detected_at"],
                    substantive=bool(row["substantive"]),
                    kind=kind,
                    fingerprint=repr((sorted(values.items()), marks.get(row["id"], (0, 0)))),
                )
            )
        return headers

    def all_versions(self) -> list[Version]:
        """Every stored version, by source and then capture time (the order of versions())."""
        rows = self.db.execute("SELECT * FROM versions ORDER BY source_id, captured_at, id")
        return [self._version(r) for r in rows]

    def failure_marks(self) -> dict[str, tuple[int, int]]:
        """source id -> (failures recorded, the newest one's row id): failures are only ever
        inserted, so this changes exactly when a source's list of failures does."""
        rows = self.db.execute("SELECT source_id, COUNT(*), MAX(id) FROM failures GROUP BY 1")
        return {r[0]: (r[1], r[2]) for r in rows}


# json.dumps(..., ensure_ascii=False) without building an encoder for each change row.
_change_json = json.JSONEncoder(ensure_ascii=False).encode

# A batch of imported versions (Store.batched) is committed after this many, or this long.
BATCH_VERSIONS = 50
BATCH_SECONDS = 2.0
IMPORT_CACHE_SIZE = -512  # PRAGMA cache_size while importing: 512 KiB (default 2,000 KiB)


@dataclass
class _Batch:
    expected: dict[str, str]  # capture folder (as versions.path) -> capture time, noted pending
    renamed: set[str] = field(default_factory=set)  # those renamed into place so far
    renamed_into: set[Path] = field(default_factory=set)  # their folders, not fsynced yet
    open_transaction: bool = False
    versions: int = 0  # saved since the last commit
    since: float = field(default_factory=time.monotonic)


def _column(row: Any, name: str, default: Any) -> Any:
    """A column added after schema 1 (absent from an older database opened read-only)."""
    return row[name] if name in row.keys() else default  # noqa: SIM118 - `in row` tests values


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(m in text for m in ("not a database", "malformed", "corrupt", "disk image"))
