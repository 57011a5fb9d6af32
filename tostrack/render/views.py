"""The one view layer: what a change and a diff look like to a reader, for every output.

The site, the feeds, the emails and the exports all build their change views, redlines,
headlines and label names here, so a change reads the same wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from tostrack import classify
from tostrack.models import SEVERITY_RANK, Change, Clause
from tostrack.store import StoredDiff

KIND_WORDS = {
    "added": "Added",
    "removed": "Removed",
    "modified": "Reworded",
    "moved": "Moved",
    "split": "Split",
    "merged": "Merged",
}


SEVERITY_WORDS = {
    "high": "High",
    "medium": "Medium",
    "low": "Low",
    "none": "None",
}


# What each severity means, in words a reader needs no manual for.
SEVERITY_EXPLAINED = {
    "high": "touches a clause that usually matters most to customers, such as building "
    "competing models, training on output, or the provider training on your data. Read it now.",
    "medium": "changes a restriction or contract term that may affect how you use the service. "
    "Review it soon.",
    "low": "changes a term that rarely affects customers in practice. Review it when convenient.",
    "none": "no tracked topic is affected, or only wording and layout changed.",
}


@dataclass(frozen=True)
class LabelInfo:
    id: str
    name: str
    group: str = ""
    severity: str = "low"
    definition: str = ""


def _taxonomy() -> tuple[dict[str, LabelInfo], tuple[str, ...]]:
    """Label names and the customer-restriction labels, from classify's taxonomy."""
    labels = {
        label.id: LabelInfo(
            id=label.id,
            name=label.name or label.id,
            group=label.group or "",
            severity=label.severity or "low",
            definition=label.definition or "",
        )
        for label in classify.taxonomy()
        if label.id
    }
    return labels, tuple(classify.RESTRICTION_LABELS)


def phrase(change: Change, covered: Collection[str] | None = None) -> str:
    """classify's plain-English phrase for a change ("a clause now bans ..."), or "".

    `covered`: the labels the new version still carries, when the phrase stands for the whole
    diff (a topic the new version still covers is never called gone)."""
    return classify.change_headline(change, covered) or ""


def _change_headline(change: Change, covered: Collection[str] | None = None) -> str | None:
    """The phrase as a page shows it: capitalised, None when classify has none."""
    text = phrase(change, covered)
    return text[:1].upper() + text[1:] if text else None


def headline(change: Change, covered: Collection[str] | None = None) -> str:
    """The phrase as an email subject and list shows it, never empty: classify's phrase, or
    what happened where ("a clause was added in 4.2")."""
    try:
        text = phrase(change, covered)
    except Exception:  # noqa: BLE001 - a headline is cosmetic; never lose the email for it
        text = ""
    if text:
        return str(text)
    section = section_of(change)
    verb = {"added": "added", "removed": "removed", "split": "split", "merged": "merged"}.get(
        change.kind, "changed"
    )
    return f"a clause was {verb}" + (f" in {section}" if section else "")


def section_of(change: Change) -> str:
    clauses = change.new or change.old
    return " + ".join(c.section or c.id for c in clauses)


def most_severe(changes: Sequence[Change]) -> Change | None:
    """The first of the most severe changes, in document order."""
    best: Change | None = None
    for change in changes:
        if best is None or SEVERITY_RANK.get(change.severity, 0) > SEVERITY_RANK.get(
            best.severity, 0
        ):
            best = change
    return best


def covered_labels(stored: StoredDiff) -> frozenset[str] | None:
    """The labels the clauses of the diff's new version carry (None if it cannot be read)."""
    try:
        _, clauses = stored.to_version.load()
    except (OSError, ValueError, KeyError):
        return None
    return frozenset(label for clause in clauses for label in clause.labels)


class Labels:
    """Label id -> display info; unknown ids still display (as themselves)."""

    def __init__(self) -> None:
        self.known, self.restriction = _taxonomy()

    def __getitem__(self, key: str) -> LabelInfo:
        return self.known.get(key) or LabelInfo(id=key, name=key)

    def many(self, keys: Iterable[str]) -> list[LabelInfo]:
        return [self[k] for k in keys]


def human_time(iso: str | None) -> str:
    """2026-11-25T06:45:00Z -> 25 Nov 2026, 06:45 UTC; a bare date -> 25 Nov 2026."""
    if not iso:
        return ""
    try:
        if "T" not in iso:
            day = datetime.strptime(iso[:10], "%Y-%m-%d")
            return f"{day.day} {day:%b %Y}"
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{when.day} {when:%b %Y, %H:%M} UTC"


def human_date(iso: str | None) -> str:
    return human_time(iso[:10]) if iso else ""


_OP_TAGS = {"insert": ("<ins>", "</ins>"), "delete": ("<del>", "</del>")}


