"""Clause classification: which topics a clause governs, with the evidence for each label.

    from tostrack.classify import classify_text
    classify_text("You may not scrape the service.")  # (("data-extraction", "scrape"),)

A hybrid, deterministic and explainable:
  - rules (rules.py and data/rules/): precise patterns for formulaic wording; their evidence is
    the matched span;
  - a learned linear model (model.py, weights in data/model.npz) for wording no rule foresaw;
    it reads the clause (with its lead-in) and which rules fired, and adds a label when its
    probability reaches the label's threshold; its evidence is the sentence that weighed most.
A label is kept when either says so. The taxonomy (data/labels.toml) says what each label
means; changes.py turns clause labels into change labels, severity and headlines.

Pure: no network, no files except the packaged data, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice

import numpy as np

from tostrack.classify import rules as _rules
from tostrack.classify.changes import change_headline, label_changes
from tostrack.classify.model import Model, lead_in_length, packaged_model
from tostrack.classify.script import cjk_count
from tostrack.classify.taxonomy import (
    RESTRICTION_LABELS,
    SEVERITY_RANK,
    Label,
    _by_id,
    _label_order,
    taxonomy,
)
from tostrack.models import Clause, with_fields

__all__ = [
    "RESTRICTION_LABELS",
    "SEVERITY_RANK",
    "Decision",
    "Label",
    "change_headline",
    "classify_clauses",
    "classify_text",
    "explain",
    "heading_context",
    "label_changes",
    "taxonomy",
]

TRAIL = " › "
# What heading_context adds for a trail with a definitions section in it (no label has this id).
DEFINITIONS_CONTEXT = "(definitions)"


@dataclass(frozen=True)
class Decision:
    """Why a clause carries a label: which part of the classifier decided, and on what."""

    label: str
    evidence: str  # an exact span of the clause's text
    by: str  # "rule" | "lead-in" | "model"; "blocked" (no label, only with explain)
    rule: str = ""  # the rule id, for "rule" and "lead-in"
    probability: float | None = None  # the model's, whenever a model is shipped
    words: tuple[tuple[str, float], ...] = ()  # the model's heaviest features, for "model"
    blocked: tuple[str, ...] = ()  # "pattern-id by veto-id": rule matches that were dropped


def heading_parts(heading: Sequence[str] | str) -> tuple[str, ...]:
    """A heading trail as its parts, given as parts or as a "Restrictions › 3.2" string."""
    if isinstance(heading, str):
        return tuple(part.strip() for part in heading.split(TRAIL.strip()) if part.strip())
    return tuple(heading)


_SENTENCE = re.compile(r"[^.;:!?。；！？\n]+[.;:!?。；！？]?")


class _LastScored:
    """Model.scores_many of the texts asked for last. decide asks again for each label the model
    adds: the same sentences of one clause, the same item under a lead-in."""

    def __init__(self) -> None:
        # (model, texts, scores) in one tuple, replaced whole: threads may classify at once
        self._last: tuple[Model, tuple[str, ...], np.ndarray] | None = None

    def __call__(self, model: Model, texts: tuple[str, ...]) -> np.ndarray:
        last = self._last
        if last is not None and last[0] is model and last[1] == texts:
            return last[2]
        scores = model.scores_many(texts)
        self._last = (model, texts, scores)
        return scores


_sentence_scores = _LastScored()
_item_scores = _LastScored()


def _sentences(text: str) -> tuple[str, ...]:
    return tuple(s for s in (m.group(0).strip() for m in _SENTENCE.finditer(text)) if len(s) >= 3)


def _best_sentence(model: Model, label: str, text: str) -> str:
    """The sentence of `text` the model finds most about `label`: the evidence it can show."""
    column = model.labels.index(label)
    best, best_score = text.strip(), float("-inf")
    sentences = _sentences(text)
    if not sentences:
        return best
    # All sentences scored in one pass; the first of the highest wins, as one by one.
    for sentence, score in zip(sentences, _sentence_scores(model, sentences)[:, column].tolist()):
        if score > best_score:
            best, best_score = sentence, score
    return best


_TITLE_WORD = re.compile(r"[^\W\d_]+")
_RULE_WORD = re.compile(
    r"\b(?:may|must|will|shall|not|no|do|don't|can|cannot|is|are|be|never|only)\b|:|"
    r"[。；，：]|不得|应当|须|可以|有权|禁止|不",
    re.IGNORECASE,
)


def is_title(text: str) -> bool:
    """A clause that is only a title ("Termination.", "SUSPENSION & TERMINATION", "4、用户个人信息
    保护"): no rule in it, so no label (the labels README). A title that states a rule keeps its
    label ("Do Not Compromise Computer Systems")."""
    # Six words first: that stops after the sixth, where a search for a rule word would read
    # every character of a clause that has none.
    if _has_words(text, 6) or _RULE_WORD.search(text):
        return False
    return cjk_count(text) <= 12


def _has_words(text: str, count: int) -> bool:
    """At least `count` words: len(_TITLE_WORD.findall(text)) >= count, without reading (and
    making strings of) the words after them."""
    return next(islice(_TITLE_WORD.finditer(text), count - 1, None), None) is not None


# A clause that defines a term: a quoted term (an item mark before it, a bracketed aside after
# it) and "means", "refers to", "指" ... Its defining sentence states no rule (the labels README:
# definitions with no rule get no label), whatever topics its words list.
_DEFINITION = re.compile(
    r"""^\s*(?:\(?[a-z0-9]{1,4}[.)、]\s*)?(?:the\s+)?["“「][^"”」]{1,60}["”」]"""
    r"""(?:\s*(?:,|or|and|或|和)\s*["“「][^"”」]{1,60}["”」])*(?:\s*[(（][^)）]{0,80}[)）])?"""
    r"""\s*(?:means|refers?\s+to|shall\s+mean|has\s+the\s+meaning|is\s+defined\s+as|"""
    r"""[,，]?\s*(?:是指|系指|指))""",
    re.IGNORECASE,
)
_DEFINITION_END = re.compile(r"[.;。；](?=\s|$)")


def definition_length(text: str) -> int:
    """The length of a defining sentence that opens `text` ("“Harmful Code” means any virus,
    worm or ..."), or 0 when the text does not open with a definition. What follows it (a
    second sentence that grants a licence on the defined thing) is read as usual."""
    if not _DEFINITION.match(text):
        return 0
    end = _DEFINITION_END.search(text)
    return end.end() if end else len(text)


# A heading that names a section of definitions ("Definitions", "1. Defined Terms", "A few
# definitions", "定义与解释"); numbering and emoji around it do not count.
_DEFINITIONS_HEADING = re.compile(
    r"^[\W\d_]*(?:[a-z](?:[.)]|\s)\s*)?(?:(?:a\s+few|some|key|general|other)\s+)?"
    r"(?:definitions?|defined\s+terms|interpretation|definitions?\s+and\s+interpretation|"
    r"interpretation\s+and\s+definitions?|定义|释义|定义(?:与|和)解释|名词解释|术语(?:定义)?)"
    r"[\W_]*$",
    re.IGNORECASE,
)


def names_definitions(trail: Sequence[str]) -> bool:
    """A heading trail with a section of definitions in it: its clauses define terms (the
    labels README: definitions with no rule get no label)."""
    return any(_DEFINITIONS_HEADING.match(part) for part in trail)


def _enough_words(text: str) -> bool:
    """The model decides nothing on a clause too short to learn from ("Do not do this."):
    a handful of features would each weigh far too much."""
    return _has_words(text, 5) or cjk_count(text) >= 6


@lru_cache(maxsize=256)
def _lead_in_rules(lead_in: str) -> tuple[tuple[str, str], ...]:
    """The rules' labels of a lead-in on its own; cached, as every item of a list shares it."""
    return _rules.match_rules(lead_in)


def _item_supports(model: Model, label: str, item: str) -> bool:
    """For an enumeration item, the model must find the topic in the item's own words too (at
    half its threshold): a bare lead-in's words ("Except through the API, you will not:") would
    otherwise put one label on every item. A lead-in that states a rule passes it by the rules."""
    column = model.labels.index(label)
    score = _item_scores(model, (item,))[0, column]
    return bool(score >= model.thresholds_for(item)[column] / 2)


def decide(
    text: str,
    heading: Sequence[str] | str = (),
    lead_in: str = "",
    *,
    explain: bool = False,
    model: Model | None | str = "packaged",
) -> tuple[Decision, ...]:
    """Every label of one clause (its text after its lead-in), in taxonomy order.

    An enumeration item is read with its lead-in, but a rule must match the item itself: a bare
    "You may not:" would otherwise put its label on every item. A lead-in that states a rule on
    its own ("We do not use your chats to train our models except when:") passes that label to
    every item under it. `model` replaces the shipped model (None: rules only), for
    cross-validation.
    """
    full = f"{lead_in} {text}".strip() if lead_in else text
    if not full.strip() or (not lead_in and is_title(text)):
        return ()
    trail = heading_parts(heading)
    lead = len(lead_in) + 1 if lead_in else 0
    defined = definition_length(full)
    found: dict[str, Decision] = {
        label: Decision(label, evidence, "rule")
        for label, evidence in _rules.match_rules(full, trail, max(lead, defined))
    }
    if lead_in and not definition_length(lead_in):
        for label, evidence in _lead_in_rules(lead_in):
            found.setdefault(label, Decision(label, evidence, "lead-in"))
    elif not lead_in and (own_lead := lead_in_length(full)):
        # A clause read with its lead-in in its own text ("Limits: in no event will ... be
        # liable for: lost profits"): a rule the lead-in states passes to the item, as above.
        for label, d in found.items():
            at = full.find(d.evidence)
            if 0 <= at and at + len(d.evidence) <= own_lead:
                found[label] = replace(d, by="lead-in")
    if model == "packaged":
        model = packaged_model()
    read = full[defined:] if defined else full  # the model too skips a defining sentence
    residual_p = None
    if isinstance(model, Model) and _enough_words(read):
        probs = model.scores(read, found)
        residual_p = (
            float(probs[model.labels.index(RESIDUAL)]) if RESIDUAL in model.labels else None
        )
        # Under a definitions heading the text defines terms: the model may doubt a rule's
        # label there but adds none of its own from the topics a definition lists.
        adds = not names_definitions(trail)
        thresholds = model.thresholds_for(read)
        # As Python floats (the same values): numpy scalars cost a lookup per label
        for label, p, threshold in zip(
            model.labels, probs.tolist(), thresholds.tolist(), strict=True
        ):
            if label in found:
                if _model_overrules(found[label], p, threshold, found):
                    found[label] = replace(
                        found[label],
                        by="blocked",
                        probability=round(float(p), 3),
                        blocked=(f"by model (p={float(p):.3f})",),
                    )
                elif explain:
                    found[label] = replace(found[label], probability=round(float(p), 3))
            elif adds and p >= threshold and (not lead_in or _item_supports(model, label, text)):
                words = tuple(model.weighed_most(label, read, found)) if explain else ()
                found[label] = Decision(
                    label,
                    _best_sentence(model, label, read),
                    "model",
                    probability=round(float(p), 3),
                    words=words,
                )
    _residual_yields(found, residual_p)
    _confusions_yield(found)
    if explain:
        found = _with_rule_ids(found, _rules.explain_rules(full, trail, lead))
    order = _label_order()
    decisions = sorted(found.values(), key=lambda d: order.get(d.label, len(order)))
    return tuple(d for d in decisions if explain or d.by != "blocked")


RESIDUAL = "acceptable-use"  # the topic of uses that have no label of their own

# Below this probability the model overrules a rule's label that is not of high severity: the
# rule matched a word ("termination" in a survival clause, "arbitration" in a list of what a
# claim may be) and everything else in the clause says the topic is another. Labels of high
# severity and the AI restrictions are never withheld so: missing one costs more than a false
# alarm. Cross-validation: +0.003 micro-F1.
OVERRULE_BELOW = 0.1
# acceptable-use, the residual topic, is matched by harm words ("spam", "malware", "infringing")
# that clauses on other topics mention in passing: an indemnity for unlawful use, a disclaimer
# of secure service, a provider's own spam filtering. Cross-validation: +0.004 micro-F1 (nine
# false labels dropped for one true one).
RESIDUAL_OVERRULE_BELOW = 0.2


# A harm word that no other restriction of the clause corroborates needs the model to find the
# residual topic as it would to add the label itself (its threshold: even odds on Latin text):
# alone, "infringing" or "fraud" is most often a passing mention (a DMCA notice, an indemnity's
# exclusions, a disclaimer of other users' content); beside a rule's specific restriction the
# clause is plainly a list of forbidden uses. Cross-validation: seven false labels dropped, no
# true one.
def _model_overrules(
    decision: Decision, probability: float, threshold: float, found: dict[str, Decision]
) -> bool:
    if decision.by != "rule":
        return False
    if decision.label == RESIDUAL:
        corroborated = any(
            d.by in ("rule", "lead-in") and d.label in _specific_restrictions()
            for d in found.values()
        )
        return probability < (RESIDUAL_OVERRULE_BELOW if corroborated else threshold)
    return (
        probability < OVERRULE_BELOW
        and getattr(_by_id().get(decision.label), "severity", "") != "high"
        and decision.label not in RESTRICTION_LABELS
    )


# Above this the model's own acceptable-use stands beside a more specific restriction.
SURE = 0.95


@lru_cache(maxsize=1)
def _specific_restrictions() -> frozenset[str]:
    return frozenset(
        label.id
        for label in taxonomy()
        if label.group == "customer-restriction" and label.id != RESIDUAL
    )


def _residual_yields(found: dict[str, Decision], probability: float | None = None) -> None:
    """acceptable-use is the residual topic (labels.toml: uses with a label of their own carry
    that label instead). A model's guess of it yields to a rule's more specific restriction
    ("... to: build emotion recognition systems" is high-risk-use), unless the model is sure:
    a clause may list other prohibited uses too. Cross-validation: +0.005 micro-F1.
    So does the residual topic a general lead-in passes down ("Your use must follow these
    policies: ...") to an item that a rule gives a specific restriction of its own: the item
    carries that label instead (cross-validation: four false labels dropped, two true lost).
    `probability`: the model's for acceptable-use on the clause, when the guess is not the
    model's own."""
    guess = found.get(RESIDUAL)
    if guess is None:
        return
    if guess.by == "model":
        yielding_to: tuple[str, ...] = ("rule", "lead-in")
        probability = guess.probability
    elif guess.by == "lead-in":
        yielding_to = ("rule",)  # a lead-in stating both topics passes both
    else:
        return
    if (probability or 0.0) >= SURE:
        return
    if any(d.by in yielding_to and d.label in _specific_restrictions() for d in found.values()):
        del found[RESIDUAL]


def _confusions_yield(found: dict[str, Decision]) -> None:
    """A model's guess of a label yields to a rule's label that the taxonomy names as its usual
    confusion (labels.toml `yields_to`), unless the model is sure: an indemnity's "hold harmless
    from all claims and liability" is not a limitation of liability. Cross-validation: six
    false labels dropped, no true one."""
    by_id = _by_id()
    for label, d in list(found.items()):
        if d.by != "model" or (d.probability or 0.0) >= SURE or label not in by_id:
            continue
        if any(
            other in found and found[other].by in ("rule", "lead-in")
            for other in by_id[label].yields_to
        ):
            del found[label]


def _with_rule_ids(
    found: dict[str, Decision], explained: Sequence[_rules.LabelExplanation]
) -> dict[str, Decision]:
    by_label = {e.label: e for e in explained}
    out = {}
    for label, d in found.items():
        e = by_label.get(label)
        if e is None:
            out[label] = d
            continue
        blocked = tuple(f"{b.rule} by {b.by}" for b in e.blocked)
        rule = (e.rule or "") if d.by in ("rule", "blocked", "lead-in") else d.rule
        if d.by == "blocked":  # the model overruled the rule that matched
            blocked = (f"{rule} {d.blocked[0]}", *blocked)
        out[label] = replace(d, rule=rule, blocked=blocked)
    for label, e in by_label.items():  # matched but blocked, and nothing else gave the label
        if label not in out and e.blocked:
            out[label] = Decision(
                label, "", "blocked", blocked=tuple(f"{b.rule} by {b.by}" for b in e.blocked)
            )
    return out


def classify_text(text: str, heading: Sequence[str] | str = ()) -> tuple[tuple[str, str], ...]:
    """(label id, evidence) for each label the text carries, in taxonomy order.

    The evidence is an exact span of `text`: the words a rule matched, or the sentence the
    learned model weighed most. `heading` is the clause's heading trail or section path, if
    known ("Restrictions › 3.2" or ("Restrictions", "3.2")).
    """
    return tuple((d.label, d.evidence) for d in decide(text, heading))


def explain(
    text: str, heading: Sequence[str] | str = (), lead_in: str = ""
) -> tuple[Decision, ...]:
    """decide() with the rule ids, model probabilities and heaviest words filled in; rule
    matches that a veto or negative dropped appear as decisions by "blocked" (no label)."""
    return decide(text, heading, lead_in, explain=True)


def heading_context(heading: Sequence[str]) -> tuple[str, ...]:
    """What a heading trail means to the classifier: the labels whose heading rule it matches
    (the learned model does not read headings). Two trails with the same context classify a
    text alike, which lets a history be classified once per distinct reading (see
    replay.HistoryAnalyser)."""
    context = _rules.heading_context(heading)
    # The model adds no label under a definitions heading (decide): that is part of the meaning.
    return (*context, DEFINITIONS_CONTEXT) if names_definitions(heading) else context


def classify_clauses(clauses: Sequence[Clause]) -> tuple[Clause, ...]:
    """Copies of the clauses with labels and evidence set (see decide)."""
    out = []
    for clause in clauses:
        found = decide(clause.text, clause.heading, clause.lead_in)
        out.append(
            with_fields(
                clause,
                labels=tuple(d.label for d in found),
                evidence=tuple((d.label, d.evidence) for d in found),
            )
        )
    return tuple(out)
