"""Clause alignment: stable ids, change kinds, cosmetic vs substantive, word redline."""

from __future__ import annotations

import random

import pytest

from tostrack.align import diff_clauses, normalise, word_redline
from tostrack.models import Change, Clause, Diff

PROVISIONS = [
    "You may use the service only for lawful purposes and in line with these terms.",
    "You may not reverse engineer, decompile or disassemble any part of the service.",
    "We may suspend your access if we reasonably believe you have breached these terms.",
    "Fees are billed monthly in advance and are not refundable except where the law requires.",
    "Either party may end this agreement by giving thirty days' written notice to the other.",
    "These terms are governed by the laws of the State of Delaware, without regard to conflicts.",
    "You own the content you submit, and you give us a licence to host and display it.",
    "We do not use business data submitted through the API to train our models by default.",
]


def clause(
    cid: str, text: str, heading: tuple[str, ...] = ("General",), number: str = ""
) -> Clause:
    section = " › ".join((*heading, number)) if number else " › ".join(heading)
    return Clause(id=cid, section=section, heading=heading, text=text, number=number)


def version(texts: list[str], prefix: str = "o") -> list[Clause]:
    return [clause(f"{prefix}{k}", t) for k, t in enumerate(texts)]


def kinds(diff: Diff) -> list[tuple[str, bool]]:
    return [(c.kind, c.substantive) for c in diff.changes]


def rebuild(ops: tuple[tuple[str, str], ...], side: str) -> str:
    keep = {"new": ("equal", "insert"), "old": ("equal", "delete")}[side]
    return "".join(text for op, text in ops if op in keep)


def test_identical_versions_have_no_changes_and_keep_ids() -> None:
    old = version(PROVISIONS)
    new = version(PROVISIONS, prefix="fresh")
    diff = diff_clauses(old, new)
    assert diff.changes == ()
    assert [c.id for c in diff.new_clauses] == [c.id for c in old]
    assert [c.text for c in diff.new_clauses] == PROVISIONS


def test_reworded_clause_is_modified_with_redline_and_keeps_its_id() -> None:
    old = version(PROVISIONS)
    texts = list(PROVISIONS)
    texts[1] = texts[1].replace(
        "any part of the service.",
        "any part of the service, or use its output to build competing models.",
    )
    diff = diff_clauses(old, version(texts, prefix="n"))
    assert kinds(diff) == [("modified", True)]
    change = diff.changes[0]
    assert change.old[0].id == "o1" and change.new[0].id == "o1" and not change.moved
    assert ("insert", ", or use its output to build competing models") in change.redline
    assert rebuild(change.redline, "new") == texts[1]
    assert rebuild(change.redline, "old") == PROVISIONS[1]
    assert [c.id for c in diff.new_clauses] == [c.id for c in old]


def test_unchanged_clause_moved_within_its_section_is_a_cosmetic_move() -> None:
    old = version(PROVISIONS)
    order = [0, 1, 2, 6, 3, 4, 5, 7]  # "You own the content" moves up three places
    new = [clause(f"n{k}", PROVISIONS[i]) for k, i in enumerate(order)]
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("moved", False)]
    assert diff.changes[0].old[0].id == "o6" and diff.changes[0].new[0].id == "o6"
    assert diff.changes[0].moved


def test_clause_moved_under_another_heading_is_substantive() -> None:
    def section(k: int) -> tuple[str, ...]:
        return ("Use",) if k < 4 else ("Payment",)

    old = [clause(f"o{k}", t, section(k)) for k, t in enumerate(PROVISIONS)]
    new = [clause(f"n{k}", t, section(k)) for k, t in enumerate(PROVISIONS)]
    mover = new.pop(1)
    new.append(clause("n9", mover.text, ("Payment",)))
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("moved", True)]
    assert diff.changes[0].new[0].id == "o1"


