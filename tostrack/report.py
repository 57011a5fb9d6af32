"""The static site a legal team reads, the Atom feeds, and exports of clauses and changes.

Everything lands under <workspace>/reports/:
  index.html                                   dashboard: recent changes, filters, clause matrix
  filter/severity-<s>.html, filter/label-<l>.html   the dashboard's change list, pre-filtered
                                               (filters work without JavaScript)
  changes/<provider>/<document>/<id>.html      one change report (a redline, most important first)
  changes/<provider>/<document>/<id>-side-by-side.html, <id>-inline.html   whole-document views
  documents/<provider>/<document>.html         timeline: every version, change and failure
  feed.xml, feeds/<provider>/<document>.xml    Atom feeds of substantive changes
  tostrack.css                                 the one stylesheet (no external assets)

Pages are rendered from templates/ (a workspace's templates/ overrides them file by file) with
autoescaping on, so text from provider pages is always shown as text, never run as markup.
This module prepares plain values for the templates; the templates only lay them out.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tomllib
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from tostrack.config import ReportConfig
from tostrack.errors import ConfigError, InputError, StorageError
from tostrack.models import SEVERITY_RANK, Change, Clause
from tostrack.store import Store, StoredDiff, Version, write_atomic
from tostrack.templating import environment
from tostrack.workspace import Workspace

CSS_NAME = "tostrack.css"
RECENT_LIMIT = 50  # changes on the dashboard; the filter pages and timelines list them all


class ReportSettings(ReportConfig):
    """The [report] table of tostrack.toml (tostrack.config.ReportConfig, checked on open)."""

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> ReportConfig:
        return workspace.config.report


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


# -- the taxonomy, read lazily (tostrack.classify may not be importable in every checkout) -------


@dataclass(frozen=True)
class LabelInfo:
    id: str
    name: str
    group: str = ""
    severity: str = "low"
    definition: str = ""


def _field(item: Any, key: str, default: str = "") -> str:
    if isinstance(item, dict):
        value = item.get(key, default)
    else:
        value = getattr(item, key, default)
    return str(value) if value is not None else default


def _taxonomy() -> tuple[dict[str, LabelInfo], tuple[str, ...]]:
    """Label names and the customer-restriction labels, from classify or its data file."""
    items: list[tuple[str, Any]] | None = None
    restriction: tuple[str, ...] | None = None
    try:
        from tostrack import classify

        found = classify.taxonomy()
        items = (
            list(found.items())
            if isinstance(found, dict)
            else [(_field(label, "id"), label) for label in found]
        )
        restriction = tuple(classify.RESTRICTION_LABELS)
    except (ImportError, AttributeError, TypeError):
        items = None
    if items is None:
        data = (resources.files("tostrack.classify") / "data" / "labels.toml").read_bytes()
        items = list(tomllib.loads(data.decode("utf-8")).items())
    labels = {
        key: LabelInfo(
            id=key,
            name=_field(item, "name", key) or key,
            group=_field(item, "group"),
            severity=_field(item, "severity", "low"),
            definition=_field(item, "definition"),
        )
        for key, item in items
        if key
    }
    if restriction is None:
        restriction = tuple(k for k, v in labels.items() if v.group == "customer-restriction")
    return labels, restriction


def _change_headline(change: Change, covered: Collection[str] | None = None) -> str | None:
    """classify's plain-English phrase for a change ("a clause now bans ..."), if available.

    `covered`: the labels the new version still carries, when the phrase stands for the whole
    diff (a topic the new version still covers is never called gone)."""
    try:
        from tostrack.classify import change_headline
    except ImportError:
        return None
    phrase = change_headline(change, covered)
    return phrase[:1].upper() + phrase[1:] if phrase else None


class _Labels:
    """Label id -> display info; unknown ids still display (as themselves)."""

    def __init__(self) -> None:
        self.known, self.restriction = _taxonomy()

    def __getitem__(self, key: str) -> LabelInfo:
        return self.known.get(key) or LabelInfo(id=key, name=key)

    def many(self, keys: Iterable[str]) -> list[LabelInfo]:
        return [self[k] for k in keys]


# -- small formatting helpers ----------------------------------------------------------------


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


def _segments(source_id: str) -> list[str]:
    """provider/document -> path parts that always stay inside reports/."""
    parts = [s for s in source_id.split("/") if s not in ("", ".", "..")]
    return parts or ["unnamed"]


def _rel(target: Path, page: Path) -> str:
    """A link from page to target, usable from file:// and from any web server."""
    return quote(Path(os.path.relpath(target, page.parent)).as_posix())


