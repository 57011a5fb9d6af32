"""Which pages of the site are current: reports/.tostrack-pages.json.

The site is made of units (a change report and its two whole-document views, a timeline, a
feed, the dashboard, the filter pages, the stylesheet). For each unit the manifest keeps a digest
of everything the unit shows (store rows, titles, settings, and the renderer: tostrack's version,
its templates and the code that lays pages out) and the size and modification time of each file
written for it. A unit whose digest is unchanged and whose files are still the ones written is
neither rendered nor written; any other is rendered as a full render would render it. A missing
or unreadable manifest only means that every unit is rendered once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import tostrack
from tostrack.config import ReportConfig
from tostrack.templating import packaged_templates

MANIFEST_NAME = ".tostrack-pages.json"
FORMAT = 1

PACKAGE = Path(tostrack.__file__).resolve().parent
# The code a page's bytes depend on besides its templates: a change here (an edit in a source
# checkout, where the version number stays the same) re-renders every page.
# (email.py and chat.py render messages, not pages.)
RENDERER_FILES = (
    *(
        PACKAGE / "render" / name
        for name in ("diffs.py", "feeds.py", "manifest.py", "pages.py", "site.py", "views.py")
    ),
    PACKAGE / "templating.py",
    PACKAGE / "models.py",
    PACKAGE / "store" / "codecs.py",
    PACKAGE / "store" / "store.py",
    PACKAGE / "classify" / "taxonomy.py",
    PACKAGE / "classify" / "data" / "labels.toml",
)


def digest(*parts: object) -> str:
    """A digest of values whose repr is stable (strings, numbers, tuples, frozen dataclasses)."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


def _files_under(folder: Path) -> list[Path]:
    """The templates in folder (the package's __init__.py and bytecode are not templates)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


def renderer_digest(templates: Path, settings: ReportConfig, reports: Path, evidence: Path) -> str:
    """What every page depends on: tostrack's version and code, the packaged templates and the
    workspace's overrides, [report] settings, and where the site and the evidence folder sit
    (links from one to the other are relative)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(tostrack.__version__.encode())
    h.update(repr((settings, str(reports), str(evidence))).encode("utf-8"))
    for label, files in (
        ("code", RENDERER_FILES),
        ("packaged", _files_under(packaged_templates())),
        ("override", _files_under(templates)),
    ):
        for file in files:
            h.update(f"\0{label}:{file.name}\0".encode())
            try:
                h.update(file.read_bytes())
            except OSError:
                h.update(b"(unreadable)")
    return h.hexdigest()


class Manifest:
    """The manifest of one site folder, read at the start of a render, written at its end."""

    def __init__(self, reports: Path, units: dict[str, dict]) -> None:
        self.reports = reports
        self.previous = units
        self.units: dict[str, dict] = {}  # what the site holds after this render

    @classmethod
    def read(cls, reports: Path) -> Manifest:
        try:
            data = json.loads((reports / MANIFEST_NAME).read_text(encoding="utf-8"))
            units = data["units"] if data.get("format") == FORMAT else {}
            if not isinstance(units, dict):
                units = {}
        except (OSError, ValueError, KeyError, AttributeError):
            units = {}
        return cls(reports, units)

    def _stat(self, relative: str) -> list[int] | None:
        try:
            info = (self.reports / relative).stat()
        except OSError:
            return None
        return [info.st_size, info.st_mtime_ns]

    def current(self, unit: str, unit_digest: str) -> bool:
        """True when the unit was written from these inputs and its files are untouched since;
        it is then kept as it is."""
        entry = self.previous.get(unit)
        if not isinstance(entry, dict) or entry.get("digest") != unit_digest:
            return False
        files = entry.get("files")
        if not isinstance(files, dict) or not files:
            return False
        if any(self._stat(name) != stat for name, stat in files.items()):
            return False  # deleted, or written since by something else (an older tostrack)
        self.units[unit] = entry
        return True

    def files(self, unit: str) -> list[str]:
        """The files the unit had when last written (the filter pages vary in number)."""
        entry = self.previous.get(unit)
        return list(entry.get("files", {})) if isinstance(entry, dict) else []

    def record(self, unit: str, unit_digest: str, pages: Iterable[Path]) -> None:
        files = {}
        for page in pages:
            name = page.relative_to(self.reports).as_posix()
            stat = self._stat(name)
            if stat is not None:
                files[name] = stat
        self.units[unit] = {"digest": unit_digest, "files": files}

    def path(self) -> Path:
        return self.reports / MANIFEST_NAME

    def to_bytes(self) -> bytes:
        """The manifest after this render, to be written once every page is."""
        data = json.dumps({"format": FORMAT, "units": self.units}, sort_keys=True, indent=0)
        return data.encode("utf-8")
