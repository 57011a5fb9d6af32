"""Alert headlines say which way a clause moved on its topic, where its words show it, and never
call a topic gone while the new version still covers it."""

from __future__ import annotations

import pytest

from tostrack.classify import change_headline
from tostrack.models import Change, Clause

TRAINING = ("customer-data-training",)
NO_TRAINING = "We do not use content you submit to train our models unless you opt in."
OPT_OUT = "We may use content you submit to train our models. You can opt out."
COMPETING = "using the service or its output to build competing models or products"


def _clause(
    text: str,
    labels: tuple[str, ...] = TRAINING,
    lead_in: str = "",
    evidence: tuple[tuple[str, str], ...] = (),
) -> Clause:
    return Clause("c1", "3", (), text, lead_in=lead_in, labels=labels, evidence=evidence)


def _change(
    old: str | Clause, new: str | Clause, kind: str = "modified", labels: tuple[str, ...] = TRAINING
) -> Change:
    before = old if isinstance(old, Clause) else _clause(old, labels)
    after = new if isinstance(new, Clause) else _clause(new, labels)
    olds, news = set(before.labels), set(after.labels)
    return Change(
        kind,
        True,
        (before,),
        (after,),
        labels=tuple(sorted(olds | news)),
        labels_added=tuple(sorted(news - olds)),
        labels_removed=tuple(sorted(olds - news)),
    )


@pytest.mark.parametrize(
    ("old", "new", "headline"),
    [
        (NO_TRAINING, OPT_OUT, "a clause now allows training on your content unless you opt out"),
        (OPT_OUT, NO_TRAINING, "a clause now allows training on your content only if you opt in"),
        (
            "We never train our models on your conversations.",
            "Your conversations may be used to train our models unless you turn this off.",
            "a clause now allows training on your content unless you opt out",
        ),
        (
            "We may use your prompts to improve our models.",
            "We will not use your prompts to train or improve our models.",
            "a clause no longer allows training on your content",
        ),
        (
            "Chats are used to train our models; you cannot switch this off.",
            "Chats are used to train our models. You can opt out of this at any time.",
            "a clause now lets you opt out of training on your content",
        ),
        (
            "We won't train on your files.",
            "We may train new models on your files if you opt in.",
            "a clause now allows training on your content if you opt in",
        ),
    ],
)
def test_the_headline_says_which_way_training_on_customer_data_moved(
    old: str, new: str, headline: str
) -> None:
    assert change_headline(_change(old, new)) == headline


def test_a_rewritten_clause_the_classifier_missed_still_shows_its_direction() -> None:
    # The new wording carries no label (a classifier miss): its own words still say which way.
    change = _change(NO_TRAINING, _clause(OPT_OUT, labels=()))
    assert change.labels_removed == TRAINING
    assert change_headline(change) == (
        "a clause now allows training on your content unless you opt out"
    )


def test_a_lead_in_and_its_items_are_read_once_and_in_order() -> None:
    old = (
        _clause("How we use chats. We do not train our models on chats, except when:"),
        _clause("you rate a reply;", lead_in="We do not train our models on chats, except when:"),
    )
    new = (
        _clause(
            "you rate a reply.",
            lead_in="How we use chats. We may use chats to improve "
            "the service, including to train our models, unless you opt out. Even if you "
            "opt out, we train on chats when:",
        ),
    )
    change = Change("merged", True, old, new, labels=TRAINING)
    assert change_headline(change) == (
        "a clause now allows training on your content unless you opt out"
    )


@pytest.mark.parametrize(
    ("old", "new", "headline"),
    [
        (
            "You may use outputs for any purpose, including to develop models that compete "
            "with us.",
            "You may use outputs for any purpose, except to develop models that compete with us.",
            "a clause now bans " + COMPETING,
        ),
        (
            "You must not use outputs to develop models that compete with us.",
            "You are free to use outputs to develop models that compete with us.",
            "a clause no longer bans " + COMPETING,
        ),
    ],
)
def test_restrictions_say_now_bans_and_no_longer_bans_from_their_words(
    old: str, new: str, headline: str
) -> None:
    label = ("competing-models",)
    span = "develop models that compete with us"

    def clause(text: str) -> Clause:
        return _clause(text, label, evidence=(("competing-models", span),))

    assert change_headline(_change(clause(old), clause(new), labels=label)) == headline


