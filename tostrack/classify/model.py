"""The learned half of the classifier: a linear model over hashed features.

Rules are precise where wording is formulaic; this model gives recall on wording no rule
foresaw. A clause becomes a bag of hashed features (words, word pairs, its first words,
character 1- to 3-grams of CJK text, and which rules fired;
character n-grams of Latin text cost three times the time and did not help in
cross-validation); each label has one weight per feature bucket and a bias. The score of a label is
the logistic of bias + mean weight of the clause's features.

What ships (data/model.npz) is a matrix of numbers indexed by hash bucket: no vocabulary and no
text, so no sentence of the material it learned from can be read back out of it. Training lives
in tostrack/classify/train.py (scikit-learn, optional); inference here is a few lines of numpy.

Pure and deterministic: the hash is CRC-32 (not Python's salted hash), no clock, no network.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from operator import itemgetter
from typing import Any

import numpy as np

from tostrack.classify.script import CJK_RUN, is_cjk

# Bumped whenever the features change, so a model trained on other features is refused.
FEATURE_VERSION = 6
BUCKETS = 1 << 18

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "\u00a0": " "})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A lead-in is the text up to the first colon that a space follows ("This includes using the
# service to: ..."; a clause is read "lead-in item"): the first 8 to 300 characters.
_LEAD_IN = re.compile(r"^(.{8,300}?)[:：]\s")


# 您 and 你 are both "you" (formal and plain); NFKC makes full-width letters, digits and
# punctuation half-width, so either drafting habit reads alike.
_ZH_FOLD = str.maketrans({"您": "你"})


# The two tables as replacements: str.translate looks every character up (25 µs a clause),
# str.replace scans in C; each maps to a character that is not mapped, so the order is free.
_FOLD_PAIRS = tuple((chr(code), to) for table in (_QUOTES, _ZH_FOLD) for code, to in table.items())


def _fold(text: str) -> str:
    if text.isascii():  # NFKC leaves ASCII as it is, the tables map no ASCII character
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    for old, new in _FOLD_PAIRS:
        folded = folded.replace(old, new)
    return folded


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def lead_in_length(text: str) -> int:
    """Length of the lead-in a clause carries in its own text ("We do not train on: ..."), as
    the features read it; 0 when it has none."""
    lead = _lead_in(text)
    return lead.end(1) if lead else 0


def _lead_in(text: str) -> re.Match[str] | None:
    # The regex tries up to 300 characters for a colon: none, no lead-in.
    return _LEAD_IN.match(text) if ":" in text or "：" in text else None


def features(text: str, rules: Iterable[str] = ()) -> list[str]:
    """The feature strings of a clause (before hashing), each prefixed by its kind.

    `text` is the clause with its lead-in; `rules` the labels the rule engine gave it (which
    read the heading trail). A lead-in's words are features of their own kind: "such as:" or
    "This includes using the service to:" says little, the item after it says what the clause
    is about (cross-validation: +0.007 micro-F1 on English, +0.035 on Chinese). The model does
    not read the heading: in cross-validation it did not help, and it made every renamed
    heading a new clause to classify in a replay.
    """
    folded = _fold(text)
    lead = _lead_in(folded)
    body = folded[lead.end() :] if lead else folded
    words = _words(body)
    out = [f"w|{w}" for w in words]
    out += [f"b|{a} {b}" for a, b in itertools.pairwise(words)]
    out += [f"s|{w}" for w in words[:4]]  # how it opens: "you may not", "we may"
    for run in CJK_RUN.findall(body):
        out += [f"z|{ch}" for ch in run]
        out += [f"y|{run[i : i + 2]}" for i in range(len(run) - 1)]
        out += [f"x|{run[i : i + 3]}" for i in range(len(run) - 2)]
    if lead:
        lead_words = _words(lead.group(1))
        out += [f"l|{w}" for w in lead_words]
        out += [f"m|{a} {b}" for a, b in itertools.pairwise(lead_words)]
        for run in CJK_RUN.findall(lead.group(1)):
            out += [f"k|{run[i : i + 2]}" for i in range(len(run) - 1)]
    out += [f"r|{label}" for label in rules]
    return out


def bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (BUCKETS - 1)


def buckets(feats: Sequence[str]) -> list[int]:
    """The distinct buckets of a clause's features (presence, not counts), sorted."""
    mask = BUCKETS - 1
    return sorted({zlib.crc32(f.encode("utf-8")) & mask for f in feats})


