"""The static site a legal team reads: dashboard, change reports, timelines, filter pages.

Everything lands under <workspace>/reports/:
  index.html                                   dashboard: recent changes, filters, clause matrix
  filter/severity-<s>.html, filter/label-<l>.html   the dashboard's change list, pre-filtered
                                               (filters work without JavaScript)
  changes/<provider>/<document>/<id>.html      one change report (a redline, most important first)
  changes/<provider>/<document>/<id>-side-by-side.html, <id>-inline.html   whole-document views
  documents/<provider>/<document>.html         timeline: every version, change and failure
  feed.xml, feeds/<provider>/<document>.xml    Atom feeds of substantive changes (feeds.py)
  tostrack.css                                 the one stylesheet (no external assets)

Pages are rendered from templates/ (a workspace's templates/ overrides them file by file) with
autoescaping on, so text from provider pages is always shown as text, never run as markup.
The values the templates lay out are prepared in views.py (changes), diffs.py (a recorded diff)
and pages.py (paths, the render context, atomic page writes); the templates only lay them out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tostrack.models import Clause
from tostrack.render.diffs import diff_page_values, diff_row
from tostrack.render.feeds import FEED_LIMIT, in_feed, render_feed
from tostrack.render.manifest import Manifest, digest, renderer_digest
from tostrack.render.pages import (
    Context,
    change_report_path,
    evidence_files,
    feed_path,
    filter_path,
    make_context,
    relative,
    timeline_path,
    view_path,
    write_css,
    write_if_changed,
    write_page,
)
from tostrack.render.views import SEVERITY_EXPLAINED, SEVERITY_WORDS, change_labels
from tostrack.store import DiffHeader, Store, StoredDiff, Version
from tostrack.workspace import Workspace

RECENT_LIMIT = 50  # changes on the dashboard; the filter pages and timelines list them all


def _document_rows(
    stored: StoredDiff,
    old: Sequence[Clause],
    new: Sequence[Clause],
    views: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The new document in order, with every change in place and removed clauses where they were.

    Each row: kind "same" | a change kind, old_ops / new_ops / ops (for side by side and inline),
    section, and the change anchor it belongs to (links back to the report).
    """
    change_of: dict[str, int] = {}
    for i, change in enumerate(stored.changes):
        for clause in change.new:
            change_of.setdefault(f"new:{clause.id}", i)
        for clause in change.old:
            change_of.setdefault(f"old:{clause.id}", i)
    old_by_id = {c.id: c for c in old}
    new_ids = {c.id for c in new}
    placed: set[int] = set()
    rows: list[dict[str, Any]] = []

    def change_row(i: int) -> None:
        placed.add(i)
        view = views[i]
        rows.append({**view, "row": view["kind"]})

    # Removed (and merged-away) clauses go after the last old clause that survives before them.
    after: dict[str | None, list[int]] = {}
    anchor: str | None = None
    for clause in old:
        i = change_of.get(f"old:{clause.id}")
        if i is not None and stored.changes[i].kind == "removed":
            after.setdefault(anchor, []).append(i)
        elif clause.id in new_ids:
            anchor = clause.id

    for i in after.get(None, []):
        change_row(i)
    for clause in new:
        i = change_of.get(f"new:{clause.id}")
        if i is not None:
            if i not in placed:
                change_row(i)
        else:
            before = old_by_id.get(clause.id)
            text = clause.full_text
            ops = [("equal", text)]
            rows.append(
                {
                    "row": "same",
                    "section": clause.section,
                    "old_ops": ops if before is not None else [],
                    "new_ops": ops,
                    "redline": ops,
                    "anchor": "",
                    "title": "",
                    "substantive": False,
                    "severity": "none",
                    "section_moved": False,
                    "old_section": clause.section if before is not None else "",
                    "new_section": clause.section,
                }
            )
        for j in after.get(clause.id, []):
            if j not in placed:
                change_row(j)
    # Anything not placed (ids the versions do not carry) still shows, at the end.
    for i in range(len(stored.changes)):
        if i not in placed:
            change_row(i)
    return rows


