"""Clause classification: which topics a clause governs, with the evidence for each label.

    from tostrack.classify import classify_text
    classify_text("You may not scrape the service.")  # (("data-extraction", "scrape"),)

The taxonomy (data/labels.toml) says what each label means; the rules (rules.py and its data)
say which wording triggers a label; changes.py turns clause labels into change labels,
severity and headlines. Pure: no network, no files except the packaged data, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tostrack.classify.changes import change_headline, label_changes
from tostrack.classify.rules import heading_context, match_rules
from tostrack.classify.taxonomy import RESTRICTION_LABELS, SEVERITY_RANK, Label, taxonomy
from tostrack.models import Clause

__all__ = [
    "RESTRICTION_LABELS", "SEVERITY_RANK", "Label", "change_headline", "classify_clauses",
    "classify_text", "heading_context", "label_changes", "taxonomy",
]


def classify_text(text: str) -> tuple[tuple[str, str], ...]:
    """(label id, evidence) for each label the text carries, in taxonomy order.

    The evidence is the exact span of `text` that triggered the label.
    """
    return match_rules(text)


def classify_clauses(clauses: Sequence[Clause]) -> tuple[Clause, ...]:
    """Copies of the clauses with labels and evidence set.

    An enumeration item is read with its lead-in ("You may not" + "scrape the service"), but a
    label needs evidence that touches the item itself: the lead-in alone would put the same label
    on every item. The heading trail is weak context only (see `weak` rules).
    """
    out = []
    for clause in clauses:
        lead = len(clause.lead_in) + 1 if clause.lead_in else 0
        found = match_rules(clause.full_text, clause.heading, lead)
        out.append(
            replace(clause, labels=tuple(label for label, _ in found), evidence=tuple(found))
        )
    return tuple(out)
