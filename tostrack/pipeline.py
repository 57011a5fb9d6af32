"""The one path data takes, in order: fetch -> extract -> segment -> classify -> align -> record.

`analyse` and `compare_documents` are pure (no network, no files, no clock). `track` is the same
path with I/O at its two edges: the fetch at the start and the store at the end. `run` tracks
every due source of a workspace, then renders reports and sends notifications.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tostrack import clock
from tostrack.models import Block, Clause, Diff, Document, Failure, Snapshot, Source

# Types only: the pure stages (compare, replay) run without the store and the workspace, whose
# modules (SQLite, the config schema) are imported by the functions that record.
if TYPE_CHECKING:
    from tostrack.fetch import FetchConfig, Fetcher
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
    return as_captured(extract_pages(snapshots, source), snapshots[0].fetched_at)


def extract_pages(snapshots: Sequence[Snapshot], source: Source) -> Document:
    """extract_snapshots before as_captured: what the pages say, whenever they were fetched."""
    from tostrack.extract import extract_bytes

    documents = [
        extract_bytes(
            s.body, s.content_type, encoding=s.encoding, select=source.select, remove=source.remove
        )
        for s in snapshots
    ]
    first = documents[0]
    document = (
        first
        if len(documents) == 1
        else Document(
            blocks=tuple(b for d in documents for b in d.blocks),
            title=first.title or source.title,
            effective_date=next((d.effective_date for d in documents if d.effective_date), None),
            effective_date_text=next(
                (d.effective_date_text for d in documents if d.effective_date), ""
            ),
            metadata=tuple(m for d in documents for m in d.metadata),
        )
    )
    return document


def as_captured(document: Document, fetched_at: str) -> Document:
    """The document as of its capture: an announced date later than the capture is a change
    still to come, and says so."""
    from dataclasses import replace

    if document.effective_date and document.effective_date > fetched_at[:10]:
        return replace(document, effective_date_is_future=True)
    return document


# -- tracking one source ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrackResult:
    """What happened to one source in one run.

    status: "first" (first version stored), "changed" (substantive change recorded),
    "cosmetic" (only cosmetic differences; recorded, never alerted), "effective-date" (only the
    announced effective date moved; recorded, alerted only to recipients who asked),
    "unchanged", "failed" (nothing stored as a version; see failure).
    """

    source: Source
    status: str
    version: Version | None = None
    diff_id: int | None = None
    failure: Failure | None = None
    substantive: int = 0
    consecutive_failures: int = 0
    redirect: str | None = None  # the version was fetched from another host than declared


# Called inside the transaction that records a failure, with its connection and the streak.
FailureHook = Callable[[Any, Failure, int], None]


def track(
    source: Source,
    store: Store,
    fetcher: Callable[[Source], tuple[Snapshot, ...] | Failure],
    *,
    severity: Mapping[str, str] | None = None,
    confirm: Callable[[Source], tuple[Snapshot, ...] | Failure] | None = None,
    flap_window: int = 7 * 86400,
    on_failure: FailureHook | None = None,
) -> TrackResult:
    """Fetch one source, and record a new version and its changes if the document changed."""

    def failed(failure: Failure) -> TrackResult:
        return _failed(store, source, failure, on_failure)

    state = store.source_state(source.id) or {}
    previous = store.current_version(source.id)
    previous_clauses = None
    if previous is not None:
        try:
            previous_clauses = previous.load()[1]
        except (OSError, ValueError, KeyError) as exc:
            return failed(evidence_missing(source, previous, exc))
    fetched = fetcher(source)
    if isinstance(fetched, Failure):
        return failed(fetched)
    if not isinstance(fetched, tuple):  # the server said 304 Not Modified
        return _unchanged(store, source, state, previous, clock.now_iso(), on_failure, {})
    if previous and _combined(fetched) == state.get("last_snapshot_sha256"):
        return _unchanged(
            store,
            source,
            state,
            previous,
            fetched[0].fetched_at,
            on_failure,
            _cache_headers(fetched),
        )
    return record(
        source,
        store,
        fetched,
        _analyse_snapshots(fetched, source),
        state=state,
        previous=previous,
        previous_clauses=previous_clauses,
        severity=severity,
        confirm=confirm,
        flap_window=flap_window,
        on_failure=on_failure,
    )


def record(
    source: Source,
    store: Store,
    fetched: tuple[Snapshot, ...],
    analysed: tuple[Document, tuple[Clause, ...]],
    *,
    state: Mapping[str, Any],
    previous: Version | None,
    previous_clauses: Sequence[Clause] | None,
    severity: Mapping[str, str] | None = None,
    confirm: Callable[[Source], tuple[Snapshot, ...] | Failure] | None = None,
    flap_window: int = 7 * 86400,
    on_failure: FailureHook | None = None,
    origin: str = "fetch",
    baseline: tuple[tuple[Clause, ...], Document | None] | None = None,
) -> TrackResult:
    """Record what was fetched (or imported): the one step every version goes through.

    The health check (not the document: error page, challenge, collapse ...), the diff against
    the previous version as today's rules read it, effective-date-only versions, and flap
    detection (a page alternating between variants). `run` calls it through `track`;
    `tostrack import` calls it with origin="import": nothing is alerted, no fetch is recorded
    in the source's state, and a file that fails a check is returned as a failure and skipped.
    `baseline`: the previous version's clauses and document as today's rules read them, when
    the caller has them (an import that just analysed that file).
    """
    from tostrack.recovery import effective_date_changed

    imported = origin != "fetch"

    def failed(failure: Failure) -> TrackResult:
        if imported:
            return TrackResult(source, "failed", previous, failure=failure)
        return _failed(store, source, failure, on_failure)

    def checked(at: str, check_meta: Mapping[str, str | None]) -> None:
        if not imported:
            store.record_check(source.id, at, **where, **check_meta)

    document, clauses = analysed
    check_meta = {} if imported else _cache_headers(fetched)
    problem = _not_the_document(store, state, fetched, document, clauses, previous_clauses)
    if problem:
        return failed(problem)
    redirect = _redirect(source, fetched)
    where = {"title": source.title, "url": source.url}
    saving = {**where, "redirect": redirect, "requested_urls": source.urls, "origin": origin}

    if previous is None:
        version, _ = store.save_version(fetched, document, clauses, **saving)
        checked(fetched[0].fetched_at, check_meta)
        return TrackResult(source, "first", version, redirect=redirect)

    if baseline is None:
        baseline = _as_read_today(previous, source, previous_clauses or ())
    baseline_clauses, baseline_document = baseline
    diff = compare_clauses(baseline_clauses, clauses, severity)
    if not diff.changes:
        if effective_date_changed(baseline_document or previous, document):
            # Same clauses, another announced date ("Effective Sept 28" -> "Oct 8"): a version
            # of its own, shown everywhere, alerted only to recipients who asked for dates.
            version, diff_id = store.save_version(
                fetched,
                document,
                diff.new_clauses,
                **saving,
                diff=diff,
                previous=previous,
                kind="effective-date",
                notify=not imported,
            )
            checked(fetched[0].fetched_at, check_meta)
            return TrackResult(source, "effective-date", version, diff_id, redirect=redirect)
        if imported:
            # The imported file in its folder is the evidence.
            return TrackResult(source, "unchanged", previous)
        # Raw bytes changed but the text did not (a re-rendered page): keep the evidence, no
        # version.
        store.save_snapshot_only(fetched, previous)
        return _unchanged(
            store, source, state, previous, fetched[0].fetched_at, on_failure, check_meta
        )

    flapped_to = _earlier_variant(
        store, source.id, previous, clauses, fetched[0].fetched_at, flap_window, origin
    )
    if (
        diff.substantive
        and flapped_to is not None
        and not _repeated(store, state, "unstable", _digest(clauses))
    ):
        # A -> B -> A within the window: the page alternates between variants. Report the
        # instability as a failure; recording it would alert on the same text twice. A page
        # that stays on the earlier text for COLLAPSE_ACCEPTED_AFTER fetches has reverted, and
        # the revert is recorded like any change.
        detail = (
            f"{_COLLAPSE_MARK}{_digest(clauses)} the page went back to the text of the version "
            f"captured {flapped_to.captured_at}; it alternates between variants (check "
            "select/remove rules), or reverted (accepted once it stays so)"
        )
        return failed(Failure(source.id, fetched[0].fetched_at, "unstable", detail))

    if diff.substantive and confirm is not None and not imported:
        # A second fetch must agree before anyone is told: a flickering page is not a change.
        second = confirm(source)
        if isinstance(second, Failure):
            return failed(second)
        _, second_clauses = _analyse_snapshots(second, source)
        if [c.full_text for c in second_clauses] != [c.full_text for c in clauses]:
            return failed(
                Failure(source.id, second[0].fetched_at, "unstable", "a second fetch disagreed")
            )

    version, diff_id = store.save_version(
        fetched,
        document,
        diff.new_clauses,
        **saving,
        diff=diff,
        previous=previous,
        notify=bool(diff.substantive) and not imported,
    )
    checked(fetched[0].fetched_at, check_meta)
    status = "changed" if diff.substantive else "cosmetic"
    return TrackResult(
        source, status, version, diff_id, substantive=len(diff.substantive), redirect=redirect
    )


def evidence_missing(source: Source, previous: Version, exc: BaseException) -> Failure:
    what = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    name = getattr(exc, "filename", None) or previous.path / "version.json"
    return Failure(
        source.id,
        clock.now_iso(),
        "evidence-missing",
        f"the stored version captured {previous.captured_at} cannot be read ({what}: {name}); "
        f"restore {previous.path.parent} from a backup, or run `tostrack rebuild --force` to "
        "record only the captures still on disk",
    )


def _unchanged(
    store: Store,
    source: Source,
    state: Mapping[str, Any],
    previous: Version | None,
    at: str,
    on_failure: FailureHook | None,
    check_meta: Mapping[str, str | None],
) -> TrackResult:
    """The page shows the stored version's text again (same bytes, a 304, or same text)."""
    if previous is not None and _alternating(store, state, previous):
        # Right after an "unstable" fetch of another text: the page flips between the two.
        detail = (
            f"{_COLLAPSE_MARK}{previous.text_sha256} the page is back to the text of the version "
            f"captured {previous.captured_at} right after showing an earlier one; it alternates "
            "between variants (check select/remove rules)"
        )
        return _failed(store, source, Failure(source.id, at, "unstable", detail), on_failure)
    store.record_check(source.id, at, title=source.title, url=source.url, **check_meta)
    return TrackResult(source, "unchanged", previous)