# -- where pages live ------------------------------------------------------------------------


def change_report_path(reports: Path, stored: StoredDiff) -> Path:
    return reports.joinpath("changes", *_segments(stored.source_id), f"{stored.id}.html")


def _view_path(reports: Path, stored: StoredDiff, view: str) -> Path:
    return reports.joinpath("changes", *_segments(stored.source_id), f"{stored.id}-{view}.html")


def timeline_path(reports: Path, source_id: str) -> Path:
    parts = _segments(source_id)
    return reports.joinpath("documents", *parts[:-1], f"{parts[-1]}.html")


def feed_path(reports: Path, source_id: str) -> Path:
    parts = _segments(source_id)
    return reports.joinpath("feeds", *parts[:-1], f"{parts[-1]}.xml")


def _filter_path(reports: Path, kind: str, value: str) -> Path:
    return reports / "filter" / f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '-', value)}.html"


# -- view models: plain values the templates lay out ------------------------------------------


def _change_labels(change: Change) -> list[str]:
    seen: dict[str, None] = {}
    for label in (*change.labels, *change.labels_added, *change.labels_removed):
        seen[label] = None
    for clause in (*change.old, *change.new):
        for label in clause.labels:
            seen[label] = None
    return list(seen)


def _joined(clauses: Sequence[Clause]) -> str:
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


def _redline(change: Change) -> list[tuple[str, str]]:
    old_text, new_text = _joined(change.old), _joined(change.new)
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


def _change_view(change: Change, index: int, labels: _Labels) -> dict[str, Any]:
    old_section = change.old[0].section if change.old else ""
    new_section = change.new[0].section if change.new else ""
    evidence_from = change.new or change.old
    evidence = [
        {"label": labels[label], "text": text}
        for clause in evidence_from
        for label, text in clause.evidence
        if text
    ]
    ops = _redline(change)
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
        "section_moved": bool(old_section and new_section and old_section != new_section
                              and (change.moved or change.kind == "moved")),
        "labels": labels.many(_change_labels(change)),
        "labels_added": labels.many(change.labels_added),
        "labels_removed": labels.many(change.labels_removed),
        # Topics the clause keeps (not already named as gained or lost).
        "labels_kept": labels.many(
            label for label in _change_labels(change)
            if label not in change.labels_added and label not in change.labels_removed
        ),
        "evidence": evidence,
        "redline": ops,
        "old_ops": [(op, t) for op, t in ops if op != "insert"],
        "new_ops": [(op, t) for op, t in ops if op != "delete"],
        "old_text": _joined(change.old),
        "new_text": _joined(change.new),
        "clause_ids": [c.id for c in (*change.old, *change.new)],
    }


def _order(changes: Sequence[Change]) -> list[tuple[int, Change]]:
    """Most severe first; document order among equals (sorted() is stable)."""
    return sorted(enumerate(changes), key=lambda p: -SEVERITY_RANK.get(p[1].severity, 0))


