"""`tostrack export`: the current clauses of every tracked document, or every recorded change,
as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tostrack.errors import InputError, StorageError
from tostrack.render.views import change_labels, joined_text
from tostrack.store import Store

CLAUSE_FIELDS = ("source", "clause_id", "section", "text", "labels", "captured_at")


CHANGE_FIELDS = (
    "source",
    "diff_id",
    "detected_at",
    "kind",
    "substantive",
    "severity",
    "labels",
    "labels_added",
    "labels_removed",
    "section",
    "old_text",
    "new_text",
)


def _clause_records(store: Store) -> list[dict[str, Any]]:
    records = []
    for source_id in store.tracked_source_ids():
        current = store.current_version(source_id)
        if current is None:
            continue
        try:
            _, clauses = current.load()
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(
                f"cannot read {current.path / 'version.json'}: {exc}. The snapshot folder is "
                "damaged or was moved; restore it from a backup."
            ) from None
        for clause in clauses:
            records.append(
                {
                    "source": source_id,
                    "clause_id": clause.id,
                    "section": clause.section,
                    "text": clause.full_text,
                    "labels": list(clause.labels),
                    "captured_at": current.captured_at,
                }
            )
    return records


def _change_records(store: Store) -> list[dict[str, Any]]:
    records = []
    for stored in reversed(store.diffs()):  # oldest first: the order things happened
        for change in stored.changes:
            side = change.new or change.old
            records.append(
                {
                    "source": stored.source_id,
                    "diff_id": stored.id,
                    "detected_at": stored.detected_at,
                    "kind": change.kind,
                    "substantive": change.substantive,
                    "severity": change.severity,
                    "labels": change_labels(change),
                    "labels_added": list(change.labels_added),
                    "labels_removed": list(change.labels_removed),
                    "section": side[0].section if side else "",
                    "old_text": joined_text(change.old),
                    "new_text": joined_text(change.new),
                }
            )
    return records


def export_records(store: Store, what: str, fmt: str) -> str:
    """Every current clause ("clauses") or every recorded change ("changes"), as json or csv.

    CSV puts lists (labels) in one cell joined by "; " and booleans as true/false.
    """
    if what == "clauses":
        records, fields = _clause_records(store), CLAUSE_FIELDS
    elif what == "changes":
        records, fields = _change_records(store), CHANGE_FIELDS
    else:
        raise InputError(f"cannot export {what!r}: choose clauses or changes")
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if fmt != "csv":
        raise InputError(f"unknown export format {fmt!r}: choose json or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_cell(record[k]) for k in fields})
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)
