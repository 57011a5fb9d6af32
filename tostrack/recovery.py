"""Getting the database back in line with the captures on disk.

Each capture folder under snapshots/<provider>/<document>/<stamp>/ holds the raw bytes and their
snapshot.json (url, status, headers, sha256, fetch time) and the extracted version (version.json:
metadata and clauses with their ids). That is everything tostrack.db says about versions and
diffs, so:

- `rebuild` recreates the database from the folders (versions, clause ids, diffs), alerting no one;
- `reconcile`, at the start of every run, adopts a capture whose database commit never happened
  (a crash between the folder rename and the commit: store.py notes the folder as pending before
  the rename) and refuses to run on a database that has lost the history the folders hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tostrack.clock import now_iso
from tostrack.errors import InputError, StorageError
from tostrack.lock import workspace_lock
from tostrack.models import Clause, Diff, Document, Source
from tostrack.store import (
    Capture,
    DatabaseUnreadable,
    Store,
    Version,
    capture_folders,
    capture_order,
    read_capture,
    stamp,
)
from tostrack.workspace import Workspace


class DatabaseBehind(StorageError):
    """tostrack.db holds none of the versions that the captures on disk hold (emptied, replaced)."""


def effective_date_changed(old: Document | Version, new: Document) -> bool:
    """The announced effective date differs (appeared, moved or went away)."""
    return (old.effective_date or None) != (new.effective_date or None)


def compare_stored(
    old: Sequence[Clause], new: Sequence[Clause], severity: Mapping[str, str] | None = None
) -> Diff:
    """The diff between two stored versions' clauses, labelled (as pipeline.compare_clauses)."""
    from tostrack.align import diff_clauses
    from tostrack.classify import label_changes

    return label_changes(diff_clauses(old, new), severity)


def _record(
    store: Store,
    capture: Capture,
    previous: Version | None,
    severity: Mapping[str, str] | None,
    *,
    title: str,
    url: str,
    alert: bool,
) -> tuple[Version, int | None]:
    """The rows for one capture folder, diffed against the version before it."""
    diff, kind = None, "clauses"
    if previous is not None:
        diff = compare_stored(previous.load()[1], capture.clauses, severity)
        if not diff.changes and effective_date_changed(previous, capture.document):
            kind = "effective-date"
    notify = alert and diff is not None and (bool(diff.substantive) or kind == "effective-date")
    return store.record_version(
        capture.folder,
        capture.snapshots,
        capture.document,
        capture.clauses,
        title=title,
        url=url,
        diff=diff,
        previous=previous,
        origin=capture.origin,
        notify=notify,
        kind=kind,
        redirect=capture.redirect,
    )


# -- at the start of a run -------------------------------------------------------------------


def reconcile(
    store: Store, sources: Sequence[Source], severity: Mapping[str, str] | None = None
) -> list[str]:
    """Adopt captures left by an interrupted run; refuse a database that lost the history.

    Returns lines for the run's output. An adopted capture is recorded as the run would have
    recorded it, its diff marked to notify (the alert the crash held back is then queued by the
    outbox's catch-up).
    """
    declared = {s.id: s for s in sources}
    lines = []
    for folder in store.pending_captures():
        try:
            capture = read_capture(folder, store.evidence_of(folder))
            previous = store.current_version(capture.source_id)
            if previous is not None and capture_order(
                previous.captured_at, previous.path
            ) >= capture_order(capture.snapshots[0].fetched_at, capture.folder):
                # Never diff backwards: rebuild puts such a capture in its place.
                raise ValueError("it is not newer than the current version")
            source = declared.get(capture.source_id)
            _record(
                store,
                capture,
                previous,
                severity,
                title=source.title if source else capture.document.title,
                url=source.url if source else capture.snapshots[0].url,
                alert=capture.origin == "fetch",
            )
        except (OSError, ValueError, KeyError) as exc:
            lines.append(
                f"warning  cannot adopt {_rel(store, folder)} left by an interrupted run ({exc}); "
                "`tostrack rebuild` recreates the database from every capture"
            )
            continue
        lines.append(
            f"adopted  {capture.source_id}: capture {folder.name} left by an interrupted run"
        )
    unindexed = store.unindexed_captures()
    if unindexed and not store.has_versions():
        raise DatabaseBehind(
            f"{store.db_path} records no version, but {store.snapshots_dir} holds "
            f"{len(unindexed)} capture(s): the database was emptied or replaced, and running now "
            "would restart every history (and miss real changes). Run `tostrack rebuild` to "
            "recreate it from the captures, then `tostrack run`."
        )
    if unindexed:
        lines.append(
            f"warning  {len(unindexed)} capture(s) in snapshots/ are not in the database "
            f"(e.g. {_rel(store, unindexed[-1])}); "
            "`tostrack rebuild` recreates it from every capture"
        )
    return lines


def _rel(store: Store, folder: Path) -> str:
    try:
        return store.relative(folder)
    except ValueError:
        return str(folder)


