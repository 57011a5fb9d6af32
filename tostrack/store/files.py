"""The files of a workspace's snapshots/ folder: atomic writes, capture folders read back.

A capture folder is snapshots/<provider>/<document>/<stamp>/ holding snapshot.json, version.json
and version.txt, its raw bodies kept once per sha256 beside (tostrack.store.evidence; older
captures hold raw-N files themselves). tostrack.store.store writes them.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tostrack.models import Clause, Document, Snapshot
from tostrack.store.codecs import clause_from_json, document_from_json, read_json


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write data so that path holds either its old content or all of data, never a mix.

    The file is private to this user (0600) unless `mode` says otherwise; a mode is applied
    less the umask, as for any new file (0o644 gives a page a web server can read).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    else:
        fd, tmp = _new_temporary(path, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_unsynced(path: Path, data: bytes) -> int:
    """Create path (it must not exist) holding data, private to this user (0600); returns the
    open descriptor, for the caller to fsync and close.

    Only for a file in a folder no one reads until it is renamed into place complete (a capture
    folder being written): there a write needs no temporary name of its own."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def _new_temporary(path: Path, mode: int) -> tuple[int, str]:
    """A new file beside path, created with `mode` (the kernel takes the umask off)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:  # a name another writer drew: draw again
            continue


# A raw body stored once per content under the evidence folder (see tostrack.store.evidence).
OBJECTS = "sha256"
OBJECT_NAME = re.compile(r"sha256/[0-9a-f]{2}/[0-9a-f]{64}\.[A-Za-z0-9]{1,10}")


def raw_path(folder: Path, evidence: Path | None, meta: Mapping[str, Any]) -> Path:
    """Where one raw body of a capture is: its object, or (older captures) a file beside it.

    ValueError for a snapshot.json entry naming neither, or a path outside the evidence."""
    if "object" in meta:
        name = str(meta["object"])
        if evidence is None or not OBJECT_NAME.fullmatch(name):
            raise ValueError(f"{folder / 'snapshot.json'} names an object {name!r}")
        return evidence / name
    name = str(meta["file"])
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{folder / 'snapshot.json'} names a raw file {name!r}")
    return folder / name


def stamp(iso: str) -> str:
    """2026-11-25T06:45:00Z -> 2026-11-25T06-45-00Z (safe in file names, sorts by time)."""
    return iso.replace(":", "-")


def capture_order(captured_at: str, folder: Path) -> tuple[str, int]:
    """Which of two captures of a source came later: the time, then, within one second, the
    folder's place (<stamp>, <stamp>.2, <stamp>.3, ... in the order they were written)."""
    _, dot, number = folder.name.rpartition(".")
    return captured_at, int(number) if dot and _FOLDER_NUMBER.fullmatch(number) else 1


_FOLDER_NUMBER = re.compile(r"[1-9][0-9]*")  # what _stamp_folder appends; not "²", "02" or "0"


def capture_folders(snapshots_dir: Path) -> list[Path]:
    """Every capture folder under snapshots/ that holds an extracted version, oldest first.

    (Folders of raw bytes that extracted to an already stored version have no version.json.)
    """
    if not snapshots_dir.is_dir():
        return []
    found = []
    # os.walk rather than rglob: every run and import starts with this walk (recovery.reconcile)
    for where, folders, files in os.walk(snapshots_dir):
        folders[:] = [name for name in folders if not name.startswith(".")]  # being written
        if "version.json" in files or "version.json" in folders:
            found.append(Path(where))
    return sorted(found, key=lambda f: (f.name, f.as_posix()))


@dataclass(frozen=True)
class Capture:
    """A capture folder read back from disk: what rebuild and orphan adoption record."""

    folder: Path
    source_id: str
    origin: str
    snapshots: tuple[Snapshot, ...]
    document: Document
    clauses: tuple[Clause, ...]
    redirect: str | None


def read_capture(folder: Path, evidence: Path | None = None) -> Capture:
    """Read a capture folder (snapshot.json, raw bodies, version.json); evidence: the evidence
    folder holding its raw bodies' objects (older captures hold their raw files themselves).

    Raises OSError, ValueError or KeyError for a folder that cannot be read."""
    info = read_json(folder / "snapshot.json")
    data = read_json(folder / "version.json")
    source_id = info["source_id"]
    snapshots = tuple(
        Snapshot(
            source_id=source_id,
            url=m["url"],
            fetched_at=m["fetched_at"],
            status=m["status"],
            content_type=m["content_type"],
            body=raw_path(folder, evidence, m).read_bytes(),
            headers=tuple(m.get("headers", {}).items()),
            encoding=m.get("encoding"),
        )
        for m in info["snapshots"]
    )
    if not snapshots:
        raise ValueError(f"{folder / 'snapshot.json'} lists no raw file")
    origin = info.get("origin") or (
        "import" if str(info["snapshots"][0].get("url", "")).startswith("file:") else "fetch"
    )
    redirects = [
        f"{m['requested_url']} -> {m['url']}"
        for m in info["snapshots"]
        if m.get("requested_url") and cross_host(m["requested_url"], m["url"])
    ]
    return Capture(
        folder=folder,
        source_id=source_id,
        origin=origin,
        snapshots=snapshots,
        document=document_from_json(data["document"]),
        clauses=tuple(clause_from_json(c) for c in data["clauses"]),
        redirect="; ".join(redirects) or None,
    )


def cross_host(requested: str, final: str) -> bool:
    """True when a fetch of `requested` ended on another host (www. aside)."""

    def host(url: str) -> str:
        name = (urlsplit(url).hostname or "").lower()
        return name.removeprefix("www.")

    return host(requested) != host(final)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
