"""What ships and what trains the model is written in our own words: no run of twelve words of a
project data set appears in the real corpus (skipped when ../shared/corpus is absent)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
RUN = 12  # words; shorter runs are legal boilerplate every drafter writes alike
_WORD = re.compile(r"[a-z0-9]+")


def _runs(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return {tuple(words[i : i + RUN]) for i in range(len(words) - RUN + 1)}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_project_data_sets_share_no_long_run_of_words_with_the_corpus() -> None:
    ours: dict[tuple[str, ...], str] = {}
    for path in sorted((ROOT / "tests" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                for run in _runs(record["text"]):
                    ours[run] = f"{path.name} {record.get('id')}"
    found = set()
    for doc in CORPUS.rglob("*.md"):
        words = _WORD.findall(doc.read_text(encoding="utf-8", errors="replace").casefold())
        for i in range(len(words) - RUN + 1):
            hit = ours.get(tuple(words[i : i + RUN]))
            if hit:
                found.add(hit)
    assert not found, f"clauses that copy the corpus, rewrite them: {sorted(found)[:20]}"
