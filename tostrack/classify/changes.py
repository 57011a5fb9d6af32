"""Labels on changes: which topics a change touches, its severity, and its headline."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from tostrack.classify.taxonomy import (
    _RANK_NAME,
    SEVERITY_RANK,
    Label,
    _by_id,
    _label_order,
    taxonomy,
)
from tostrack.models import Change, Clause, Diff, with_fields


def _severity_map(overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Each label's severity: the taxonomy's, with a workspace's [severity] overrides (checked
    by tostrack.config, the one place that knows what tostrack.toml may hold)."""
    table = {label.id: label.severity for label in taxonomy()}
    if overrides:
        # Imported only for overrides: tostrack.config brings in the e-mail and socket modules,
        # which a replay (no workspace) would otherwise load in each of its processes.
        from tostrack.config import check_severity

        table.update(check_severity(overrides))
    return table


def _ordered(labels: set[str]) -> tuple[str, ...]:
    order = _label_order()
    return tuple(sorted(labels, key=lambda label: order.get(label, len(order))))


def label_changes(diff: Diff, severity: Mapping[str, str] | None = None) -> Diff:
    """Set labels, labels_added/removed and severity on every change of `diff`.

    A change's labels are the union of its old and new clauses' labels; a topic of the old
    clauses that the new wording still speaks of in the topic's own words (training on customer
    data: "train", "fine-tune", ...; feedback; arbitration) is kept, not removed, even if the
    new clause carries no label for it: the clause was rewritten, not dropped. Severity is
    "none" for a cosmetic change, else the highest severity of its labels ("low" with no label
    at all).
    `severity` overrides the taxonomy defaults per label id (a workspace's [severity] table).
    """
    table = _severity_map(severity)
    changes = []
    for change in diff.changes:
        old = {label for clause in change.old for label in clause.labels}
        new = {label for clause in change.new for label in clause.labels}
        if change.old and change.new:
            # A rewritten clause whose new words still speak of an old topic keeps it.
            new |= {label for label in old - new if _speaks_of(label, change.new)}
        both = old | new
        if not change.substantive:
            level = "none"
        elif both:
            level = _RANK_NAME[max(SEVERITY_RANK[table.get(label, "low")] for label in both)]
        else:
            level = "low"
        changes.append(
            with_fields(
                change,
                labels=_ordered(both),
                labels_added=_ordered(new - old) if change.new else (),
                labels_removed=_ordered(old - new) if change.old else (),
                severity=level,
            )
        )
    return Diff(tuple(changes), diff.old_clauses, diff.new_clauses)


def _most_severe(labels: Sequence[str]) -> Label | None:
    by_id = _by_id()
    known = [by_id[label] for label in labels if label in by_id]
    if not known:
        return None
    # max() keeps the first of equals, so ties go to taxonomy order (labels are ordered).
    return max(known, key=lambda label: SEVERITY_RANK.get(label.severity, 0))


def _by_severity(labels: Sequence[str]) -> list[Label]:
    by_id = _by_id()
    known = [by_id[label] for label in labels if label in by_id]
    return sorted(known, key=lambda label: -SEVERITY_RANK.get(label.severity, 0))