# Inference hashes every feature of every clause it reads, and most of them are words it has
# read before: feature_buckets() hashes each word once and chains CRC-32 for the word pairs
# (crc32(b, crc32(a)) == crc32(a + b)), instead of building and encoding each feature string.
_MASK = BUCKETS - 1
_PREFIX = {kind: zlib.crc32(f"{kind}|".encode()) for kind in "wbslmzyxkr"}
# A word's buckets as a body word (w, s), as a lead-in word (l), and the CRC-32 states of its
# pair prefixes ("b|word", "m|word") with the bytes of " word" that a pair's second word adds.
_WordCodes = tuple[int, int, int, int, int, bytes]
_WORD_CODES: dict[str, _WordCodes] = {}
_CJK_CHAR_CODES: dict[str, int] = {}  # z|ch
_RULE_CODES: dict[str, int] = {}  # r|label
# Bounds the caches of a long-lived process (the corpus has about 8,000 distinct words).
_CACHE_LIMIT = 100_000


def _word_codes(word: str) -> _WordCodes:
    codes = _WORD_CODES.get(word)
    if codes is None:
        if len(_WORD_CODES) >= _CACHE_LIMIT:
            _WORD_CODES.clear()
        raw = word.encode("utf-8")
        codes = (
            zlib.crc32(raw, _PREFIX["w"]) & _MASK,
            zlib.crc32(raw, _PREFIX["s"]) & _MASK,
            zlib.crc32(raw, _PREFIX["l"]) & _MASK,
            zlib.crc32(raw, _PREFIX["b"]),
            zlib.crc32(raw, _PREFIX["m"]),
            b" " + raw,
        )
        _WORD_CODES[word] = codes
    return codes


def _code(cache: dict[str, int], kind: str, text: str) -> int:
    code = cache.get(text)
    if code is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        code = cache[text] = zlib.crc32(text.encode("utf-8"), _PREFIX[kind]) & _MASK
    return code


def _ngram_codes(kind: str, run: str, n: int) -> list[int]:
    """The buckets of a CJK run's character n-grams ("y|", "x|", "k|"), hashed off the run's
    bytes: every character of CJK_CHARS is 3 bytes of UTF-8."""
    raw = run.encode("utf-8")
    state = _PREFIX[kind]
    if len(raw) != 3 * len(run):  # not reached with CJK_CHARS as they are; kept exact anyway
        return [
            zlib.crc32(run[i : i + n].encode("utf-8"), state) & _MASK
            for i in range(len(run) - n + 1)
        ]
    width = 3 * n
    return [
        zlib.crc32(raw[i : i + width], state) & _MASK for i in range(0, len(raw) - width + 3, 3)
    ]


_BODY_WORD, _OPENING_WORD, _LEAD_WORD = itemgetter(0), itemgetter(1), itemgetter(2)
_PAIR_STATE, _LEAD_PAIR_STATE, _SPACED = itemgetter(3), itemgetter(4), itemgetter(5)


def _codes_of(words: list[str]) -> list[_WordCodes]:
    codes = list(map(_WORD_CODES.get, words))
    if None in codes:  # a word not hashed before
        codes = [c or _word_codes(w) for c, w in zip(codes, words, strict=True)]
    return codes  # type: ignore[return-value]


def _pair_buckets(codes: list[_WordCodes], state: Any) -> Iterator[int]:
    """The buckets of the word pairs: crc32(" second", state of "b|first") for each pair."""
    return map(_MASK.__and__, map(zlib.crc32, map(_SPACED, codes[1:]), map(state, codes)))


