"""The one path data takes, in order: fetch -> extract -> segment -> classify -> align -> record.

`analyse` and `compare_documents` are pure (no network, no files, no clock). `track` is the same
path with I/O at its two edges: the fetch at the start and the store at the end. `run` tracks
every due source of a workspace, then renders reports and sends notifications.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tostrack.models import Block, Clause, Diff, Document, Failure, Snapshot, Source
from tostrack.store import Store, StoredDiff, Version
from tostrack.workspace import Workspace

# -- pure stages ------------------------------------------------------------------------------


def analyse(document: Document) -> tuple[Clause, ...]:
    """Document -> classified clauses."""
    from tostrack.classify import classify_clauses
    from tostrack.segment import segment_document

    return classify_clauses(segment_document(document))


@dataclass(frozen=True)
class Comparison:
    """Two versions of one document and what changed between them."""

    old_document: Document
    new_document: Document
    diff: Diff


def compare_clauses(
    old: Sequence[Clause], new: Sequence[Clause], severity: Mapping[str, str] | None = None
) -> Diff:
    from tostrack.align import diff_clauses
    from tostrack.classify import label_changes

    return label_changes(diff_clauses(old, new), severity)


def compare_documents(
    old: Document, new: Document, severity: Mapping[str, str] | None = None
) -> Comparison:
    return Comparison(old, new, compare_clauses(analyse(old), analyse(new), severity))


def compare_files(
    old_path: str | Path, new_path: str | Path, severity: Mapping[str, str] | None = None
) -> Comparison:
    from tostrack.extract import extract_file

    return compare_documents(extract_file(old_path), extract_file(new_path), severity)


def extract_snapshots(snapshots: Sequence[Snapshot], source: Source) -> Document:
    """Extract each fetched page and join them into one document (for combined sources)."""
    from dataclasses import replace

    from tostrack.extract import extract_bytes

    documents = [
        extract_bytes(
            s.body, s.content_type, encoding=s.encoding, select=source.select, remove=source.remove
        )
        for s in snapshots
    ]
    first = documents[0]
    document = first if len(documents) == 1 else Document(
        blocks=tuple(b for d in documents for b in d.blocks),
        title=first.title or source.title,
        effective_date=next((d.effective_date for d in documents if d.effective_date), None),
        effective_date_text=next((d.effective_date_text for d in documents if d.effective_date), ""),
        metadata=tuple(m for d in documents for m in d.metadata),
    )
    # An announced date later than the capture is a change still to come: say so.
    fetched_day = snapshots[0].fetched_at[:10]
    if document.effective_date and document.effective_date > fetched_day:
        document = replace(document, effective_date_is_future=True)
    return document


# -- tracking one source ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrackResult:
    """What happened to one source in one run.

    status: "first" (first version stored), "changed" (substantive change recorded),
    "cosmetic" (only cosmetic differences; recorded, never alerted), "unchanged",
    "failed" (nothing stored as a version; see failure).
    """

    source: Source
    status: str
    version: Version | None = None
    diff_id: int | None = None
    failure: Failure | None = None
    substantive: int = 0
    consecutive_failures: int = 0


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def track(
    source: Source,
    store: Store,
    fetcher: Callable[[Source], tuple[Snapshot, ...] | Failure],
    *,
    severity: Mapping[str, str] | None = None,
    confirm: Callable[[Source], tuple[Snapshot, ...] | Failure] | None = None,
    flap_window: int = 7 * 86400,
) -> TrackResult:
    """Fetch one source, and record a new version and its changes if the document changed."""
    state = store.source_state(source.id) or {}
    previous = store.current_version(source.id)
    fetched = fetcher(source)
    if isinstance(fetched, Failure):
        return _failed(store, source, fetched)
    if not isinstance(fetched, tuple):  # the server said 304 Not Modified
        store.record_check(source.id, utc_now(), title=source.title, url=source.url)
        return TrackResult(source, "unchanged", previous)
    check_meta = _cache_headers(fetched)
    if previous and _combined(fetched) == state.get("last_snapshot_sha256"):
        store.record_check(source.id, fetched[0].fetched_at, title=source.title, url=source.url, **check_meta)
        return TrackResult(source, "unchanged", previous)

    document, clauses = _analyse_snapshots(fetched, source)
    previous_clauses = previous.load()[1] if previous else None
    problem = _not_the_document(store, state, fetched, document, clauses, previous_clauses)
    if problem:
        return _failed(store, source, problem)

    if previous is None:
        version, _ = store.save_version(fetched, document, clauses, title=source.title, url=source.url)
        store.record_check(source.id, fetched[0].fetched_at, title=source.title, url=source.url, **check_meta)
        return TrackResult(source, "first", version)

    baseline = _as_read_today(previous, source, previous_clauses or ())
    diff = compare_clauses(baseline, clauses, severity)
    if not diff.changes:
        # Raw bytes changed but the text did not (a re-rendered page): keep the evidence, no version.
        store.save_snapshot_only(fetched, previous)
        store.record_check(source.id, fetched[0].fetched_at, title=source.title, url=source.url, **check_meta)
        return TrackResult(source, "unchanged", previous)

    flapped_to = _earlier_variant(store, source.id, previous, clauses, fetched[0].fetched_at, flap_window)
    if diff.substantive and flapped_to is not None:
        # A -> B -> A within the window: the page alternates between variants. Report the
        # instability once as a failure; recording it would alert on the same text twice.
        detail = (
            f"the page went back to the text of the version captured {flapped_to.captured_at}; "
            "it alternates between variants (check select/remove rules)"
        )
        return _failed(store, source, Failure(source.id, fetched[0].fetched_at, "unstable", detail))

    if diff.substantive and confirm is not None:
        # A second fetch must agree before anyone is told: a flickering page is not a change.
        second = confirm(source)
        if isinstance(second, Failure):
            return _failed(store, source, second)
        _, second_clauses = _analyse_snapshots(second, source)
        if [c.full_text for c in second_clauses] != [c.full_text for c in clauses]:
            return _failed(
                store,
                source,
                Failure(source.id, second[0].fetched_at, "unstable", "a second fetch disagreed"),
            )

    version, diff_id = store.save_version(
        fetched,
        document,
        diff.new_clauses,
        title=source.title,
        url=source.url,
        diff=diff,
        previous=previous,
        notify=bool(diff.substantive),
    )
    store.record_check(source.id, fetched[0].fetched_at, title=source.title, url=source.url, **check_meta)
    status = "changed" if diff.substantive else "cosmetic"
    return TrackResult(source, status, version, diff_id, substantive=len(diff.substantive))


def _analyse_snapshots(
    snapshots: Sequence[Snapshot], source: Source
) -> tuple[Document, tuple[Clause, ...]]:
    document = extract_snapshots(snapshots, source)
    return document, analyse(document)


def _as_read_today(
    previous: Version, source: Source, stored: Sequence[Clause]
) -> tuple[Clause, ...]:
    """The previous version as today's extraction reads its raw snapshot, keeping its clause ids.

    When extraction rules improve, the stored clauses of the last version differ from what the
    same bytes give today. Diffing against the stored clauses would report the improvement as
    a change of the terms; diffing against a re-extraction of the same evidence never does.
    """
    from tostrack.align import diff_clauses
    from tostrack.errors import InputError

    try:
        snapshots = previous.snapshots()
        _, today = _analyse_snapshots(snapshots, source) if snapshots else (None, ())
    except (OSError, KeyError, ValueError, InputError):
        return tuple(stored)  # no readable evidence: the stored clauses are all we have
    if not today or [(c.section, c.full_text) for c in today] == [
        (c.section, c.full_text) for c in stored
    ]:
        return tuple(stored)
    return diff_clauses(stored, today).new_clauses  # ids carried over to today's reading


def _not_the_document(
    store: Store,
    state: Mapping[str, object],
    fetched: Sequence[Snapshot],
    document: Document,
    clauses: Sequence[Clause],
    previous_clauses: Sequence[Clause] | None,
) -> Failure | None:
    """A failure when what was fetched is not the document (error page, challenge, collapse...)."""
    from tostrack.health import check_document

    # The stored version keeps clauses, not blocks: its text is what a collapse is measured on.
    previous_text = (
        Document(tuple(Block("paragraph", c.full_text) for c in previous_clauses))
        if previous_clauses is not None
        else None
    )
    reason = check_document(
        fetched,
        document,
        len(clauses),
        len(previous_clauses) if previous_clauses is not None else None,
        previous_document=previous_text,
    )
    if reason == "collapsed" and _collapse_confirmed(store, state, clauses):
        return None  # the same shorter text, fetched again and again: the document really shrank
    if not reason:
        return None
    detail = _detail(document)
    if reason == "collapsed":
        detail = f"{_COLLAPSE_MARK}{_digest(clauses)} {detail}"
    return Failure(fetched[0].source_id, fetched[0].fetched_at, reason, detail)


# A collapse seen this many times in a row with the very same text is accepted as the document.
COLLAPSE_ACCEPTED_AFTER = 3
_COLLAPSE_MARK = "text sha256 "


def _digest(clauses: Sequence[Clause]) -> str:
    from tostrack.store import text_digest

    return text_digest(clauses)


def _collapse_confirmed(store: Store, state: Mapping[str, object], clauses: Sequence[Clause]) -> bool:
    """True when the runs just before this one all failed as "collapsed" on exactly this text."""
    needed = COLLAPSE_ACCEPTED_AFTER - 1
    if int(str(state.get("consecutive_failures") or 0)) < needed:
        return False
    mark = f"{_COLLAPSE_MARK}{_digest(clauses)}"
    recent = store.failures(str(state["id"]), limit=needed)
    return len(recent) == needed and all(
        f.reason == "collapsed" and f.detail.startswith(mark) for f in recent
    )


def _earlier_variant(
    store: Store,
    source_id: str,
    current: Version | None,
    clauses: Sequence[Clause],
    fetched_at: str,
    window: int,
) -> Version | None:
    """A version older than the current one, captured within `window` seconds, with this text."""
    from tostrack.store import text_digest

    if current is None or window <= 0:
        return None
    digest = text_digest(clauses)
    now = _parse_utc(fetched_at)
    for version in store.versions(source_id):
        if version.id == current.id or version.origin != "fetch":
            continue
        recent = (now - _parse_utc(version.captured_at)).total_seconds() <= window
        if recent and version.text_sha256 == digest:
            return version
    return None


def _parse_utc(iso: str) -> datetime:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _failed(store: Store, source: Source, failure: Failure) -> TrackResult:
    count = store.record_failure(failure, title=source.title, url=source.url)
    return TrackResult(source, "failed", failure=failure, consecutive_failures=count)


def _combined(snapshots: Sequence[Snapshot]) -> str:
    from tostrack.store import _combined_sha

    return _combined_sha(snapshots)


def _cache_headers(snapshots: Sequence[Snapshot]) -> dict[str, str | None]:
    headers = {k.lower(): v for k, v in snapshots[0].headers}
    return {
        "snapshot_sha256": _combined(snapshots),
        "etag": headers.get("etag"),
        "last_modified": headers.get("last-modified"),
    }


def _detail(document: Document) -> str:
    return document.text[:300]


# -- a whole run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    results: tuple[TrackResult, ...]
    reports: tuple[Path, ...] = ()
    notifications_sent: int = 0
    notification_errors: tuple[str, ...] = ()
    eml_files: tuple[Path, ...] = ()
    skipped_not_due: int = 0
    messages: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[TrackResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def changed(self) -> tuple[TrackResult, ...]:
        return tuple(r for r in self.results if r.status == "changed")


def full_fetch_day(source_id: str, now: datetime) -> bool:
    """One day a week, different for each source, on which fetches are unconditional."""
    import zlib

    return now.toordinal() % 7 == zlib.crc32(source_id.encode("utf-8")) % 7


def is_due(source: Source, state: Mapping[str, object] | None, now: datetime) -> bool:
    if not state or not state.get("last_checked_at"):
        return True
    last = datetime.strptime(str(state["last_checked_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    # A little slack so an hourly cron does not miss a source whose interval is exactly 1 h.
    return (now - last).total_seconds() >= source.interval - 120


def run(
    workspace: Workspace,
    *,
    force: bool = False,
    only: Sequence[str] = (),
    send: bool = True,
    dry_run_mail: bool = False,
) -> RunResult:
    """Track every due source of the workspace, render reports and send notifications."""
    import requests

    from tostrack import notify, report
    from tostrack.fetch import FetchConfig, fetch_source
    from tostrack.lock import workspace_lock
    from tostrack.sources import load_sources

    workspace.ensure()
    sources = load_sources(workspace.settings)
    if only:
        sources = tuple(s for s in sources if s.id in only or s.provider in only)
    config = FetchConfig.from_settings(workspace.settings)
    severity = workspace.settings.section("severity")
    broken_after = int(workspace.settings.section("notify").get("broken_after", 3))
    results: list[TrackResult] = []
    recorded: list[tuple[TrackResult, StoredDiff]] = []
    reports: list[Path] = []
    skipped = 0
    with workspace_lock(workspace.lock_path), Store(workspace.root) as store, requests.Session() as session:
        now = datetime.now(UTC)

        def fetcher(s: Source) -> tuple[Snapshot, ...] | Failure:
            state = store.source_state(s.id) or {}
            if full_fetch_day(s.id, now):
                # Once a week, ignore the validators: a server that keeps a stale ETag or
                # Last-Modified must not hide a change for ever.
                state = {k: v for k, v in state.items() if k not in ("etag", "last_modified")}
            return fetch_source(s, config, session=session, previous=state)

        def confirm(s: Source) -> tuple[Snapshot, ...] | Failure:
            time.sleep(config.confirm_delay)
            return fetch_source(s, config, session=session)

        for source in sources:
            state = store.source_state(source.id)
            if not force and not is_due(source, state, now):
                skipped += 1
                continue
            was_broken = bool(state and state["consecutive_failures"] >= broken_after)
            result = track(
                source,
                store,
                fetcher,
                severity=severity,
                confirm=confirm if config.confirm_delay > 0 else None,
            )
            results.append(result)
            if result.diff_id is not None:
                recorded.append((result, store.diff(result.diff_id)))
            if result.status == "failed" and result.consecutive_failures == broken_after:
                notify.enqueue_operator(
                    workspace, store, "broken", source.id,
                    f"{result.failure.reason}: {result.failure.detail[:200]}" if result.failure else "",
                )
            elif result.status != "failed" and was_broken:
                notify.enqueue_operator(workspace, store, "recovered", source.id, "")
        if results:
            report.render_site(workspace, store)  # every page, the new change reports included
        for result, stored in recorded:
            path = report.change_report_path(workspace.reports_dir, stored)
            reports.append(path)
            if result.status == "changed":
                notify.enqueue_diff(workspace, store, stored, path)
        summary = notify.send_pending(workspace, store, dry_run=dry_run_mail) if send else None
    return RunResult(
        results=tuple(results),
        reports=tuple(reports),
        notifications_sent=summary.sent if summary else 0,
        notification_errors=tuple(summary.errors) if summary else (),
        eml_files=tuple(summary.written_eml) if summary else (),
        skipped_not_due=skipped,
    )
