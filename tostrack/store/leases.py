"""Leases: how several workers sharing one PostgreSQL split the work without a broker.

A lease is a named row ("host:docs.example.com", "outbox") held by one worker until it expires.
A worker claims one free or expired lease among the names it asks for, with `FOR UPDATE SKIP
LOCKED` on PostgreSQL so that workers claiming at the same moment never wait on each other nor
get the same row; it renews the lease while it works and releases it when done. A killed worker
renews nothing: its leases expire and the next claim takes them. On SQLite (one process, under
the workspace lock) the same code runs without the row lock. Mixed into Store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from tostrack import clock
from tostrack.store.connection import Database


class LeaseTables:
    """Mixed into Store, which provides db and transaction()."""

    db: Database

    def claim_lease(self, names: Sequence[str], holder: str, seconds: float) -> str | None:
        """One of names, now held by holder for `seconds`; None when every one is held by a
        live lease of another worker. A lease holder already has is renewed and returned."""
        if not names:
            return None
        now = clock.now()
        with self.transaction() as db:  # rows first, in their own short transaction
            db.executemany(
                "INSERT OR IGNORE INTO leases (name) VALUES (?)", [(name,) for name in names]
            )
        marks = ", ".join("?" for _ in names)
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT name FROM leases WHERE name IN ({marks})"
                " AND (holder IS NULL OR holder = ? OR expires_at < ?)"
                # its own lease first (a renewal), then by name
                " ORDER BY CASE WHEN holder = ? THEN 0 ELSE 1 END, name"
                f" LIMIT 1{db.row_lock}",
                (*names, holder, clock.iso(now), holder),
            ).fetchall()
            if not rows:
                return None
            name = rows[0][0]
            db.execute(
                "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ?",
                (holder, clock.iso(now + timedelta(seconds=seconds)), name),
            )
        return name

    def renew_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Extend a lease holder still has; False when it expired and another worker took it."""
        until = clock.iso(clock.now() + timedelta(seconds=seconds))
        with self.transaction() as db:
            renewed = db.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
                (until, name, holder),
            ).rowcount
        return renewed == 1

    def renew_leases(self, holder: str, seconds: float) -> None:
        """Extend every lease holder still has (its hosts, its run) in one statement."""
        until = clock.iso(clock.now() + timedelta(seconds=seconds))
        with self.transaction() as db:
            db.execute("UPDATE leases SET expires_at = ? WHERE holder = ?", (until, holder))

    def others_hold(self, prefix: str, holder: str) -> bool:
        """Whether a worker other than holder has a live lease whose name starts with prefix."""
        row = self.db.execute(
            "SELECT 1 FROM leases WHERE substr(name, 1, ?) = ? AND holder <> ?"
            " AND expires_at >= ? LIMIT 1",
            (len(prefix), prefix, holder, clock.now_iso()),
        ).fetchone()
        return row is not None

    def drop_lease(self, name: str, holder: str) -> None:
        """Release a lease for good: its row goes (a run's lease is never asked for again)."""
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def drop_expired_leases(self, prefix: str) -> None:
        """Delete the expired leases whose names start with prefix (dead runs' own leases)."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM leases WHERE substr(name, 1, ?) = ? AND expires_at < ?",
                (len(prefix), prefix, clock.now_iso()),
            )

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL WHERE name = ? AND holder = ?",
                (name, holder),
            )

    def lease_holder(self, name: str) -> str | None:
        """Who holds a live lease on name (None: nobody, or it expired)."""
        row = self.db.execute(
            "SELECT holder FROM leases WHERE name = ? AND expires_at >= ?",
            (name, clock.now_iso()),
        ).fetchone()
        return row[0] if row else None

    @contextmanager
    def holding(self, name: str, holder: str, seconds: float) -> Iterator[bool]:
        """Hold one lease for a block of work (True), or learn another worker has it (False)."""
        held = self.claim_lease([name], holder, seconds) == name
        try:
            yield held
        finally:
            if held:
                self.release_lease(name, holder)