def redline_html(ops: Iterable[tuple[str, str]]) -> Markup:
    """Word ops as <ins>/<del>/<span>, every text escaped (a jinja filter: fast on big pages)."""
    out = []
    for op, text in ops:
        start, end = _OP_TAGS.get(op, ("<span>", "</span>"))
        out.append(f"{start}{escape(text)}{end}")
    return Markup("".join(out))


def highlight_html(text: str, spans: Iterable[str]) -> Markup:
    """text escaped, with the first occurrence of each evidence span marked (<mark>)."""
    lowered = text.lower()
    marks: list[tuple[int, int]] = []
    for span in spans:
        at = lowered.find(span.lower()) if span else -1
        if at >= 0 and all(at >= e or at + len(span) <= b for b, e in marks):
            marks.append((at, at + len(span)))
    out, pos = [], 0
    for begin, end in sorted(marks):
        out.append(f"{escape(text[pos:begin])}<mark>{escape(text[begin:end])}</mark>")
        pos = end
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def change_labels(change: Change) -> list[str]:
    seen: dict[str, None] = {}
    for label in (*change.labels, *change.labels_added, *change.labels_removed):
        seen[label] = None
    for clause in (*change.old, *change.new):
        for label in clause.labels:
            seen[label] = None
    return list(seen)


def joined_text(clauses: Sequence[Clause]) -> str:
    return "\n".join(c.full_text for c in clauses)


def _normalise_redline(
    ops: Sequence[tuple[str, str]], new_texts: Sequence[str]
) -> list[tuple[str, str]]:
    """Ops as (op, text) with the spaces a reader expects between words.

    align.py may emit words with their whitespace (then equal+insert rebuild the new text
    exactly) or bare words; in the second case a space goes between neighbours.
    """
    ops = [(op, text) for op, text in ops if text]
    rebuilt = "".join(t for op, t in ops if op != "delete")
    if rebuilt in new_texts or not ops:
        return ops
    out: list[tuple[str, str]] = [ops[0]]
    for op, text in ops[1:]:
        prev = out[-1][1]
        if prev and not prev[-1].isspace() and not text[0].isspace():
            text = " " + text
        out.append((op, text))
    return out


def redline(change: Change) -> list[tuple[str, str]]:
    old_text, new_text = joined_text(change.old), joined_text(change.new)
    if change.redline:
        # align.py diffs the texts joined by spaces (with lead-ins); older records may differ.
        candidates = {
            sep.join(c.full_text if lead else c.text for c in change.new)
            for sep in (" ", "\n")
            for lead in (True, False)
        }
        return _normalise_redline(change.redline, tuple(candidates))
    if change.kind == "added":
        return [("insert", new_text)]
    if change.kind == "removed":
        return [("delete", old_text)]
    if old_text == new_text:
        return [("equal", new_text)]
    return [("delete", old_text), ("insert", new_text)]


def _title(change: Change) -> str:
    word = KIND_WORDS.get(change.kind, change.kind.capitalize())
    if not change.substantive and change.kind == "modified":
        return "Edited, same meaning"
    if change.kind == "split":
        return f"Split into {len(change.new)} clauses"
    if change.kind == "merged":
        return f"Merged from {len(change.old)} clauses"
    if change.kind == "modified" and change.moved:
        return "Reworded and moved"
    return word


def page_change_view(change: Change, index: int, labels: Labels) -> dict[str, Any]:
    old_section = change.old[0].section if change.old else ""
    new_section = change.new[0].section if change.new else ""
    evidence_from = change.new or change.old
    evidence = [
        {"label": labels[label], "text": text}
        for clause in evidence_from
        for label, text in clause.evidence
        if text
    ]
    ops = redline(change)
    return {
        "anchor": f"change-{index + 1}",
        "kind": change.kind,
        "title": _title(change),
        "headline": _change_headline(change) if change.substantive else None,
        "substantive": change.substantive,
        "severity": change.severity if change.severity in SEVERITY_RANK else "none",
        "section": new_section or old_section,
        "old_section": old_section,
        "new_section": new_section,
        # Only a clause that changed place "moved": a merge into an item, or "2" numbered "(2)",
        # did not.
        "section_moved": bool(
            old_section
            and new_section
            and old_section != new_section
            and (change.moved or change.kind == "moved")
        ),
        "labels": labels.many(change_labels(change)),
        "labels_added": labels.many(change.labels_added),
        "labels_removed": labels.many(change.labels_removed),
        # Topics the clause keeps (not already named as gained or lost).
        "labels_kept": labels.many(
            label
            for label in change_labels(change)
            if label not in change.labels_added and label not in change.labels_removed
        ),
        "evidence": evidence,
        "redline": ops,
        "old_ops": [(op, t) for op, t in ops if op != "insert"],
        "new_ops": [(op, t) for op, t in ops if op != "delete"],
        "old_text": joined_text(change.old),
        "new_text": joined_text(change.new),
        "clause_ids": [c.id for c in (*change.old, *change.new)],
    }


