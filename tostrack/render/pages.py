"""Where the site's pages live, and how one is rendered and written.

A render keeps a Context: the workspace, the templates, label names, and small caches of what
one document's pages share (its versions, its change views).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from tostrack.config import ReportConfig
from tostrack.errors import ConfigError, StorageError
from tostrack.models import Clause
from tostrack.render.views import (
    SEVERITY_EXPLAINED,
    SEVERITY_WORDS,
    Labels,
    highlight_html,
    human_date,
    human_time,
    page_change_view,
    redline_html,
)
from tostrack.store import Store, StoredDiff, Version, write_atomic
from tostrack.templating import environment
from tostrack.workspace import Workspace

CSS_NAME = "tostrack.css"


class ReportSettings(ReportConfig):
    """The [report] table of tostrack.toml (tostrack.config.ReportConfig, checked on open)."""

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> ReportConfig:
        return workspace.config.report


def _segments(source_id: str) -> list[str]:
    """provider/document -> path parts that always stay inside reports/."""
    parts = [s for s in source_id.split("/") if s not in ("", ".", "..")]
    return parts or ["unnamed"]


def relative(target: Path, page: Path) -> str:
    """A link from page to target, usable from file:// and from any web server."""
    return quote(Path(os.path.relpath(target, page.parent)).as_posix())


def change_report_path(reports: Path, stored: StoredDiff) -> Path:
    return reports.joinpath("changes", *_segments(stored.source_id), f"{stored.id}.html")


def view_path(reports: Path, stored: StoredDiff, view: str) -> Path:
    return reports.joinpath("changes", *_segments(stored.source_id), f"{stored.id}-{view}.html")


def timeline_path(reports: Path, source_id: str) -> Path:
    parts = _segments(source_id)
    return reports.joinpath("documents", *parts[:-1], f"{parts[-1]}.html")


def feed_path(reports: Path, source_id: str) -> Path:
    parts = _segments(source_id)
    return reports.joinpath("feeds", *parts[:-1], f"{parts[-1]}.xml")


def filter_path(reports: Path, kind: str, value: str) -> Path:
    return reports / "filter" / f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '-', value)}.html"


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
class Context:
    workspace: Workspace
    store: Store
    env: jinja2.Environment
    labels: Labels
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
            lambda: [page_change_view(c, i, self.labels) for i, c in enumerate(stored.changes)],
        )

    @property
    def reports(self) -> Path:
        return self.workspace.reports_dir

    def title(self, source_id: str) -> str:
        return self.titles.get(source_id) or source_id


def make_context(workspace: Workspace, store: Store) -> Context:
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
    return Context(
        workspace=workspace,
        store=store,
        env=env,
        labels=Labels(),
        titles=titles,
        urls=urls,
        settings=ReportSettings.from_workspace(workspace),
    )


def render_template(ctx: Context, template: str, **values: Any) -> str:
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


# A site is served by a web server running as another user: pages readable by all, folders
# traversable by all (both less the umask, as for any file the user makes).
PAGE_MODE = 0o644
FOLDER_MODE = 0o755


def current_umask() -> int:
    """This process's umask, read without changing it (os.umask sets it, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_folders(folder: Path) -> None:
    """mkdir -p, each new folder with FOLDER_MODE (mkdir's parents=True ignores the mode)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(mode=FOLDER_MODE, exist_ok=True)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write a page atomically unless it already holds data; True when it was written."""
    try:
        # Unchanged pages are left alone: re-rendering a big site costs no fsyncs for them.
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            wanted = PAGE_MODE & ~current_umask()
            if path.stat().st_mode & 0o777 != wanted:
                path.chmod(wanted)  # a page an older tostrack wrote private (0600)
            return False
        make_folders(path.parent)
        write_atomic(path, data, mode=PAGE_MODE)
        return True
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}. Check the free space and permissions "
            "of the reports folder, or write the site elsewhere: tostrack report --output DIR."
        ) from None


def write_page(ctx: Context, template: str, path: Path, **values: Any) -> Path:
    common = {
        "css": relative(ctx.reports / CSS_NAME, path),
        "home": relative(ctx.reports / "index.html", path),
    }
    html = render_template(ctx, template, **common, **values)
    write_if_changed(path, html.encode("utf-8"))
    return path


def _web_url(url: str) -> str:
    """Only http(s) addresses become links; anything else is shown as text."""
    return url if url.lower().startswith(("http://", "https://")) else ""


def evidence_files(version: Version, page: Path) -> list[dict[str, Any]]:
    """The raw snapshot files of a version with their sha256: the legal evidence."""
    try:
        entries = version.raw_entries()
    except (OSError, ValueError, KeyError):  # snapshot.json unreadable: the raw files alone
        entries = [({}, raw) for raw in version.raw_files()]
    files = []
    for i, (m, raw) in enumerate(entries):
        files.append(
            {
                # an object's name is its sha256 (shown beside it): call it by its place
                "name": m.get("file") or f"raw-{i}{raw.suffix}",
                "href": relative(raw, page),
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
        [
            {
                "name": "version.txt",
                "href": relative(text, page),
                "url": "",
                "fetched_at": "",
                "status": "",
                "sha256": "",
                "bytes": text.stat().st_size,
                "extracted": True,
            }
        ]
        if text.exists()
        else []
    )


def _load_version(version: Version) -> tuple[Any, tuple[Clause, ...]]:
    try:
        return version.load()
    except (OSError, ValueError, KeyError):
        return None, ()


def write_css(ctx: Context) -> Path:
    path = ctx.reports / CSS_NAME
    write_if_changed(path, render_template(ctx, CSS_NAME).encode("utf-8"))
    return path
