"""A recorded diff as the change report, the dashboard and the feeds show it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tostrack.models import SEVERITY_RANK, Clause
from tostrack.render.pages import (
    Context,
    change_report_path,
    feed_path,
    relative,
    timeline_path,
    view_path,
)
from tostrack.render.views import (
    by_severity,
    diff_headlines,
    diff_labels,
    may_say_gone,
    summary_sentence,
)
from tostrack.store import StoredDiff

KEY_CHANGES_LIMIT = 25  # entries in a report's list of key changes; the full list follows it


def _topics(clauses: Sequence[Clause]) -> set[str]:
    return {label for clause in clauses for label in clause.labels}


def _kept(stored: StoredDiff) -> set[str]:
    """Topics a rewritten clause keeps (modified, split or merged, and not removed from it)."""
    return {
        label
        for c in stored.changes
        if c.substantive and c.old and c.new
        for label in c.labels
        if label not in c.labels_removed
    }


def diff_page_values(ctx: Context, stored: StoredDiff, page: Path) -> dict[str, Any]:
    doc, new_clauses = ctx.load(stored.to_version)
    _, old_clauses = ctx.load(stored.from_version)
    views = ctx.change_views(stored)
    ordered = [views[i] for i, _ in by_severity(stored.changes)]
    substantive = [v for v in ordered if v["substantive"]]
    cosmetic = [v for v in ordered if not v["substantive"]]
    # Key changes: what a reader must see first (a topic gained or lost, or medium and above).
    key = [
        c
        for c in substantive
        if c["labels_added"] or c["labels_removed"] or c["severity"] in ("high", "medium")
    ]
    old_topics, new_topics = _topics(old_clauses), _topics(new_clauses)
    report = change_report_path(ctx.reports, stored)
    return {
        "diff": stored,
        "source_id": stored.source_id,
        "title": ctx.title(stored.source_id),
        "url": ctx.urls.get(stored.source_id, ""),
        "from_version": stored.from_version,
        "to_version": stored.to_version,
        "effective_date": stored.to_version.effective_date,
        "previous_effective_date": stored.from_version.effective_date,
        "effective_date_text": getattr(doc, "effective_date_text", "") if doc else "",
        "effective_date_is_future": bool(doc and doc.effective_date_is_future),
        "effective_date_only": stored.effective_date_only,
        "redirect": stored.to_version.redirect,  # fetched from another host than declared
        "summary": summary_sentence(stored),
        "overall_severity": stored.severity if stored.severity in SEVERITY_RANK else "none",
        # Document level: topics the whole document covers now but did not before, and back.
        "topics_gained": ctx.labels.many(sorted(new_topics - old_topics)),
        # A topic whose clause was rewritten and still speaks of it is not lost (classify
        # keeps it on the change), even where the new clause carries no label of its own.
        "topics_lost": ctx.labels.many(sorted(old_topics - new_topics - _kept(stored))),
        "key_changes": key[:KEY_CHANGES_LIMIT],
        "key_changes_more": max(0, len(key) - KEY_CHANGES_LIMIT),
        "topic_changes": [c for c in substantive if c["labels"]],
        "other_changes": [c for c in substantive if not c["labels"]],
        "substantive_changes": substantive,
        "cosmetic_changes": cosmetic,
        "report_href": relative(report, page),
        "side_href": relative(view_path(ctx.reports, stored, "side-by-side"), page),
        "inline_href": relative(view_path(ctx.reports, stored, "inline"), page),
        "timeline_href": relative(timeline_path(ctx.reports, stored.source_id), page),
        "feed_href": relative(feed_path(ctx.reports, stored.source_id), page),
    }


def diff_row(ctx: Context, stored: StoredDiff, page: Path) -> dict[str, Any]:
    if stored.id not in ctx.rows:
        ctx.rows[stored.id] = {
            "id": stored.id,
            "source_id": stored.source_id,
            "title": ctx.title(stored.source_id),
            "detected_at": stored.detected_at,
            "severity": stored.severity if stored.severity in SEVERITY_RANK else "none",
            "substantive": stored.substantive,
            "effective_date_only": stored.effective_date_only,
            "redirect": stored.to_version.redirect,
            "summary": summary_sentence(stored),
            "headline": diff_headlines(
                stored,
                ctx.labels,
                _topics(ctx.load(stored.to_version)[1]) if may_say_gone(stored) else None,
            ),
            "labels": ctx.labels.many(diff_labels(stored)),
            "label_ids": diff_labels(stored),
        }
    return {
        **ctx.rows[stored.id],
        "href": relative(change_report_path(ctx.reports, stored), page),
        "timeline_href": relative(timeline_path(ctx.reports, stored.source_id), page),
    }
