"""Replaying a dated history: pairs in order, stable ids, cosmetic pairs stay quiet."""

from __future__ import annotations

import gc
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tostrack.errors import InputError
from tostrack.extract import extract_file
from tostrack.pipeline import analyse, compare_files
from tostrack.replay import HistoryAnalyser, replay_directory, replay_pairs, version_dirs

V1 = """# Corvid Cloud Terms

## 1. Using Corvid

1.1 You may use Corvid for lawful purposes only.

1.2 You may not resell access to Corvid without our written consent.

## 2. Payment

2.1 Fees are billed monthly in advance.

2.2 Late payments accrue interest at one percent per month.
"""

# Only formatting: emphasis, a tracked link, list markers, whitespace, curly quotes.
V2_COSMETIC = """# Corvid Cloud Terms

## 1. Using Corvid

1.1   You may use **Corvid** for [lawful purposes](https://corvid.example/lawful?utm_source=x) only.

1.2 You may not resell access to Corvid without our written consent.

## 2. Payment

2.1 Fees are billed monthly in advance.

2.2 Late payments accrue interest at one percent per month.
"""

# Renumbered (a new section 1), one clause reworded, one moved to another section.
V3 = """# Corvid Cloud Terms

## 1. Definitions

1.1 "Corvid" means the hosted models and the console.

## 2. Using Corvid

2.1 You may use Corvid for lawful purposes only.

## 3. Payment

3.1 Fees are billed yearly in advance and are not refundable.

3.2 Late payments accrue interest at one percent per month.

3.3 You may not resell access to Corvid without our written consent.
"""


def write_history(folder: Path, versions: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for month, text in enumerate(versions, 1):
        name = f"2026-{month:02d}-01T00-00-00Z.md"
        (folder / name).write_text(text, encoding="utf-8")
        names.append(name)
    return names


def test_pairs_in_date_order_with_cosmetic_and_substantive_verdicts(tmp_path: Path) -> None:
    folder = tmp_path / "corvid" / "terms"
    names = write_history(folder, [V1, V2_COSMETIC, V2_COSMETIC, V3])
    records = list(replay_pairs([folder]))
    assert [(r["from"], r["to"]) for r in records] == list(itertools.pairwise(names))
    assert all(r["document"] == str(folder) for r in records)
    assert records[0]["summary"]["substantive"] == 0  # formatting only
    assert records[1]["changes"] == []  # the same file twice
    last = records[2]
    kinds = {(c["kind"], c["moved"]) for c in last["changes"] if c["substantive"]}
    assert ("added", False) in kinds  # the definition
    assert ("modified", False) in kinds  # fees
    assert ("moved", True) in kinds  # resale clause, now under Payment
    json.dumps(records)  # the records are what `tostrack replay` prints


def test_ids_are_stable_through_the_history(tmp_path: Path) -> None:
    folder = tmp_path / "corvid" / "terms"
    write_history(folder, [V1, V2_COSMETIC, V3])
    diffs = [diff for _, _, diff in replay_directory(folder)]
    first_ids = {c.text: c.id for c in diffs[0].old_clauses}
    resale = next(c for c in diffs[-1].new_clauses if "resell" in c.text)
    fees = next(c for c in diffs[-1].new_clauses if c.text.startswith("Fees"))
    resale_text = "You may not resell access to Corvid without our written consent."
    assert resale.id == first_ids[resale_text]
    assert fees.id == first_ids["Fees are billed monthly in advance."]
    ids = [c.id for c in diffs[-1].new_clauses]
    assert len(ids) == len(set(ids))


def test_replay_agrees_with_comparing_each_pair_on_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "corvid" / "terms"
    names = write_history(folder, [V1, V2_COSMETIC, V3])
    for record, (old, new) in zip(replay_pairs([folder]), itertools.pairwise(names)):
        alone = compare_files(folder / old, folder / new).diff
        assert record["summary"] == alone.summary()
        assert [(c["kind"], c["substantive"], c["labels"]) for c in record["changes"]] == [
            (c.kind, c.substantive, list(c.labels)) for c in alone.changes
        ]


def test_history_analyser_labels_like_analyse(tmp_path: Path) -> None:
    folder = tmp_path / "corvid" / "terms"
    write_history(folder, [V1, V3, V1])
    analyser = HistoryAnalyser()
    for path in sorted(folder.iterdir()):
        document = extract_file(path)
        assert analyser(document) == analyse(document)


def test_a_folder_of_documents_replays_each(tmp_path: Path) -> None:
    write_history(tmp_path / "corpus" / "corvid" / "terms", [V1, V3])
    write_history(tmp_path / "corpus" / "nimbus" / "policy", [V1, V2_COSMETIC, V3])
    (tmp_path / "corpus" / "README.md").write_text("not a version")
    assert [
        d.relative_to(tmp_path / "corpus").as_posix() for d in version_dirs(tmp_path / "corpus")
    ] == ["corvid/terms", "nimbus/policy"]
    records = list(replay_pairs([tmp_path / "corpus"]))
    assert [Path(r["document"]).name for r in records] == ["terms", "policy", "policy"]


def test_a_folder_without_dated_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "terms.md").write_text(V1)
    with pytest.raises(InputError, match="named by capture time"):
        list(replay_pairs([tmp_path / "empty"]))
    with pytest.raises(InputError, match="not a folder"):
        list(replay_pairs([tmp_path / "missing"]))