def test_rewording_without_a_flip_stays_a_rewording() -> None:
    reworded = NO_TRAINING.replace("submit", "send us")
    assert change_headline(_change(NO_TRAINING, reworded)) == (
        "a clause about training on customer data was reworded"
    )


def test_a_negation_flip_the_words_cannot_place_is_rewritten_never_removed() -> None:
    law = ("governing-law",)
    change = _change(
        "The laws of Ireland do not govern these terms.",
        "The laws of Ireland govern these terms.",
        labels=law,
    )
    headline = change_headline(change)
    assert (
        headline == "a clause about governing law and venue was rewritten: a negation was dropped"
    )
    assert "removed" not in headline


def test_a_topic_the_new_version_still_covers_is_never_said_to_be_gone() -> None:
    gone = Change(
        "removed", True, (_clause(NO_TRAINING),), (), labels=TRAINING, labels_removed=TRAINING
    )
    assert change_headline(gone) == "a clause about training on customer data was removed"
    assert change_headline(gone, covered=TRAINING) == (
        "a clause about training on customer data was rewritten"
    )
    # A rewritten clause that lost a label whose headline has no direction ("changes ..."):
    # rewritten, not "no longer changes ...".
    lost = _change(
        _clause("Any dispute goes to arbitration.", ("arbitration",)),
        _clause("Disputes are heard as set out below.", ()),
        labels=("arbitration",),
    )
    assert change_headline(lost) == "a clause about arbitration was rewritten"


def test_a_rewritten_clause_whose_words_still_speak_of_training_keeps_the_topic() -> None:
    from tostrack.classify import label_changes
    from tostrack.models import Diff

    unlabelled = _clause(OPT_OUT, labels=())
    rewritten = Change("modified", True, (_clause(NO_TRAINING),), (unlabelled,))
    dropped = Change(
        "modified",
        True,
        (_clause(NO_TRAINING),),
        (_clause("We delete your content after 30 days.", labels=()),),
    )
    kept, lost = label_changes(Diff((rewritten, dropped))).changes
    assert kept.labels == TRAINING and kept.labels_removed == () and kept.severity == "high"
    assert lost.labels_removed == TRAINING  # its new words say nothing of training


@pytest.mark.parametrize(
    ("text", "headline"),
    [
        (
            "We never train our models on your chats.",
            "a new clause rules out training on your content",
        ),
        (
            "We do not train our models on your chats except when you send us feedback.",
            "a new clause rules out training on your content, except in the cases it lists",
        ),
        (
            "We do not train our models on your chats. Unless the law says otherwise, "
            "we keep them.",
            "a new clause rules out training on your content",
        ),
        (
            "We will not use your files to train any model unless you\u2019ve explicitly agreed.",
            "a new clause allows training on your content only if you opt in",
        ),
    ],
)
def test_a_new_clause_on_training_says_what_it_allows(text: str, headline: str) -> None:
    added = Change("added", True, (), (_clause(text),), labels=TRAINING, labels_added=TRAINING)
    assert change_headline(added) == headline


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("You may not: resell the service.", "You are prohibited from: reselling the service."),
        ("We don't provide implied warranties.", "We don\u2019t provide implied warranties."),
    ],
)
def test_the_same_rule_in_other_words_is_no_negation_flip(old: str, new: str) -> None:
    from tostrack.align import word_redline

    change = Change(
        "modified", True, (_clause(old, ()),), (_clause(new, ()),), redline=word_redline(old, new)
    )
    assert change_headline(change) == "a clause was reworded"


@pytest.mark.parametrize(
    ("text", "headline"),
    [
        (
            "We train our models on your chats only when you do not opt out in settings.",
            "a new clause allows training on your content unless you opt out",
        ),
        (
            "You can object to our use of your chats to train our models in your settings.",
            "a new clause allows training on your content unless you opt out",
        ),
        (
            "You can choose whether we use your chats to train our models.",
            "a new clause about training on customer data",
        ),
    ],
)
def test_opt_in_and_opt_out_in_other_words(text: str, headline: str) -> None:
    added = Change("added", True, (), (_clause(text),), labels=TRAINING, labels_added=TRAINING)
    assert change_headline(added) == headline