def test_reworded_item_that_moved_is_one_modified_and_moved_change() -> None:
    # An enumerated item becomes a bullet, reworded, under a new heading at the end.
    old = [clause(f"o{k}", t) for k, t in enumerate(PROVISIONS)]
    old[2] = Clause(
        "o2",
        "General › (c)",
        ("General",),
        "reverse engineer any model we provide;",
        number="(c)",
        lead_in="You may not",
    )
    new = [clause(f"n{k}", t) for k, t in enumerate(PROVISIONS) if k != 2]
    new.append(
        clause(
            "n9",
            "You must not reverse engineer or extract any model we provide.",
            ("Restrictions",),
        )
    )
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("modified", True)]
    change = diff.changes[0]
    assert change.moved and change.old[0].id == "o2" and change.new[0].id == "o2"
    assert rebuild(change.redline, "old") == "You may not reverse engineer any model we provide;"


def test_a_rewritten_provision_keeps_its_run_in_title_and_its_id() -> None:
    before = (
        "Your Content. You keep ownership of what you upload, and you license it to us "
        "only to run the service for you."
    )
    after = (
        "Your Content. As between you and us, and to the extent the law allows, you own "
        "your input and you are assigned any output we produce."
    )
    old = version([PROVISIONS[0], before, PROVISIONS[2]])
    new = version([PROVISIONS[0], PROVISIONS[2], PROVISIONS[5], after], prefix="n")
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("added", True), ("modified", True)]
    assert diff.changes[1].moved and diff.changes[1].new[0].id == "o1"
    # Without the shared title the two texts are too unlike to call the same provision.
    untitled = [
        c
        if not c.text.startswith("Your")
        else Clause(c.id, c.section, c.heading, c.text.removeprefix("Your Content. "))
        for c in new
    ]
    assert ("removed", True) in kinds(diff_clauses(old, untitled))


def test_added_and_removed_in_document_order() -> None:
    old = version(PROVISIONS)
    texts = list(PROVISIONS)
    del texts[3]  # removed: fees
    texts.insert(6, "We may change these terms by posting a new version and telling you by email.")
    new = version(texts, prefix="n")
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("removed", True), ("added", True)]
    removed, added = diff.changes
    assert removed.old[0].id == "o3"
    assert added.new[0].text.startswith("We may change")
    assert added.new[0].id not in {c.id for c in old}


def test_removed_clause_sits_where_it_was() -> None:
    old = version(PROVISIONS)
    texts = list(PROVISIONS)
    texts[5] = texts[5].replace("Delaware", "New York")
    del texts[1]
    diff = diff_clauses(old, version(texts, prefix="n"))
    assert [(c.kind, (c.old or c.new)[0].id) for c in diff.changes] == [
        ("removed", "o1"),
        ("modified", "o5"),
    ]


def test_split_and_merge() -> None:
    long_clause = (
        "You must keep your password secret and you are responsible for everything "
        "done through your account, including purchases made by other people."
    )
    first = "You must keep your password secret."
    second = (
        "You are responsible for everything done through your account, including "
        "purchases made by other people."
    )
    old = version([PROVISIONS[0], long_clause, PROVISIONS[2]])
    new = version([PROVISIONS[0], first, second, PROVISIONS[2]], prefix="n")
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("split", True)]
    split = diff.changes[0]
    assert [c.id for c in split.old] == ["o1"]
    assert [c.text for c in split.new] == [first, second]
    assert split.new[0].id == "o1" and split.new[1].id != "o1"
    assert len({c.id for c in diff.new_clauses}) == 4

    back = diff_clauses(new, old)
    assert kinds(back) == [("merged", True)]
    assert [c.id for c in back.changes[0].old] == ["n1", "n2"]
    assert back.changes[0].new[0].id == "n1"


def test_reflowed_paragraph_split_without_new_words_is_cosmetic() -> None:
    whole = "Refunds are not available. Credits expire after twelve months of inactivity."
    old = version([PROVISIONS[0], whole])
    new = version(
        [
            PROVISIONS[0],
            "Refunds are not available.",
            "Credits expire after twelve months of inactivity.",
        ],
        prefix="n",
    )
    assert kinds(diff_clauses(old, new)) == [("split", False)]


def test_renumbering_alone_is_cosmetic() -> None:
    old = [
        clause(f"o{k}", f"1.{k + 1} {t}", ("1. General",), f"1.{k + 1}")
        for k, t in enumerate(PROVISIONS)
    ]
    new = [
        clause(f"n{k}", f"2.{k + 1} {t}", ("2. General",), f"2.{k + 1}")
        for k, t in enumerate(PROVISIONS)
    ]
    diff = diff_clauses(old, new)
    assert diff.changes and not diff.substantive
    assert {c.kind for c in diff.changes} == {"modified"}
    assert [c.id for c in diff.new_clauses] == [c.id for c in old]