def _alternating(store: Store, state: Mapping[str, Any], previous: Version) -> bool:
    """The last check failed as "unstable" on another text than the stored version's."""
    if state.get("last_failure_reason") != "unstable" or not state.get("consecutive_failures"):
        return False
    last = store.failures(str(state["id"]), limit=1)
    return bool(
        last
        and last[0].detail.startswith(_COLLAPSE_MARK)
        and not last[0].detail.startswith(f"{_COLLAPSE_MARK}{previous.text_sha256}")
    )


def _redirect(source: Source, fetched: Sequence[Snapshot]) -> str | None:
    """ "requested -> final" for each page whose fetch ended on another host."""
    from tostrack.store import cross_host

    hops = [
        f"{asked} -> {snap.url}"
        for asked, snap in zip(source.urls, fetched)
        if snap.url and cross_host(asked, snap.url)
    ]
    return "; ".join(hops) or None


def _analyse_snapshots(
    snapshots: Sequence[Snapshot], source: Source
) -> tuple[Document, tuple[Clause, ...]]:
    document = extract_snapshots(snapshots, source)
    return document, analyse(document)


def _as_read_today(
    previous: Version, source: Source, stored: Sequence[Clause]
) -> tuple[tuple[Clause, ...], Document | None]:
    """The previous version as today's extraction reads its raw snapshot, keeping its clause ids.

    When extraction rules improve, the stored clauses of the last version differ from what the
    same bytes give today. Diffing against the stored clauses would report the improvement as
    a change of the terms; diffing against a re-extraction of the same evidence never does.
    Also returns that re-extracted document (None without readable evidence), whose effective
    date is the one to compare.
    """
    from tostrack.align import diff_clauses
    from tostrack.errors import InputError

    try:
        snapshots = previous.snapshots()
        document, today = _analyse_snapshots(snapshots, source) if snapshots else (None, ())
    except (OSError, KeyError, ValueError, InputError):
        return tuple(stored), None  # no readable evidence: the stored clauses are all we have
    if not today or [(c.section, c.full_text) for c in today] == [
        (c.section, c.full_text) for c in stored
    ]:
        return tuple(stored), document
    return diff_clauses(stored, today).new_clauses, document  # ids carried over to today's reading


