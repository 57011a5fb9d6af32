"""What ships and what trains the model is written in our own words: no run of twelve words (or,
in Chinese, Japanese and Korean text, twelve characters) of a project data set or rule file
appears in the real corpus or the shared labels (skipped when ../shared/corpus is absent)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
RUN = 12  # words or CJK characters; shorter runs are boilerplate every drafter writes alike
_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def _runs(text: str) -> Iterator[tuple[str, ...] | str]:
    """Every 12-word run of the Latin words, and every 12-character run inside each unbroken
    stretch of CJK characters (punctuation breaks a stretch)."""
    words = _WORD.findall(text.casefold())
    for i in range(len(words) - RUN + 1):
        yield tuple(words[i : i + RUN])
    for stretch in _CJK.findall(text):
        for i in range(len(stretch) - RUN + 1):
            yield stretch[i : i + RUN]


def _our_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every clause of tests/data and every example of the rule files."""
    for path in sorted((ROOT / "tests" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                yield f"{path.name} {record.get('id')}", record["text"]
    for path in sorted((ROOT / "tostrack" / "classify" / "data").rglob("*.toml")):
        yield path.name, path.read_text(encoding="utf-8")


def test_runs_cover_latin_words_and_cjk_characters() -> None:
    latin = list(_runs(" ".join(f"w{i}" for i in range(13))))
    assert len(latin) == 2 and latin[0][0] == "w0"
    assert list(_runs("一二三四五六七八九十甲乙丙，一二三")) == [
        "一二三四五六七八九十甲乙",
        "二三四五六七八九十甲乙丙",
    ]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_project_data_sets_share_no_long_run_with_the_corpus() -> None:
    ours: dict[tuple[str, ...] | str, str] = {}
    for where, text in _our_texts():
        for run in _runs(text):
            ours[run] = where
    theirs = [*CORPUS.rglob("*.md"), *SHARED.glob("labels/*.jsonl")]
    found = set()
    for doc in theirs:
        for run in _runs(doc.read_text(encoding="utf-8", errors="replace")):
            hit = ours.get(run)
            if hit:
                found.add(hit)
    assert not found, f"text that copies the corpus, rewrite it: {sorted(found)[:20]}"