def _render_diff(ctx: Context, stored: StoredDiff) -> list[Path]:
    """The change report and its two whole-document views (the report first)."""
    page = change_report_path(ctx.reports, stored)
    pages = [page]
    values = diff_page_values(ctx, stored, page)
    write_page(
        ctx,
        "change.html",
        page,
        **values,
        evidence_from=evidence_files(stored.from_version, page),
        evidence_to=evidence_files(stored.to_version, page),
    )
    _, old = ctx.load(stored.from_version)
    _, new = ctx.load(stored.to_version)
    rows = _document_rows(stored, old, new, ctx.change_views(stored))
    for view in ("side-by-side", "inline"):
        view_page = view_path(ctx.reports, stored, view)
        pages.append(
            write_page(
                ctx,
                "document_view.html",
                view_page,
                **diff_page_values(ctx, stored, view_page),
                view=view,
                rows=rows,
            )
        )
    return pages


def render_diff(workspace: Workspace, store: Store, stored: StoredDiff) -> Path:
    """Write the change report of one recorded diff (and its whole-document views).

    Returns the report's path: reports/changes/<provider>/<document>/<diff id>.html.
    """
    ctx = make_context(workspace, store)
    write_css(ctx)
    return _render_diff(ctx, stored)[0]


def _filters(ctx: Context, diffs: Sequence[StoredDiff], page: Path) -> dict[str, Any]:
    severities = []
    for sev in ("high", "medium", "low", "none"):
        count = sum(1 for d in diffs if d.severity == sev)
        severities.append(
            {
                "id": sev,
                "name": SEVERITY_WORDS[sev],
                "count": count,
                "href": relative(filter_path(ctx.reports, "severity", sev), page),
            }
        )
    used: dict[str, int] = {}
    for d in diffs:
        for label in diff_row(ctx, d, page)["label_ids"]:
            used[label] = used.get(label, 0) + 1
    labels = [
        {
            "id": label,
            "name": ctx.labels[label].name,
            "count": n,
            "href": relative(filter_path(ctx.reports, "label", label), page),
        }
        for label, n in sorted(used.items(), key=lambda kv: ctx.labels[kv[0]].name.lower())
    ]
    return {
        "severities": severities,
        "labels": labels,
        "all_href": relative(ctx.reports / "index.html", page) + "#changes",
    }


def _last_label_change(
    diffs_oldest_first: Sequence[StoredDiff], label: str
) -> tuple[str | None, StoredDiff | None]:
    last: tuple[str | None, StoredDiff | None] = (None, None)
    for stored in diffs_oldest_first:
        if any(c.substantive and label in change_labels(c) for c in stored.changes):
            last = (stored.detected_at, stored)
    return last


def _matrix(ctx: Context, page: Path, by_source: dict[str, list[StoredDiff]]) -> dict[str, Any]:
    columns = ctx.labels.many(ctx.labels.restriction)
    rows = []
    for source_id in ctx.store.tracked_source_ids():
        current = ctx.store.current_version(source_id)
        if current is None:
            continue
        _, clauses = ctx.load(current)
        first = ctx.store.versions(source_id)[0]
        history = list(reversed(by_source.get(source_id, [])))
        cells = []
        for label in columns:
            found = [c for c in clauses if label.id in c.labels]
            changed_at, stored = _last_label_change(history, label.id)
            cells.append(
                {
                    "label": label,
                    "present": bool(found),
                    "clauses": [
                        {
                            "section": c.section,
                            "text": c.full_text,
                            "evidence": [t for lab, t in c.evidence if lab == label.id and t],
                        }
                        for c in found
                    ],
                    "changed_at": changed_at,
                    "changed_href": relative(change_report_path(ctx.reports, stored), page)
                    if stored
                    else "",
                    "since": first.captured_at,
                }
            )
        rows.append(
            {
                "source_id": source_id,
                "title": ctx.title(source_id),
                "captured_at": current.captured_at,
                "href": relative(timeline_path(ctx.reports, source_id), page),
                "cells": cells,
            }
        )
    return {"columns": columns, "rows": rows}


def _documents(ctx: Context, page: Path) -> list[dict[str, Any]]:
    out = []
    states = {s["id"]: s for s in ctx.store.all_source_states()}
    ids = sorted(set(ctx.store.tracked_source_ids()) | set(states))
    for source_id in ids:
        state = states.get(source_id, {})
        current = ctx.store.current_version(source_id)
        out.append(
            {
                "source_id": source_id,
                "title": ctx.title(source_id),
                "url": ctx.urls.get(source_id, ""),
                "captured_at": current.captured_at if current else "",
                "effective_date": current.effective_date if current else None,
                "last_checked_at": state.get("last_checked_at") or "",
                "failures": int(state.get("consecutive_failures") or 0),
                "failure_reason": state.get("last_failure_reason") or "",
                "href": relative(timeline_path(ctx.reports, source_id), page),
            }
        )
    return out