def _summary_sentence(stored: StoredDiff) -> str:
    if stored.effective_date_only:
        return (
            f"Only the effective date changed: {human_date(stored.from_version.effective_date) if stored.from_version.effective_date else 'none stated'}"
            f" → {human_date(stored.to_version.effective_date) if stored.to_version.effective_date else 'none stated'}; no clause changed."
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


def _headline(
    stored: StoredDiff, labels: _Labels, covered: Collection[str] | None = None
) -> list[str]:
    """Short phrases for lists: what a reader most needs to know first.

    Only changes on a tracked topic get a phrase of their own; the others are in the summary.
    `covered`: the labels the new version's clauses carry (a topic still covered is not gone).
    """
    lines: list[str] = []
    for _, change in _order([c for c in stored.changes if c.substantive]):
        if not _change_labels(change):
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
            names = ", ".join(labels[label].name.lower() for label in _change_labels(change))
            lines.append(f"{_title(change)}: a clause about {names}")
    if not lines:
        lines.append(_summary_sentence(stored))
    unique = list(dict.fromkeys(lines))
    if len(unique) > 4:
        unique = [*unique[:3], f"and {len(unique) - 3} more on tracked topics"]
    return unique


def _may_say_gone(stored: StoredDiff) -> bool:
    """Could a phrase for this diff call a topic gone? Only then is the new version read."""
    return any(c.substantive and (c.kind == "removed" or c.labels_removed) for c in stored.changes)


def _diff_labels(stored: StoredDiff) -> list[str]:
    """Labels of the substantive changes: what the dashboard filters on."""
    seen: dict[str, None] = {}
    for change in stored.changes:
        if change.substantive:
            for label in _change_labels(change):
                seen[label] = None
    return list(seen)


def _recent(cache: dict[int, Any], key: int, make: Any, size: int = 16) -> Any:
    """A tiny LRU: pages of one document come together, so a few entries suffice."""
    if key in cache:
        cache[key] = cache.pop(key)  # most recently used goes last
    else:
        cache[key] = make()
        if len(cache) > size:
            del cache[next(iter(cache))]
    return cache[key]


@dataclass
class _Context:
    workspace: Workspace
    store: Store
    env: jinja2.Environment
    labels: _Labels
    titles: dict[str, str]
    urls: dict[str, str]
    settings: ReportConfig
    loaded: dict[int, tuple[Any, tuple[Clause, ...]]] = field(default_factory=dict)
    views: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # small: kept for all diffs
    entries: dict[int, str] = field(default_factory=dict)  # feed entry HTML by diff id

    def load(self, version: Version) -> tuple[Any, tuple[Clause, ...]]:
        """A version's document and clauses, read once per render."""
        return _recent(self.loaded, version.id, lambda: _load_version(version))

    def change_views(self, stored: StoredDiff) -> list[dict[str, Any]]:
        """The view of each change of a diff, in document order (a report, two views, feeds)."""
        return _recent(
            self.views,
            stored.id,
            lambda: [_change_view(c, i, self.labels) for i, c in enumerate(stored.changes)],
        )

    @property
    def reports(self) -> Path:
        return self.workspace.reports_dir

    def title(self, source_id: str) -> str:
        return self.titles.get(source_id) or source_id


def _context(workspace: Workspace, store: Store) -> _Context:
    titles: dict[str, str] = {}
    urls: dict[str, str] = {}
    for state in store.all_source_states():
        titles[state["id"]] = state.get("title") or ""
        urls[state["id"]] = _web_url(state.get("url") or "")
    for source_id in store.tracked_source_ids():
        if not titles.get(source_id):
            current = store.current_version(source_id)
            titles[source_id] = (current.title if current else "") or source_id
    env = environment(workspace.templates_dir)
    # Globals, not render values: imported macros see globals but not the caller's context.
    env.globals.update(
        severity_words=SEVERITY_WORDS,
        severity_explained=SEVERITY_EXPLAINED,
        human_time=human_time,
        human_date=human_date,
    )
    env.filters["redline"] = redline_html
    env.filters["highlight"] = highlight_html
    return _Context(
        workspace=workspace,
        store=store,
        env=env,
        labels=_Labels(),
        titles=titles,
        urls=urls,
        settings=ReportSettings.from_workspace(workspace),
    )


def _render(ctx: _Context, template: str, **values: Any) -> str:
    """Render one template; a broken workspace override is the user's to fix, so say where."""
    try:
        return ctx.env.get_template(template).render(**values)
    except jinja2.TemplateError as exc:
        override = ctx.workspace.templates_dir / template
        where = (
            f"your override {override}"
            if override.exists()
            else f"the template {template} (or a workspace override it uses)"
        )
        line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise ConfigError(
            f"cannot render {template}: {exc.message or exc}{line}. Fix {where}, or delete the "
            "override to use the packaged template."
        ) from None


def _write(path: Path, data: bytes) -> None:
    try:
        # Unchanged pages are left alone: re-rendering a big site costs no fsyncs for them.
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return
        write_atomic(path, data)
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}. Check the free space and permissions "
            "of the reports folder, or write the site elsewhere: tostrack report --output DIR."
        ) from None


