"""The shortcuts replay takes (Markdown parsed by chunks, clauses labelled once per history,
identical versions not aligned) change nothing in what it prints: a sample of the real corpus,
replayed with and without them. The whole corpus is checked against a dump made before the
shortcuts by `benchmarks/replay_output.py check` (and `replay_corpus.py --check`).
Skipped when ../shared/corpus is absent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tostrack import align, extract, replay
from tostrack.history import dated_files
from tostrack.pipeline import analyse

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="no corpus at ../shared/corpus")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _histories() -> list[Path]:
    return replay.version_dirs(CORPUS) if CORPUS.is_dir() else []


def _smallest(count: int) -> list[Path]:
    by_size = sorted(_histories(), key=lambda d: sum(p.stat().st_size for p in d.iterdir()))
    return by_size[:count]


def _lines(directories: list[Path]) -> list[str]:
    from replay_output import replay_lines

    return list(replay_lines(directories))


def test_sample_replays_the_same_without_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = _smallest(4)
    fast = _lines(sample)
    with monkeypatch.context() as slow:
        slow.setattr(extract, "_markdown_chunks", lambda text: None)
        slow.setattr(align, "_identical", lambda old, new: False)
        slow.setattr(replay, "HistoryAnalyser", lambda known=None: analyse)
        assert _lines(sample) == fast
    assert len(fast) >= 4


@pytest.mark.parametrize("directory", _histories(), ids=lambda d: d.relative_to(CORPUS).as_posix())
def test_markdown_by_chunks_extracts_as_a_whole(directory: Path) -> None:
    # The newest and the oldest version of each document: chunked and in one piece.
    files = dated_files(directory)
    for _, path in (files[0], files[-1]):
        text = extract._decode_text(path.read_bytes(), None)
        whole = extract._from_html(extract._markdown_to_html(text), (), ())
        assert extract.extract_file(path) == whole, path.name


def test_versions_analysed_in_other_processes_are_the_same() -> None:
    from tostrack.models import Snapshot, Source
    from tostrack.replay import analyse_versions

    directory = next(d for d in _smallest(len(_histories())) if len(dated_files(d)) >= 12)
    source = Source(id="corpus/sample", urls=(f"file://{directory}",))
    snapshots = [
        Snapshot(source.id, source.url, at, 200, "text/markdown", path.read_bytes())
        for at, path in dated_files(directory)
    ]
    # Three processes: two runs of versions, each with its own history of labelled clauses.
    assert list(analyse_versions(snapshots, source, jobs=3)) == list(
        analyse_versions(snapshots, source)
    )
