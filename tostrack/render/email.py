"""A recorded diff as the emails show it (the site's view is in diffs.py; both are built from
views.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tostrack.models import SEVERITY_RANK, Change
from tostrack.render.views import (
    covered_labels,
    email_change_view,
    headline,
    human_date,
    most_severe,
)
from tostrack.store import Store, StoredDiff
from tostrack.workspace import Workspace

MAX_ATTACHMENT = 5 * 1024 * 1024


def _evidence(stored: StoredDiff) -> list[dict[str, Any]]:
    try:
        meta = stored.to_version.snapshot_meta()
    except (OSError, ValueError, KeyError):
        meta = []
    if not meta:
        return [
            {
                "url": "",
                "sha256": stored.to_version.snapshot_sha256,
                "fetched_at": stored.to_version.captured_at,
            }
        ]
    return [
        {
            "url": m.get("url", ""),
            "sha256": m.get("sha256", ""),
            "fetched_at": m.get("fetched_at", ""),
        }
        for m in meta
    ]


def _title(store: Store, stored: StoredDiff) -> str:
    state = store.source_state(stored.source_id) or {}
    return state.get("title") or stored.to_version.title or stored.source_id


def attachable(report_path: Path | str) -> Path | None:
    if not report_path:
        return None
    path = Path(report_path)
    try:
        return path if path.is_file() and path.stat().st_size <= MAX_ATTACHMENT else None
    except OSError:
        return None


def _report_uri(report_path: Path | str, workspace: Workspace | None = None) -> str:
    """The change report's address: under [report] base_url when the reports are published."""
    if not report_path:
        return ""
    if workspace is not None:
        base = workspace.config.report.base_url  # checked: empty or http(s), ending in "/"
        if isinstance(base, str) and base.lower().startswith(("http://", "https://")):
            from urllib.parse import quote

            try:
                rel = Path(report_path).resolve().relative_to(workspace.reports_dir.resolve())
            except ValueError:
                rel = None
            if rel is not None:
                return base.rstrip("/") + "/" + quote(rel.as_posix())
    try:
        return Path(report_path).resolve().as_uri()
    except ValueError:
        return ""


def diff_view(
    store: Store,
    stored: StoredDiff,
    report_path: Path | str,
    changes: Sequence[Change],
    workspace: Workspace | None = None,
) -> dict[str, Any]:
    """Everything the change templates show about one recorded diff."""
    title = _title(store, stored)
    substantive = [c for c in stored.changes if c.substantive]
    top = most_severe(changes)
    covered = covered_labels(stored) if top else None
    # Most severe first, document order within a severity: the reader may stop early.
    ordered = sorted(changes, key=lambda c: -SEVERITY_RANK.get(c.severity, 0))
    effective = stored.to_version.effective_date
    return {
        "title": title,
        "source_id": stored.source_id,
        "headline": headline(top, covered) if top else "",
        "covered": covered,
        "severity": top.severity if top else "none",
        "changes": [email_change_view(c) for c in ordered],
        # The same changes as `tostrack diff --format json` writes them (for JSON webhooks).
        "records": [c.to_json() for c in ordered],
        "other_changes": max(0, len(substantive) - len(changes)),
        "cosmetic": sum(1 for c in stored.changes if not c.substantive),
        "effective_date": effective,
        # Announced for a day after the change was seen: the current terms apply until then.
        "effective_in_future": bool(effective and effective > stored.detected_at[:10]),
        "previous_effective_date": stored.from_version.effective_date,
        "detected_at": stored.detected_at,
        "previous_captured_at": stored.from_version.captured_at,
        "report_path": str(report_path) if report_path else "",
        "report_uri": _report_uri(report_path, workspace),
        "effective_date_only": stored.effective_date_only,
        "attached": attachable(report_path) is not None,
        "evidence": _evidence(stored),
    }


# -- the opening a lawyer acts on --------------------------------------------------------------

ADVICE = {
    "high": "It touches what usually matters most to customers: read it now.",
    "medium": "It may affect how you use the service: review it soon.",
    "low": "It rarely affects customers in practice: review it when convenient.",
    "none": "",
}


def clause_name(section: str) -> str:
    """How a sentence names a clause: "2 Use › 2.3" -> "clause 2.3"."""
    parts = [part.strip() for part in section.split("+")[0].split("›")] if section else []
    last = parts[-1] if parts else ""
    if not last:
        return "the changed clause"
    if last.startswith("(") and len(parts) > 1:  # "4 Inputs › (1)" -> "clause 4(1)"
        parent = parts[-2].split()[0] if parts[-2] else ""
        return f"clause {parent}{last}" if parent[:1].isdigit() else f"clause {last}"
    return f"clause {last}" if last[:1].isdigit() or last[:1] == "(" else f"“{last}”"


def action_sentence(change: dict[str, Any]) -> str:
    """What to do, in one sentence: "Read clause 4.2: it now allows …"."""
    where = clause_name(change.get("section", ""))
    words = change.get("headline", "")
    if words.startswith("a clause now "):
        return f"Read {where}: it now {words.removeprefix('a clause now ')}."
    if words.startswith("a clause no longer "):
        return f"Read {where}: it no longer {words.removeprefix('a clause no longer ')}."
    if words.startswith("a new clause "):
        return f"Read the new {where}: it {words.removeprefix('a new clause ')}."
    return f"Read {where}: {words}." if words else f"Read {where}."


def effective_sentence(view: dict[str, Any]) -> str:
    """The effective date in a sentence, plainly when it is still to come."""
    date = view.get("effective_date")
    if not date:
        return ""
    when = human_date(date)
    if view.get("effective_in_future"):
        try:
            days = (
                datetime.fromisoformat(date[:10]) - datetime.fromisoformat(view["detected_at"][:10])
            ).days
        except (KeyError, ValueError):
            days = 0
        ahead = f" ({days} day{'s' if days != 1 else ''} after the change was seen)" if days else ""
        return (
            f"The new terms of {view['title']} take effect on {when}{ahead}; until then the "
            "current terms apply."
        )
    if view.get("previous_effective_date") and view["previous_effective_date"] != date:
        return f"{view['title']} is now effective as of {when}."
    return f"{view['title']} is effective as of {when}."


def opening(views: list[dict[str, Any]]) -> dict[str, Any]:
    """The top of a change email: what changed (a line per document), what to do (the most
    severe change first), and the effective dates said plainly."""
    ranked = sorted(views, key=lambda v: -SEVERITY_RANK.get(v["severity"], 0))
    top_view = ranked[0]
    top = top_view["changes"][0] if top_view["changes"] else {}
    action = action_sentence(top) if top else ""
    if top and len(views) > 1:
        action = f"In {top_view['title']}: {action[:1].lower()}{action[1:]}"
    advice = ADVICE.get(top.get("severity", "none"), "") if top else ""
    return {
        "what_changed": [
            {
                "title": v["title"],
                "count": len(v["changes"]),
                "severity": v["severity"],
                "headline": v["headline"],
            }
            for v in views
        ],
        "action": action,
        "advice": advice,
        "dates": [s for s in (effective_sentence(v) for v in views) if s],
    }