def change_headline(change: Change, covered: Collection[str] | None = None) -> str:
    """A plain-English phrase for an alert subject, led by the most severe label involved.

    Where the words show which way a clause moved on its topic, the phrase says so ("a clause
    now allows training on your content unless you opt out", "a clause no longer bans ...");
    where they do not, a rewritten clause was "reworded" or "rewritten", never "removed".
    `covered`: the labels clauses of the new version still carry, when the phrase stands for a
    whole document (a subject line, a list of changes): then a topic the new version still
    covers is never said to be gone.
    """
    covered = None if covered is None else frozenset(covered)
    if change.kind == "added":
        label = _most_severe(change.labels_added or change.labels)
        if label is None:
            return "a new clause was added"
        stance = _stance(label, change.new)
        phrase = _STANCE_WORDS.get(label.id, {}).get(stance) if stance else None
        if phrase:
            return f"a new clause {phrase}{_exceptions(label, change.new, stance)}"
        if label.group == "customer-restriction":
            return f"a new clause {label.headline}"
        return f"a new clause about {label.topic}"
    if change.kind == "removed":
        label = _most_severe(change.labels_removed or change.labels)
        if label is None:
            return "a clause was removed"
        if covered is not None and label.id in covered:
            return f"a clause about {label.topic} was rewritten"
        return f"a clause about {label.topic} was removed"
    for label in _by_severity(change.labels):
        phrase = _direction(label, change)
        if phrase:
            return f"a clause {phrase}"
    added, removed = _most_severe(change.labels_added), _most_severe(change.labels_removed)
    if added and (
        removed is None or SEVERITY_RANK[added.severity] >= SEVERITY_RANK[removed.severity]
    ):
        return f"a clause now {added.headline}"
    if removed:
        if removed.headline.startswith("changes ") or (
            covered is not None and removed.id in covered
        ):
            # "no longer changes ..." says nothing, and a topic still covered is not gone.
            return f"a clause about {removed.topic} was rewritten"
        return f"a clause no longer {removed.headline}"
    label = _most_severe(change.labels)
    what = f"a clause about {label.topic}" if label else "a clause"
    flip = _negation_flip(change)
    if flip and change.substantive:
        # "We do not ..." -> "We may ..." keeps its label but may reverse its meaning, even
        # where the topic's own words do not show which way: say so rather than "reworded".
        return f"{what} was rewritten: a negation was {flip}"
    verb = {"moved": "was moved", "split": "was split", "merged": "was merged"}.get(
        change.kind, "was reworded"
    )
    return f"{what} {verb}"


_FLIP_MAX_WORDS = 15  # a negation flip is news in a small edit; a redraft is read by _direction


def _negation_flip(change: Change) -> str:
    """ "dropped" or "added" when a small edit changed how many negations the wording holds
    ("may not" and "is prohibited from" count alike; so do straight and curly apostrophes)."""
    if not change.old or not change.new:
        return ""
    if change.redline:
        edited = " ".join(text for op, text in change.redline if op != "equal")
        if len(edited.split()) > _FLIP_MAX_WORDS:
            return ""
    old = sum(len(_FORBIDDING.findall(_plain(c.full_text))) for c in change.old)
    new = sum(len(_FORBIDDING.findall(_plain(c.full_text))) for c in change.new)
    if old == new:
        return ""
    return "dropped" if new < old else "added"