def feature_buckets(text: str, rules: Iterable[str] = ()) -> list[int]:
    """buckets(features(text, rules)), without building the feature strings."""
    return sorted(_bucket_set(text, rules))


def _bucket_set(text: str, rules: Iterable[str] = ()) -> set[int]:
    """The distinct buckets of feature_buckets. map() over the cached codes rather than
    comprehensions: the words of a clause go through C alone."""
    folded = _fold(text)
    lead = _lead_in(folded)
    body = folded[lead.end() :] if lead else folded
    codes = _codes_of(_words(body))
    found = set(map(_BODY_WORD, codes))
    found.update(_pair_buckets(codes, _PAIR_STATE))
    found.update(map(_OPENING_WORD, codes[:4]))
    for run in () if body.isascii() else CJK_RUN.findall(body):
        found.update([_code(_CJK_CHAR_CODES, "z", ch) for ch in run])
        found.update(_ngram_codes("y", run, 2))
        found.update(_ngram_codes("x", run, 3))
    if lead:
        found.update(_lead_buckets(lead.group(1)))
    found.update([_code(_RULE_CODES, "r", label) for label in rules])
    return found


@lru_cache(maxsize=1024)
def _lead_buckets(lead: str) -> frozenset[int]:
    """The buckets of a lead-in's own features (l, m, k): the items of a list share their
    lead-in, which is a quarter of the text a replay classifies."""
    codes = _codes_of(_words(lead))
    found = set(map(_LEAD_WORD, codes))
    found.update(_pair_buckets(codes, _LEAD_PAIR_STATE))
    for run in CJK_RUN.findall(lead):
        found.update(_ngram_codes("k", run, 2))
    return frozenset(found)


def _bucket_array(text: str, rules: Iterable[str] = ()) -> np.ndarray:
    """feature_buckets as an index array, sorted by numpy (the weight rows are added in this
    order, so it must be the same): no list to sort and to convert for take()."""
    found = _bucket_set(text, rules)
    idx = np.fromiter(found, dtype=np.intp, count=len(found))
    idx.sort()
    return idx


# The buckets of the texts scores_many scored lately: the sentences of a clause and an item's
# text come back in the next version of the clause, one in two of them in a replay.
_TEXT_BUCKETS: dict[str, np.ndarray] = {}
_TEXT_CACHE_LIMIT = 10_000


def _text_buckets(text: str) -> np.ndarray:
    idx = _TEXT_BUCKETS.get(text)
    if idx is None:
        if len(_TEXT_BUCKETS) >= _TEXT_CACHE_LIMIT:
            _TEXT_BUCKETS.clear()
        idx = _TEXT_BUCKETS[text] = _bucket_array(text)
        idx.flags.writeable = False  # shared by every caller
    return idx


