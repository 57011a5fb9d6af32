"""Labels on changes: which topics a change touches, its severity, and its headline."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from tostrack.classify.taxonomy import (
    _RANK_NAME,
    SEVERITY_RANK,
    Label,
    _by_id,
    _label_order,
    taxonomy,
)
from tostrack.models import Change, Diff


def _severity_map(overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Each label's severity: the taxonomy's, with a workspace's [severity] overrides (checked
    by tostrack.config, the one place that knows what tostrack.toml may hold)."""
    from tostrack.config import check_severity

    table = {label.id: label.severity for label in taxonomy()}
    table.update(check_severity(overrides) if overrides else {})
    return table


def _ordered(labels: set[str]) -> tuple[str, ...]:
    order = _label_order()
    return tuple(sorted(labels, key=lambda label: order.get(label, len(order))))


def label_changes(diff: Diff, severity: Mapping[str, str] | None = None) -> Diff:
    """Set labels, labels_added/removed and severity on every change of `diff`.

    A change's labels are the union of its old and new clauses' labels. Severity is "none" for a
    cosmetic change, else the highest severity of its labels ("low" with no label at all).
    `severity` overrides the taxonomy defaults per label id (a workspace's [severity] table).
    """
    table = _severity_map(severity)
    changes = []
    for change in diff.changes:
        old = {label for clause in change.old for label in clause.labels}
        new = {label for clause in change.new for label in clause.labels}
        both = old | new
        if not change.substantive:
            level = "none"
        elif both:
            level = _RANK_NAME[max(SEVERITY_RANK[table.get(label, "low")] for label in both)]
        else:
            level = "low"
        changes.append(
            replace(
                change,
                labels=_ordered(both),
                labels_added=_ordered(new - old) if change.new else (),
                labels_removed=_ordered(old - new) if change.old else (),
                severity=level,
            )
        )
    return Diff(tuple(changes), diff.old_clauses, diff.new_clauses)


def _most_severe(labels: Sequence[str]) -> Label | None:
    by_id = _by_id()
    known = [by_id[label] for label in labels if label in by_id]
    if not known:
        return None
    # max() keeps the first of equals, so ties go to taxonomy order (labels are ordered).
    return max(known, key=lambda label: SEVERITY_RANK.get(label.severity, 0))


def change_headline(change: Change) -> str:
    """A plain-English phrase for an alert subject, led by the most severe label involved."""
    if change.kind == "added":
        label = _most_severe(change.labels_added or change.labels)
        if label is None:
            return "a new clause was added"
        if label.group == "customer-restriction":
            return f"a new clause {label.headline}"
        return f"a new clause about {label.topic}"
    if change.kind == "removed":
        label = _most_severe(change.labels_removed or change.labels)
        return f"a clause about {label.topic} was removed" if label else "a clause was removed"
    added, removed = _most_severe(change.labels_added), _most_severe(change.labels_removed)
    if added and (
        removed is None or SEVERITY_RANK[added.severity] >= SEVERITY_RANK[removed.severity]
    ):
        return f"a clause now {added.headline}"
    if removed:
        return f"a clause no longer {removed.headline}"
    label = _most_severe(change.labels)
    what = f"a clause about {label.topic}" if label else "a clause"
    flip = _negation_flip(change)
    if flip and change.substantive:
        # "We do not train on your content" -> "We may train on your content" keeps its label
        # but reverses its meaning: say so rather than "reworded".
        return f"{what} changed: a negation was {flip}"
    verb = {"moved": "was moved", "split": "was split", "merged": "was merged"}.get(
        change.kind, "was reworded"
    )
    return f"{what} {verb}"


_NEGATION = re.compile(r"\b(?:not|never|no longer|cannot|won't|don't|doesn't|will not|may not)\b|n't\b",
                       re.IGNORECASE)


def _negation_flip(change: Change) -> str:
    """"removed" or "added" when the old and new wording differ in how many negations they hold."""
    old = sum(len(_NEGATION.findall(c.full_text)) for c in change.old)
    new = sum(len(_NEGATION.findall(c.full_text)) for c in change.new)
    if old == new or not change.old or not change.new:
        return ""
    return "removed" if new < old else "added"