def _plain(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u02bc", "'")


# -- which way a clause stands on its topic, read from its words ------------------------------
#
# A clause's stance on a label's topic: it forbids it, permits it, or (for the provider's use
# of customer data) permits it unless the customer opts out, or only if the customer opts in.
# The sentences that speak of the topic are found by the label's evidence span, or, for the
# labels below, by the topic's own words (so a rewritten clause the classifier did not label
# still shows which way it went). The first of them that takes a side decides; a later
# opt-out or opt-in qualifies a plain permission ("We may use your chats to train our models.
# You can opt out in your settings."). Sentences that take no side leave the stance unknown,
# and a headline with an unknown side says "rewritten".

FORBIDS, PERMITS, OPT_OUT, OPT_IN = "forbids", "permits", "opt-out", "opt-in"
CHOICE = "choice"  # the customer chooses, the words do not say which way by default

_TOPIC_WORDS = {
    "feedback": re.compile(r"\bfeedback\b", re.IGNORECASE),
    "arbitration": re.compile(r"\barbitra(?:tion|tor|te|l)\w*", re.IGNORECASE),
    "customer-data-training": re.compile(
        r"\b(?:train(?:s|ed|ing)?|retrain\w*|fine[- ]?tun\w*|model (?:training|improvement)"
        r"|(?:improve|develop|build) (?:our|its|their|the|new) (?:\w+ ){0,2}models?)\b",
        re.IGNORECASE,
    ),
}
# Phrases per label and stance: "a clause now <...>", "a new clause <...>".
_STANCE_WORDS = {
    "customer-data-training": {
        OPT_OUT: "allows training on your content unless you opt out",
        OPT_IN: "allows training on your content only if you opt in",
        PERMITS: "allows training on your content",
        FORBIDS: "rules out training on your content",
    },
}
_NOW = {
    "customer-data-training": {
        (FORBIDS, OPT_OUT): "now allows training on your content unless you opt out",
        (OPT_IN, OPT_OUT): "now allows training on your content unless you opt out",
        (None, OPT_OUT): "now allows training on your content unless you opt out",
        (PERMITS, OPT_OUT): "now lets you opt out of training on your content",
        (FORBIDS, PERMITS): "now allows training on your content",
        (FORBIDS, OPT_IN): "now allows training on your content if you opt in",
        (PERMITS, OPT_IN): "now allows training on your content only if you opt in",
        (OPT_OUT, OPT_IN): "now allows training on your content only if you opt in",
        (None, OPT_IN): "now allows training on your content only if you opt in",
        (PERMITS, FORBIDS): "no longer allows training on your content",
        (OPT_OUT, FORBIDS): "no longer allows training on your content",
        (OPT_IN, FORBIDS): "no longer allows training on your content, even if you opt in",
    },
}
_SENTENCE = re.compile(r"[^.;:!?]*(?:[.;:!?]+|$)")
# "opt in" / "opt out" said in so many words decide first; then the other ways of saying it.
_SAYS_OPT_IN = re.compile(r"\bopt(?:s|ed|ing)?[- ]?in(?:to)?\b", re.IGNORECASE)
_SAYS_OPT_OUT = re.compile(r"\bopt(?:s|ed|ing)?[- ]?out\b", re.IGNORECASE)
_OPT_IN = re.compile(
    r"\bonly (?:if|when|where|after) you\b"
    r"|\bwith(?:out)? your (?:prior |explicit |express )?(?:consent|permission|agreement)\b"
    r"|\bunless you(?:'ve| have)? (?:\w+ )?(?:ask|allow|agree|choose|consent|permit|tell us to)\w*",
    re.IGNORECASE,
)
_OPT_OUT = re.compile(
    r"\bunless you (?:turn|switch)\b|\bunless you (?:object|disable|decline|tell us not to)\b"
    r"|\byou (?:can|may) (?:turn|switch) (?:\w+ )?off\b|\byou (?:can|may) object\b"
    r"|\b(?:turn|switch) off (?:\w+ ){0,3}(?:training|model improvement)",
    re.IGNORECASE,
)
_WHETHER = re.compile(
    r"\b(?:choose|select|decide|control|manage|elect\w*|set)\b (?:\w+ ){0,3}?whether\b",
    re.IGNORECASE,
)
_FORBIDDING = re.compile(
    r"\b(?:not|never|no longer|cannot|neither|nor|prohibit\w*|forbid\w*|banned|refrain)\b"
    r"|n't\b|\bno one\b",
    re.IGNORECASE,
)
_EXCEPT = re.compile(r"\b(?:except|other than|excluding|apart from)\b", re.IGNORECASE)
_PERMITTING = re.compile(
    r"\b(?:may|might|can|could|will|shall|would|reserve|allow\w*|permit\w*|entitled|free to"
    r"|license|grant)\b|\b(?:we|you|they|it) (?:\w+ )?(?:use|train|process|analy[sz]e|retain"
    r"|review|keep|share)s?\b|\b(?:is|are|be|been|being) (?:\w+ )?(?:used|processed|analy[sz]ed"
    r"|reviewed|retained|shared|kept)\b",
    re.IGNORECASE,
)


def _speaks_of(label_id: str, clauses: Sequence[Clause]) -> bool:
    """Do the clauses name the label's topic in its own words (for labels that have them)?"""
    words = _TOPIC_WORDS.get(label_id)
    return words is not None and any(words.search(c.full_text) for c in clauses)


def _topic_spans(label: Label, clause: Clause, text: str) -> list[int]:
    """Where in `text` (the clause's text or lead-in) its words speak of the label's topic.

    A label with words of its own is found by them only: its phrases speak of exactly that
    ("allows training on your content"), not of whatever else its evidence matched ("we may
    use your content to improve the service")."""
    words = _TOPIC_WORDS.get(label.id)
    if words is not None:
        return [m.start() for m in words.finditer(text)]
    spans = [
        text.find(evidence) for lab, evidence in clause.evidence if lab == label.id and evidence
    ]
    spans = sorted({at for at in spans if at >= 0})
    if not spans and label.id in clause.labels:
        spans = [-1]  # the whole clause is about it, nothing says where
    return spans


def _choice(sentence: str) -> str | None:
    sentence = _plain(sentence)
    for pattern, choice in (
        (_SAYS_OPT_IN, OPT_IN),
        (_SAYS_OPT_OUT, OPT_OUT),
        (_OPT_IN, OPT_IN),
        (_OPT_OUT, OPT_OUT),
    ):
        if pattern.search(sentence):
            return choice
    # "you can choose whether we use your chats for training": a choice, which way unsaid.
    return CHOICE if _WHETHER.search(sentence) else None


def _sentence_stance(label: Label, sentence: str, at: int) -> str | None:
    """The stance of one sentence; `at` is where the topic is named in it (-1: unknown)."""
    sentence = _plain(sentence)  # same length: `at` still points at the topic
    if label.group != "customer-restriction":  # the provider's use of what the customer gives
        choice = _choice(sentence)
        if choice:
            return choice
    before = sentence if at < 0 else sentence[:at]
    forbids = bool(_FORBIDDING.search(before))
    if not forbids and not _PERMITTING.search(sentence):
        return None
    if at >= 0 and _EXCEPT.search(before):
        forbids = not forbids  # "you may use output for anything except training models"
    return FORBIDS if forbids else PERMITS


def _stance(label: Label, clauses: Sequence[Clause]) -> str | None:
    """The stance of one side of a change (its clauses read in order) on the label's topic."""
    first: str | None = None
    seen: set[str] = set()
    for clause in clauses:
        for part in (clause.lead_in, clause.text):
            if not part or part in seen:  # items repeat their lead-in: read it once
                continue
            seen.add(part)
            spans = _topic_spans(label, clause, part)
            if not spans:
                continue
            for sentence in _SENTENCE.finditer(part):
                start, end = sentence.span()
                inside = [at - start for at in spans if at < 0 or start <= at < end]
                if inside:
                    stance = _sentence_stance(label, sentence.group(0), max(inside[0], -1))
                elif first is not None and label.group != "customer-restriction":
                    # "... to train our models. You can opt out in settings.": a choice given
                    # next to the topic qualifies it.
                    stance = _choice(sentence.group(0))
                else:
                    stance = None
                if stance is None:
                    continue
                if first is None:
                    first = stance
                elif first == PERMITS and stance in (OPT_OUT, OPT_IN, CHOICE):
                    return stance  # a permission, then the choice that qualifies it
    return first


_EXCEPT_AFTER = re.compile(r"\b(?:except|unless|other than|save (?:for|where))\b", re.IGNORECASE)


def _exceptions(label: Label, clauses: Sequence[Clause], stance: str | None) -> str:
    """ ", except in the cases it lists" for a rule against the topic that names exceptions
    ("We do not train on your data except when ...")."""
    if stance != FORBIDS or label.id not in _STANCE_WORDS:
        return ""
    for clause in clauses:
        text = _plain(clause.full_text)
        for at in _topic_spans(label, clause, text):
            end = _SENTENCE.match(text, at).end()  # the rest of the topic's sentence
            if _EXCEPT_AFTER.search(text, at, end):
                return ", except in the cases it lists"
    return ""


def _direction(label: Label, change: Change) -> str | None:
    """ "now allows ...", "no longer bans ..." when the words show which way the clause moved."""
    if not change.old or not change.new:
        return None
    old, new = _stance(label, change.old), _stance(label, change.new)
    if new is None or old == new:
        return None
    phrase = _NOW.get(label.id, {}).get((old, new))
    if phrase:
        return phrase + _exceptions(label, change.new, new)
    if label.group != "customer-restriction" or old is None:
        return None
    verb, _, what = label.headline.partition(" ")
    if verb not in ("bans", "restricts") or not what:
        return None
    if new == FORBIDS:
        return f"now bans {what}"
    return f"no longer bans {what}" if old == FORBIDS else None
