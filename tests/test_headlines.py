"""Alert headlines say when a clause's meaning flipped even though its topic did not change."""

from __future__ import annotations

from tostrack.classify import change_headline
from tostrack.models import Change, Clause

NO_TRAINING = "We do not use content you submit to train our models unless you opt in."
TRAINING = "We may use content you submit to train our models. You can opt out."


def _modified(old: str, new: str) -> Change:
    label = ("customer-data-training",)
    return Change(
        "modified", True, (Clause("c1", "3", (), old, labels=label),),
        (Clause("c1", "3", (), new, labels=label),), labels=label,
    )


def test_a_dropped_negation_is_named_in_the_headline() -> None:
    assert change_headline(_modified(NO_TRAINING, TRAINING)) == (
        "a clause about training on customer data changed: a negation was removed"
    )
    assert change_headline(_modified(TRAINING, NO_TRAINING)).endswith("a negation was added")


def test_rewording_without_a_flip_stays_a_rewording() -> None:
    reworded = NO_TRAINING.replace("submit", "send us")
    assert change_headline(_modified(NO_TRAINING, reworded)) == (
        "a clause about training on customer data was reworded"
    )
