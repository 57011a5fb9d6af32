"""The store's shortcuts write and read back exactly what the plain codecs do.

version_json reuses the JSON of clauses an earlier version had; as_read_back gives a clause as
loading its JSON would. Both are checked against the slow path on generated clauses.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tostrack.models import Clause, Document, Snapshot
from tostrack.store import Store
from tostrack.store.codecs import (
    as_read_back,
    clause_from_json,
    clause_to_json,
    document_to_json,
    json_bytes,
    text_digest,
    version_json,
)

# Quotes, backslashes, control characters, non-ASCII and separators JSON escapes or keeps.
TEXT = st.text(alphabet=st.sampled_from('ab é"\\\n\t\x01\u2028›€中'), max_size=12)
LABELS = st.sampled_from(["data-use", "liability", "termination", "arbitration"])

clauses = st.builds(
    Clause,
    id=TEXT,
    section=TEXT,
    heading=st.lists(TEXT, max_size=3).map(tuple),
    text=TEXT,
    number=TEXT,
    lead_in=TEXT,
    labels=st.lists(LABELS, max_size=3).map(tuple),
    evidence=st.lists(st.tuples(LABELS, TEXT), max_size=4).map(tuple),  # any order, repeats
)
documents = st.builds(
    Document,
    blocks=st.just(()),
    title=TEXT,
    effective_date=st.none() | st.just("2026-03-01"),
    metadata=st.lists(st.tuples(TEXT, TEXT), max_size=3).map(tuple),
)

quick = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])


def _plain(document: Document, items: list[Clause]) -> bytes:
    return json_bytes(
        {"document": document_to_json(document), "clauses": [clause_to_json(c) for c in items]}
    )


@quick
@given(documents, st.lists(clauses, max_size=6), st.lists(clauses, max_size=6))
def test_version_json_writes_the_bytes_json_bytes_writes(
    document: Document, earlier: list[Clause], later: list[Clause]
) -> None:
    first, known, strings_only = version_json(document, earlier, {})
    assert first == _plain(document, earlier) and strings_only
    # The next version: some clauses of the first again, in another order, and new ones.
    mixed = later + earlier[::-1]
    second, _, _ = version_json(document, mixed, known)
    assert second == _plain(document, mixed)


@quick
@given(clauses)
def test_as_read_back_is_what_loading_the_stored_json_gives(clause: Clause) -> None:
    stored = json.loads(json_bytes(clause_to_json(clause)))
    assert as_read_back(clause) == clause_from_json(stored)


def test_a_clause_with_a_value_that_is_not_a_string_takes_the_plain_path(
    tmp_path: Path,
) -> None:
    odd = Clause(id="c1", section="1", heading=(), text="Fees apply.", evidence=(("fees", 1),))  # type: ignore[arg-type]
    same_but_bool = Clause(
        id="c1",
        section="1",
        heading=(),
        text="Fees apply.",
        evidence=(("fees", True),),  # type: ignore[arg-type]
    )
    document = Document(blocks=())
    _, known, strings_only = version_json(document, [odd], {})
    assert known == {} and not strings_only  # 1 == True: never looked up by equality
    data, _, _ = version_json(document, [same_but_bool], known)
    assert data == _plain(document, [same_but_bool])
    snapshot = Snapshot("acme/terms", "file:///x", "2026-01-01T00:00:00Z", 200, "text/html", b"x")
    with Store(tmp_path) as store:
        version, _ = store.save_version((snapshot,), document, (same_but_bool,))
        assert store.stored_clauses(version) == version.load()[1]


def test_the_version_just_saved_is_read_back_from_memory_as_from_disk(tmp_path: Path) -> None:
    clause = Clause(
        id="c1",
        section="2",
        heading=("Payment",),
        text="We may change the fees with notice.",
        labels=("pricing",),
        evidence=(("pricing", "fees"), ("notice", "with notice")),  # not by label
    )
    assert as_read_back(clause) != clause  # read back by label
    snapshot = Snapshot("acme/terms", "file:///x", "2026-01-01T00:00:00Z", 200, "text/html", b"x")
    with Store(tmp_path) as store:
        version, _ = store.save_version((snapshot,), Document(blocks=()), (clause,))
        assert store.stored_clauses(version) == version.load()[1]
        assert version.text_sha256 == text_digest((clause,))
        assert (version.path / "version.json").read_bytes() == _plain(Document(blocks=()), [clause])
    with Store(tmp_path) as reopened:  # nothing in memory: read from disk
        assert reopened.stored_clauses(version) == version.load()[1]
