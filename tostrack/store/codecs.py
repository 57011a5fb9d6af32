"""How the values that flow are written to disk and to the database: JSON, and the text digests
that tell one extracted version from another."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tostrack.models import Change, Clause, Document, Snapshot


def clause_from_json(data: dict[str, Any]) -> Clause:
    return Clause(
        id=data["id"],
        section=data.get("section", ""),
        heading=tuple(data.get("heading_trail", ())),
        text=data["text"],
        number=data.get("number", ""),
        lead_in=data.get("lead_in", ""),
        labels=tuple(data.get("labels", ())),
        evidence=tuple((k, v) for k, v in data.get("evidence", {}).items()),
    )


def clause_to_json(clause: Clause) -> dict[str, Any]:
    return {
        "id": clause.id,
        "section": clause.section,
        "heading_trail": list(clause.heading),
        "text": clause.text,
        "number": clause.number,
        "lead_in": clause.lead_in,
        "labels": list(clause.labels),
        "evidence": dict(clause.evidence),
    }


def document_to_json(doc: Document) -> dict[str, Any]:
    return {
        "title": doc.title,
        "effective_date": doc.effective_date,
        "effective_date_text": doc.effective_date_text,
        "effective_date_is_future": doc.effective_date_is_future,
        "metadata": dict(doc.metadata),
    }


def document_from_json(data: dict[str, Any]) -> Document:
    return Document(
        blocks=(),
        title=data.get("title", ""),
        effective_date=data.get("effective_date"),
        effective_date_text=data.get("effective_date_text", ""),
        effective_date_is_future=data.get("effective_date_is_future", False),
        metadata=tuple(data.get("metadata", {}).items()),
    )


def change_to_record(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "substantive": change.substantive,
        "moved": change.moved,
        "old": [clause_to_json(c) for c in change.old],
        "new": [clause_to_json(c) for c in change.new],
        "redline": [list(op) for op in change.redline],
        "labels": list(change.labels),
        "labels_added": list(change.labels_added),
        "labels_removed": list(change.labels_removed),
        "severity": change.severity,
    }


def change_from_record(data: dict[str, Any]) -> Change:
    return Change(
        kind=data["kind"],
        substantive=data["substantive"],
        moved=data.get("moved", False),
        old=tuple(clause_from_json(c) for c in data["old"]),
        new=tuple(clause_from_json(c) for c in data["new"]),
        redline=tuple((op, text) for op, text in data.get("redline", ())),
        labels=tuple(data.get("labels", ())),
        labels_added=tuple(data.get("labels_added", ())),
        labels_removed=tuple(data.get("labels_removed", ())),
        severity=data.get("severity", "none"),
    )


def read_json(path: Path) -> Any:
    with path.open("rb") as fh:
        return json.loads(fh.read())


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


def version_text(clauses: Sequence[Clause]) -> str:
    lines = []
    for clause in clauses:
        lines.append(f"[{clause.section}]" if clause.section else "[]")
        lines.append(clause.full_text)
        lines.append("")
    return "\n".join(lines)


def text_digest(clauses: Sequence[Clause]) -> str:
    return hashlib.sha256(version_text(clauses).encode("utf-8")).hexdigest()


def combined_sha(snapshots: Sequence[Snapshot]) -> str:
    if len(snapshots) == 1:
        return snapshots[0].sha256
    return hashlib.sha256("".join(s.sha256 for s in snapshots).encode()).hexdigest()
