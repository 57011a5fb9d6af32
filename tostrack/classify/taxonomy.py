"""The label taxonomy (data/labels.toml): what each label means, its group and severity."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
_RANK_NAME = {v: k for k, v in SEVERITY_RANK.items()}


@dataclass(frozen=True)
class Label:
    id: str
    name: str
    group: str  # customer-restriction | provider-rights | contract
    definition: str
    severity: str  # default: low | medium | high
    not_to_confuse_with: str
    headline: str  # "a clause now <headline>"
    topic: str  # "a clause about <topic> was reworded"
    # Labels a rule gives that this label's guess by the model yields to (labels.toml)
    yields_to: tuple[str, ...] = ()


def _data(name: str) -> dict[str, Any]:
    text = resources.files("tostrack.classify").joinpath("data", name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def taxonomy() -> tuple[Label, ...]:
    """All labels, in the order of the packaged labels.toml."""
    labels = []
    for label_id, entry in _data("labels.toml").items():
        labels.append(
            Label(
                id=label_id,
                name=entry["name"],
                group=entry["group"],
                definition=entry["definition"],
                severity=entry["severity"],
                not_to_confuse_with=entry.get("not_to_confuse_with", ""),
                headline=entry["headline"],
                topic=entry["topic"],
                yields_to=tuple(entry.get("yields_to", ())),
            )
        )
    return tuple(labels)


@lru_cache(maxsize=1)
def _by_id() -> dict[str, Label]:
    return {label.id: label for label in taxonomy()}


@lru_cache(maxsize=1)
def _label_order() -> dict[str, int]:
    return {label.id: i for i, label in enumerate(taxonomy())}


RESTRICTION_LABELS: tuple[str, ...] = tuple(
    label.id for label in taxonomy() if label.group == "customer-restriction"
)