def _numbered(prefix: str, top: int, texts: list[str]) -> list[Clause]:
    heading = (f"{top} Confidentiality",)
    return [
        Clause(
            f"{prefix}{k}",
            f"{top} Confidentiality › {top}.{k + 1}",
            heading,
            t,
            number=f"{top}.{k + 1}",
        )
        for k, t in enumerate(texts)
    ]


def test_cross_references_that_follow_a_renumbering_are_cosmetic() -> None:
    old = _numbered(
        "o",
        4,
        [
            PROVISIONS[0],
            PROVISIONS[1],
            "The duties in Section 4.1 and 4.2 do not apply to public data.",
        ],
    )
    new = _numbered(
        "n",
        7,
        [
            PROVISIONS[0],
            PROVISIONS[1],
            "The duties in Section 7.1 and 7.2 do not apply to public data.",
        ],
    )
    diff = diff_clauses(old, new)
    assert diff.changes and not diff.substantive
    # Pointing at another provision than the renumbering says is a change of wording.
    elsewhere = _numbered(
        "n",
        7,
        [PROVISIONS[0], PROVISIONS[1], "The duties in Section 7.2 do not apply to public data."],
    )
    old_single = _numbered(
        "o",
        4,
        [PROVISIONS[0], PROVISIONS[1], "The duties in Section 4.1 do not apply to public data."],
    )
    assert kinds(diff_clauses(old_single, elsewhere)).count(("modified", True)) == 1


def test_heading_style_and_nesting_are_cosmetic() -> None:
    old = [clause(f"o{k}", t, ("3. Restrictions",)) for k, t in enumerate(PROVISIONS)]
    restyled = [clause(f"n{k}", t, ("Terms", "RESTRICTIONS")) for k, t in enumerate(PROVISIONS)]
    diff = diff_clauses(old, restyled)
    assert not diff.substantive and {c.kind for c in diff.changes} == {"modified"}
    # Clauses that kept wording and place under a renamed heading: cosmetic (see align.py).
    renamed = [clause(f"n{k}", t, ("3. Limits",)) for k, t in enumerate(PROVISIONS)]
    assert not diff_clauses(old, renamed).substantive


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("We don't sell your data.", "We don’t sell   your data ."),
        ("Prices - including tax - apply.", "Prices — including tax — apply."),
        ('Read the "Usage Policy".', "Read the “Usage Policy”."),
        (
            "See the [pricing page](https://x.example/p?ref=abc&utm_source=m) for fees.",
            "See the [pricing page](https://x.example/p?ref=zzz) for fees.",
        ),
        (
            "See https://x.example/help?trk=1 for fees.",
            "See https://x.example/help?trk=2#top for fees.",
        ),
        ("You **must** keep your key secret.", "You _must_ keep your key `secret`."),
        ("* You must be 18.", "-   You must be 18."),
        ("(a) You must be 18.", "a) You must be 18."),
        ("Section 4. You must be 18.", "Section 7: You must be 18."),
        ("Exclusions. No duty applies.", "K.3. Exclusions. No duty applies."),
        ("Either party may end it.", "I.2.a. Either party may end it."),
        ("AT&amp;T and <b>you</b> agree.", "AT&T and you agree."),
        ("Terms\u00a0of Use\u200b apply.", "Terms of Use apply."),
        ("1\\. Scope applies.", "1. Scope applies."),
        ("Send it through this form.", "Send it through this form(opens in a new window)."),
        ("See the [form](https://x.example/f) now.", "See the form (opens in new tab) now."),
        ("See http://www.x.example/help for fees.", "See https://x.example/help for fees."),
        ("NEITHER WE NOR OUR LICENSORS BE LIABLE.", "NEITHER WE NOR OUR LICENSORSBE LIABLE."),
        ("**7. Outputs.**You accept the risk.", "Outputs. You accept the risk."),
        (
            "Write to privacy@corvid.example with questions.",
            "Write to [email\u00a0protected] with questions.",
        ),
    ],
)
def test_cosmetic_rewrites_are_not_substantive(before: str, after: str) -> None:
    old = version([PROVISIONS[0], before, PROVISIONS[1]])
    new = version([PROVISIONS[0], after, PROVISIONS[1]], prefix="n")
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("modified", False)]
    assert rebuild(diff.changes[0].redline, "new") == after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("13 or older may use the service.", "16 or older may use the service."),
        ("Section 230 of the Act applies.", "Section 231 of the Act applies."),
        (
            "See https://x.example/privacy for details.",
            "See https://x.example/cookies for details.",
        ),
        ("You may share outputs.", "You may not share outputs."),
        ("WE PROVIDE THE SERVICE AS IS.", "We provide the service as is."),
        ("Fees are 5 USD.", "Fees are 5 EUR."),
        ("Write to privacy@corvid.example today.", "Write to legal@corvid.example today."),
        ("Write to [email protected] today.", "Write to us by post today."),
    ],
)
def test_wording_changes_stay_substantive(before: str, after: str) -> None:
    assert normalise(before) != normalise(after)
    old = version([PROVISIONS[0], before, PROVISIONS[1]])
    new = version([PROVISIONS[0], after, PROVISIONS[1]], prefix="n")
    assert kinds(diff_clauses(old, new)) == [("modified", True)]