def _render_timeline(ctx: Context, source_id: str, diffs: Sequence[StoredDiff]) -> Path:
    page = timeline_path(ctx.reports, source_id)
    # One event per version, carrying the change that produced it, plus one per failure.
    produced_by = {d.to_version.id: d for d in diffs}
    events: list[dict[str, Any]] = []
    for n, version in enumerate(ctx.store.versions(source_id)):
        stored = produced_by.get(version.id)
        events.append(
            {
                "kind": "change" if stored else "version",
                "first": n == 0,
                "at": version.captured_at,
                "version": version,
                "evidence": evidence_files(version, page),
                "diff": diff_row(ctx, stored, page) if stored else None,
            }
        )
    for failure in ctx.store.failures(source_id, limit=10_000):
        events.append({"kind": "failure", "at": failure.at, "failure": failure})
    events.sort(key=lambda e: e["at"], reverse=True)  # newest first (sort is stable)
    current = ctx.store.current_version(source_id)
    _, clauses = ctx.load(current) if current else (None, ())
    labelled = [
        {
            "section": c.section,
            "text": c.full_text,
            "labels": ctx.labels.many(c.labels),
            "evidence": [t for _, t in c.evidence if t],
        }
        for c in clauses
        if c.labels
    ]
    return write_page(
        ctx,
        "timeline.html",
        page,
        source_id=source_id,
        title=ctx.title(source_id),
        url=ctx.urls.get(source_id, ""),
        events=events,
        current=current,
        labelled_clauses=labelled,
        feed_href=relative(feed_path(ctx.reports, source_id), page),
    )