# -- tostrack rebuild ------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildResult:
    sources: int
    versions: int
    changes: int  # diffs with substantive changes
    effective_date_changes: int
    skipped: tuple[str, ...]  # "folder: why" for captures that could not be read
    kept_aside: Path | None  # the database that was replaced, if there was one


def rebuild(workspace: Workspace, *, force: bool = False) -> RebuildResult:
    """Recreate tostrack.db from the capture folders on disk. Notifies no one.

    The old database, if any, is kept aside as tostrack.db.before-rebuild-<time>. A readable
    database that still records versions is only replaced with force (it also holds the
    outbox and the failure history, which the folders do not).
    """
    from tostrack.sources import load_sources

    if workspace.shared_database:
        raise InputError(
            f"`tostrack rebuild` recreates the embedded tostrack.db; this workspace records into "
            f"{workspace.config.store.shown} ([store] url), which rebuild does not replace"
        )
    workspace.ensure()
    declared = {s.id: s for s in load_sources(workspace.settings)}
    severity = workspace.settings.section("severity")
    with workspace_lock(workspace.lock_path):
        folders = capture_folders(workspace.snapshots_dir)
        if not folders:
            raise InputError(
                f"{workspace.snapshots_dir} holds no capture (no version.json): "
                "nothing to rebuild from"
            )
        if workspace.db_path.exists() and not force:
            _refuse_healthy(workspace)
        tmp = workspace.root / ".tostrack.db.rebuild"
        _remove_db(tmp)
        versions = changes = dated = 0
        skipped: list[str] = []
        by_source: dict[str, list[Capture]] = {}
        for folder in folders:
            try:
                capture = read_capture(folder, workspace.snapshots_dir)
            except (OSError, ValueError, KeyError) as exc:
                skipped.append(f"{folder.relative_to(workspace.snapshots_dir).as_posix()}: {exc}")
                continue
            by_source.setdefault(capture.source_id, []).append(capture)
        try:
            with Store(workspace.root, db_path=tmp, evidence=workspace.snapshots_dir) as store:
                for source_id, captures in sorted(by_source.items()):
                    captures.sort(
                        key=lambda c: (capture_order(c.snapshots[0].fetched_at, c.folder), c.folder)
                    )
                    source = declared.get(source_id)
                    title = source.title if source else captures[-1].document.title or source_id
                    url = source.url if source else captures[-1].snapshots[0].url
                    previous = None
                    for capture in captures:
                        previous, diff_id = _record(
                            store, capture, previous, severity, title=title, url=url, alert=False
                        )
                        versions += 1
                        if diff_id is not None:
                            stored = store.diff(diff_id)
                            changes += stored.substantive
                            dated += stored.effective_date_only
                    last = _last_fetch(workspace.snapshots_dir, source_id) or captures[-1]
                    if any(c.origin == "fetch" for c in captures):
                        store.record_check(
                            source_id,
                            last.snapshots[0].fetched_at,
                            title=title,
                            url=url,
                            snapshot_sha256=_sha(last),
                        )
                store.checkpoint()
        except BaseException:
            _remove_db(tmp)
            raise
        aside = None
        if workspace.db_path.exists():
            aside = workspace.root / f"tostrack.db.before-rebuild-{stamp(now_iso())}"
            for suffix in ("", "-wal", "-shm"):
                old = Path(str(workspace.db_path) + suffix)
                if old.exists():
                    os.replace(old, Path(str(aside) + suffix))
        os.replace(tmp, workspace.db_path)
        _remove_db(tmp)
    return RebuildResult(len(by_source), versions, changes, dated, tuple(skipped), aside)


def _refuse_healthy(workspace: Workspace) -> None:
    try:
        with Store(workspace.root, evidence=workspace.snapshots_dir) as store:
            count = store.version_count()
    except DatabaseUnreadable:
        return
    if count:
        raise InputError(
            f"{workspace.db_path} is readable and records {count} version(s); rebuilding would "
            "replace it (and its outbox and failure history, which the captures do not hold). "
            "Run `tostrack rebuild --force` to rebuild anyway (the old file is kept aside)."
        )


def _last_fetch(snapshots_dir: Path, source_id: str) -> Capture | None:
    """The newest capture of a source, counting folders of raw bytes that matched a version."""
    base = snapshots_dir.joinpath(*source_id.split("/"))
    newest = None
    for meta in sorted(base.glob("*/snapshot.json"), key=lambda p: p.parent.name):
        if meta.parent.name.startswith("."):
            continue
        newest = meta.parent
    if newest is None:
        return None
    try:
        info = json.loads((newest / "snapshot.json").read_bytes())
        from tostrack.models import Snapshot

        snaps = tuple(
            Snapshot(
                source_id,
                m["url"],
                m["fetched_at"],
                m["status"],
                m["content_type"],
                b"",
                sha256=m["sha256"],
            )
            for m in info["snapshots"]
        )
    except (OSError, ValueError, KeyError):
        return None
    return Capture(newest, source_id, "fetch", snaps, Document(()), (), None)


def _sha(capture: Capture) -> str:
    from tostrack.store import combined_sha

    return combined_sha(capture.snapshots)


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
