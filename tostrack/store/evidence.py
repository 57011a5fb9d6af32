"""The evidence folder: capture folders, and the raw bodies they name, stored once per sha256.

<evidence>/                           [store] evidence, or the workspace's snapshots/
  sha256/<ab>/<abcd...>.<ext>         raw bytes exactly as fetched, one file per content: the same
                                      bytes fetched twice, or by two workers, are one file
  <provider>/<document>/<stamp>/      a capture: snapshot.json (url, status, headers, fetch time,
                                      and each raw body's object path and sha256), version.json,
                                      version.txt

A capture written before raw bodies were content-addressed keeps them itself (raw-0.html ...,
named by "file" in its snapshot.json) and is read as it is: nothing is moved. The database is
the index: versions.path names the capture folder, versions.snapshot_sha256 its raw bodies.
`check` proves the two agree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tostrack.errors import StorageError
from tostrack.store.codecs import read_json
from tostrack.store.files import OBJECT_NAME, OBJECTS, raw_path, write_atomic

if TYPE_CHECKING:
    from tostrack.store.store import Store


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def store_object(evidence: Path, body: bytes, sha256: str, extension: str) -> str:
    """Keep body under evidence/sha256/ unless it is there already; returns its object path
    (relative to evidence, as snapshot.json records it).

    A file already there is trusted only once its bytes hash to its name; a damaged one is
    rewritten. Writes are atomic (temporary name, fsync, rename): two workers storing the same
    bytes at once both end with the one complete file. Objects are read-only, never edited."""
    name, missing = object_for(evidence, sha256, extension)
    if missing:
        write_object(evidence, name, body)
    return name


def object_for(evidence: Path, sha256: str, extension: str) -> tuple[str, bool]:
    """The object path body of this sha256 has or gets, and whether it must be written (absent,
    or damaged): store_object's first half, for a writer that writes it alongside other files."""
    folder = evidence / OBJECTS / sha256[:2]
    try:
        present = sorted(n for n in os.listdir(folder) if n.startswith(f"{sha256}."))
    except (FileNotFoundError, NotADirectoryError):
        present = []
    for existing in present:  # any extension: the bytes decide
        if OBJECT_NAME.fullmatch(f"{OBJECTS}/{sha256[:2]}/{existing}"):
            return f"{OBJECTS}/{sha256[:2]}/{existing}", file_sha256(folder / existing) != sha256
    return f"{OBJECTS}/{sha256[:2]}/{sha256}.{extension}", True


def write_object(evidence: Path, name: str, body: bytes) -> None:
    write_atomic(evidence / name, body, mode=0o400)


def combined(shas: Sequence[str]) -> str:
    """versions.snapshot_sha256 of raw bodies with these sha256 (as codecs.combined_sha)."""
    if len(shas) == 1:
        return shas[0]
    return hashlib.sha256("".join(shas).encode()).hexdigest()


# -- store check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, corrupt, mismatch, unreadable, unreferenced
    path: str  # relative to the evidence folder
    detail: str = ""