class _Diffs:
    """The recorded diffs, each read in full (its changes) only when a page showing it is
    rendered: with nothing new, a render reads none."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.headers = store.diff_headers()  # newest first, as store.diffs()
        self.loaded: dict[int, StoredDiff] = {}

    def full(self, headers: Sequence[DiffHeader]) -> list[StoredDiff]:
        for header in headers:
            if header.id not in self.loaded:
                self.loaded[header.id] = self.store.diff(header.id)
        return [self.loaded[h.id] for h in headers]


def _feed_headers(headers: Sequence[DiffHeader]) -> list[DiffHeader]:
    """The diffs a feed quotes (render_feed keeps these, newest first, and no others)."""
    return [h for h in headers if in_feed(h)][:FEED_LIMIT]


def render_site(workspace: Workspace, store: Store) -> Path:
    """Bring every page and feed under reports/ up to date; returns reports/index.html.

    Only the pages whose inputs changed since the last render are rendered and written (see
    manifest.py); the files are the same bytes a full render writes.
    """
    ctx = make_context(workspace, store)
    manifest = Manifest.read(ctx.reports)
    renderer = renderer_digest(
        workspace.templates_dir, ctx.settings, ctx.reports, workspace.snapshots_dir
    )
    diffs = _Diffs(store)
    versions: dict[str, list[Version]] = {}
    for version in store.all_versions():
        versions.setdefault(version.source_id, []).append(version)
    version_by_id = {v.id: v for vs in versions.values() for v in vs}
    headers_of: dict[str, list[DiffHeader]] = {}
    for header in diffs.headers:
        headers_of.setdefault(header.source_id, []).append(header)
    states = store.all_source_states()
    failures = store.failure_marks()
    sources = sorted(set(versions) | {s["id"] for s in states})

    def unit(name: str, unit_digest: str, render: Callable[[], Sequence[Path]]) -> None:
        if not manifest.current(name, unit_digest):
            manifest.record(name, unit_digest, render())

    unit("css", digest(renderer, "css"), lambda: [write_css(ctx)])
    # One document at a time, so its versions and change views are computed once.
    for source_id in sources:
        mine = headers_of.get(source_id, [])
        shown = (ctx.title(source_id), ctx.urls.get(source_id, ""))
        history = [repr(v) for v in versions.get(source_id, [])]
        for header in mine:
            sides = (version_by_id.get(header.from_version), version_by_id.get(header.to_version))
            unit(
                f"change:{header.id}",
                digest(renderer, "change", header.fingerprint, repr(sides), shown),
                lambda header=header: _render_diff(ctx, diffs.full([header])[0]),
            )
        changes = [h.fingerprint for h in mine]
        unit(
            f"timeline:{source_id}",
            digest(
                renderer, "timeline", source_id, shown, history, changes, failures.get(source_id)
            ),
            lambda: [_render_timeline(ctx, source_id, diffs.full(mine))],
        )
        unit(
            f"feed:{source_id}",
            digest(renderer, "feed", source_id, shown, history, changes),
            lambda: [
                render_feed(
                    ctx,
                    feed_path(ctx.reports, source_id),
                    f"{ctx.title(source_id)}: changes in meaning",
                    source_id,
                    diffs.full(_feed_headers(mine)),
                )
            ],
        )
    # What the site-wide pages show of every document: titles, versions and diffs.
    everything = digest(
        renderer,
        sorted(ctx.titles.items()),
        sorted(ctx.urls.items()),
        [repr(v) for vs in versions.values() for v in vs],
        [h.fingerprint for h in diffs.headers],
    )
    unit(
        "feed",
        digest(everything, "feed"),
        lambda: [
            render_feed(
                ctx,
                ctx.reports / "feed.xml",
                "Terms changes in meaning, all documents",
                "all",
                diffs.full(_feed_headers(diffs.headers)),
            )
        ],
    )
    index = ctx.reports / "index.html"
    # The dashboard also shows each source's last check and failure streak.
    unit(
        "index",
        digest(everything, "index", [sorted(s.items()) for s in states]),
        lambda: [_render_index(ctx, store, diffs.full(diffs.headers), index)],
    )
    unit("filters", digest(everything, "filters"), lambda: _render_filters(ctx, diffs))
    write_if_changed(manifest.path(), manifest.to_bytes())  # last: pages first, then claims
    return index


def _render_index(ctx: Context, store: Store, diffs: Sequence[StoredDiff], index: Path) -> Path:
    by_source: dict[str, list[StoredDiff]] = {}
    for stored in diffs:
        by_source.setdefault(stored.source_id, []).append(stored)
    failing = [s for s in store.all_source_states() if (s.get("consecutive_failures") or 0) > 0]
    values = {
        "documents": _documents(ctx, index),
        "matrix": _matrix(ctx, index, by_source),
        "changes": [diff_row(ctx, d, index) for d in diffs[: ctx.settings.recent_changes]],
        "dashboard_title": ctx.settings.title,
        "total_changes": len(diffs),
        "substantive_count": sum(1 for d in diffs if d.substantive),
        "failing": len(failing),
        "filters": _filters(ctx, diffs, index),
        "feed_href": relative(ctx.reports / "feed.xml", index),
        "active_filter": None,
    }
    return write_page(ctx, "index.html", index, **values)


def _render_filters(ctx: Context, lazy: _Diffs) -> list[Path]:
    """The dashboard's change list by severity and by topic (every topic some change has)."""
    diffs = lazy.full(lazy.headers)
    index = ctx.reports / "index.html"
    pages = []
    for sev in ("high", "medium", "low", "none"):
        page = filter_path(ctx.reports, "severity", sev)
        chosen = [d for d in diffs if d.severity == sev]
        pages.append(
            _render_filter(
                ctx,
                page,
                f"{SEVERITY_WORDS[sev]} severity",
                sev,
                chosen,
                diffs,
                SEVERITY_EXPLAINED[sev],
            )
        )
    labels_used = {label for d in diffs for label in diff_row(ctx, d, index)["label_ids"]}
    for label in sorted(labels_used):
        page = filter_path(ctx.reports, "label", label)
        chosen = [d for d in diffs if label in diff_row(ctx, d, index)["label_ids"]]
        info = ctx.labels[label]
        pages.append(_render_filter(ctx, page, info.name, label, chosen, diffs, info.definition))
    return pages


def _render_filter(
    ctx: Context,
    page: Path,
    name: str,
    value: str,
    chosen: Sequence[StoredDiff],
    all_diffs: Sequence[StoredDiff],
    explanation: str,
) -> Path:
    return write_page(
        ctx,
        "filtered.html",
        page,
        filter_name=name,
        filter_value=value,
        explanation=explanation,
        changes=[diff_row(ctx, d, page) for d in chosen],
        filters=_filters(ctx, all_diffs, page),
        active_filter=value,
    )