def _page(ctx: _Context, template: str, path: Path, **values: Any) -> Path:
    common = {
        "css": _rel(ctx.reports / CSS_NAME, path),
        "home": _rel(ctx.reports / "index.html", path),
    }
    html = _render(ctx, template, **common, **values)
    _write(path, html.encode("utf-8"))
    return path


# Characters XML 1.0 forbids even when escaped (form feeds and the like come out of PDFs).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


def _web_url(url: str) -> str:
    """Only http(s) addresses become links; anything else is shown as text."""
    return url if url.lower().startswith(("http://", "https://")) else ""


def _evidence_files(version: Version, page: Path) -> list[dict[str, Any]]:
    """The raw snapshot files of a version with their sha256: the legal evidence."""
    try:
        meta = {m.get("file"): m for m in version.snapshot_meta()}
    except (OSError, ValueError, KeyError):
        meta = {}
    files = []
    for raw in version.raw_files():
        m = meta.get(raw.name, {})
        files.append(
            {
                "name": raw.name,
                "href": _rel(raw, page),
                "url": m.get("url", ""),
                "fetched_at": m.get("fetched_at", version.captured_at),
                "status": m.get("status", ""),
                "sha256": m.get("sha256", ""),
                "bytes": m.get("bytes", raw.stat().st_size if raw.exists() else 0),
                "extracted": False,
            }
        )
    text = version.path / "version.txt"
    return files + (
        [{"name": "version.txt", "href": _rel(text, page), "url": "", "fetched_at": "",
          "status": "", "sha256": "", "bytes": text.stat().st_size, "extracted": True}]
        if text.exists()
        else []
    )


def _load_version(version: Version) -> tuple[Any, tuple[Clause, ...]]:
    try:
        return version.load()
    except (OSError, ValueError, KeyError):
        return None, ()


# -- whole-document views --------------------------------------------------------------------


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


# -- rendering -------------------------------------------------------------------------------


FEED_LIMIT = 100  # newest entries per feed; feed readers keep what they have seen
FEED_ENTRY_CHANGES = 30  # changes quoted in one feed entry; the report has them all
KEY_CHANGES_LIMIT = 25  # entries in a report's list of key changes; the full list follows it


def _topics(clauses: Sequence[Clause]) -> set[str]:
    return {label for clause in clauses for label in clause.labels}


def _kept(stored: StoredDiff) -> set[str]:
    """Topics a rewritten clause keeps (modified, split or merged, and not removed from it)."""
    return {label for c in stored.changes if c.substantive and c.old and c.new
            for label in c.labels if label not in c.labels_removed}


def _diff_page_values(ctx: _Context, stored: StoredDiff, page: Path) -> dict[str, Any]:
    doc, new_clauses = ctx.load(stored.to_version)
    _, old_clauses = ctx.load(stored.from_version)
    views = ctx.change_views(stored)
    ordered = [views[i] for i, _ in _order(stored.changes)]
    substantive = [v for v in ordered if v["substantive"]]
    cosmetic = [v for v in ordered if not v["substantive"]]
    # Key changes: what a reader must see first (a topic gained or lost, or medium and above).
    key = [
        c for c in substantive
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
        "summary": _summary_sentence(stored),
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
        "report_href": _rel(report, page),
        "side_href": _rel(_view_path(ctx.reports, stored, "side-by-side"), page),
        "inline_href": _rel(_view_path(ctx.reports, stored, "inline"), page),
        "timeline_href": _rel(timeline_path(ctx.reports, stored.source_id), page),
        "feed_href": _rel(feed_path(ctx.reports, stored.source_id), page),
    }


