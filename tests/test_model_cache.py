"""The classifier's shortcuts (hashing words once, scoring texts together, keeping the last
scores) give the numbers the plain way gives, on any text and any sequence of calls."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tostrack.classify import _SENTENCE, _best_sentence, _item_supports
from tostrack.classify import model as model_module
from tostrack.classify import rules as rules_module
from tostrack.classify.model import Model, buckets, feature_buckets, features, packaged_model

# Words, apostrophes, curly quotes, full-width letters, CJK runs (with full-width punctuation),
# colons that make a lead-in, sentence ends: what feature hashing splits on.
_PIECES = st.sampled_from(
    [
        "you",
        "may",
        "not",
        "don’t",
        "users'",
        "API",
        "Ｆｕｌｌ",
        "42",
        "train",
        "model",
        "such as:",
        "this includes using the service to:",
        ":",
        "：",
        ".",
        ";",
        "\n",
        "“quoted”",
        "用户不得",
        "抓取本服务的数据",
        "您",
        "。",
        "ひらがな",
        "한국어",
        "ｱ",
        "é",
    ]
)
_TEXTS = st.lists(_PIECES, max_size=40).map(" ".join) | st.text(max_size=80)
_RULES = st.lists(st.sampled_from(["data-extraction", "arbitration", "feedback"]), max_size=3)


def _model() -> Model:
    model = packaged_model()
    assert model is not None, "these tests need the shipped model"
    return model


def _plain_scores(model: Model, text: str) -> np.ndarray:
    """Model.scores as it was before the shortcuts: from the feature strings."""
    idx = buckets(features(text))
    if not idx:
        return 1.0 / (1.0 + np.exp(-model.bias))
    z = model.weights.take(idx, axis=0).sum(axis=0) / np.sqrt(len(idx)) + model.bias
    return 1.0 / (1.0 + np.exp(-z))


@settings(max_examples=300, deadline=None)
@given(_TEXTS, _RULES)
def test_feature_buckets_are_the_buckets_of_the_feature_strings(text: str, rules: list) -> None:
    expected = buckets(features(text, rules))
    assert feature_buckets(text, rules) == expected
    assert feature_buckets(text, rules) == expected  # from the caches this time


@settings(max_examples=100, deadline=None)
@given(st.lists(_TEXTS, min_size=1, max_size=6), _RULES)
def test_feature_buckets_when_the_caches_keep_being_cleared(texts: list[str], rules: list) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_module, "_CACHE_LIMIT", 2)
        for text in texts + texts:
            assert feature_buckets(text, rules) == buckets(features(text, rules))


@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXTS, min_size=1, max_size=8))
def test_scores_many_gives_each_text_its_own_scores(texts: list[str]) -> None:
    model = _model()
    many = model.scores_many(texts)
    assert many.shape == (len(texts), len(model.labels))
    for text, row in zip(texts, many, strict=True):
        one = model.scores(text)
        assert one.dtype == row.dtype and np.array_equal(one, row)
        assert np.array_equal(one, _plain_scores(model, text))


def _plain_best_sentence(model: Model, label: str, text: str) -> str:
    column = model.labels.index(label)
    best, best_score = text.strip(), float("-inf")
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        if len(sentence) >= 3:
            score = float(_plain_scores(model, sentence)[column])
            if score > best_score:
                best, best_score = sentence, score
    return best


def _other_model(model: Model) -> Model:
    """The shipped model with its label columns in reverse: other scores for the same text."""
    return Model(
        model.labels, model.weights[:, ::-1].copy(), model.bias[::-1].copy(), model.thresholds
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_TEXTS, st.integers(0, 21), st.booleans()), min_size=1, max_size=10),
)
def test_kept_scores_are_never_another_texts_or_models(calls: list) -> None:
    """Calls in any order, with the same text again, another text, another model: each answer
    is the one the plain way gives."""
    shipped = _model()
    other = _other_model(shipped)
    for text, column, use_other in calls:
        model = other if use_other else shipped
        label = model.labels[column]
        for _ in range(2):
            assert _best_sentence(model, label, text) == _plain_best_sentence(model, label, text)
            expected = _plain_scores(model, text)[column] >= model.thresholds_for(text)[column] / 2
            assert _item_supports(model, label, text) == bool(expected)


def test_the_first_of_equally_scored_sentences_is_the_evidence() -> None:
    model = _model()
    text = "You may not scrape the service. You may not scrape the service. Other words here."
    label = "data-extraction"
    assert _best_sentence(model, label, text) == _plain_best_sentence(model, label, text)


@settings(max_examples=300, deadline=None)
@given(_TEXTS | st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_folding_ascii_text_by_lower_case_is_the_full_fold(text: str) -> None:
    full = unicodedata.normalize("NFKC", text).casefold()
    assert model_module._fold(text) == full.translate(model_module._QUOTES).translate(
        model_module._ZH_FOLD
    )


# The rules' masks as they were written before they opened with what their matches start with.
_PLAIN_ABBREV = re.compile(
    r"\b(?:e\.g|i\.e|etc|U\.S|U\.K|E\.U|vs|Inc|Ltd|Co|Corp|No|Nos|Sec|Secs|incl|approx|cf|St|Mr|Ms|Dr)\.",
    re.IGNORECASE,
)
_PLAIN_INNER_DOT = re.compile(r"(?<=\w)\.(?=\w)")
_PLAIN_CROSS_REFERENCE = re.compile(
    r"\b(?:sections?|clauses?|paragraphs?|articles?)\s+[\w.\-–]{1,10}\s*(\([^()]{1,60}\))",
    re.IGNORECASE,
)


def _plain_mask(text: str) -> str:
    masked = text.translate(rules_module._SAME_WIDTH)
    masked = _PLAIN_ABBREV.sub(lambda m: m.group(0)[:-1].replace(".", "\u2024") + "\u2024", masked)
    masked = _PLAIN_CROSS_REFERENCE.sub(rules_module._blank_title, masked)
    return _PLAIN_INNER_DOT.sub("\u2024", masked)


_MASK_PIECES = st.sampled_from(
    [
        "e.g.",
        "E.G.",
        "i.e.",
        "etc.",
        "U.S.",
        "u.k.",
        "E.U.",
        "vs.",
        "Inc.",
        "ltd.",
        "Co.",
        "Corp.",
        "No.",
        "Nos.",
        "Sec.",
        "SECS.",
        "incl.",
        "approx.",
        "cf.",
        "St.",
        "Mr.",
        "Ms.",
        "Dr.",
        "ſt.",  # a long s, which IGNORECASE reads as s
        "K.",
        "ſection 2 (Fees)",  # the same, in a cross-reference
        "İnc.",  # and the other characters IGNORECASE reads as ASCII letters
        "artıcle 3 (Scope)",
        "e.ġ.",  # not one of them
        "Ⅰnc.",
        "xe.g.",
        "1.2",
        "example.com",
        "Section 4.2 (Termination)",
        "ARTICLE K (Indemnification)",
        "clauses 3-5 (a)",
        "paragraph (x)",
        "(",
        ")",
        ".",
        "'",
        "’",
        "–",
        "word",
        "",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_MASK_PIECES, max_size=12).map(" ".join) | st.lists(_MASK_PIECES).map("".join))
def test_the_rules_masks_find_what_the_plain_patterns_find(text: str) -> None:
    assert rules_module._mask(text) == _plain_mask(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_the_rules_masks_on_any_text(text: str) -> None:
    assert rules_module._mask(text) == _plain_mask(text)


def test_the_characters_read_as_ascii_letters_ignoring_case_are_all_known() -> None:
    """The masks look their literals up in a text's lower case unless it holds one of these:
    every other character that IGNORECASE matches with an ASCII letter is one."""
    others = "".join(chr(c) for c in range(128, 0x110000) if not 0xD800 <= c < 0xE000)
    twins = set(re.findall("[a-z]", others, re.IGNORECASE))
    assert twins == set(rules_module._ASCII_CASE_TWINS)


@settings(max_examples=300, deadline=None)
@given(_TEXTS | st.text(max_size=80))
def test_the_shortcut_counts_count_what_the_plain_ones_count(text: str) -> None:
    from tostrack.classify import _has_words
    from tostrack.classify.script import CJK_RUN, ascii_letter_count, cjk_count

    assert ascii_letter_count(text) == sum(1 for ch in text if ch.isascii() and ch.isalpha())
    assert cjk_count(text) == sum(len(run) for run in CJK_RUN.findall(text))
    words = len(re.findall(r"[^\W\d_]+", text))
    for count in (1, 5, 6):
        assert _has_words(text, count) is (words >= count)


@settings(max_examples=200, deadline=None)
@given(_TEXTS, _RULES)
def test_the_index_arrays_are_the_feature_buckets(text: str, rules: list) -> None:
    expected = buckets(features(text, rules))
    assert model_module._bucket_array(text, rules).tolist() == expected
    assert model_module._text_buckets(text).tolist() == buckets(features(text))
    assert model_module._text_buckets(text).tolist() == buckets(features(text))  # kept


def test_the_kept_index_arrays_when_the_cache_keeps_being_cleared() -> None:
    model = _model()
    texts = ["You may not scrape the service.", "We may train on your data.", "用户不得抓取数据"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_module, "_TEXT_CACHE_LIMIT", 2)
        for text in texts * 3:
            assert np.array_equal(model.scores_many([text, text])[1], _plain_scores(model, text))
