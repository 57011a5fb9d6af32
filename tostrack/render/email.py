"""A recorded diff as the emails show it (the site's view is in diffs.py; both are built from
views.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tostrack.models import SEVERITY_RANK, Change
from tostrack.render.views import covered_labels, email_change_view, headline, most_severe
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
    return {
        "title": title,
        "source_id": stored.source_id,
        "headline": headline(top, covered) if top else "",
        "covered": covered,
        "severity": top.severity if top else "none",
        # Most severe first, document order within a severity: the reader may stop early.
        "changes": [
            email_change_view(c)
            for c in sorted(changes, key=lambda c: -SEVERITY_RANK.get(c.severity, 0))
        ],
        "other_changes": max(0, len(substantive) - len(changes)),
        "cosmetic": sum(1 for c in stored.changes if not c.substantive),
        "effective_date": stored.to_version.effective_date,
        "previous_effective_date": stored.from_version.effective_date,
        "detected_at": stored.detected_at,
        "previous_captured_at": stored.from_version.captured_at,
        "report_path": str(report_path) if report_path else "",
        "report_uri": _report_uri(report_path, workspace),
        "effective_date_only": stored.effective_date_only,
        "attached": attachable(report_path) is not None,
        "evidence": _evidence(stored),
    }