@dataclass(frozen=True)
class EvidenceReport:
    folder: Path
    database: str
    versions: int
    sources: int
    files: int  # raw bodies read and hashed
    size: int  # their bytes
    problems: tuple[Problem, ...]

    @property
    def agrees(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for problem in self.problems:
            found[problem.kind] = found.get(problem.kind, 0) + 1
        return found


class _Checker:
    def __init__(self, evidence: Path) -> None:
        self.evidence = evidence
        self.kept: set[Path] = set()  # every file that belongs to a version or a capture
        self.hashed: dict[Path, str | None] = {}
        self.problems: list[Problem] = []
        self.files = self.size = 0

    def show(self, path: Path) -> str:
        try:
            return path.relative_to(self.evidence).as_posix()
        except ValueError:
            return str(path)

    def add(self, kind: str, path: Path, detail: str) -> None:
        self.problems.append(Problem(kind, self.show(path), detail))

    def digest(self, path: Path) -> str | None:
        if path not in self.hashed:
            try:
                self.hashed[path] = file_sha256(path)
                self.files += 1
                self.size += path.stat().st_size
            except FileNotFoundError:
                self.hashed[path] = None
        return self.hashed[path]

    def capture(self, folder: Path, evidence: Path, whose: str) -> list[str] | None:
        """Verify a capture folder's raw bodies; their recorded sha256s (None: unreadable)."""
        info_path = folder / "snapshot.json"
        self.kept.update({info_path, folder / "version.json", folder / "version.txt"})
        if not info_path.is_file():
            self.add("missing", info_path, whose)
            return None
        try:
            entries = read_json(info_path)["snapshots"]
            found = [(raw_path(folder, evidence, m), str(m["sha256"])) for m in entries]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.add("unreadable", info_path, f"{whose}: {exc}")
            return None
        for path, sha in found:
            self.kept.add(path)
            try:
                actual = self.digest(path)
            except OSError as exc:  # permissions, a folder where the file goes: say which
                self.add("unreadable", path, f"{whose}: {exc.strerror or exc}")
                continue
            if actual is None:
                self.add("missing", path, whose)
            elif actual != sha:
                self.add(
                    "corrupt", path, f"{whose}: its sha256 is {actual[:12]}…, recorded {sha[:12]}…"
                )
        return [sha for _, sha in found]


def check(store: Store) -> EvidenceReport:
    """Whether the database and the evidence folder agree: each version's capture folder and
    raw bodies exist and hash to what was recorded, and each file of the folder belongs to a
    version (or to a capture of raw bytes that matched one). Reads everything, changes nothing."""
    evidence = store.snapshots_dir
    versions = store.all_versions()
    if not evidence.is_dir():
        if not versions:
            return EvidenceReport(evidence, store.where, 0, 0, 0, 0, ())
        raise StorageError(
            f"the evidence folder {evidence} does not exist, and {store.where} records "
            f"{len(versions)} version(s) whose raw snapshots should be there: mount or restore "
            "it ([store] evidence names it), then check again"
        )
    checker = _Checker(evidence)
    for version in versions:
        whose = f"version {version.id} of {version.source_id}, {version.captured_at}"
        if not (version.path / "version.json").is_file():
            checker.add("missing", version.path / "version.json", whose)
        shas = checker.capture(version.path, store.evidence_of(version.path), whose)
        if shas is not None and combined(shas) != version.snapshot_sha256:
            checker.add(
                "mismatch",
                version.path / "snapshot.json",
                f"{whose}: its raw files are not the ones the database recorded "
                f"({version.snapshot_sha256[:12]}…)",
            )
    for folder in _folders_with(evidence, "snapshot.json"):
        if folder / "snapshot.json" in checker.kept or (folder / "version.json").exists():
            continue  # a version's (checked above), or a capture no version records (below)
        # raw bytes that extracted to an already stored version: evidence of a fetch too
        checker.capture(folder, evidence, f"capture {checker.show(folder)}")
    checker.problems.extend(_unreferenced(evidence, checker.kept))
    return EvidenceReport(
        folder=evidence,
        database=store.where,
        versions=len(versions),
        sources=len({v.source_id for v in versions}),
        files=checker.files,
        size=checker.size,
        problems=tuple(checker.problems),
    )


def _folders_with(evidence: Path, name: str) -> Iterable[Path]:
    for top, dirs, files in os.walk(evidence):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if name in files:
            yield Path(top)


def _unreferenced(evidence: Path, kept: set[Path]) -> list[Problem]:
    """Files under evidence that nothing above accounted for; a capture folder none of whose
    files is kept is one line (a capture no version records: an interrupted run's, or another
    database's)."""
    found = []
    for top, dirs, files in os.walk(evidence):
        dirs.sort()
        folder = Path(top)
        stray = sorted(folder / f for f in files if folder / f not in kept)
        if not stray:
            continue
        rel = folder.relative_to(evidence).as_posix()
        if "snapshot.json" in files and len(stray) == len(files):
            found.append(Problem("unreferenced", rel, "a capture no version records"))
            continue
        for path in stray:
            parts = path.relative_to(evidence).parts
            interrupted = any(part.endswith(".tmp") for part in parts)
            note = "left by an interrupted write" if interrupted else ""
            found.append(Problem("unreferenced", path.relative_to(evidence).as_posix(), note))
    return found


# -- copying an evidence folder into a shared one ---------------------------------------------


@dataclass(frozen=True)
class EvidenceCopy:
    source: Path
    target: Path
    captures: int  # capture folders copied
    objects: int  # raw bodies copied
    present: int  # capture folders and raw bodies the target already held, the same


def copy_evidence(source: Path, target: Path) -> EvidenceCopy:
    """Copy a workspace's evidence folder into another (a shared one), leaving the source as it
    is. Raw bodies first, each atomically; then each capture folder under a temporary name,
    renamed into place when whole: a copy interrupted at any point is finished by running it
    again, and a worker never sees a capture whose raw bodies are not there yet. A capture
    folder the target holds with other content is refused (StorageError), never overwritten."""
    objects = present = captures = 0
    for path in sorted((source / OBJECTS).glob("*/*")):
        name = path.relative_to(source).as_posix()
        if not OBJECT_NAME.fullmatch(name):
            continue
        copy = target / name
        if copy.is_file() and file_sha256(copy) == file_sha256(path):
            present += 1
            continue
        write_atomic(copy, path.read_bytes(), mode=0o400)
        objects += 1
    for folder in _folders_with(source, "snapshot.json"):
        rel = folder.relative_to(source)  # (object folders hold no snapshot.json)
        copy = target / rel
        if copy.exists():
            if _same_files(folder, copy):
                present += 1
                continue
            raise StorageError(
                f"{copy} already exists with other files than {folder}: nothing there was "
                "overwritten; compare the two and move one away, then run again"
            )
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=copy.parent, prefix=f".{copy.name}.", suffix=".tmp"))
        try:
            for item in sorted(folder.iterdir()):
                if item.is_file() and not item.name.startswith("."):
                    write_atomic(tmp / item.name, item.read_bytes())
            os.replace(tmp, copy)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        captures += 1
    return EvidenceCopy(source, target, captures, objects, present)


def _same_files(one: Path, other: Path) -> bool:
    def listing(folder: Path) -> dict[str, str]:
        return {
            p.name: file_sha256(p)
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
        }

    return listing(one) == listing(other)
