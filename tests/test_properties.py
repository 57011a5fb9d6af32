"""Properties of the clause diff, checked with hypothesis on generated documents.

Align-level properties build Clause values directly; document-level ones go through the whole
pure path (extract_text -> segment -> classify -> align) on generated Markdown.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tostrack.align import diff_clauses, normalise, word_redline
from tostrack.models import Clause, Diff

settings.register_profile(
    "tostrack", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("tostrack")

# A made-up vocabulary: enough overlap between sentences to tempt the aligner into false matches.
WORDS = [
    "account",
    "agreement",
    "arbitration",
    "content",
    "customer",
    "data",
    "delete",
    "disclose",
    "export",
    "fee",
    "licence",
    "model",
    "notice",
    "output",
    "party",
    "personal",
    "policy",
    "provider",
    "refund",
    "request",
    "service",
    "share",
    "store",
    "submit",
    "suspend",
    "terminate",
    "train",
    "transfer",
    "user",
    "warranty",
    "we",
    "you",
    "may",
    "must",
    "not",
    "never",
    "any",
    "all",
    "the",
    "of",
    "to",
    "and",
    "or",
    "for",
    "with",
    "under",
    "within",
    "days",
    "written",
    "law",
    "court",
]

word = st.sampled_from(WORDS)
sentence_words = st.lists(word, min_size=3, max_size=24)
headings = st.sampled_from(["Use", "Payment", "Privacy", "Termination", "Disputes"])


def sentence(words: list[str]) -> str:
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


@st.composite
def documents(draw: st.DrawFn, min_size: int = 0, max_size: int = 30) -> list[Clause]:
    texts = draw(st.lists(sentence_words.map(sentence), min_size=min_size, max_size=max_size))
    clauses = []
    for k, text in enumerate(texts):
        heading = draw(headings)
        clauses.append(
            Clause(
                id=f"c{k}",
                section=f"{heading} › {k + 1}",
                heading=(heading,),
                text=text,
                number=str(k + 1),
            )
        )
    return clauses


def accounted(diff: Diff, old: list[Clause], new: list[Clause]) -> None:
    """Every clause is either unchanged or on exactly one side of exactly one change."""
    in_changes_old = Counter(id(c) for ch in diff.changes for c in ch.old)
    assert all(n == 1 for n in in_changes_old.values())
    new_ids = [c.id for c in diff.new_clauses]
    assert len(new_ids) == len(set(new_ids)) == len(new)
    assert [c.text for c in diff.new_clauses] == [c.text for c in new]
    changed_new = {c.id for ch in diff.changes for c in ch.new}
    assert changed_new <= set(new_ids)
    unchanged_new = len(new) - len(changed_new)
    unchanged_old = len(old) - sum(in_changes_old.values())
    assert unchanged_new == unchanged_old


@given(documents())
def test_a_document_against_itself_has_no_changes(doc: list[Clause]) -> None:
    diff = diff_clauses(doc, doc)
    assert diff.changes == ()
    assert [c.id for c in diff.new_clauses] == [c.id for c in doc]


@given(documents(min_size=1), st.randoms(use_true_random=False))
def test_reordering_clauses_gives_only_moves(doc: list[Clause], rnd: random.Random) -> None:
    shuffled = list(doc)
    rnd.shuffle(shuffled)
    diff = diff_clauses(doc, shuffled)
    assert {c.kind for c in diff.changes} <= {"moved"}
    assert not diff.substantive  # each clause kept its heading
    assert sorted(c.id for c in diff.new_clauses) == sorted(c.id for c in doc)
    # A clause keeps its id wherever it went.
    assert {c.id: c.text for c in diff.new_clauses} == {c.id: c.text for c in doc}


QUOTES = {"'": "’", '"': "“"}


@st.composite
def cosmetic_pairs(draw: st.DrawFn) -> tuple[list[Clause], list[Clause]]:
    """A document and the same document with only its formatting changed."""
    n = draw(st.integers(0, 15))
    offset = draw(st.integers(1, 5))
    old, new = [], []
    for k in range(n):
        words = draw(sentence_words)
        words[0] = words[0].capitalize()
        heading = draw(headings)
        styled = list(words)
        plain = list(words)
        for w in range(len(words)):
            choice = draw(
                st.sampled_from(
                    ["", "", "", "bold", "em", "code", "link", "quote", "dquote", "dash"]
                )
            )
            if choice == "bold":
                styled[w] = f"**{words[w]}**"
            elif choice == "em":
                styled[w] = f"_{words[w]}_"
            elif choice == "code":
                styled[w] = f"`{words[w]}`"
            elif choice == "link":
                tracking = draw(st.integers(0, 10**6))
                styled[w] = f"[{words[w]}](https://terms.example/{words[w]}?utm_id={tracking})"
            elif choice == "quote":
                plain[w], styled[w] = f"'{words[w]}'", f"‘{words[w]}’"
            elif choice == "dquote":
                plain[w], styled[w] = f'"{words[w]}"', f"“{words[w]}”"
            elif choice == "dash":
                plain[w] = f"{words[w]} -"
                styled[w] = f"{words[w]}{draw(st.sampled_from([' —', '—', ' –', ' ‒']))}"
        spaces = [draw(st.sampled_from([" ", "  ", "\n", " \t", "\u00a0"])) for _ in styled]
        styled_text = "".join(w + s for w, s in zip(styled, spaces)).strip()
        plain_text = " ".join(plain)
        marker = draw(st.sampled_from(["", "* ", "- ", "+ ", "•\t", f"{k + 1}. ", "(a) "]))
        number, renumbered = f"{k + 1}", f"{k + offset}"
        old.append(
            Clause(
                f"c{k}",
                f"{k + 1}. {heading} › {number}",
                (f"{k + 1}. {heading}",),
                f"{number}.{k} {plain_text}",
                number=number,
            )
        )
        new.append(
            Clause(
                f"n{k}",
                f"{k + offset}. {heading} › {renumbered}",
                (
                    draw(
                        st.sampled_from(
                            [heading.upper(), f"{k + offset}) {heading}", f"**{heading}**"]
                        )
                    ),
                ),
                f"{marker}{renumbered}.{k} {styled_text}",
                number=renumbered,
            )
        )
    return old, new


@given(cosmetic_pairs())
def test_cosmetic_rewrites_give_no_substantive_change(
    pair: tuple[list[Clause], list[Clause]],
) -> None:
    old, new = pair
    diff = diff_clauses(old, new)
    assert diff.substantive == (), [
        (c.kind, c.old and c.old[0].text, c.new and c.new[0].text) for c in diff.substantive
    ]
    assert {c.kind for c in diff.changes} <= {"modified"}
    assert [c.id for c in diff.new_clauses] == [c.id for c in old]


@given(cosmetic_pairs())
def test_normalise_is_idempotent(pair: tuple[list[Clause], list[Clause]]) -> None:
    for clause in pair[0] + pair[1]:
        once = normalise(clause.text)
        assert normalise(once) == once


@given(st.text(), st.text())
def test_redline_rebuilds_new_and_old_from_any_text(old: str, new: str) -> None:
    ops = word_redline(old, new)
    assert "".join(t for op, t in ops if op in ("equal", "insert")) == new
    assert "".join(t for op, t in ops if op in ("equal", "delete")) == old
    assert all(t for _, t in ops)


@given(sentence_words.map(sentence), sentence_words.map(sentence))
def test_redline_of_sentences_rebuilds_new(old: str, new: str) -> None:
    ops = word_redline(old, new)
    assert "".join(t for op, t in ops if op != "delete") == new
    # Adjacent ops never share a kind (the redline is as short as it can be written).
    assert all(a[0] != b[0] for a, b in itertools.pairwise(ops))


@given(documents(), documents(), st.booleans())
def test_any_two_documents_account_for_every_clause(
    old: list[Clause], new: list[Clause], clash: bool
) -> None:
    if not clash:  # by default segmentation ids clash across versions (c0, c1, ...)
        new = [Clause(f"n{k}", c.section, c.heading, c.text, c.number) for k, c in enumerate(new)]
    diff = diff_clauses(old, new)
    accounted(diff, old, new)
    kinds = [c.kind for c in diff.changes]
    assert all(k in ("added", "removed", "modified", "moved", "split", "merged") for k in kinds)


@given(documents(min_size=2), st.data())
def test_edits_are_found_where_they_were_made(doc: list[Clause], data: st.DataObject) -> None:
    """Delete one clause and insert a new one: at most those two show up as changes."""
    new = list(doc)
    gone = new.pop(data.draw(st.integers(0, len(new) - 1)))
    fresh = Clause("x", "New", ("New",), "Zebra quokka narwhal okapi axolotl pangolin.")
    new.insert(data.draw(st.integers(0, len(new))), fresh)
    diff = diff_clauses(doc, new)
    accounted(diff, doc, new)
    assert Counter(c.kind for c in diff.changes if c.kind != "moved") <= Counter(
        {"added": 1, "removed": 1}
    )
    removed = [c.old[0] for c in diff.changes if c.kind == "removed"]
    assert removed in ([], [gone]) or removed[0].text == gone.text


# -- whole documents: Markdown through extract, segment, classify and align ---------------------

PLAIN = [w for w in WORDS if w not in ("may", "must", "not", "never")]


@st.composite
def markdown_documents(draw: st.DrawFn) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """Sections of (heading words, [(kind, sentence)]) with kind "para" | "bullet" | "number"."""
    sections = []
    headings_used: set[str] = set()
    for _ in range(draw(st.integers(1, 4))):
        heading = " ".join(draw(st.lists(st.sampled_from(PLAIN), min_size=1, max_size=3)))
        if heading in headings_used:
            continue
        headings_used.add(heading)
        body = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["para", "bullet", "number"]),
                    st.lists(st.sampled_from(PLAIN), min_size=4, max_size=18),
                ),
                min_size=1,
                max_size=5,
            )
        )
        sections.append((heading, body))
    return sections


def render(sections: list, style: dict) -> str:
    """Markdown for `sections`; `style` picks only formatting (never wording)."""
    out = ["# Corvid Terms", ""]
    for s, (heading, body) in enumerate(sections):
        number = s + style["offset"]
        title = heading.upper() if style["upper"] else heading.title()
        out += [f"**{number}. {title}**" if style["bold_headings"] else f"## {number}. {title}", ""]
        for k, (kind, words) in enumerate(body):
            words = [words[0].capitalize(), *words[1:]]
            quote = style["quotes"]
            words[1] = f"{quote[0]}{words[1]}{quote[1]}"
            words[2] = f"{words[2]}{style['dash']}{words.pop(3)}"  # one token: never a list
            for w in style["emphasis"]:
                if w < len(words):
                    words[w] = f"**{words[w]}**"
            for w in style["links"]:
                if w < len(words):
                    target = f"https://corvid.example/{w}?utm_id={style['tracking']}"
                    words[w] = f"[{words[w]}]({target})"
            glue = style["space"]
            text = glue.join(words) + "."
            if kind == "para":
                out += [f"{number}.{k + 1} {text}", ""]
            elif kind == "bullet":
                out += [f"{style['bullet']}{text}", ""]
            else:
                out += [f"{k + 1}. {text}", ""]
        out.append("\n" * style["blank"])
    return "\n".join(out)


styles = st.fixed_dictionaries(
    {
        "offset": st.integers(1, 3),
        "upper": st.booleans(),
        "emphasis": st.lists(st.integers(0, 10), max_size=3),
        "links": st.lists(st.integers(0, 10), max_size=2),
        "tracking": st.integers(0, 10**6),
        "space": st.sampled_from([" ", "  ", "\n", " \n"]),
        "bullet": st.sampled_from(["- ", "* ", "+ ", "*   ", "-   "]),
        "blank": st.integers(0, 2),
        "quotes": st.sampled_from(['""', "“”", "''", "‘’", "«»"]),
        "dash": st.sampled_from([" - ", " — ", "—", " – ", " -- "]),
        "bold_headings": st.booleans(),
    }
)
BASE_STYLE = {
    "offset": 1,
    "upper": False,
    "emphasis": [],
    "links": [],
    "tracking": 0,
    "space": " ",
    "bullet": "- ",
    "blank": 0,
    "quotes": '""',
    "dash": " - ",
    "bold_headings": False,
}


def compare_markdown(old: str, new: str) -> Diff:
    from tostrack.extract import extract_text
    from tostrack.pipeline import compare_documents

    return compare_documents(extract_text(old, "markdown"), extract_text(new, "markdown")).diff


@settings(max_examples=25)
@given(markdown_documents())
def test_a_markdown_document_against_itself_has_no_changes(sections: list) -> None:
    text = render(sections, BASE_STYLE)
    assert compare_markdown(text, text).changes == ()


@settings(max_examples=40)
@given(markdown_documents(), styles)
def test_restyled_markdown_gives_no_substantive_change(sections: list, style: dict) -> None:
    diff = compare_markdown(render(sections, BASE_STYLE), render(sections, style))
    assert diff.substantive == (), [
        (c.kind, [x.full_text for x in c.old], [x.full_text for x in c.new])
        for c in diff.substantive
    ]


@settings(max_examples=25)
@given(markdown_documents(), st.randoms(use_true_random=False))
def test_reordered_markdown_sections_give_only_moves(sections: list, rnd: random.Random) -> None:
    shuffled = list(sections)
    rnd.shuffle(shuffled)
    # Keep each section's number with it, so only the order changes.
    old = render(sections, BASE_STYLE)
    diff = compare_markdown(old, render(shuffled, BASE_STYLE))
    assert {c.kind for c in diff.changes} <= {"moved", "modified"}
    assert all(not c.substantive for c in diff.changes if c.kind == "modified")


# -- the store's JSON ---------------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: written as json.dumps writes them
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),  # keys json.dumps turns into strings
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_stored_json_is_what_json_dumps_writes(value: object) -> None:
    import json

    from tostrack.store.codecs import json_bytes

    expected = json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    assert json_bytes(value) == expected


def test_with_fields_is_dataclasses_replace() -> None:
    """models.with_fields, the quick copy the pipeline makes of clauses and changes, gives what
    dataclasses.replace gives, refuses what it refuses, and lets a __post_init__ run."""
    from dataclasses import dataclass, replace

    from tostrack.models import Change, Clause, with_fields

    clause = Clause("c1", "2 › (a)", ("Use",), "You may not scrape.", "a", "You agree:")
    copy = with_fields(clause, labels=("data-extraction",), evidence=(("x", "scrape"),))
    assert copy == replace(clause, labels=("data-extraction",), evidence=(("x", "scrape"),))
    assert type(copy) is Clause and hash(copy) == hash(replace(copy))
    assert clause.labels == ()  # the original is untouched
    change = Change("added", True, (), (clause,))
    assert with_fields(change, severity="high") == replace(change, severity="high")
    with pytest.raises(TypeError):
        with_fields(clause, colour="red")

    @dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    with pytest.raises(ValueError, match="negative"):
        with_fields(Checked(1), value=-1)

    from functools import cached_property

    @dataclass(frozen=True)
    class Cached:
        value: int

        @cached_property
        def doubled(self) -> int:
            return 2 * self.value

    one = Cached(1)
    assert one.doubled == 2  # now kept in the instance
    assert with_fields(one, value=5).doubled == 10  # not the first one's
