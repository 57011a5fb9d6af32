"""Atom feeds: feed.xml for every document, feeds/<provider>/<document>.xml for one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from tostrack.render.diffs import diff_page_values, diff_row
from tostrack.render.pages import (
    Context,
    change_report_path,
    relative,
    render_template,
    write_if_changed,
)
from tostrack.store import DiffHeader, StoredDiff

# Characters XML 1.0 forbids even when escaped (form feeds and the like come out of PDFs).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


FEED_LIMIT = 100  # newest entries per feed; feed readers keep what they have seen


FEED_ENTRY_CHANGES = 30  # changes quoted in one feed entry; the report has them all


def _entry_id(stored: StoredDiff) -> str:
    # Stable across re-renders and unique per recorded change: feed readers dedupe on it.
    name = f"tostrack:{stored.source_id}:{stored.id}:{stored.to_version.snapshot_sha256}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def render_feed(
    ctx: Context, path: Path, title: str, feed_id: str, diffs: Sequence[StoredDiff]
) -> Path:
    """Write one feed of `diffs` (newest first): those worth an entry, FEED_LIMIT at most."""
    diffs = [d for d in diffs if in_feed(d)][:FEED_LIMIT]
    base_url = ctx.settings.base_url
    entries = []
    for stored in diffs:
        report = change_report_path(ctx.reports, stored)
        href = (
            base_url + quote(report.relative_to(ctx.reports).as_posix())
            if base_url
            else relative(report, path)
        )
        if stored.id not in ctx.entries:
            values = diff_page_values(ctx, stored, report)
            ctx.entries[stored.id] = render_template(
                ctx, "feed_entry.html", **values, entry_limit=FEED_ENTRY_CHANGES
            )
        row = diff_row(ctx, stored, path)
        entries.append(
            {
                "id": _entry_id(stored),
                "title": f"{row['title']}: {row['headline'][0]}",
                "updated": stored.detected_at,
                "href": href,
                "content": ctx.entries[stored.id],
                "labels": row["labels"],
                "severity": row["severity"],
            }
        )
    updated = max((d.detected_at for d in diffs), default="1970-01-01T00:00:00Z")
    self_href = base_url + quote(path.relative_to(ctx.reports).as_posix()) if base_url else ""
    xml = render_template(
        ctx,
        "feed.xml",
        title=title,
        feed_id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'tostrack:feed:' + feed_id)}",
        updated=updated,
        entries=entries,
        self_href=self_href,
        home_href=base_url + "index.html"
        if base_url
        else relative(ctx.reports / "index.html", path),
    )
    write_if_changed(path, _xml_safe(xml).encode("utf-8"))
    return path


def in_feed(stored: StoredDiff | DiffHeader) -> bool:
    """Changes in meaning, and moves of the effective date (a legal fact, never silent)."""
    return stored.substantive or stored.effective_date_only