def test_a_list_marker_at_the_start_of_an_item_is_folded_after_its_lead_in() -> None:
    old = [Clause("o1", "Use › 1", ("Use",), "a. Scraping the service.", lead_in="You may not:")]
    new = [
        Clause(
            "n1",
            "Use › (a)",
            ("Use",),
            "Scraping the service.",
            number="(a)",
            lead_in="You may not:",
        )
    ]
    assert kinds(diff_clauses(old, new)) == [("modified", False)]


def test_a_heading_written_as_a_paragraph_is_heading_style() -> None:
    old = [
        clause("o0", "Your Privacy", ()),
        *[clause(f"o{k + 1}", t, ()) for k, t in enumerate(PROVISIONS[:3])],
    ]
    new = [clause(f"n{k}", t, ("2. YOUR PRIVACY",)) for k, t in enumerate(PROVISIONS[:3])]
    diff = diff_clauses(old, new)
    assert kinds(diff) == [
        ("removed", False),
        ("modified", False),
        ("modified", False),
        ("modified", False),
    ]
    assert kinds(diff_clauses(new, old))[0] == ("added", False)
    # A paragraph that merely shares words with some heading is still a change.
    other = [clause("o0", "Your Privacy matters to us", ()), *old[1:]]
    assert kinds(diff_clauses(other, new))[0] == ("removed", True)


@pytest.mark.parametrize(
    "line",
    [
        "Select language",
        "close",
        "Table of contents",
        "Dated: May 25, 2018",
        "Effective date: 11-04-2023",
        "Last Update: Feb 10, 2026",
    ],
)
def test_page_furniture_and_date_stamps_are_not_terms(line: str) -> None:
    old = version(PROVISIONS[:3])
    new = version([PROVISIONS[0], line, *PROVISIONS[1:3]], prefix="n")
    assert kinds(diff_clauses(old, new)) == [("added", False)]
    assert kinds(diff_clauses(new, old)) == [("removed", False)]


def test_a_new_date_stamp_is_cosmetic_but_a_dated_provision_is_not() -> None:
    old = version([PROVISIONS[0], "Dated: May 25, 2018"])
    new = version([PROVISIONS[0], "Dated: May 25, 2019"], prefix="n")
    assert kinds(diff_clauses(old, new)) == [("modified", False)]
    new = version([PROVISIONS[0], "Dated: June 2, 2019"], prefix="n")  # too unlike to pair
    assert not diff_clauses(old, new).substantive
    old = version([PROVISIONS[0], "Refunds close on May 25, 2018."])
    new = version([PROVISIONS[0], "Refunds close on June 2, 2019."], prefix="n")
    assert kinds(diff_clauses(old, new)) == [("modified", True)]