def test_markdown_differing_only_in_link_targets_is_not_extracted_again(
    tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "corvid" / "terms"
    tracked = V2_COSMETIC.replace("utm_source=x", "utm_source=y&sid=42")
    write_history(folder, [V2_COSMETIC, tracked, tracked.replace("lawful purposes", "any purpose")])
    import tostrack.extract

    calls = []
    real = tostrack.extract.extract_file
    monkeypatch.setattr(tostrack.extract, "extract_file", lambda p: calls.append(p) or real(p))
    records = list(replay_pairs([folder]))
    assert [p.name for p in calls] == ["2026-01-01T00-00-00Z.md", "2026-03-01T00-00-00Z.md"]
    assert records[0]["changes"] == []
    assert records[1]["summary"]["substantive"] == 1  # the link text itself changed


def test_versions_analysed_for_import_skip_link_target_churn_but_date_each_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """analyse_versions (import) does not extract a capture again when only link targets
    moved, but whether its effective date is still to come is read at its own capture time;
    a source with select/remove rules is always extracted (a selector may read a link)."""
    import tostrack.pipeline
    from tostrack.models import Snapshot, Source
    from tostrack.replay import analyse_versions

    dated = "Effective: March 1, 2026\n\n" + V2_COSMETIC
    tracked = dated.replace("utm_source=x", "utm_source=y")
    calls: list[bytes] = []
    real = tostrack.pipeline.extract_pages
    monkeypatch.setattr(
        tostrack.pipeline,
        "extract_pages",
        lambda snapshots, source: calls.append(snapshots[0].body) or real(snapshots, source),
    )

    def captures(source: Source) -> list[Snapshot]:
        return [
            Snapshot(source.id, source.url, at, 200, "text/markdown", text.encode())
            for at, text in (("2026-02-01T00:00:00Z", dated), ("2026-03-02T00:00:00Z", tracked))
        ]

    source = Source(id="corvid/terms", urls=("https://corvid.example/terms",))
    (first, _), (second, clauses) = analyse_versions(captures(source), source)
    assert len(calls) == 1
    assert first.effective_date == second.effective_date == "2026-03-01"
    assert first.effective_date_is_future and not second.effective_date_is_future
    alone = tostrack.pipeline.extract_snapshots(captures(source)[1:], source)
    assert second == alone and clauses == analyse(alone)

    calls.clear()
    selective = Source(id="corvid/terms", urls=source.urls, select=("main",))
    list(analyse_versions(captures(selective), selective))
    assert len(calls) == 2


def classified_texts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts of every clause classified from now on (the classifier itself still runs)."""
    import tostrack.classify

    texts: list[str] = []
    real = tostrack.classify.classify_clauses
    monkeypatch.setattr(
        tostrack.classify,
        "classify_clauses",
        lambda clauses: texts.extend(c.full_text for c in clauses) or real(clauses),
    )
    return texts


def test_a_replay_classifies_a_clause_shared_by_two_documents_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    corpus = tmp_path / "corpus"
    write_history(corpus / "corvid" / "terms", [V1, V3])
    write_history(corpus / "nimbus" / "terms", [V3, V1])  # the same clauses, other order
    expected = list(replay_pairs([corpus], jobs=2))  # each document in a process of its own
    texts = classified_texts(monkeypatch)
    list(replay_pairs([corpus / "corvid" / "terms"]))
    corvid_alone = sorted(texts)
    texts.clear()
    assert list(replay_pairs([corpus])) == expected
    assert sorted(texts) == corvid_alone  # nothing of nimbus's was read again


def test_a_providers_documents_are_one_task_unless_that_would_unbalance_the_processes(
    tmp_path: Path,
) -> None:
    from tostrack.replay import _history_cost, work_units

    corpus = tmp_path / "corpus"
    for provider, document, versions in (
        ("corvid", "terms", [V1, V3]),
        ("corvid", "privacy", [V1]),
        ("nimbus", "terms", [V3, V1, V3, V1, V3]),
        ("quill", "terms", [V1, V2_COSMETIC, V2_COSMETIC]),
    ):
        write_history(corpus / provider / document, versions)
    # A version of about the same size as the one before (a cosmetic edit) costs nothing
    assert _history_cost(corpus / "quill" / "terms") == len(V1.encode())
    dirs = version_dirs(corpus)
    one_each = [tuple(u) for u in work_units(dirs, 1)]
    assert sorted(map(len, one_each)) == [1, 1, 2]  # corvid's two documents together
    assert (corpus / "corvid" / "privacy", corpus / "corvid" / "terms") in one_each
    assert one_each[0] == (corpus / "nimbus" / "terms",)  # the costliest first
    # With 4 processes, corvid (a third of the work) is more than half a process's share
    assert sorted(map(len, work_units(dirs, 4))) == [1, 1, 1, 1]
    assert sorted(d for u in work_units(dirs, 4) for d in u) == sorted(dirs)


def test_a_worker_classifies_a_reading_once_for_every_task_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tostrack import replay

    corpus = tmp_path / "corpus"
    write_history(corpus / "corvid" / "terms", [V1, V3])
    write_history(corpus / "nimbus" / "terms", [V3, V1])
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        replay._start_replay_worker()  # as in a worker process: nothing known yet
        monkeypatch.setattr(replay, "_worker_known", {})
        counted = classified_texts(monkeypatch)
        first = replay._unit_records((corpus / "corvid" / "terms",))
        read_for_corvid = len(counted)
        second = replay._unit_records((corpus / "nimbus" / "terms",))
    finally:
        gc.set_threshold(*thresholds)  # this process is not a worker
        if not frozen:
            gc.unfreeze()
    assert read_for_corvid and len(counted) == read_for_corvid  # nimbus's clauses are corvid's
    assert [*first.values(), *second.values()] == [
        (list(replay_pairs([corpus / "corvid" / "terms"])), None),
        (list(replay_pairs([corpus / "nimbus" / "terms"])), None),
    ]


def _dangling_version(folder: Path) -> None:
    """A version file the replay cannot read (a symbolic link to nothing)."""
    (folder / "2026-12-01T00-00-00Z.md").symlink_to(folder / "gone.md")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_document_that_cannot_be_read_stops_the_replay_after_the_ones_before_it(
    tmp_path: Path, jobs: int
) -> None:
    """With -j as in one process: the documents before the unreadable one are printed, then a
    clear error (its provider's other documents run in the same task)."""
    corpus = tmp_path / "corpus"
    write_history(corpus / "corvid" / "a-terms", [V1, V3])
    write_history(corpus / "corvid" / "b-privacy", [V1, V3])
    _dangling_version(corpus / "corvid" / "b-privacy")
    write_history(corpus / "nimbus" / "terms", [V3, V1])
    got: list[dict] = []
    with pytest.raises(InputError, match="cannot read"):
        got.extend(replay_pairs([corpus], jobs=jobs))
    assert [r["document"] for r in got] == [str(corpus / "corvid" / "a-terms")] + [
        str(corpus / "corvid" / "b-privacy")
    ]  # b-privacy's first pair, then its unreadable third version


def test_replay_lines_are_the_records_as_json_made_in_the_workers(tmp_path: Path) -> None:
    from tostrack.replay import replay_lines

    corpus = tmp_path / "corpus"
    write_history(corpus / "corvid" / "terms", [V1, V3, V2_COSMETIC])
    write_history(corpus / "nimbus" / "terms", [V3, V1])
    write_history(corpus / "quill" / "terms", [V1, V3])
    expected = [json.dumps(r, ensure_ascii=False) for r in replay_pairs([corpus])]
    assert len(expected) == 4
    assert list(replay_lines([corpus])) == expected
    assert list(replay_lines([corpus], jobs=2)) == expected  # the workers wrote them
    summaries = [
        f"{r['document']}: {r['from']} -> {r['to']}: "
        f"{r['summary']['substantive']} substantive, {r['summary']['cosmetic']} cosmetic"
        for r in replay_pairs([corpus])
    ]
    assert list(replay_lines([corpus], form="summary")) == summaries
    assert list(replay_lines([corpus], jobs=2, form="summary")) == summaries
    with pytest.raises(ValueError, match="unknown replay line form"):
        replay_lines([corpus], form="yaml")


def test_a_replay_tunes_the_collector_and_restores_it(tmp_path: Path) -> None:
    from tostrack.replay import long_run_gc

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with long_run_gc():
        assert gc.get_threshold()[0] > before[0] and gc.get_freeze_count() > 0
        with long_run_gc():  # nested: tuned once
            pass
        assert gc.get_threshold()[0] > before[0] and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    # Two replays read in turn: the last one out restores the collector
    write_history(tmp_path / "corvid" / "terms", [V1, V3, V1])
    first, second = replay_pairs([tmp_path]), replay_pairs([tmp_path])
    next(first), next(second)
    list(first)
    assert gc.get_threshold()[0] > before[0]  # the second is still running
    list(second)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    # An error inside the replay restores it too
    _dangling_version(tmp_path / "corvid" / "terms")
    with pytest.raises(InputError, match="cannot read"):
        list(replay_pairs([tmp_path]))
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_replay_leaves_what_the_application_froze_frozen() -> None:
    from tostrack.replay import long_run_gc

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with long_run_gc():
            pass
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
@pytest.mark.parametrize("document", ["microsoft/copilot-terms-of-use", "openai/business-terms"])
def test_corpus_tracking_link_churn_is_never_substantive(document: str) -> None:
    """Versions that differ only in link targets (rotating tracking ids), each extracted on its
    own: no substantive change. And ids stay unique through the replayed history."""
    import re

    target = re.compile(r"\]\((?:[^()\n]|\([^()\n]*\))*\)")
    churn = []
    for old, new, diff in replay_directory(CORPUS / document):
        ids = [c.id for c in diff.new_clauses]
        assert len(ids) == len(set(ids)), (old.name, new.name)
        texts = [p.read_text(encoding="utf-8") for p in (old, new)]
        if texts[0] != texts[1] and target.sub("]()", texts[0]) == target.sub("]()", texts[1]):
            churn.append((old, new))
    assert churn
    for old, new in churn[:8]:
        assert not compare_files(old, new).diff.substantive, (old.name, new.name)


def test_a_replay_imports_neither_the_store_nor_the_workspace(tmp_path: Path) -> None:
    """Replaying is pure: its modules leave SQLite, the store and the config schema unimported,
    before and while it replays (start-up time of `tostrack replay` and of each of its worker
    processes, issue #14)."""
    import os
    import subprocess
    import sys

    import tostrack

    write_history(tmp_path / "corvid" / "terms", [V1, V3])
    code = (
        "import sys, tostrack.replay, tostrack.pipeline\n"
        "from pathlib import Path\n"
        "from tostrack import align, extract, output, segment\n"
        "from tostrack.classify import classify_text\n"
        "classify_text('We may change these terms.')\n"
        f"records = list(tostrack.replay.replay_pairs([Path({str(tmp_path)!r})]))\n"
        "assert records[0]['summary']['substantive'], records\n"
        "print(tostrack.__file__)\n"
        "print(sorted(m for m in ('sqlite3', 'tostrack.store', 'tostrack.workspace',"
        " 'tostrack.config') if m in sys.modules))\n"
    )
    root = str(Path(tostrack.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    # Run from the folder that holds this tostrack: `-c` puts the working folder first on the
    # path, which in a checkout with tostrack installed (CI) would be the other copy.
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
    )
    where, loaded = done.stdout.splitlines()
    assert Path(where).resolve() == Path(tostrack.__file__).resolve()
    assert loaded == "[]"


@given(
    st.binary(max_size=200).map(lambda b: bytes(b"ab](x)\n"[c % 7] for c in b)),
    st.lists(st.tuples(st.integers(0, 199), st.sampled_from(b"ab](x)\n")), max_size=3),
    st.integers(0, 200),
)
@settings(max_examples=400, deadline=None)
def test_the_quick_look_at_the_first_difference_never_changes_the_verdict(
    text: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    """_same_markdown answers "differ" early when no link target can hold the first
    difference; it must answer as a comparison without link targets would."""
    from tostrack.replay import _same_markdown, _without_link_targets

    other = bytearray(text)
    for at, char in edits:
        if at < len(other):
            other[at] = char
    edited = bytes(other[:cut])
    expected = _without_link_targets(text) == _without_link_targets(edited)
    assert _same_markdown(text, edited) == expected
    assert _same_markdown(edited, text) == expected