def _render_diff(ctx: _Context, stored: StoredDiff) -> Path:
    page = change_report_path(ctx.reports, stored)
    values = _diff_page_values(ctx, stored, page)
    _page(
        ctx,
        "change.html",
        page,
        **values,
        evidence_from=_evidence_files(stored.from_version, page),
        evidence_to=_evidence_files(stored.to_version, page),
    )
    _, old = ctx.load(stored.from_version)
    _, new = ctx.load(stored.to_version)
    rows = _document_rows(stored, old, new, ctx.change_views(stored))
    for view in ("side-by-side", "inline"):
        view_page = _view_path(ctx.reports, stored, view)
        _page(
            ctx,
            "document_view.html",
            view_page,
            **_diff_page_values(ctx, stored, view_page),
            view=view,
            rows=rows,
        )
    _write_css(ctx)
    return page


def _write_css(ctx: _Context) -> None:
    _write(ctx.reports / CSS_NAME, _render(ctx, CSS_NAME).encode("utf-8"))


def render_diff(workspace: Workspace, store: Store, stored: StoredDiff) -> Path:
    """Write the change report of one recorded diff (and its whole-document views).

    Returns the report's path: reports/changes/<provider>/<document>/<diff id>.html.
    """
    return _render_diff(_context(workspace, store), stored)


def _diff_row(ctx: _Context, stored: StoredDiff, page: Path) -> dict[str, Any]:
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
            "summary": _summary_sentence(stored),
            "headline": _headline(stored, ctx.labels, _topics(ctx.load(stored.to_version)[1])
                                  if _may_say_gone(stored) else None),
            "labels": ctx.labels.many(_diff_labels(stored)),
            "label_ids": _diff_labels(stored),
        }
    return {
        **ctx.rows[stored.id],
        "href": _rel(change_report_path(ctx.reports, stored), page),
        "timeline_href": _rel(timeline_path(ctx.reports, stored.source_id), page),
    }


def _filters(ctx: _Context, diffs: Sequence[StoredDiff], page: Path) -> dict[str, Any]:
    severities = []
    for sev in ("high", "medium", "low", "none"):
        count = sum(1 for d in diffs if d.severity == sev)
        severities.append(
            {"id": sev, "name": SEVERITY_WORDS[sev], "count": count,
             "href": _rel(_filter_path(ctx.reports, "severity", sev), page)}
        )
    used: dict[str, int] = {}
    for d in diffs:
        for label in _diff_row(ctx, d, page)["label_ids"]:
            used[label] = used.get(label, 0) + 1
    labels = [
        {"id": label, "name": ctx.labels[label].name, "count": n,
         "href": _rel(_filter_path(ctx.reports, "label", label), page)}
        for label, n in sorted(used.items(), key=lambda kv: ctx.labels[kv[0]].name.lower())
    ]
    return {"severities": severities, "labels": labels,
            "all_href": _rel(ctx.reports / "index.html", page) + "#changes"}


def _last_label_change(
    diffs_oldest_first: Sequence[StoredDiff], label: str
) -> tuple[str | None, StoredDiff | None]:
    last: tuple[str | None, StoredDiff | None] = (None, None)
    for stored in diffs_oldest_first:
        if any(c.substantive and label in _change_labels(c) for c in stored.changes):
            last = (stored.detected_at, stored)
    return last


def _matrix(
    ctx: _Context, page: Path, by_source: dict[str, list[StoredDiff]]
) -> dict[str, Any]:
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
                        {"section": c.section, "text": c.full_text,
                         "evidence": [t for lab, t in c.evidence if lab == label.id and t]}
                        for c in found
                    ],
                    "changed_at": changed_at,
                    "changed_href": _rel(change_report_path(ctx.reports, stored), page)
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
                "href": _rel(timeline_path(ctx.reports, source_id), page),
                "cells": cells,
            }
        )
    return {"columns": columns, "rows": rows}


