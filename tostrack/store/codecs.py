"""How the values that flow are written to disk and to the database: JSON, and the text digests
that tell one extracted version from another."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
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
    """json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoded: the files every
    version is stored in. With an indent, json.dumps runs its pure-Python encoder (a generator
    per nested value), a tenth of an import's time; this writes the same text directly."""
    out: list[str] = []
    try:
        _indented(data, out, "\n")
    except _Unusual:
        return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    return "".join(out).encode("utf-8")


class _Unusual(Exception):
    """A value json.dumps handles in its own way (a key that is not a string, a float that is
    not finite, a type it does not know): json.dumps writes it, or says why it cannot."""


_encode_string = json.encoder.encode_basestring  # the C encoder's, as json.dumps uses


def _indented(value: Any, out: list[str], newline: str) -> None:
    # In json.encoder's order of tests: str, None, True, False, int, float, list/tuple, dict.
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unusual
        out.append(float.__repr__(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        out.append("[")
        between = "," + inner
        out.append(inner)
        for k, item in enumerate(value):
            if k:
                out.append(between)
            if type(item) is str:  # most values: no call for them
                out.append(_encode_string(item))
            else:
                _indented(item, out, inner)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        out.append("{")
        between = "," + inner
        out.append(inner)
        for k, (key, item) in enumerate(sorted(value.items())):
            if not isinstance(key, str):
                raise _Unusual
            if k:
                out.append(between)
            out.append(_encode_string(key) + ": ")
            if type(item) is str:
                out.append(_encode_string(item))
            else:
                _indented(item, out, inner)
        out.append(newline + "}")
    else:
        raise _Unusual


def version_json(
    document: Document, clauses: Sequence[Clause], known: Mapping[Clause, str]
) -> tuple[bytes, dict[Clause, str], bool]:
    """json_bytes({"document": ..., "clauses": [...]}): a version.json, the text of each of its
    clauses that holds strings only, and whether all do. A clause found in `known` (those of
    the version stored before, which shares most of them) is not encoded again; the texts
    returned are the next version's `known`. Equal clauses of strings are written alike
    (1 == 1.0 == True is not)."""
    texts: dict[Clause, str] = {}
    pieces = []
    strings_only = True
    for clause in clauses:
        try:
            text = known.get(clause)  # equal to a clause of strings: strings too
            if text is None:
                text = _clause_item(clause)  # TypeError for a value that is not a string
            texts[clause] = text
        except TypeError:  # that, or a clause that cannot be a key
            strings_only = False
            out: list[str] = []
            try:
                _indented(clause_to_json(clause), out, "\n  ")  # an item of "clauses"
            except _Unusual:
                return json_bytes(_version_data(document, clauses)), {}, False
            text = "".join(out)
        pieces.append(text)
    out = []
    try:
        _indented(document_to_json(document), out, "\n ")
    except _Unusual:
        return json_bytes(_version_data(document, clauses)), {}, False
    listed = "[\n  " + ",\n  ".join(pieces) + "\n ]" if pieces else "[]"
    data = f'{{\n "clauses": {listed},\n "document": {"".join(out)}\n}}'.encode()
    return data, texts, strings_only


def _version_data(document: Document, clauses: Sequence[Clause]) -> dict[str, Any]:
    return {"document": document_to_json(document), "clauses": [clause_to_json(c) for c in clauses]}


def _clause_item(clause: Clause) -> str:
    """_indented(clause_to_json(clause)) as an item of "clauses", for a clause of strings only
    (TypeError otherwise): the keys in sorted order, each value written directly."""
    text = _encode_string  # TypeError for anything but a string

    def listed(values: Sequence[str]) -> str:
        return "[\n    " + ",\n    ".join(map(text, values)) + "\n   ]" if values else "[]"

    evidence = sorted(dict(clause.evidence).items())
    found = (
        "{\n    " + ",\n    ".join(f"{text(k)}: {text(v)}" for k, v in evidence) + "\n   }"
        if evidence
        else "{}"
    )
    return (
        f'{{\n   "evidence": {found},\n   "heading_trail": {listed(clause.heading)},'
        f'\n   "id": {text(clause.id)},\n   "labels": {listed(clause.labels)},'
        f'\n   "lead_in": {text(clause.lead_in)},\n   "number": {text(clause.number)},'
        f'\n   "section": {text(clause.section)},\n   "text": {text(clause.text)}\n  }}'
    )


def as_read_back(clause: Clause) -> Clause:
    """The clause as clause_from_json reads back its stored JSON, for a clause of strings only
    (one version_json returned a text for): evidence by label, as sort_keys wrote it."""
    evidence = clause.evidence
    if len(evidence) > 1:
        evidence = tuple(sorted(dict(evidence).items()))
    if (
        evidence == clause.evidence
        and type(clause.heading) is tuple
        and type(clause.labels) is tuple
    ):
        return clause
    return replace(
        clause, heading=tuple(clause.heading), labels=tuple(clause.labels), evidence=evidence
    )


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
