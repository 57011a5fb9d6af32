"""The machine-readable outputs users script against (kept stable; documented in the README),
and the terminal redline. Pure functions: values in, dicts and strings out.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import click

from tostrack.errors import InputError
from tostrack.models import Change, Clause, Diff, Document


def document_json(document: Document, name: str, clause_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "file": name,
        "title": document.title,
        "effective_date": document.effective_date,
        "effective_date_text": document.effective_date_text or None,
        "effective_date_is_future": document.effective_date_is_future,
    }
    if clause_count is not None:
        data["clauses"] = clause_count
    return data


def diff_body(diff: Diff) -> dict[str, Any]:
    """The summary and changes of a diff (the shared part of `diff` and `replay` output)."""
    summary = diff.summary()
    return {"summary": summary, "changes": [c.to_json() for c in diff.changes]}


def diff_json(comparison: Any, *, old_name: str, new_name: str) -> dict[str, Any]:
    """{"old": {...}, "new": {...}, "summary": {...}, "changes": [...]} for `tostrack diff`."""
    diff: Diff = comparison.diff
    return {
        "old": document_json(comparison.old_document, old_name, len(diff.old_clauses)),
        "new": document_json(comparison.new_document, new_name, len(diff.new_clauses)),
        **diff_body(diff),
    }


def _redline_text(change: Change, color: bool) -> str:
    if not change.redline:
        side = change.new or change.old
        return " ".join(c.full_text for c in side)
    parts = []
    for op, text in change.redline:
        if op == "equal":
            parts.append(text)
        elif op == "insert":
            parts.append(click.style(f"{{+{text}+}}", fg="green") if color else f"{{+{text}+}}")
        elif op == "delete":
            parts.append(click.style(f"[-{text}-]", fg="red") if color else f"[-{text}-]")
    return "".join(parts)


def _where(change: Change) -> str:
    old = " + ".join(c.section or c.id for c in change.old)
    new = " + ".join(c.section or c.id for c in change.new)
    if old and new and old != new:
        return f"{old} → {new}"
    return new or old


def format_change(change: Change, color: bool = False) -> str:
    kind = change.kind + (" and moved" if change.moved and change.kind == "modified" else "")
    head = f"{kind.upper()}  {_where(change)}"
    if change.substantive:
        head += f"  [severity: {change.severity}]"
    else:
        head += "  (cosmetic)"
    lines = [click.style(head, bold=True) if color else head]
    if change.labels_added:
        lines.append(f"  now about: {', '.join(change.labels_added)}")
    if change.labels_removed:
        lines.append(f"  no longer about: {', '.join(change.labels_removed)}")
    if change.labels and not (change.labels_added or change.labels_removed):
        lines.append(f"  labels: {', '.join(change.labels)}")
    if change.kind == "added":
        body = " ".join(c.full_text for c in change.new)
        lines.append("  " + (click.style(f"+ {body}", fg="green") if color else f"+ {body}"))
    elif change.kind == "removed":
        body = " ".join(c.full_text for c in change.old)
        lines.append("  " + (click.style(f"- {body}", fg="red") if color else f"- {body}"))
    else:
        lines.append("  " + _redline_text(change, color))
    return "\n".join(lines) + "\n"


def format_diff_text(comparison: Any, *, show_all: bool = False, color: bool = False) -> str:
    diff: Diff = comparison.diff
    s = diff.summary()
    out = [
        (
            f"{s['substantive']} substantive change(s), {s['cosmetic']} cosmetic "
            f"(added {s['added']}, removed {s['removed']}, modified {s['modified']}, "
            f"moved {s['moved']}, "
            f"split {s['split']}, merged {s['merged']})\n"
        )
    ]
    old_date, new_date = (
        comparison.old_document.effective_date,
        comparison.new_document.effective_date,
    )
    if old_date != new_date:
        out.append(f"Effective date: {old_date or 'none'} → {new_date or 'none'}\n")
    ordered = sorted(diff.changes, key=lambda c: not c.substantive)
    for change in ordered:
        if change.substantive or show_all:
            out.append("\n" + format_change(change, color))
    if s["cosmetic"] and not show_all:
        out.append(f"\n({s['cosmetic']} cosmetic change(s) hidden; --all shows them)\n")
    return "".join(out)


# -- classify --------------------------------------------------------------------------------

_FORMATS = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
}


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def classify_document(
    file: str, input_format: str = "auto", explain: bool = False
) -> dict[str, Any]:
    """{"source": file, "clauses": [clause, ...]} for `tostrack classify FILE|-`."""
    from tostrack.extract import extract_file, extract_text
    from tostrack.pipeline import analyse

    if file == "-":
        fmt = "text" if input_format == "auto" else input_format
        document = extract_text(_read_stdin(), fmt)
    elif input_format == "auto":
        document = extract_file(file)
    else:
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror}") from None
        document = extract_text(text, input_format)
    clauses = analyse(document)
    return {
        "source": file,
        "document": document_json(document, file, len(clauses)),
        "clauses": [clause_json(c, explain) for c in clauses],
    }


def classify_record(record: dict[str, Any], explain: bool = False) -> dict[str, Any]:
    """One --jsonl record: its text split into clauses, each labelled; labels is their union.

    A record's "section" (a section path or heading trail, "Restrictions › 3.2") is read as the
    heading trail of its clauses, as it would be inside the document.
    """
    from tostrack.classify import classify_clauses, heading_parts
    from tostrack.extract import extract_text
    from tostrack.segment import segment_document

    trail = heading_parts(str(record.get("section") or ""))
    clauses = segment_document(extract_text(str(record.get("text", "")), "text"))
    clauses = classify_clauses(tuple(replace(c, heading=c.heading or trail) for c in clauses))
    labels = sorted({label for c in clauses for label in c.labels})
    out = {
        "id": record.get("id"),
        "labels": labels,
        "clauses": [clause_json(c, explain) for c in clauses],
    }
    return out


def clause_json(clause: Clause, explain: bool = False) -> dict[str, Any]:
    """A clause's JSON; with `explain`, why each label was given (and what a veto blocked)."""
    data = clause.to_json()
    if explain:
        from tostrack.classify import explain as explain_clause

        data["explain"] = [
            {
                "label": d.label,
                "by": d.by,
                "rule": d.rule or None,
                "evidence": d.evidence,
                "probability": d.probability,
                "words": [w for w, _ in d.words],
                "blocked": list(d.blocked),
            }
            for d in explain_clause(clause.text, clause.heading, clause.lead_in)
        ]
    return data


def explain_lines(explained: list[dict[str, Any]]) -> list[str]:
    """The text form of clause_json(...)["explain"], indented under the clause."""
    lines = []
    for d in explained:
        if d["by"] == "blocked":
            lines.append(f"      {d['label']}: not given; blocked {', '.join(d['blocked'])}")
            continue
        why = {
            "rule": f"rule {d['rule']}",
            "lead-in": "its lead-in states it",
            "model": "learned model",
        }[d["by"]]
        if d["probability"] is not None:
            why += f", p={d['probability']:.2f}"
        if d["words"]:
            why += f", words: {', '.join(d['words'])}"
        lines.append(f"      {d['label']}: {why}")
        lines.append(f"        evidence: {d['evidence'][:160]}")
        if d["blocked"]:
            lines.append(f"        also blocked: {', '.join(d['blocked'])}")
    return lines


def classify_jsonl_lines(stream: TextIO | Iterable[str], explain: bool = False) -> Iterator[str]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or "text" not in record:
            raise InputError(f"line {number} needs an object with 'id' and 'text'")
        yield json.dumps(classify_record(record, explain), ensure_ascii=False)