def _documents(ctx: _Context, page: Path) -> list[dict[str, Any]]:
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
                "href": _rel(timeline_path(ctx.reports, source_id), page),
            }
        )
    return out


def _render_timeline(ctx: _Context, source_id: str, diffs: Sequence[StoredDiff]) -> Path:
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
                "evidence": _evidence_files(version, page),
                "diff": _diff_row(ctx, stored, page) if stored else None,
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
    return _page(
        ctx,
        "timeline.html",
        page,
        source_id=source_id,
        title=ctx.title(source_id),
        url=ctx.urls.get(source_id, ""),
        events=events,
        current=current,
        labelled_clauses=labelled,
        feed_href=_rel(feed_path(ctx.reports, source_id), page),
    )


# -- Atom ------------------------------------------------------------------------------------


def _entry_id(stored: StoredDiff) -> str:
    # Stable across re-renders and unique per recorded change: feed readers dedupe on it.
    name = f"tostrack:{stored.source_id}:{stored.id}:{stored.to_version.snapshot_sha256}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def _render_feed(
    ctx: _Context, path: Path, title: str, feed_id: str, diffs: Sequence[StoredDiff]
) -> Path:
    base_url = ctx.settings.base_url
    entries = []
    for stored in diffs:
        report = change_report_path(ctx.reports, stored)
        href = (
            base_url + quote(report.relative_to(ctx.reports).as_posix())
            if base_url
            else _rel(report, path)
        )
        if stored.id not in ctx.entries:
            values = _diff_page_values(ctx, stored, report)
            ctx.entries[stored.id] = _render(
                ctx, "feed_entry.html", **values, entry_limit=FEED_ENTRY_CHANGES
            )
        row = _diff_row(ctx, stored, path)
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
    xml = _render(
        ctx,
        "feed.xml",
        title=title,
        feed_id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'tostrack:feed:' + feed_id)}",
        updated=updated,
        entries=entries,
        self_href=self_href,
        home_href=base_url + "index.html" if base_url else _rel(ctx.reports / "index.html", path),
    )
    _write(path, _xml_safe(xml).encode("utf-8"))
    return path


# -- the whole site --------------------------------------------------------------------------


def _in_feed(stored: StoredDiff) -> bool:
    """Changes in meaning, and moves of the effective date (a legal fact, never silent)."""
    return stored.substantive or stored.effective_date_only


def render_site(workspace: Workspace, store: Store) -> Path:
    """Re-render every page and feed under reports/; returns reports/index.html."""
    ctx = _context(workspace, store)
    _write_css(ctx)
    diffs = store.diffs()  # newest first
    by_source: dict[str, list[StoredDiff]] = {}
    for stored in diffs:
        by_source.setdefault(stored.source_id, []).append(stored)
    sources = sorted(set(store.tracked_source_ids()) | {s["id"] for s in store.all_source_states()})
    # One document at a time, so its versions and change views are computed once.
    for source_id in sources:
        mine = by_source.get(source_id, [])
        for stored in mine:
            _render_diff(ctx, stored)
        _render_timeline(ctx, source_id, mine)
        _render_feed(
            ctx,
            feed_path(ctx.reports, source_id),
            f"{ctx.title(source_id)}: changes in meaning",
            source_id,
            [d for d in mine if _in_feed(d)][:FEED_LIMIT],
        )
    _render_feed(
        ctx, ctx.reports / "feed.xml", "Terms changes in meaning, all documents", "all",
        [d for d in diffs if _in_feed(d)][:FEED_LIMIT],
    )

    index = ctx.reports / "index.html"
    failing = [s for s in store.all_source_states() if (s.get("consecutive_failures") or 0) > 0]
    values = {
        "documents": _documents(ctx, index),
        "matrix": _matrix(ctx, index, by_source),
        "changes": [_diff_row(ctx, d, index) for d in diffs[: ctx.settings.recent_changes]],
        "dashboard_title": ctx.settings.title,
        "total_changes": len(diffs),
        "substantive_count": sum(1 for d in diffs if d.substantive),
        "failing": len(failing),
        "filters": _filters(ctx, diffs, index),
        "feed_href": _rel(ctx.reports / "feed.xml", index),
        "active_filter": None,
    }
    _page(ctx, "index.html", index, **values)

    for sev in ("high", "medium", "low", "none"):
        page = _filter_path(ctx.reports, "severity", sev)
        chosen = [d for d in diffs if d.severity == sev]
        _render_filter(ctx, page, f"{SEVERITY_WORDS[sev]} severity", sev, chosen, diffs,
                       SEVERITY_EXPLAINED[sev])
    labels_used = {label for d in diffs for label in _diff_row(ctx, d, index)["label_ids"]}
    for label in sorted(labels_used):
        page = _filter_path(ctx.reports, "label", label)
        chosen = [d for d in diffs if label in _diff_row(ctx, d, index)["label_ids"]]
        info = ctx.labels[label]
        _render_filter(ctx, page, info.name, label, chosen, diffs, info.definition)
    return index


