"""The health of every watched source, for `tostrack status`: is it working, when was it last
checked and changed, and when is it next due.

States:
  ok             the last check worked
  failing        the last check(s) failed, fewer than broken_after in a row (retried at the
                 next run, backing off; see schedule.py)
  broken         broken_after or more failures in a row (operators have been told once)
  never-fetched  declared but not yet checked by a run (an imported history does not count)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tostrack.clock import iso
from tostrack.models import Source
from tostrack.schedule import next_check
from tostrack.store import Store

STATES = ("ok", "failing", "broken", "never-fetched")


def workspace_status(
    store: Store, sources: Sequence[Source], now: datetime, *, broken_after: int = 3
) -> list[dict[str, Any]]:
    """One row per source, in the order given (see the module docstring for the states)."""
    rows = []
    for source in sources:
        state = store.source_state(source.id) or {}
        versions = store.versions(source.id)
        current = versions[-1] if versions else None
        changes = store.diffs(source.id, substantive_only=True, limit=1)
        failures = int(state.get("consecutive_failures") or 0)
        last_checked = state.get("last_checked_at")
        rows.append(
            {
                "id": source.id,
                "title": source.title,
                "url": source.url,
                "state": _state(last_checked, failures, broken_after),
                "last_checked_at": last_checked,
                "last_success_at": state.get("last_success_at"),
                "consecutive_failures": failures,
                "last_failure_reason": state.get("last_failure_reason") if failures else None,
                "versions": len(versions),
                "current_captured_at": current.captured_at if current else None,
                "clauses": current.clause_count if current else None,
                "effective_date": current.effective_date if current else None,
                "last_change_at": changes[0].detected_at if changes else None,
                # only the announced date moved (not alerted by default, but never silent)
                "effective_date_changed_at": store.last_diff_at(source.id, "effective-date"),
                "next_due_at": _next_due(last_checked, source.interval, failures, now),
            }
        )
    return rows


def _state(last_checked: str | None, failures: int, broken_after: int) -> str:
    if failures >= max(broken_after, 1):
        return "broken"
    if failures:
        return "failing"
    if not last_checked:
        return "never-fetched"
    return "ok"


def _next_due(last_checked: str | None, interval: int, failures: int, now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    due = next_check(last_checked, interval, failures)
    return iso(due if due is not None else now)


# -- for a terminal --------------------------------------------------------------------------

_MARKS = {"ok": "ok", "failing": "FAILING", "broken": "BROKEN", "never-fetched": "new"}


def format_status(rows: Sequence[dict[str, Any]]) -> str:
    """A compact table, problems first, then a one-line summary; ends with a newline."""
    if not rows:
        return "No sources. Declare some in tostrack.toml or enable the bundled registry.\n"
    order = {"broken": 0, "failing": 1, "never-fetched": 2, "ok": 3}
    ordered = sorted(rows, key=lambda r: order.get(r["state"], 4))  # stable: keeps config order
    table = [("STATE", "SOURCE", "VERSIONS", "CHECKED", "CHANGED", "NEXT DUE", "NOTE")]
    for r in ordered:
        table.append(
            (
                _MARKS.get(r["state"], r["state"]),
                r["id"],
                str(r["versions"]),
                _short(r["last_checked_at"]),
                _short(r["last_change_at"]),
                _short(r["next_due_at"]),
                _note(r),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1]
        for row in table
    ]
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in STATES}
    summary = (
        f"{len(rows)} source(s): {counts['ok']} ok, {counts['failing']} failing, "
        f"{counts['broken']} broken, {counts['never-fetched']} never fetched"
    )
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + summary + "\n"


def _short(iso: str | None) -> str:
    """2026-11-25T06:45:00Z -> 2026-11-25 06:45 (minutes are enough to read a schedule)."""
    return iso[:16].replace("T", " ") if iso else "-"


_HINTS = {
    "evidence-missing": "its stored capture is gone from snapshots/: restore it from a backup, "
    "or `tostrack rebuild --force`",
    "unstable": "the page alternates between texts (check select/remove)",
}


def _note(row: dict[str, Any]) -> str:
    if row["consecutive_failures"]:
        reason = row["last_failure_reason"] or "failed"
        hint = f" ({_HINTS[reason]})" if reason in _HINTS else ""
        return f"{row['consecutive_failures']}x {reason}{hint}"
    if row["clauses"] is not None:
        effective = f", effective {row['effective_date']}" if row["effective_date"] else ""
        moved = row.get("effective_date_changed_at")
        if moved and (not row["last_change_at"] or moved > row["last_change_at"]):
            effective += f" (date changed {_short(moved)})"
        return f"{row['clauses']} clauses{effective}"
    return ""