def by_severity(changes: Sequence[Change]) -> list[tuple[int, Change]]:
    """Most severe first; document order among equals (sorted() is stable)."""
    return sorted(enumerate(changes), key=lambda p: -SEVERITY_RANK.get(p[1].severity, 0))


def summary_sentence(stored: StoredDiff) -> str:
    if stored.effective_date_only:
        was = stored.from_version.effective_date
        now = stored.to_version.effective_date
        return (
            f"Only the effective date changed: {human_date(was) if was else 'none stated'}"
            f" → {human_date(now) if now else 'none stated'}; no clause changed."
        )
    subst = [c for c in stored.changes if c.substantive]
    cosmetic = len(stored.changes) - len(subst)
    parts: list[str] = []
    if subst:
        kinds = {word.lower(): 0 for word in KIND_WORDS.values()}
        for c in subst:
            word = KIND_WORDS.get(c.kind, c.kind).lower()
            kinds[word] = kinds.get(word, 0) + 1
        detail = ", ".join(f"{n} {word}" for word, n in kinds.items() if n)
        parts.append(f"{_plural(len(subst), 'change')} in meaning ({detail})")
    else:
        parts.append("No change in meaning")
    if cosmetic:
        parts.append(f"{_plural(cosmetic, 'change')} of wording or layout only")
    return "; ".join(parts) + "."


def diff_headlines(
    stored: StoredDiff, labels: Labels, covered: Collection[str] | None = None
) -> list[str]:
    """Short phrases for lists: what a reader most needs to know first.

    Only changes on a tracked topic get a phrase of their own; the others are in the summary.
    `covered`: the labels the new version's clauses carry (a topic still covered is not gone).
    """
    lines: list[str] = []
    for _, change in by_severity([c for c in stored.changes if c.substantive]):
        if not change_labels(change):
            continue
        phrase = _change_headline(change, covered)
        if phrase:
            lines.append(phrase)
            continue
        for label in change.labels_added:
            lines.append(f"A clause now covers {labels[label].name.lower()}")
        for label in change.labels_removed:
            if covered is not None and label in covered:
                lines.append(f"A clause about {labels[label].name.lower()} was rewritten")
            else:
                lines.append(f"A clause no longer covers {labels[label].name.lower()}")
        if not (change.labels_added or change.labels_removed):
            names = ", ".join(labels[label].name.lower() for label in change_labels(change))
            lines.append(f"{_title(change)}: a clause about {names}")
    if not lines:
        lines.append(summary_sentence(stored))
    unique = list(dict.fromkeys(lines))
    if len(unique) > 4:
        unique = [*unique[:3], f"and {len(unique) - 3} more on tracked topics"]
    return unique


def may_say_gone(stored: StoredDiff) -> bool:
    """Could a phrase for this diff call a topic gone? Only then is the new version read."""
    return any(c.substantive and (c.kind == "removed" or c.labels_removed) for c in stored.changes)


def diff_labels(stored: StoredDiff) -> list[str]:
    """Labels of the substantive changes: what the dashboard filters on."""
    seen: dict[str, None] = {}
    for change in stored.changes:
        if change.substantive:
            for label in change_labels(change):
                seen[label] = None
    return list(seen)


# -- the email's change view ------------------------------------------------------------------


def text_redline(ops: Sequence[tuple[str, str]]) -> str:
    """A redline in plain text: [-deleted-]{+inserted+}."""
    out = []
    for op, text in ops:
        if op == "insert":
            out.append("{+" + text + "+}")
        elif op == "delete":
            out.append("[-" + text + "-]")
        else:
            out.append(text)
    return "".join(out)


def topic_names(labels: Iterable[str], known: Labels | None = None) -> list[str]:
    """Label ids as readers know them ("competing-models" -> "Competing models")."""
    known = known or Labels()
    return [known[label].name for label in labels]


def email_change_view(change: Change, known: Labels | None = None) -> dict[str, Any]:
    """One change as the email templates show it."""
    known = known or Labels()
    ops = redline(change)
    return {
        "kind": change.kind,
        "moved": change.moved,
        "section": section_of(change),
        "headline": headline(change),
        "severity": change.severity,
        # Topic names, not ids: the reader is a lawyer, not the configuration file.
        "labels": topic_names(change.labels, known),
        "labels_added": topic_names(change.labels_added, known),
        "labels_removed": topic_names(change.labels_removed, known),
        "label_ids": list(change.labels),
        "redline": ops,
        "text_redline": " ".join(text_redline(ops).split()),
        # For chat messages and webhooks: the wording to quote, and the clauses by id.
        "new_text": joined_text(change.new),
        "old_text": joined_text(change.old),
        "clause_ids": [c.id for c in (*change.old, *change.new)],
    }