def _render_filter(
    ctx: _Context,
    page: Path,
    name: str,
    value: str,
    chosen: Sequence[StoredDiff],
    all_diffs: Sequence[StoredDiff],
    explanation: str,
) -> Path:
    return _page(
        ctx,
        "filtered.html",
        page,
        filter_name=name,
        filter_value=value,
        explanation=explanation,
        changes=[_diff_row(ctx, d, page) for d in chosen],
        filters=_filters(ctx, all_diffs, page),
        active_filter=value,
    )


# -- export ----------------------------------------------------------------------------------

CLAUSE_FIELDS = ("source", "clause_id", "section", "text", "labels", "captured_at")
CHANGE_FIELDS = (
    "source", "diff_id", "detected_at", "kind", "substantive", "severity", "labels",
    "labels_added", "labels_removed", "section", "old_text", "new_text",
)


def _clause_records(store: Store) -> list[dict[str, Any]]:
    records = []
    for source_id in store.tracked_source_ids():
        current = store.current_version(source_id)
        if current is None:
            continue
        try:
            _, clauses = current.load()
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(
                f"cannot read {current.path / 'version.json'}: {exc}. The snapshot folder is "
                "damaged or was moved; restore it from a backup."
            ) from None
        for clause in clauses:
            records.append(
                {
                    "source": source_id,
                    "clause_id": clause.id,
                    "section": clause.section,
                    "text": clause.full_text,
                    "labels": list(clause.labels),
                    "captured_at": current.captured_at,
                }
            )
    return records


def _change_records(store: Store) -> list[dict[str, Any]]:
    records = []
    for stored in reversed(store.diffs()):  # oldest first: the order things happened
        for change in stored.changes:
            side = change.new or change.old
            records.append(
                {
                    "source": stored.source_id,
                    "diff_id": stored.id,
                    "detected_at": stored.detected_at,
                    "kind": change.kind,
                    "substantive": change.substantive,
                    "severity": change.severity,
                    "labels": _change_labels(change),
                    "labels_added": list(change.labels_added),
                    "labels_removed": list(change.labels_removed),
                    "section": side[0].section if side else "",
                    "old_text": _joined(change.old),
                    "new_text": _joined(change.new),
                }
            )
    return records


def export_records(store: Store, what: str, fmt: str) -> str:
    """Every current clause ("clauses") or every recorded change ("changes"), as json or csv.

    CSV puts lists (labels) in one cell joined by "; " and booleans as true/false.
    """
    if what == "clauses":
        records, fields = _clause_records(store), CLAUSE_FIELDS
    elif what == "changes":
        records, fields = _change_records(store), CHANGE_FIELDS
    else:
        raise InputError(f"cannot export {what!r}: choose clauses or changes")
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if fmt != "csv":
        raise InputError(f"unknown export format {fmt!r}: choose json or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_cell(record[k]) for k in fields})
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)
