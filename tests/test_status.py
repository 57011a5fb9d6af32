"""`workspace_status` over a real Store (SQLite and snapshot folders in tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tostrack.models import Block, Change, Clause, Diff, Document, Failure, Snapshot, Source
from tostrack.status import format_status, workspace_status
from tostrack.store import Store

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

ACME = Source(
    id="acme/terms", urls=("http://127.0.0.1/acme",), title="Acme Terms", interval=6 * 3600
)
BOLT = Source(id="bolt/usage-policy", urls=("http://127.0.0.1/bolt",), title="Bolt Policy")
CORA = Source(id="cora/terms", urls=("http://127.0.0.1/cora",), title="Cora Terms")
DUNE = Source(id="dune/terms", urls=("http://127.0.0.1/dune",), title="Dune Terms")


def snapshot(source: Source, at: str, body: str) -> Snapshot:
    return Snapshot(source.id, source.url, at, 200, "text/html", body.encode())


def clauses(*texts: str) -> tuple[Clause, ...]:
    return tuple(
        Clause(id=f"c{i}", section=str(i), heading=("Terms",), text=t)
        for i, t in enumerate(texts, 1)
    )


def document(texts: tuple[Clause, ...], effective: str | None) -> Document:
    return Document(
        blocks=tuple(Block("paragraph", c.text) for c in texts),
        title="Terms",
        effective_date=effective,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "ws") as s:
        yield s


def fill(store: Store) -> None:
    # acme: two versions with a substantive change, then a good check.
    v1 = clauses("You may use the service.", "Disputes go to the courts of Ruritania.")
    first, _ = store.save_version(
        (snapshot(ACME, "2026-11-20T08:00:00Z", "<p>one</p>"),),
        document(v1, "2026-11-01"),
        v1,
        title=ACME.title,
        url=ACME.url,
    )
    v2 = clauses("You may use the service.", "Disputes go to binding arbitration.")
    change = Change(kind="modified", substantive=True, old=(v1[1],), new=(v2[1],), severity="high")
    store.save_version(
        (snapshot(ACME, "2026-11-25T09:30:00Z", "<p>two</p>"),),
        document(v2, "2026-12-01"),
        v2,
        title=ACME.title,
        url=ACME.url,
        diff=Diff((change,), v1, v2),
        previous=first,
    )
    store.record_check(ACME.id, "2026-11-27T10:00:00Z", title=ACME.title, url=ACME.url)
    # bolt: one version, then two failures in a row (failing, not yet broken).
    b = clauses("No scraping.", "No weapons.", "No spam.")
    store.save_version((snapshot(BOLT, "2026-11-26T00:00:00Z", "<p>b</p>"),), document(b, None), b)
    store.record_check(BOLT.id, "2026-11-26T00:00:00Z")
    store.record_failure(Failure(BOLT.id, "2026-11-26T12:00:00Z", "http-503", "busy"))
    store.record_failure(Failure(BOLT.id, "2026-11-27T00:00:00Z", "challenge", "a bot wall"))
    # cora: never worked, three failures (broken).
    for hour in ("01", "02", "03"):
        store.record_failure(Failure(CORA.id, f"2026-11-27T{hour}:00:00Z", "timeout"))
    # dune: declared but never fetched.


def test_rows_for_each_state(store: Store) -> None:
    fill(store)
    rows = workspace_status(store, [ACME, BOLT, CORA, DUNE], NOW)
    assert [r["id"] for r in rows] == [ACME.id, BOLT.id, CORA.id, DUNE.id]
    acme, bolt, cora, dune = rows

    assert acme["state"] == "ok"
    assert acme["title"] == "Acme Terms"
    assert acme["url"] == ACME.url
    assert acme["versions"] == 2
    assert acme["current_captured_at"] == "2026-11-25T09:30:00Z"
    assert acme["clauses"] == 2
    assert acme["effective_date"] == "2026-12-01"
    assert acme["last_change_at"] == "2026-11-25T09:30:00Z"
    assert acme["last_checked_at"] == acme["last_success_at"] == "2026-11-27T10:00:00Z"
    assert acme["consecutive_failures"] == 0 and acme["last_failure_reason"] is None
    assert acme["next_due_at"] == "2026-11-27T16:00:00Z"  # checked 10:00 + 6 h

    assert bolt["state"] == "failing"
    assert bolt["consecutive_failures"] == 2
    assert bolt["last_failure_reason"] == "challenge"
    assert bolt["last_success_at"] == "2026-11-26T00:00:00Z"
    assert bolt["last_checked_at"] == "2026-11-27T00:00:00Z"
    assert bolt["versions"] == 1 and bolt["last_change_at"] is None
    # a failing source is retried soon (1 h, doubling per failure), not a whole day later
    assert bolt["next_due_at"] == "2026-11-27T02:00:00Z"

    assert cora["state"] == "broken"
    assert cora["consecutive_failures"] == 3
    assert cora["last_failure_reason"] == "timeout"
    assert cora["last_success_at"] is None and cora["versions"] == 0
    assert cora["current_captured_at"] is None and cora["clauses"] is None

    assert dune["state"] == "never-fetched"
    assert dune["last_checked_at"] is None and dune["versions"] == 0
    assert dune["next_due_at"] == "2026-11-27T12:00:00Z"  # due now


def test_broken_after_is_a_parameter(store: Store) -> None:
    fill(store)
    states = {
        r["id"]: r["state"] for r in workspace_status(store, [BOLT, CORA], NOW, broken_after=2)
    }
    assert states == {BOLT.id: "broken", CORA.id: "broken"}
    states = {
        r["id"]: r["state"] for r in workspace_status(store, [BOLT, CORA], NOW, broken_after=5)
    }
    assert states == {BOLT.id: "failing", CORA.id: "failing"}


def test_recovery_resets_the_state(store: Store) -> None:
    fill(store)
    store.record_check(CORA.id, "2026-11-27T11:00:00Z")
    (cora,) = workspace_status(store, [CORA], NOW)
    assert cora["state"] == "ok"
    assert cora["consecutive_failures"] == 0 and cora["last_failure_reason"] is None
    assert cora["last_success_at"] == "2026-11-27T11:00:00Z"


def test_imported_history_is_not_a_fetch(store: Store) -> None:
    c = clauses("An imported clause.")
    store.save_version(
        (snapshot(DUNE, "2025-01-01T00:00:00Z", "<p>old</p>"),),
        document(c, None),
        c,
        origin="import",
    )
    (dune,) = workspace_status(store, [DUNE], NOW)
    assert dune["state"] == "never-fetched"
    assert dune["versions"] == 1 and dune["clauses"] == 1


def test_format_status_puts_problems_first(store: Store) -> None:
    fill(store)
    text = format_status(workspace_status(store, [ACME, BOLT, CORA, DUNE], NOW))
    lines = text.splitlines()
    assert lines[0].split() == [
        "STATE",
        "SOURCE",
        "VERSIONS",
        "CHECKED",
        "CHANGED",
        "NEXT",
        "DUE",
        "NOTE",
    ]
    assert [line.split()[1] for line in lines[1:5]] == [CORA.id, BOLT.id, DUNE.id, ACME.id]
    assert "3x timeout" in lines[1]
    assert "2x challenge" in lines[2]
    assert "2 clauses, effective 2026-12-01" in lines[4]
    assert "2026-11-25 09:30" in lines[4]
    assert text.endswith("4 source(s): 1 ok, 1 failing, 1 broken, 1 never fetched\n")


def test_format_status_without_sources() -> None:
    assert "No sources" in format_status([])