def test_a_line_without_words_coming_and_going_is_cosmetic() -> None:
    old = version(PROVISIONS)
    new = version([*PROVISIONS[:3], "…", *PROVISIONS[3:]], prefix="n")
    assert kinds(diff_clauses(old, new)) == [("added", False)]
    assert kinds(diff_clauses(new, old)) == [("removed", False)]


def test_no_id_is_used_twice_and_old_ids_are_not_recycled() -> None:
    old = version(PROVISIONS[:4])  # ids o0..o3
    # Segmentation numbers ids by position, so the new version's own ids collide with old ones.
    new = [
        clause("o0", "A brand new opening provision about eligibility and age limits."),
        *[clause(f"o{k + 1}", t) for k, t in enumerate(PROVISIONS[1:4])],
        clause("o4", "Another new provision at the end, about notices sent by email."),
    ]
    diff = diff_clauses(old, new)
    ids = [c.id for c in diff.new_clauses]
    assert len(set(ids)) == len(ids)
    assert ids[1:4] == ["o1", "o2", "o3"]
    assert ids[0] != "o0"  # o0 was removed: its id must not name a different clause
    assert ids[4] == "o4"


def test_duplicate_old_ids_do_not_leak_into_the_new_version() -> None:
    old = [clause("x", PROVISIONS[0]), clause("x", PROVISIONS[1])]
    diff = diff_clauses(old, version(PROVISIONS[:2], prefix="n"))
    ids = [c.id for c in diff.new_clauses]
    assert len(set(ids)) == 2 and "x" in ids


def test_identical_clauses_in_several_places() -> None:
    old = version(["Definitions.", PROVISIONS[0], "Definitions.", PROVISIONS[1]])
    new = version(
        ["Definitions.", PROVISIONS[0], PROVISIONS[2], "Definitions.", PROVISIONS[1]], prefix="n"
    )
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("added", True)]
    assert [c.id for c in diff.new_clauses] == ["o0", "o1", diff.changes[0].new[0].id, "o2", "o3"]


def test_empty_versions() -> None:
    assert diff_clauses([], []).changes == ()
    added = diff_clauses([], version(PROVISIONS[:2]))
    assert kinds(added) == [("added", True), ("added", True)]
    removed = diff_clauses(version(PROVISIONS[:2]), [])
    assert kinds(removed) == [("removed", True), ("removed", True)]


def test_large_document_with_scattered_edits() -> None:
    rng = random.Random(7)
    words = [
        "account",
        "service",
        "content",
        "data",
        "model",
        "output",
        "fee",
        "notice",
        "law",
        "party",
        "licence",
        "user",
        "agree",
        "provide",
        "use",
        "share",
        "store",
        "delete",
    ]
    texts = [
        " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + f" rule {k}."
        for k in range(1500)
    ]
    old = version(texts)
    edited = list(texts)
    for k in range(0, 1500, 50):
        edited[k] = edited[k].replace(" rule ", " amended rule ")
    edited.insert(100, edited.pop(700))  # an amended clause moves
    edited.insert(300, edited.pop(901))  # an unchanged one too
    del edited[1201]
    diff = diff_clauses(old, version(edited, prefix="n"))
    summary = diff.summary()
    assert summary["modified"] == 30 and summary["moved"] == 1
    assert summary["removed"] == 1 and summary["added"] == 0
    assert [c.old[0].id for c in diff.changes if c.moved] == ["o700", "o901"]
    assert len({c.id for c in diff.new_clauses}) == len(edited)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("", ""),
        ("", "All new."),
        ("All gone.", ""),
        ("a  b\tc\n", "a b c"),
        ("We may not sell data.", "We will never sell or share data."),
        ("Same text.", "Same text."),
    ],
)
def test_word_redline_rebuilds_both_sides(old: str, new: str) -> None:
    ops = word_redline(old, new)
    assert rebuild(ops, "new") == new and rebuild(ops, "old") == old
    assert all(op in {"equal", "insert", "delete"} and text for op, text in ops)


def test_word_redline_groups_a_changed_phrase() -> None:
    ops = word_redline("We may not sell data.", "We will never sell data.")
    assert ops == (
        ("equal", "We "),
        ("delete", "may not"),
        ("insert", "will never"),
        ("equal", " sell data."),
    )


