"""The outbox tables: messages queued for sending, diffs kept for digests, diffs already handled
and the once-per-breakage flag of operator alerts. notify decides what to send; these methods
(mixed into Store) are the only SQL behind it. The schema is in tostrack.store.schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tostrack import clock
from tostrack.clock import now_iso
from tostrack.store.connection import Database

# The columns of outbox that a state change may set, besides the state itself.
_MARKABLE = frozenset({"attempts", "last_error", "next_attempt_at", "sent_at", "delivered_to"})


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to queue, keyed so that queueing it twice queues it once."""

    key: str
    kind: str  # change, digest, operator
    recipient: str  # an e-mail address, or how a chat target is shown (never its token)
    subject: str
    message_id: str
    data: bytes  # the whole message, as sent (for chat: JSON with target, title and body)
    channel: str = "email"  # or "apprise"


class OutboxTables:
    """Mixed into Store, which provides db, database, read_only and transaction()."""

    db: Database
    database: Any  # the [store] table (a shared PostgreSQL), or None for the embedded store
    read_only: bool

    # queueing -------------------------------------------------------------------------------

    def has_message(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone() is not None

    def insert_messages(self, messages: Iterable[OutgoingMessage]) -> int:
        """Queue messages inside the caller's transaction; returns how many are new."""
        added = 0
        for m in messages:
            added += self.db.execute(
                "INSERT OR IGNORE INTO outbox (key, kind, recipient, subject, message_id, message,"
                " state, created_at, channel) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (m.key, m.kind, m.recipient, m.subject, m.message_id, m.data, now_iso(), m.channel),
            ).rowcount
        return added

    def record_diff_messages(
        self,
        diff_ids: int | Sequence[int],
        messages: Sequence[OutgoingMessage],
        digest_items: Sequence[tuple[int, str, str, str]] = (),
    ) -> int:
        """Queue the messages about one diff or a group of them (several documents of one
        provider), their digest items ((diff id, recipient, mode, report path) each), and mark
        every diff notified, in one transaction: a crash keeps all of it or none."""
        ids = [diff_ids] if isinstance(diff_ids, int) else list(diff_ids)
        with self.transaction():
            added = self.insert_messages(messages)
            for diff_id, recipient, mode, report_path in digest_items:
                added += self.db.execute(
                    "INSERT OR IGNORE INTO digest_items (recipient, mode, diff_id, report_path,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (recipient, mode, diff_id, report_path, now_iso()),
                ).rowcount
            self.db.executemany(
                "INSERT OR IGNORE INTO notified_diffs (diff_id, at) VALUES (?, ?)",
                [(diff_id, now_iso()) for diff_id in ids],
            )
        return added

    def unnotified_diff_ids(self, before: str | None = None) -> list[int]:
        """Diffs that should have been notified but never were (a run killed before it),
        detected by `before` (an ISO time) when given."""
        rows = self.db.execute(
            "SELECT id FROM diffs WHERE notify = 1 AND (substantive = 1 OR kind = 'effective-date')"
            " AND id NOT IN (SELECT diff_id FROM notified_diffs) AND detected_at <= ? ORDER BY id",
            (before or "9999",),
        )
        return [row[0] for row in rows]

    # operator alerts ------------------------------------------------------------------------

    def operator_alert_state(self, source_id: str) -> tuple[bool, int]:
        """(told the operators it is broken, number of that breakage) for a source."""
        row = self.db.execute(
            "SELECT broken, incident FROM operator_alerts WHERE source_id = ?", (source_id,)
        ).fetchone()
        return (bool(row[0]), int(row[1])) if row else (False, 0)

    def set_operator_alert(self, source_id: str, broken: bool, incident: int) -> None:
        """Inside the caller's transaction (that of the failure or recovery itself)."""
        self.db.execute(
            "INSERT INTO operator_alerts (source_id, broken, incident, since) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(source_id) DO UPDATE SET broken = excluded.broken,"
            " incident = excluded.incident, since = excluded.since",
            (source_id, int(broken), incident, now_iso()),
        )

    # digests --------------------------------------------------------------------------------

    def digest_groups(self) -> list[tuple[str, str]]:
        """(recipient, mode) of every digest with items waiting."""
        rows = self.db.execute(
            "SELECT DISTINCT recipient, mode FROM digest_items WHERE message_key IS NULL"
        )
        return [(row[0], row[1]) for row in rows]

    def digest_items(self, recipient: str, mode: str, before: str) -> list[sqlite3.Row]:
        """The waiting items (id, diff_id, report_path) of one digest, created before `before`."""
        return self.db.execute(
            "SELECT id, diff_id, report_path FROM digest_items WHERE message_key IS NULL"
            " AND recipient = ? AND mode = ? AND created_at < ? ORDER BY created_at, id",
            (recipient, mode, before),
        ).fetchall()

    def queue_digest(self, message: OutgoingMessage, item_ids: Iterable[int]) -> int:
        """Queue a digest and mark its items sent with it, in one transaction."""
        with self.transaction():
            added = self.insert_messages([message])
            self.db.executemany(
                "UPDATE digest_items SET message_key = ? WHERE id = ?",
                [(message.key, item_id) for item_id in item_ids],
            )
        return added

    # sending --------------------------------------------------------------------------------
    #
    # Each message is claimed by one sender (claimed_by, claimed_until) before it is sent, with
    # SKIP LOCKED on PostgreSQL: workers sharing the database send different messages at once,
    # and a message claimed by a worker that died is claimed again once the claim expires. Only
    # its claimant moves a message to "in-flight", and only from "queued", so however claims
    # expire and overlap the final dot goes out once. On the embedded store (one process, under
    # the workspace lock) every claim left in the database is a dead run's: all count as expired.

    def messages_in_state(self, state: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM outbox WHERE state = ? ORDER BY id", (state,)
        ).fetchall()

    def due_messages(self, horizon: str) -> list[sqlite3.Row]:
        """Queued messages whose retry backoff ends by `horizon` (an ISO time)."""
        return self.db.execute(
            "SELECT * FROM outbox WHERE state = 'queued'"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id",
            (horizon,),
        ).fetchall()

    def has_due_messages(self, horizon: str, chat: bool) -> bool:
        """Whether a queued chat (or e-mail) message is due by `horizon`, claimed or not."""
        return (
            self.db.execute(
                "SELECT 1 FROM outbox WHERE state = 'queued'"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " AND (channel = 'apprise') = ? LIMIT 1",
                (horizon, chat),
            ).fetchone()
            is not None
        )

    def queued_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'queued'").fetchone()[0]

    def _claims_expired_before(self) -> str:
        """Claims ending before this ISO time are dead (every claim, on the embedded store)."""
        return clock.now_iso() if self.database is not None else "9999"

    def claim_message(
        self, holder: str, seconds: float, horizon: str, *, chat: bool, after: int = 0
    ) -> sqlite3.Row | None:
        """The first due queued message (chat or e-mail) with an id above `after` that no live
        claim holds, now claimed by holder for `seconds`; None when there is none."""
        until = clock.iso(clock.now() + timedelta(seconds=seconds))
        with self.transaction() as db:
            row = db.execute(
                "SELECT id FROM outbox WHERE state = 'queued' AND id > ?"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " AND (channel = 'apprise') = ?"
                " AND (claimed_until IS NULL OR claimed_until < ?)"
                f" ORDER BY id LIMIT 1{db.row_lock}",
                (after, horizon, chat, self._claims_expired_before()),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                (holder, until, row[0]),
            )
            return db.execute("SELECT * FROM outbox WHERE id = ?", (row[0],)).fetchone()

    def start_sending(self, row_id: int, holder: str, attempts: int) -> bool:
        """Commit "in-flight" for a message holder claimed and is about to hand over for good;
        False when its claim expired and another worker has it (then it must not be sent)."""
        with self.transaction() as db:
            moved = db.execute(
                "UPDATE outbox SET state = 'in-flight', attempts = ?"
                " WHERE id = ? AND state = 'queued' AND claimed_by = ?",
                (attempts, row_id, holder),
            ).rowcount
        return moved == 1

    def refused_after_sending(self, row_id: int, holder: str) -> None:
        """Back to "queued", still claimed: the server answered the final dot with a refusal,
        so it does not have the message (the sender marks what becomes of it next)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'queued' WHERE id = ? AND state = 'in-flight'"
                " AND claimed_by = ?",
                (row_id, holder),
            )

    def release_message(self, row_id: int, holder: str) -> None:
        """Give back a claimed message that is still queued (this sender stopped before it)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ? AND claimed_by = ? AND state = 'queued'",
                (row_id, holder),
            )

    def abandoned_in_flight(self) -> list[sqlite3.Row]:
        """In-flight messages whose sender's claim expired: it died after handing them over."""
        return self.db.execute(
            "SELECT * FROM outbox WHERE state = 'in-flight'"
            " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id",
            (self._claims_expired_before(),),
        ).fetchall()

    def mark_abandoned(self, row_id: int, last_error: str) -> bool:
        """Mark an abandoned in-flight message "uncertain"; False when another worker did it
        first (or its sender is alive after all), so the uncertainty is reported once."""
        with self.transaction() as db:
            moved = db.execute(
                "UPDATE outbox SET state = 'uncertain', last_error = ?, claimed_until = NULL"
                " WHERE id = ? AND state = 'in-flight'"
                " AND (claimed_until IS NULL OR claimed_until < ?)",
                (last_error, row_id, self._claims_expired_before()),
            ).rowcount
        return moved == 1

    def mark_message(
        self, row_id: int, state: str, holder: str | None = None, **values: Any
    ) -> bool:
        """Commit a message's new state (and attempts, last_error, ... when given). With holder:
        only while holder's claim on it stands (False when another worker has it now). Back to
        "queued", the claim is given up; in a final state it ends, claimed_by telling who."""
        unknown = set(values) - _MARKABLE
        if unknown:
            raise ValueError(f"outbox has no column {sorted(unknown)[0]!r} to set")
        sets = ["state = ?", *[f"{k} = ?" for k in values]]
        if state == "queued":
            sets.append("claimed_by = NULL")
        if state != "in-flight":
            sets.append("claimed_until = NULL")
        where, params = "id = ?", [row_id]
        if holder is not None:
            where, params = "id = ? AND claimed_by = ?", [row_id, holder]
        with self.transaction():
            moved = self.db.execute(
                f"UPDATE outbox SET {', '.join(sets)} WHERE {where}",
                (state, *values.values(), *params),
            ).rowcount
        return moved == 1

    # the outbox as people see it ------------------------------------------------------------

    def outbox_listing(self) -> list[dict[str, Any]]:
        """The outbox without message bodies, newest first."""
        if self.read_only and not self._has_outbox():
            return []
        rows = self.db.execute(
            "SELECT id, key, kind, " + self._channel_column() + " AS channel, recipient,"
            " subject, message_id,"
            # Before "written" existed, an .eml in outbox/ was recorded as "sent": it was not.
            " CASE WHEN state = 'sent' AND delivered_to LIKE 'file:%' THEN 'written' ELSE state END"
            " AS state, created_at, attempts,"
            " next_attempt_at, last_error, sent_at, delivered_to FROM outbox ORDER BY id DESC"
        )
        return [dict(r) for r in rows]

    def outbox_message(self, message_id: int) -> sqlite3.Row | None:
        """id, state and recipient of one message."""
        return self.db.execute(
            "SELECT id, state, recipient FROM outbox WHERE id = ?", (message_id,)
        ).fetchone()

    def requeue_message(self, message_id: int) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE outbox SET state = 'queued', next_attempt_at = NULL, claimed_by = NULL,"
                " claimed_until = NULL WHERE id = ?",
                (message_id,),
            )

    def _channel_column(self) -> str:
        """outbox.channel, or 'email' in a database read (not migrated) from before schema 4."""
        return "channel" if "channel" in self.db.columns("outbox") else "'email'"

    def _has_outbox(self) -> bool:
        return "outbox" in self.db.tables()