def _clauses_document(clauses: Sequence[Clause]) -> Document:
    return Document(tuple(Block("paragraph", c.full_text) for c in clauses))


def _not_the_document(
    store: Store,
    state: Mapping[str, object],
    fetched: Sequence[Snapshot],
    document: Document,
    clauses: Sequence[Clause],
    previous_clauses: Sequence[Clause] | None,
) -> Failure | None:
    """A failure when what was fetched is not the document (error page, challenge, collapse...)."""
    from tostrack.fetch.health import check_document

    # The stored version keeps clauses, not blocks: its text is what a collapse is measured on
    # (made only when the clause count fell far enough for a collapse to be judged).
    previous_text = (
        partial(_clauses_document, previous_clauses) if previous_clauses is not None else None
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


def _collapse_confirmed(
    store: Store, state: Mapping[str, object], clauses: Sequence[Clause]
) -> bool:
    """True when the runs just before this one all failed as "collapsed" on exactly this text."""
    return _repeated(store, state, "collapsed", _digest(clauses))


def _repeated(store: Store, state: Mapping[str, object], reason: str, digest: str) -> bool:
    """True when the fetches just before this one all failed with `reason` on text `digest`."""
    needed = COLLAPSE_ACCEPTED_AFTER - 1
    if not state or int(str(state.get("consecutive_failures") or 0)) < needed:
        return False
    mark = f"{_COLLAPSE_MARK}{digest}"
    recent = store.failures(str(state["id"]), limit=needed)
    return len(recent) == needed and all(
        f.reason == reason and f.detail.startswith(mark) for f in recent
    )


def _earlier_variant(
    store: Store,
    source_id: str,
    current: Version | None,
    clauses: Sequence[Clause],
    fetched_at: str,
    window: int,
    origin: str = "fetch",
) -> Version | None:
    """A version older than the current one, captured within `window` seconds, with this text
    (among versions of the same origin: a fetch is not a flap of an imported capture)."""
    from tostrack.store import text_digest

    if current is None or window <= 0:
        return None
    digest = text_digest(clauses)
    now = clock.parse_iso(fetched_at)
    for version in store.versions_with_text(source_id, digest, origin):
        if version.id == current.id:
            continue
        if (now - clock.parse_iso(version.captured_at)).total_seconds() <= window:
            return version
    return None


def _failed(
    store: Store, source: Source, failure: Failure, on_failure: FailureHook | None = None
) -> TrackResult:
    also = (lambda db, count: on_failure(db, failure, count)) if on_failure else None
    count = store.record_failure(failure, title=source.title, url=source.url, also=also)
    return TrackResult(source, "failed", failure=failure, consecutive_failures=count)


def _combined(snapshots: Sequence[Snapshot]) -> str:
    from tostrack.store import combined_sha

    return combined_sha(snapshots)


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
    messages: tuple[str, ...] = field(default_factory=tuple)  # orphans adopted, warnings
    summary: str = ""  # one closing line when every source failed, naming the likely cause

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
    """Due after its interval; after a failure, at the next run (backing off; see schedule.py)."""
    from tostrack.schedule import is_due as due

    if not state:
        return True
    last = state.get("last_checked_at")
    return due(
        str(last) if last else None,
        source.interval,
        int(str(state.get("consecutive_failures") or 0)),
        now,
    )


class _ConfirmLater(Exception):
    """Raised through track() by a run's confirm step: the confirming re-fetch is scheduled and
    nothing was recorded (track records nothing before it asks for the confirmation)."""


def _track_due(
    due: Sequence[tuple[Source, Mapping[str, Any] | None]],
    store: Store,
    fetch: Fetcher,
    config: FetchConfig,
    now: datetime,
    *,
    severity: Mapping[str, str] | None,
    on_failure: FailureHook,
    done: Callable[[Source, Mapping[str, Any] | None, TrackResult], None],
) -> list[TrackResult]:
    """Track the due sources; their results in the order given.

    Fetches run concurrently across hosts, up to [fetch] max_hosts, each host one request at a
    time (tostrack.fetch.pool). This thread alone records (the store has one writer), in an
    order fixed by the list, so ids and output never depend on timing. A change to confirm is
    fetched again confirm_delay after its first fetch while the others go on, and recorded after
    them. done() follows each record.
    """
    from concurrent.futures import Future

    from tostrack.fetch.pool import HostPool
    from tostrack.fetch.throttle import host_key

    confirm_delay = config.confirm_delay
    confirming: dict[str, Future[Any]] = {}

    def first_fetch(source: Source, state: Mapping[str, Any] | None) -> Callable[[], Any]:
        validators = dict(state or {})
        if full_fetch_day(source.id, now):
            # Once a week, ignore the validators: a server that keeps a stale ETag or
            # Last-Modified must not hide a change for ever.
            validators = {k: v for k, v in validators.items() if k not in ("etag", "last_modified")}
        known = validators.get("last_snapshot_sha256")

        def job() -> tuple[Any, Future[Any] | None]:
            got = fetch.fetch(source, previous=validators)
            again = None
            if confirm_delay > 0 and known and isinstance(got, tuple) and _combined(got) != known:
                # New bytes may be a change to confirm: its second fetch is booked now, from
                # this first one, and cancelled unless the change needs it.
                again = pool.submit(
                    host_key(source.url),
                    second_fetch(source),
                    not_before=time.monotonic() + confirm_delay,
                )
            return got, again

        return job

    def second_fetch(source: Source) -> Callable[[], Any]:
        return lambda: fetch.fetch(source)

    results: dict[str, TrackResult] = {}
    with HostPool(config.max_hosts) as pool:
        first = {s.id: pool.submit(host_key(s.url), first_fetch(s, state)) for s, state in due}

        def fetched(source: Source) -> tuple[Snapshot, ...] | Failure:
            return first[source.id].result()[0]

        def confirm_later(source: Source) -> tuple[Snapshot, ...] | Failure:
            booked = first[source.id].result()[1]
            confirming[source.id] = booked or pool.submit(
                host_key(source.url),
                second_fetch(source),
                not_before=time.monotonic() + confirm_delay,
            )
            raise _ConfirmLater

        def confirmed(source: Source) -> tuple[Snapshot, ...] | Failure:
            return confirming[source.id].result()

        def track_one(source: Source, confirm: Any) -> TrackResult:
            return track(
                source, store, fetched, severity=severity, confirm=confirm, on_failure=on_failure
            )

        # Recorded in turns over the hosts (each host's first source, then each one's second,
        # ...): the order fetches come in, fixed by the list alone, never by timing.
        turn: dict[str, int] = {}
        hosts: dict[str, int] = {}
        order = []
        for n, (source, state) in enumerate(due):
            host = host_key(source.url)
            hosts.setdefault(host, len(hosts))
            turn[host] = turn.get(host, -1) + 1
            order.append(((turn[host], hosts[host], n), source, state))
        order.sort(key=lambda entry: entry[0])
        for _, source, state in order:
            try:
                results[source.id] = track_one(source, confirm_later if confirm_delay > 0 else None)
            except _ConfirmLater:
                continue
            booked = first[source.id].result()[1]
            if booked is not None:
                booked.cancel()  # no change to confirm after all (a re-rendered page, say)
            done(source, state, results[source.id])
        for _, source, state in order:  # the changes to confirm, once their second fetch is in
            if source.id in confirming:
                results[source.id] = track_one(source, confirmed)
                done(source, state, results[source.id])
    return [results[s.id] for s, _ in due]


def run(
    workspace: Workspace,
    *,
    force: bool = False,
    only: Sequence[str] = (),
    send: bool = True,
    dry_run_mail: bool = False,
) -> RunResult:
    """Track every due source of the workspace, render reports and send notifications."""
    from tostrack import notify, render
    from tostrack.fetch import FetchConfig, Fetcher
    from tostrack.fetch.health import likely_cause
    from tostrack.lock import workspace_lock
    from tostrack.recovery import reconcile
    from tostrack.sources import load_sources
    from tostrack.workers import claimed_batches, renew_host, running, worker_name

    workspace.ensure()
    all_sources = load_sources(workspace.settings)
    sources = all_sources
    if only:
        sources = tuple(s for s in sources if s.id in only or s.provider in only)
    config = FetchConfig.from_settings(workspace.settings)
    severity = workspace.config.severity_overrides  # checked when the workspace was opened
    broken_after = workspace.config.notify.broken_after
    notify.operators(
        workspace.settings
    )  # a bad operator address stops the run now, not at the alert
    notify.check_channels(workspace.config)  # so does a chat URL Apprise cannot use
    results: list[TrackResult] = []
    recorded: list[tuple[TrackResult, StoredDiff]] = []
    reports: list[Path] = []
    skipped = 0
    # A shared PostgreSQL is split between workers by leases; a workspace's own tostrack.db is
    # one run's at a time.
    shared, worker = workspace.shared_database, worker_name()
    lease = workspace.config.store.lease if workspace.config.store else 0
    with (
        contextlib.nullcontext() if shared else workspace_lock(workspace.lock_path),
        workspace.open_store() as store,
        Fetcher(config) as fetch,
    ):
        # Held until this run's diffs are queued: while it is, no other worker adopts them.
        with running(store, shared, worker, lease):
            # Adopting another worker's capture could race its own commit: embedded store only.
            messages = [] if shared else reconcile(store, all_sources, severity)
            now = clock.now()

            def alert_operators(_db: Any, failure: Failure, count: int) -> None:
                # In the failure's own transaction: the alert is queued with it or not at all, and
                # the once-per-breakage flag makes ">=" fire once however the streak got there.
                if count >= max(broken_after, 1):
                    notify.queue_operator_alert(
                        workspace,
                        store,
                        "broken",
                        failure.source_id,
                        f"{failure.reason}: {failure.detail[:200]}",
                    )

            def done(source: Source, state: Mapping[str, Any] | None, result: TrackResult) -> None:
                if result.status != "failed" and state and state["consecutive_failures"]:
                    notify.enqueue_operator(workspace, store, "recovered", source.id, "")
                if shared:  # still ours: renewed after each record of the host
                    renew_host(store, source, worker, lease)

            # The embedded store tracks every source in one batch; a shared one, the sources of
            # the hosts this worker claims, up to max_hosts hosts a batch (tostrack.workers).
            batches = (
                claimed_batches(store, sources, worker, lease, config.max_hosts)
                if shared
                else [sources]
            )
            for batch in batches:
                due: list[tuple[Source, dict[str, Any] | None]] = []
                for source in batch:
                    state = store.source_state(source.id)
                    if force or is_due(source, state, now):
                        due.append((source, state))
                    else:
                        skipped += 1
                tracked = _track_due(
                    due,
                    store,
                    fetch,
                    config,
                    now,
                    severity=severity,
                    on_failure=alert_operators,
                    done=done,
                )
                for (source, _), result in zip(due, tracked, strict=True):
                    results.append(result)
                    if result.diff_id is not None:
                        recorded.append((result, store.diff(result.diff_id)))
                    if result.redirect and result.version is not None:
                        messages.append(
                            f"redirect {source.id}: {result.redirect} (recorded with the version)"
                        )
            if results:  # the pages whose inputs changed: new reports, ...
                render.render_site(workspace, store)
            alerts = []
            for result, stored in recorded:
                path = render.change_report_path(workspace.reports_dir, stored)
                reports.append(path)
                if result.status in ("changed", "effective-date"):
                    alerts.append((stored, path))
            # One upstream event, one message: a provider's documents changed in this run go out
            # together to each recipient.
            notify.enqueue_diffs(workspace, store, alerts)
        summary = None
        if send:  # every worker sends: each message is claimed by one (tostrack.store.outbox)
            summary = notify.send_pending(workspace, store, dry_run=dry_run_mail, worker=worker)
    failures = [r.failure for r in results if r.failure is not None]
    closing = ""
    if results and len(failures) == len(results):
        closing = f"all {len(results)} source(s) failed: {likely_cause(failures)}"
    return RunResult(
        results=tuple(results),
        reports=tuple(reports),
        notifications_sent=summary.sent if summary else 0,
        notification_errors=tuple(summary.errors) if summary else (),
        eml_files=tuple(summary.written_eml) if summary else (),
        skipped_not_due=skipped,
        messages=tuple(messages),
        summary=closing,
    )