def test_changes_are_frozen_values() -> None:
    diff = diff_clauses(version(PROVISIONS[:2]), version(PROVISIONS[1:3], prefix="n"))
    assert all(isinstance(c, Change) and c.labels == () for c in diff.changes)


# -- redrafted provisions: a lead-in and its items rewritten in place --------------------------

HEAD = ("4 Your content",)
BEFORE = "You keep ownership of everything you upload to the service."
AFTER = "Either of us may end this agreement with thirty days' written notice."
OLD_LEAD = (
    "How we use your chats. We use your chats to run the service for you. We do not use "
    "your chats to train our models, except in two cases:"
)
OLD_ITEMS = (
    "when you send us feedback about a reply, we may keep that feedback and learn from it;",
    (
        "when a chat is flagged for a safety check, our reviewers may read it and use it to make "
        "our abuse filters better."
    ),
)
NEW_LEAD = (
    "How we use your chats. We may use your chats to run and improve the service, "
    "including to train our models, unless you opt out in your settings. Even if you opt "
    "out, we train on chats when:"
)
NEW_ITEMS = (
    "you send us feedback about a reply, or",
    "a chat is flagged for a safety check, to make our abuse filters better.",
)


def _paragraph(cid: str, text: str, heading: tuple[str, ...] = HEAD) -> Clause:
    return Clause(cid, heading[0], heading, text)


def _items(
    prefix: str, lead_in: str, items: tuple[str, ...], labels: tuple[str, ...] = ()
) -> list[Clause]:
    return [
        Clause(
            f"{prefix}{k}",
            f"{HEAD[0]} › ({k + 1})",
            HEAD,
            text,
            number=f"({k + 1})",
            lead_in=lead_in,
            labels=labels,
        )
        for k, text in enumerate(items)
    ]


def _last_sentence(text: str) -> str:
    return text[text.rindex(". ") + 2 :]


def test_a_lead_in_and_its_items_redrafted_in_place_read_as_modified() -> None:
    old = [
        _paragraph("o0", BEFORE),
        _paragraph("o1", OLD_LEAD),
        *_items("oi", _last_sentence(OLD_LEAD), OLD_ITEMS),
        _paragraph("o9", AFTER),
    ]
    new = [
        _paragraph("n0", BEFORE),
        _paragraph("n1", NEW_LEAD),
        *_items("ni", _last_sentence(NEW_LEAD), NEW_ITEMS),
        _paragraph("n9", AFTER),
    ]
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("modified", True)] * 3
    assert [(c.old[0].id, c.new[0].id) for c in diff.changes] == [
        ("o1", "o1"),
        ("oi0", "oi0"),
        ("oi1", "oi1"),
    ]


def test_an_enumeration_that_now_runs_inline_merges_its_old_lead_in() -> None:
    # Old: a lead-in paragraph, then a list. New: one paragraph, "... when: (1) ..., or (2) ...",
    # which segmentation gives as two items whose lead-in is the whole paragraph before them.
    old = [
        _paragraph("o0", BEFORE),
        _paragraph("o1", OLD_LEAD),
        *_items("oi", _last_sentence(OLD_LEAD), OLD_ITEMS),
        _paragraph("o9", AFTER),
    ]
    new = [_paragraph("n0", BEFORE), *_items("ni", NEW_LEAD, NEW_ITEMS), _paragraph("n9", AFTER)]
    diff = diff_clauses(old, new)
    assert kinds(diff) == [("merged", True), ("modified", True)]
    merged, modified = diff.changes
    assert [c.id for c in merged.old] == ["o1", "oi0"] and merged.new[0].text == NEW_ITEMS[0]
    assert modified.old[0].id == "oi1" and modified.new[0].id == "oi1"
    # The old lead-in sentence is in the redline once, not once per clause that repeats it.
    assert rebuild(merged.redline, "old").count("except in two cases") == 1
    assert rebuild(merged.redline, "new") == merged.new[0].full_text
    # And back: an inline enumeration given a lead-in paragraph of its own is a split.
    back = diff_clauses(new, old)
    assert kinds(back) == [("split", True), ("modified", True)]
    assert [c.text for c in back.changes[0].new] == [OLD_LEAD, OLD_ITEMS[0]]


