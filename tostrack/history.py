"""Reading a workspace's history, and backfilling one from a folder of dated versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

from tostrack.dated import dated_files
from tostrack.errors import InputError
from tostrack.lock import workspace_lock
from tostrack.media import SUFFIX_TYPES
from tostrack.models import Snapshot, Source
from tostrack.store import Store
from tostrack.workspace import Workspace


@dataclass(frozen=True)
class ImportResult:
    versions: int
    changes: int
    skipped: int
    # "<capture time> <file name>: <reason>" for each file the checks of `run` turned away
    rejected: tuple[str, ...] = ()


def import_directory(
    workspace: Workspace, source_id: str, directory: Path, *, url: str = "", jobs: int = 1
) -> ImportResult:
    """Store each dated file as a version captured at its date. Never notifies anyone.

    Every file goes through the step `run` records fetches with (pipeline.record): the health
    check, the diff against the previous version as today's rules read it, effective-date-only
    versions and flap detection. A file that fails a check is skipped and listed in `rejected`.
    With jobs > 1, the versions are extracted and classified in that many processes
    (replay.analyse_versions); they are compared and stored here, in order."""
    from tostrack.config import check_source_id
    from tostrack.pipeline import evidence_missing, record
    from tostrack.recovery import effective_date_changed, reconcile
    from tostrack.replay import analyse_versions, long_run_gc
    from tostrack.store import text_digest

    check_source_id(source_id, "import")  # the one id rule: nothing lands outside snapshots/
    files = dated_files(directory)
    if not files:
        raise InputError(
            f"{directory} has no files named by capture time (YYYY-MM-DDTHH-MM-SSZ.md)"
        )
    names = dict(files)
    source = Source(id=source_id, urls=(url or f"file://{directory.resolve()}",), title=source_id)
    severity = workspace.config.severity_overrides
    workspace.ensure()
    versions = changes = skipped = 0
    rejected: list[str] = []
    with (
        workspace_lock(workspace.lock_path),
        workspace.open_store() as store,
        long_run_gc(),
    ):
        reconcile(store, (), severity)  # a capture an interrupted import or run left behind first
        previous = store.current_version(source_id)
        to_import = [f for f in files if not (previous and f[0] <= previous.captured_at)]
        snapshots = _Captures(source, to_import)
        skipped = len(files) - len(snapshots)  # already imported or older than what we have
        analysed_here = None  # the document of `previous` when this import analysed it
        # Noted as pending together, recorded in few commits (see Store.batched).
        with store.batched(source_id, [captured_at for captured_at, _ in to_import]):
            # A clause seen in an earlier version is not classified again.
            analysed = analyse_versions(snapshots, source, jobs=jobs)
            for snapshot, (document, clauses) in zip(snapshots, analysed, strict=True):
                if previous and snapshot.fetched_at <= previous.captured_at:
                    skipped += 1  # two files of the same capture time: the first one stands
                    continue
                previous_clauses = None
                if previous is not None:
                    if text_digest(clauses) == previous.text_sha256 and not effective_date_changed(
                        previous, document
                    ):
                        skipped += 1  # the same text again (as the same bytes would be in `run`)
                        continue
                    try:
                        previous_clauses = store.stored_clauses(previous)  # read back
                    except (OSError, ValueError, KeyError) as exc:
                        raise InputError(evidence_missing(source, previous, exc).detail) from None
                result = record(
                    source,
                    store,
                    (snapshot,),
                    (document, clauses),
                    state={},  # an import is not a fetch: no streak of failed fetches to weigh
                    previous=previous,
                    previous_clauses=previous_clauses,
                    severity=severity,
                    origin="import",
                    # Read with today's rules in this very import: no need to read it again.
                    baseline=(previous_clauses, analysed_here) if analysed_here else None,
                )
                if result.status == "failed" and result.failure is not None:
                    skipped += 1
                    name = names[snapshot.fetched_at].name
                    rejected.append(f"{snapshot.fetched_at} {name}: {result.failure.reason}")
                    continue
                if result.status == "unchanged":
                    skipped += 1
                    continue
                # Its date is what the next file's is compared with; its blocks are not needed.
                previous, analysed_here = result.version, replace(document, blocks=())
                versions += 1
                changes += result.status == "changed"
    return ImportResult(versions, changes, skipped, tuple(rejected))


class _Captures(Sequence[Snapshot]):
    """The dated files as Snapshots, each read when it is asked for (the last one kept, as the
    analysis and the recording of one file ask for it in turn): a long history is never held
    in memory whole."""

    def __init__(self, source: Source, files: Sequence[tuple[str, Path]]) -> None:
        self._source = source
        self._files = files
        self._last: tuple[int, Snapshot] | None = None

    def __len__(self) -> int:
        return len(self._files)

    @overload
    def __getitem__(self, index: int) -> Snapshot: ...

    @overload
    def __getitem__(self, index: slice) -> list[Snapshot]: ...

    def __getitem__(self, index: int | slice) -> Snapshot | list[Snapshot]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self._files))[index]  # IndexError past the end ends an iteration
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        captured_at, path = self._files[index]
        snapshot = Snapshot(
            self._source.id,
            self._source.url,
            captured_at,
            200,
            SUFFIX_TYPES[path.suffix.lower()],
            path.read_bytes(),
        )
        self._last = (index, snapshot)
        return snapshot


def source_history(workspace: Workspace, source_id: str | None) -> dict[str, Any]:
    """{"source", "versions": [...], "failures": [...]} for one source, or {"sources": [...]}."""
    if not workspace.has_records:
        if source_id:
            raise InputError(
                f"nothing recorded yet in {workspace.root} (no tostrack.db); "
                "run `tostrack run` first"
            )
        return {"sources": []}
    with workspace.open_store(read_only=True) as store:  # works on a read-only workspace
        if source_id:
            known = {s["id"] for s in store.all_source_states()} | set(store.tracked_source_ids())
            if source_id not in known:
                raise InputError(
                    f"no source '{source_id}' in this workspace; `tostrack history` lists them"
                )
            return _one(store, source_id)
        ids = sorted({s["id"] for s in store.all_source_states()} | set(store.tracked_source_ids()))
        return {"sources": [_one(store, i) for i in ids]}


def _one(store: Store, source_id: str) -> dict[str, Any]:
    diffs = {d.to_version.id: d for d in store.diffs(source_id)}
    versions = []
    before = None
    for v in store.versions(source_id):
        d = diffs.get(v.id)
        versions.append(
            {
                "captured_at": v.captured_at,
                "sha256": v.snapshot_sha256,
                "text_sha256": v.text_sha256,
                "clauses": v.clause_count,
                "title": v.title,
                "effective_date": v.effective_date,
                "origin": v.origin,
                "path": str(v.path),
                "substantive_changes": d.summary["substantive"] if d else 0,
                "cosmetic_changes": d.summary["cosmetic"] if d else 0,
                "severity": d.severity if d else "none",
                # only the announced effective date moved (no clause changed)
                "effective_date_only": bool(d and d.effective_date_only),
                "previous_effective_date": before.effective_date if before else None,
                "redirect": v.redirect,  # "requested -> final" when fetched from another host
            }
        )
        before = v
    failures = [
        {"at": f.at, "reason": f.reason, "detail": f.detail} for f in store.failures(source_id)
    ]
    failures.reverse()
    return {"source": source_id, "versions": versions, "failures": failures}