def vectorise(feats: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, values): binary presence, scaled to unit length."""
    idx = np.array(buckets(feats), dtype=np.int64)
    if not len(idx):
        return idx, np.zeros(0)
    return idx, np.full(len(idx), 1.0 / np.sqrt(len(idx)))


@dataclass(frozen=True)
class Model:
    labels: tuple[str, ...]
    weights: np.ndarray  # BUCKETS x len(labels), float32
    bias: np.ndarray  # len(labels)
    # 2 x len(labels): decide a label when its probability reaches this; row 0 for Latin text,
    # row 1 for CJK text (trained on fewer and more uniform clauses, its probabilities run low).
    thresholds: np.ndarray
    trained_on_rules: str = ""  # rules_digest() at training time

    def scores(self, text: str, rules: Iterable[str] = ()) -> np.ndarray:
        idx = _bucket_array(text, rules)
        if not len(idx):
            return 1.0 / (1.0 + np.exp(-self.bias))
        # Same as vectorise() @ weights, without building the vector: the values are equal.
        # (np.add.reduce is what ndarray.sum calls, without the wrapper.)
        z = np.add.reduce(self.weights.take(idx, axis=0), axis=0) / np.sqrt(len(idx)) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def scores_many(self, texts: Sequence[str]) -> np.ndarray:
        """scores(text) of each text (no rules), one row each, in one pass over the weights:
        the same numbers, as each row is summed over the same weight rows in the same order."""
        rows = [_text_buckets(text) for text in texts]
        sizes = np.array([len(r) for r in rows])
        probs = np.empty((len(rows), len(self.labels)))
        filled = np.flatnonzero(sizes)
        probs[sizes == 0] = 1.0 / (1.0 + np.exp(-self.bias))
        if len(filled):
            taken = self.weights.take(np.concatenate(rows), axis=0)
            ends = np.cumsum(sizes)
            # Each row's sum over a slice, as in scores(): np.add.reduceat adds in another order
            sums = np.stack([taken[ends[i] - sizes[i] : ends[i]].sum(axis=0) for i in filled])
            z = sums / np.sqrt(sizes[filled])[:, None] + self.bias
            probs[filled] = 1.0 / (1.0 + np.exp(-z))
        return probs

    def decide(self, text: str, rules: Iterable[str] = ()) -> set[str]:
        probs = self.scores(text, rules)
        return {
            label
            for label, p, t in zip(self.labels, probs, self.thresholds_for(text), strict=True)
            if p >= t
        }

    def thresholds_for(self, text: str) -> np.ndarray:
        return self.thresholds[1 if is_cjk(text) else 0]

    def weighed_most(
        self, label: str, text: str, rules: Iterable[str] = (), top: int = 5
    ) -> list[tuple[str, float]]:
        """The features of this text that pushed hardest towards `label`, for --explain.

        The feature strings are rebuilt from the text itself: the model holds none.
        """
        column = self.labels.index(label)
        feats = sorted(set(features(text, rules)))
        weighed = [(f, float(self.weights[bucket(f), column])) for f in feats]
        weighed.sort(key=lambda fw: -fw[1])
        return [(f, round(w, 3)) for f, w in weighed[:top] if w > 0]

    def to_arrays(self) -> dict[str, Any]:
        nonzero = np.flatnonzero(np.any(self.weights != 0, axis=1))
        return {
            "feature_version": np.array(FEATURE_VERSION),
            "labels": np.array(self.labels),
            "rows": nonzero.astype(np.int32),
            "values": self.weights[nonzero].astype(np.float16),
            "bias": self.bias.astype(np.float32),
            "thresholds": self.thresholds.astype(np.float32),
            "rules_digest": np.frombuffer(bytes.fromhex(self.trained_on_rules or "00"), np.uint8),
        }

    @classmethod
    def from_arrays(cls, data: Any) -> Model:
        if int(data["feature_version"]) != FEATURE_VERSION:
            raise ValueError("classifier model was trained on other features; retrain it")
        labels = tuple(str(x) for x in data["labels"])
        weights = np.zeros((BUCKETS, len(labels)), dtype=np.float32)
        # float16 -> float32 in the assignment (exact): no float32 copy of the values first
        weights[data["rows"]] = data["values"]
        digest = bytes(data["rules_digest"]).hex() if "rules_digest" in data else ""
        return cls(
            labels,
            weights,
            data["bias"].astype(np.float64),
            data["thresholds"].astype(np.float64),
            digest,
        )


MODEL_FILE = "model.npz"


def rules_digest() -> str:
    """What the rules decide with (rules.rules_fingerprint: patterns, vetoes and negatives, not
    their examples): the model reads which rules fired, so a model trained on other rules is
    stale, and tests/test_model.py says to retrain."""
    from tostrack.classify.rules import rules_fingerprint

    return rules_fingerprint()


@lru_cache(maxsize=1)
def packaged_model() -> Model | None:
    """The model shipped in tostrack/classify/data, or None when there is none (rules only)."""
    path = resources.files("tostrack.classify").joinpath("data", MODEL_FILE)
    if not path.is_file():
        return None
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as data:
        return Model.from_arrays(data)