def test_a_shared_topic_label_lets_a_looser_redraft_pair() -> None:
    before = "We never look at the files you store with us."
    after = "Our staff may look at stored files when a court orders it."
    label = ("customer-data-training",)

    def versions(labels: tuple[str, ...]) -> tuple[list[Clause], list[Clause]]:
        old = [
            _paragraph("o0", BEFORE),
            Clause("o1", HEAD[0], HEAD, before, labels=labels),
            _paragraph("o9", AFTER),
        ]
        new = [
            _paragraph("n0", BEFORE),
            Clause("n1", HEAD[0], HEAD, after, labels=labels),
            _paragraph("n9", AFTER),
        ]
        return old, new

    assert kinds(diff_clauses(*versions(()))) == [("removed", True), ("added", True)]
    assert kinds(diff_clauses(*versions(label))) == [("modified", True)]


def test_a_redraft_pairs_only_within_its_section() -> None:
    lead = "We do not sell the data you give us, and we never rent it out to anyone."
    other = "We do not sell the data you give us to brokers; we may share it with our partners."
    old = [_paragraph("o0", BEFORE), _paragraph("o1", lead), _paragraph("o9", AFTER)]
    elsewhere = [
        _paragraph("n0", BEFORE),
        _paragraph("n9", AFTER),
        _paragraph("n1", other, ("9 Partners",)),
    ]
    assert kinds(diff_clauses(old, elsewhere)) == [("removed", True), ("added", True)]
    here = [_paragraph("n0", BEFORE), _paragraph("n1", other), _paragraph("n9", AFTER)]
    assert kinds(diff_clauses(old, here)) == [("modified", True)]


def test_two_differently_titled_provisions_are_not_a_redraft() -> None:
    old = [
        _paragraph("o0", BEFORE),
        _paragraph("o1", "Refunds. We refund unused credit within thirty days of a request."),
        _paragraph("o9", AFTER),
    ]
    new = [
        _paragraph("n0", BEFORE),
        _paragraph("n1", "Taxes. You pay any tax due on credit within thirty days of a bill."),
        _paragraph("n9", AFTER),
    ]
    assert kinds(diff_clauses(old, new)) == [("removed", True), ("added", True)]


def test_an_item_under_a_rewritten_lead_in_is_marked_lead_in_against_lead_in() -> None:
    old = Clause("o1", "4 › 2", HEAD, OLD_ITEMS[1], lead_in=_last_sentence(OLD_LEAD))
    new = Clause("n1", "4 › (b)", HEAD, NEW_ITEMS[1], lead_in=NEW_LEAD)
    diff = diff_clauses(
        [_paragraph("o0", BEFORE), old, _paragraph("o9", AFTER)],
        [_paragraph("n0", BEFORE), new, _paragraph("n9", AFTER)],
    )
    (change,) = diff.changes
    ops = change.redline
    assert rebuild(ops, "old") == old.full_text and rebuild(ops, "new") == new.full_text
    # The item's own words line up with the item's: "a chat is flagged for a safety check".
    assert ("equal", "a chat is flagged for a safety check,") in ops


def test_a_clause_that_inherits_an_id_keeps_every_other_field() -> None:
    # align builds the renamed clause field by field (faster than dataclasses.replace): a field
    # added to Clause must be carried over there too.
    import dataclasses

    from tostrack.align import _replace_id

    values = {f.name: (f"value of {f.name}",) for f in dataclasses.fields(Clause)}
    clause = Clause(**values)
    assert _replace_id(clause, "c-new") == dataclasses.replace(clause, id="c-new")


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("a third-party service", "a third-party service"),
        ("fees - as agreed", "fees-as agreed"),
        ("fees -- as agreed", "fees-as agreed"),
        ("fees--as agreed", "fees-as agreed"),
        ("fees — as agreed", "fees-as agreed"),
        ("- a bullet", "a bullet"),
        ("**Fees** are _due_", "Fees are due"),
        ("Café terms", "Café terms"),
        ("ﬁnal ﬁgures", "final figures"),  # NFKC folds the ligature
    ],
)
def test_normalise_folds_dashes_markup_and_compatibility_forms(text: str, folded: str) -> None:
    assert normalise(text) == folded
