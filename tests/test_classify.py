"""Clause classification: taxonomy, rules, evidence, label changes, headlines, evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tostrack.classify import (
    RESTRICTION_LABELS,
    Label,
    change_headline,
    classify_clauses,
    classify_text,
    explain,
    label_changes,
    taxonomy,
)
from tostrack.errors import ConfigError, InputError
from tostrack.evaluate import evaluate
from tostrack.models import Change, Clause, Diff

DATA = Path(__file__).parent / "data"
DEV = DATA / "dev_clauses.jsonl"
HELDOUT = DATA / "heldout_clauses.jsonl"
PRECISION_LABELS = (*RESTRICTION_LABELS, "customer-data-training")


def labels(text: str) -> list[str]:
    return [label for label, _ in classify_text(text)]


# -- taxonomy -----------------------------------------------------------------------------------


def test_taxonomy_is_complete_and_ordered() -> None:
    tax = taxonomy()
    assert all(isinstance(label, Label) for label in tax)
    ids = [label.id for label in tax]
    assert len(ids) == len(set(ids)) == 22
    assert RESTRICTION_LABELS == (
        "competing-models",
        "output-training",
        "data-extraction",
        "reverse-engineering",
        "safeguard-circumvention",
        "benchmarking",
        "ai-disclosure",
        "high-risk-use",
        "acceptable-use",
    )
    for label in tax:
        assert label.severity in {"low", "medium", "high"}
        assert label.group in {"customer-restriction", "provider-rights", "contract"}
        assert label.definition and label.headline and label.topic and label.not_to_confuse_with
        # A label yields only to other labels that exist (a typo would silently do nothing).
        assert set(label.yields_to) <= {t.id for t in tax} - {label.id}, label.id


# -- behaviour the rest of the code relies on ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # using output to develop a competing model: both labels (../shared/labels/README.md)
        (
            "You may not use Output to develop competing models.",
            ["competing-models", "output-training"],
        ),
        ("You may not use the Services to build a competing product.", ["competing-models"]),
        ("Any dispute will be finally resolved by binding arbitration.", ["arbitration"]),
        ("These terms are governed by the laws of England and Wales.", ["governing-law"]),
        (
            (
                "You may not reverse engineer or decompile any part of the service, or use its "
                "output to develop models that compete with Acme."
            ),
            ["competing-models", "output-training", "reverse-engineering"],
        ),
        ("Please read these terms.", []),
    ],
)
def test_contract_examples(text: str, expected: list[str]) -> None:
    assert labels(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "We will not train on your API data.",
        "We may train our models on your API data.",
        "We never use business customers' prompts to improve our models.",
        "You can opt out of model training at any time.",
    ],
)
def test_negation_and_permission_are_the_same_topic(text: str) -> None:
    assert labels(text) == ["customer-data-training"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("You may use Output to build products that compete with us.", "competing-models"),
        ("You must not use Output to build products that compete with us.", "competing-models"),
        ("You may scrape the website, provided you respect robots limits.", "data-extraction"),
        ("Scraping the website is forbidden.", "data-extraction"),
    ],
)
def test_permissions_and_bans_both_carry_the_topic(text: str, label: str) -> None:
    assert label in labels(text)


@pytest.mark.parametrize(
    "text",
    [
        "We compete on price and on the quality of our support.",
        "You can export your chat history at any time from Settings.",
        "Our models were trained on publicly available data and licensed data.",
        "Join our annual developer competition for a chance to win credits.",
        "Arbitrary sentences about the weather mean nothing.",
        "You can delete individual conversations at any time.",
        "We use automated systems to detect fraud and abuse on our platform.",
        "Our pricing is benchmarked against published industry rates.",
    ],
)
def test_near_misses_get_no_label(text: str) -> None:
    assert labels(text) == []


def test_evidence_is_an_exact_substring_in_taxonomy_order() -> None:
    order = [label.id for label in taxonomy()]
    for line in DEV.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        found = classify_text(text)
        assert [label for label, _ in found] == sorted(
            (label for label, _ in found), key=order.index
        )
        assert len({label for label, _ in found}) == len(found)
        for _, evidence in found:
            assert evidence and evidence in text


def test_evidence_survives_curly_quotes_and_abbreviations() -> None:
    text = "THE SERVICE IS PROVIDED “AS IS”, e.g. without warranty; you won’t scrape it."
    found = dict(classify_text(text))
    assert found["warranty-disclaimer"] in text
    assert found["data-extraction"] == "scrape"


def test_empty_and_blank_text() -> None:
    assert classify_text("") == ()
    assert classify_text("   \n ") == ()


# -- clauses: lead-in and heading context -------------------------------------------------------


def clause(
    text: str, *, lead_in: str = "", heading: tuple[str, ...] = (), cid: str = "c1"
) -> Clause:
    return Clause(id=cid, section="1", heading=heading, text=text, lead_in=lead_in)


def test_enumeration_items_are_labelled_with_their_lead_in() -> None:
    lead = "Except as permitted through the API, you will not:"
    items = classify_clauses(
        [
            clause("use bots or scripts to extract data from the Services;", lead_in=lead),
            clause("use Output to develop models that compete with us;", lead_in=lead, cid="c2"),
            clause("share your login with anyone else.", lead_in=lead, cid="c3"),
        ]
    )
    assert [c.labels for c in items] == [
        ("data-extraction",),
        ("competing-models", "output-training"),
        (),
    ]
    assert dict(items[0].evidence)["data-extraction"] in items[0].full_text


def test_a_lead_in_that_states_a_rule_passes_its_topic_to_every_item() -> None:
    # Issue #10: "We do not use X to train except when: (a) ...; (b) ..." governs training on
    # customer data in every item, although no item says "train".
    lead = (
        "We do not use the conversations you have with our assistant to train our models, except:"
    )
    items = classify_clauses(
        [
            clause(
                "where you choose to send us a rating or comment about an answer;", lead_in=lead
            ),
            clause(
                "where our safety team reviews a conversation it has flagged.",
                lead_in=lead,
                cid="c2",
            ),
        ]
    )
    for item in items:
        assert "customer-data-training" in item.labels
        decided = dict(item.evidence)["customer-data-training"]
        assert decided in item.full_text
    by = {d.label: d.by for d in explain(items[0].text, (), lead)}
    assert by["customer-data-training"] == "lead-in"


def test_a_bare_lead_in_passes_nothing() -> None:
    lead = "You may not:"
    items = classify_clauses(
        [
            clause("resell access to the Services;", lead_in=lead),
            clause(
                "send automated queries to harvest content from the Services.",
                lead_in=lead,
                cid="c2",
            ),
        ]
    )
    assert "data-extraction" not in items[0].labels
    assert "data-extraction" in items[1].labels


def test_lead_in_rule_is_inherited_but_item_rules_still_need_the_item() -> None:
    lead = "You must not use Output to develop competing models, and you must not:"
    (item,) = classify_clauses([clause("resell the Services.", lead_in=lead)])
    assert "competing-models" in item.labels  # stated by the lead-in itself
    assert "data-extraction" not in item.labels


def test_heading_is_weak_context_only() -> None:
    # The rules: a weak pattern needs its heading. (The learned model may know this wording
    # well enough without one; that is its job.)
    from tostrack.classify.rules import match_rules

    text = "You may opt out of this section by emailing us within 30 days of signing up."
    under = match_rules(text, ("Terms", "Arbitration"))
    assert [label for label, _ in under] == ["arbitration"] and match_rules(text) == ()
    (labelled_under,) = classify_clauses([clause(text, heading=("Terms", "Arbitration"))])
    assert labelled_under.labels == ("arbitration",)
    (heading_only,) = classify_clauses([clause("We will contact you.", heading=("Arbitration",))])
    assert heading_only.labels == ()
    (restriction,) = classify_clauses([clause("Do not do this.", heading=("Scraping",))])
    assert restriction.labels == ()


def test_classify_clauses_returns_copies() -> None:
    original = clause(
        "These terms are governed by Irish law and the Irish courts have jurisdiction."
    )
    (labelled,) = classify_clauses([original])
    assert original.labels == () and labelled.labels == ("governing-law",)
    assert labelled.id == original.id and labelled.text == original.text


# -- changes ------------------------------------------------------------------------------------


def labelled(text: str, cid: str = "c1") -> Clause:
    return classify_clauses([clause(text, cid=cid)])[0]


OLD = labelled("You may not reverse engineer the service.")
NEW = labelled(
    "You may not reverse engineer the service, or use its output to develop models that compete "
    "with Acme."
)
LAW = labelled("These terms are governed by the laws of England and Wales.", "c2")
PLAIN = labelled("Our office is open on weekdays.", "c3")


def test_label_changes_added_removed_and_severity() -> None:
    diff = Diff(
        (
            Change("modified", True, (OLD,), (NEW,)),
            Change("modified", True, (NEW,), (OLD,)),
            Change("removed", True, (LAW,), ()),
            Change("modified", False, (LAW,), (LAW,)),
            Change("added", True, (), (PLAIN,)),
        ),
        old_clauses=(OLD, LAW),
        new_clauses=(NEW, PLAIN),
    )
    out = label_changes(diff)
    gained, lost, removed, cosmetic, unlabelled = out.changes
    assert gained.labels == ("competing-models", "output-training", "reverse-engineering")
    assert gained.labels_added == ("competing-models", "output-training")
    assert gained.labels_removed == () and gained.severity == "high"
    assert lost.labels_removed == ("competing-models", "output-training")
    assert lost.severity == "high"
    assert removed.labels_removed == ("governing-law",) and removed.severity == "medium"
    assert cosmetic.severity == "none" and cosmetic.labels == ("governing-law",)
    assert unlabelled.severity == "low" and unlabelled.labels == ()
    assert out.old_clauses == diff.old_clauses and out.new_clauses == diff.new_clauses
    assert diff.changes[0].severity == "none"  # the input is untouched


def test_severity_overrides() -> None:
    diff = Diff((Change("removed", True, (LAW,), ()), Change("modified", True, (OLD,), (NEW,))))
    raised = label_changes(
        diff, {"governing-law": "high", "competing-models": "low", "output-training": "low"}
    )
    assert raised.changes[0].severity == "high"
    # competing-models and output-training lowered to low; reverse-engineering (medium) is now
    # the highest
    assert raised.changes[1].severity == "medium"
    silenced = label_changes(diff, {"governing-law": "none"})
    assert silenced.changes[0].severity == "none"
    with pytest.raises(ConfigError, match="unknown label"):
        label_changes(diff, {"governing-laws": "high"})
    with pytest.raises(ConfigError, match="high"):
        label_changes(diff, {"governing-law": "urgent"})


def test_change_headline() -> None:
    def head(change: Change) -> str:
        return change_headline(label_changes(Diff((change,))).changes[0])

    assert head(Change("modified", True, (OLD,), (NEW,))) == (
        "a clause now bans using the service or its output to build competing models or products"
    )
    assert head(Change("modified", True, (NEW,), (OLD,))).startswith("a clause no longer bans")
    arbitration = labelled("Disputes will be resolved by binding arbitration.", "c4")
    assert head(Change("added", True, (), (arbitration,))) == "a new clause about arbitration"
    assert head(Change("removed", True, (LAW,), ())) == (
        "a clause about governing law and venue was removed"
    )
    reworded = replace(LAW, text="These terms are governed by the laws of Scotland.")
    assert head(Change("modified", True, (LAW,), (reworded,))) == (
        "a clause about governing law and venue was reworded"
    )
    assert head(Change("modified", True, (PLAIN,), (PLAIN,))) == "a clause was reworded"


# -- evaluation ---------------------------------------------------------------------------------


def test_dev_set_meets_targets() -> None:
    report = evaluate(DEV)
    assert report.n >= 400
    assert report.micro_f1 >= 0.95, report.format_text()
    for label in PRECISION_LABELS:
        score = report.score(label)
        assert score.support >= 5, label  # every target label is really exercised
        assert score.precision >= 0.95, (label, report.format_text())
    assert {s.label for s in report.labels if s.support} == {label.id for label in taxonomy()}
    unlabelled = sum(
        1 for line in DEV.read_text(encoding="utf-8").splitlines() if not json.loads(line)["labels"]
    )
    assert unlabelled >= 80  # near misses and plain clauses keep precision honest


def test_heldout_set_is_reasonable() -> None:
    report = evaluate(HELDOUT)
    assert report.n >= 100
    # Written after the rules were frozen; a floor, not a target the rules were tuned to.
    assert report.micro_f1 >= 0.8, report.format_text()


def test_eval_report_counts_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    records = [
        {"id": "a", "text": "You may not scrape the Services.", "labels": ["data-extraction"]},
        {"id": "b", "text": "Our office is open on weekdays.", "labels": ["termination"]},
        {"id": "c", "text": "We may suspend your account.", "labels": []},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    report = evaluate(path)
    assert report.n == 3
    assert (report.score("data-extraction").tp, report.score("data-extraction").fp) == (1, 0)
    term = report.score("termination")
    assert (term.tp, term.fp, term.fn) == (0, 1, 1)
    assert report.micro_precision == pytest.approx(0.5) and report.micro_recall == pytest.approx(
        0.5
    )
    assert [m.id for m in report.misclassified] == ["b", "c"]
    data = report.to_json()
    assert data["n"] == 3 and data["micro"]["f1"] == pytest.approx(0.5)
    assert data["misclassified"][1]["extra"] == ["termination"]
    text = report.format_text()
    assert "data-extraction" in text and "micro" in text and "2 misclassified" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json\n", "line 1 is not JSON"),
        ('{"id": "x", "text": "t"}\n', "labels"),
        ('{"id": "x", "text": "t", "labels": ["no-such-label"]}\n', "unknown label"),
        ("\n", "no labelled clauses"),
    ],
)
def test_eval_input_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        evaluate(path)
    with pytest.raises(InputError, match="cannot read"):
        evaluate(tmp_path / "missing.jsonl")


# -- determinism --------------------------------------------------------------------------------

_DUMP = (
    "import json, sys; from pathlib import Path; from tostrack.classify import classify_text\n"
    "lines = Path(sys.argv[1]).read_text(encoding='utf-8').splitlines()\n"
    "print(json.dumps([classify_text(json.loads(l)['text']) for l in lines]))\n"
)


def test_deterministic_across_processes_and_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _DUMP, str(DEV)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    here = json.dumps(
        [
            classify_text(json.loads(line)["text"])
            for line in DEV.read_text(encoding="utf-8").splitlines()
        ]
    )
    assert json.loads(here) == json.loads(outputs[0])


def test_literal_gates_never_change_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gates only skip regexes that cannot match: results with and without are identical."""
    import dataclasses

    from tostrack.classify import rules as classify

    texts = [json.loads(line)["text"] for line in DEV.read_text(encoding="utf-8").splitlines()]
    gated = [classify_text(t) for t in texts]
    rules = classify._rules()
    assert sum(1 for r in rules for p in r.patterns if p.gate) > len(rules)  # gates exist
    ungated = tuple(
        dataclasses.replace(
            r,
            gate=None,
            patterns=tuple(
                dataclasses.replace(p, gate=None, also=(), require=None, lead=None)
                for p in r.patterns
            ),
            weak=tuple(
                dataclasses.replace(p, gate=None, also=(), require=None, lead=None) for p in r.weak
            ),
        )
        for r in rules
    )
    assert any(p.require for r in rules for p in r.patterns)  # branch requirements exist
    assert sum(1 for r in rules for p in r.patterns if p.lead) > len(rules)  # and leads
    monkeypatch.setattr(classify, "_rules", lambda: ungated)
    assert [classify_text(t) for t in texts] == gated


def test_a_branch_requirement_skips_a_regex_only_when_no_branch_can_match() -> None:
    """Each branch keeps its own literal conditions: a clause meeting one branch's runs the
    regex, a clause that has words of both branches but all of neither is skipped."""
    import re

    from tostrack.classify.rules import _gate, _satisfied

    regex = re.compile(
        r"\b(?:residents?|users?)\s+(?:\w+\s+){0,3}?(?:in|of)\s+(?:ruritania|elbonia)\b"
        r"|\b(?:ruritania|elbonia)\b[^.]{0,40}\b(?:sanction\w*|embargo\w*)",
        re.IGNORECASE,
    )
    require = _gate(regex)[2]
    assert require is not None
    for text, can in (
        ("Users located in Elbonia may not sign up.", True),
        ("Elbonia is under an embargo.", True),
        ("Users in the sanctioned regions may not sign up.", False),  # no country
        ("Residents must keep their embargo papers.", False),  # a word of each branch only
    ):
        folded = text.casefold()
        present = frozenset(
            w
            for w in (
                "residents",
                "resident",
                "users",
                "user",
                "ruritania",
                "elbonia",
                "sanction",
                "embargo",
            )
            if w in folded
        )
        assert _satisfied(require, present) is can
        if not can:
            assert regex.search(text) is None  # what skipping saves is never a match


def test_a_regex_tried_only_where_its_lead_literals_occur_finds_what_finditer_finds() -> None:
    """Matches start at an occurrence of the lead literals, so trying the regex there alone
    gives finditer's matches, in order, without overlaps; where casefolding moves characters
    (ß -> ss), the whole text is searched as before."""
    import re

    from tostrack.classify.rules import _gate, _matches, _Pattern

    regex = re.compile(r"(?<!not )\b(?:use|using|the use of)\s+(?:\w+\s+){0,2}?data\b", re.I)
    lead = _gate(regex)[3]
    assert lead == frozenset({"use", "using", "the use of"})
    pattern = _Pattern(regex, lead=lead)
    texts = (
        "We use your data; USING customer data and the use of usage data too.",
        "You may not use data, but we use the data and using data is fine.",
        "Use data. Use-data. use\ndata. reuse data. used data.",
        "Straße: we use your data.",  # casefolding lengthens it: no positions to trust
    )
    for text in texts:
        folded = text.casefold()
        present = frozenset(w for w in lead if w in folded)
        at_place = folded if len(folded) == len(text) else None
        got = [m.span() for m in _matches(pattern, text, at_place, present)]
        assert got == [m.span() for m in regex.finditer(text)], text
    assert [m.group(0) for m in _matches(pattern, texts[1], texts[1].casefold(), lead)] == [
        "use the data",
        "using data",
    ]


def test_leads_read_through_an_optional_start_and_small_ranges() -> None:
    """An optional start gives the leads of what it repeats and of what follows it; a range
    of a few characters reads as them. Leads too short for the gate automaton are looked for
    in every clause, and trying the regex at the leads still finds what finditer finds."""
    import re

    from tostrack.classify.rules import _gate, _matches, _Pattern

    regex = re.compile(
        r"\b(?:(?:the\s+)?(?:member|client)'s\s+files|(?:1[0-9]|2[01])\s*\+|no\s+refunds)\b",
        re.IGNORECASE,
    )
    lead = _gate(regex)[3]
    assert lead is not None
    assert {"the", "member's", "client's", "10", "19", "20", "21", "no"} <= lead
    assert "22" not in lead and "1" not in lead
    pattern = _Pattern(regex, lead=lead)
    assert pattern.unindexed_lead is not None  # "10" .. "21", "no": two characters
    texts = (
        "The member's files and THE CLIENT'S FILES, for 18+ or 21 + users; no refunds.",
        "Only 12+ (not 22+ or 1+): the  client's files, 2019+ and 119 +.",
        "no refunds no refunds; nothing else, 1010+ 10+",
        "Nothing matches here at all.",
    )
    for text in texts:
        folded = text.casefold()
        present = frozenset(w for w in lead if w in folded)
        got = [m.span() for m in _matches(pattern, text, folded, present)]
        assert got == [m.span() for m in regex.finditer(text)], text
        assert [m.span() for m in _matches(pattern, text, None, present)] == got


def test_compiled_literal_conditions_agree_with_the_plain_checks() -> None:
    """Each shipped pattern's `also` and branch requirement, compiled into one expression,
    admits a clause exactly when the plain checks do, for many sets of its literals."""
    import random

    from tostrack.classify.rules import _admits, _requirement_words, _rules, _satisfied

    def plain(p: object, present: frozenset[str]) -> bool:
        if p.gate is not None and present.isdisjoint(p.gate):
            return False
        if any(present.isdisjoint(words) for words in p.also):
            return False
        return p.require is None or _satisfied(p.require, present)

    draw = random.Random(14)
    patterns = [p for r in _rules() for p in (*r.patterns, *r.weak)]
    assert sum(1 for p in patterns if p.conditions is not None) > 100
    for p in patterns:
        words = sorted(
            set(p.gate or ())
            | {w for ws in p.also for w in ws}
            | _requirement_words(p.require or ())
        )
        for _ in range(40):
            present = frozenset(w for w in words if draw.random() < draw.choice((0.2, 0.5, 0.9)))
            assert _admits(p, present) is plain(p, present), (p.id, sorted(present))
        assert _admits(p, frozenset(words)) is True  # every literal present


def test_a_dotless_i_is_read_as_the_regexes_read_it() -> None:
    """IGNORECASE matches a dotless ı with i, casefolding keeps it: the folded positions of
    such a text are not trusted, and the rules find what the plain regexes find."""
    from tostrack.classify.rules import explain_rules, match_rules

    for text in ("You must be thırteen or older to use the app.", "Only users 18+ may join."):
        given = tuple((e.label, e.evidence) for e in explain_rules(text) if e.given)
        assert given and match_rules(text) == given


def test_a_cross_referenced_section_title_is_not_the_clause_topic() -> None:
    text = (
        "The limits on liability in this Section 9 (Caps) do not reduce what either side owes "
        "under Section 11 (Indemnities)."
    )
    found = [label for label, _ in classify_text(text)]
    assert "liability-limitation" in found  # the clause's own words
    assert "indemnification" not in found


def test_a_definition_states_no_rule_but_a_sentence_after_it_may() -> None:
    from tostrack.classify import definition_length

    defining = "“Malicious Code” means any virus, worm, spyware or ransomware."
    assert definition_length(defining) == len(defining)
    assert classify_text(defining) == ()
    assert (
        classify_text('"Dispute" means any claim, lawsuit or arbitration between the parties.')
        == ()
    )
    assert classify_text("“平台”或“我们”，指提供本服务的星河公司及其关联公司。") == ()
    # The sentences after the definition are read as usual.
    then = defining + " You must not upload Malicious Code or use the Services to spread malware."
    assert "acceptable-use" in dict(classify_text(then))
    # Not a definition: a rule that happens to quote a term.
    assert definition_length('You may not use "Outputs" to train a competing model.') == 0


def test_the_models_acceptable_use_yields_to_a_rules_more_specific_restriction() -> None:
    from tostrack.classify import Decision, _residual_yields

    def decided(*pairs: tuple[str, str, float | None]) -> dict[str, Decision]:
        return {label: Decision(label, "x", by, probability=p) for label, by, p in pairs}

    guess = ("acceptable-use", "model", 0.7)
    found = decided(("high-risk-use", "rule", None), guess)
    _residual_yields(found)
    assert set(found) == {"high-risk-use"}
    # A sure model, a rule's own acceptable-use, or no specific restriction: it stays.
    for found in (
        decided(("high-risk-use", "rule", None), ("acceptable-use", "model", 0.97)),
        decided(("high-risk-use", "rule", None), ("acceptable-use", "rule", None)),
        decided(("termination", "rule", None), guess),
    ):
        _residual_yields(found)
        assert "acceptable-use" in found


def _model_with_probability(p: float) -> object:
    """A learned model that gives every label probability `p` whatever the text (threshold
    0.5): for testing what decide does with a doubting or unsure model."""
    import numpy as np

    from tostrack.classify.model import BUCKETS, Model
    from tostrack.classify.taxonomy import taxonomy

    labels = tuple(label.id for label in taxonomy())
    return Model(
        labels,
        np.zeros((BUCKETS, len(labels)), dtype=np.float32),
        np.full(len(labels), float(np.log(p / (1 - p)))),
        np.full((2, len(labels)), 0.5),
    )


def test_a_sure_model_overrules_a_rule_but_never_on_high_severity_or_ai_restrictions() -> None:
    from tostrack.classify import decide

    # A model that finds every topic all but impossible (p ~ 0.00005 everywhere).
    doubting = _model_with_probability(0.00005)
    text = "We may terminate your account, and we will not use your chats to train our models."
    assert {d.label for d in decide(text, model=None)} >= {"termination", "customer-data-training"}
    kept = {d.label for d in decide(text, model=doubting)}
    assert "termination" not in kept  # low severity: overruled
    assert "customer-data-training" in kept  # high severity: never
    scraping = "You may not scrape the Services with bots."
    assert "data-extraction" in {d.label for d in decide(scraping, model=doubting)}
    # --explain says who withheld the label, and which rule it overruled.
    (withheld,) = [
        d for d in decide(text, model=doubting, explain=True) if d.label == "termination"
    ]
    assert withheld.by == "blocked" and withheld.blocked[0].startswith("termination/")
    assert "by model (p=0.000)" in withheld.blocked[0]


def test_a_doubting_model_withholds_the_residual_topic_a_harm_word_gave() -> None:
    """acceptable-use is the residual topic: a rule's match on "unlawful" or "malware" in a
    clause on another topic yields below RESIDUAL_OVERRULE_BELOW (0.2), a higher bar than
    the 0.1 of other labels; at 0.15 it goes while termination stays."""
    from tostrack.classify import OVERRULE_BELOW, RESIDUAL_OVERRULE_BELOW, decide

    assert OVERRULE_BELOW < 0.15 < RESIDUAL_OVERRULE_BELOW
    unsure = _model_with_probability(0.15)
    text = "We may terminate the account of anyone who uses the Services to spread malware."
    assert {d.label for d in decide(text, model=None)} >= {"termination", "acceptable-use"}
    kept = {d.label for d in decide(text, model=unsure)}
    assert "acceptable-use" not in kept and "termination" in kept


def test_advice_about_securities_is_a_high_risk_use() -> None:
    """Using the assistant to trade securities or to give or get investment advice is a
    high-risk use by rule (a consumer clause of 2025 said so and went unlabelled); advice on
    how to use the product is not."""
    from tostrack.classify import decide

    for text in (
        "You must not use the app to buy or sell shares, or to get advice about derivatives.",
        "Nobody may rely on the chatbot to give recommendations regarding investments or loans.",
    ):
        assert "high-risk-use" in {d.label for d in decide(text, model=None)}, text
    plain = "Our support staff can give advice on connecting the app to your calendar."
    assert "high-risk-use" not in {d.label for d in decide(plain, model=None)}


def test_a_harm_word_alone_needs_the_model_at_its_threshold_to_keep_the_residual_topic() -> None:
    """A rule's acceptable-use that no specific restriction of the clause corroborates stays only
    when the model finds the topic as it would to add it itself (threshold 0.5 here): a DMCA
    notice or an indemnity names "infringing" in passing. Beside a rule's specific restriction
    ("scrape") the lower RESIDUAL_OVERRULE_BELOW bar holds."""
    from tostrack.classify import RESIDUAL_OVERRULE_BELOW, decide

    unsure = _model_with_probability(0.3)
    assert RESIDUAL_OVERRULE_BELOW < 0.3 < 0.5
    passing = "If you think a post on the forum is infringing your copyright, write to our agent."
    assert "acceptable-use" in {d.label for d in decide(passing, model=None)}
    assert "acceptable-use" not in {d.label for d in decide(passing, model=unsure)}
    listed = "You may not scrape the Services or use them to spread malware to other users."
    kept = {d.label for d in decide(listed, model=unsure)}
    assert {"acceptable-use", "data-extraction"} <= kept
    # A model at the threshold keeps the harm word's label on its own too.
    assert "acceptable-use" in {
        d.label for d in decide(passing, model=_model_with_probability(0.55))
    }


def test_a_general_lead_ins_residual_topic_yields_to_the_items_own_restriction() -> None:
    """A lead-in that states acceptable-use ("must follow our Usage Policies") passes it to its
    items, but an item a rule gives a specific restriction carries that instead, unless the
    model is sure the item is about other prohibited uses as well (SURE)."""
    from tostrack.classify import SURE, decide

    lead = "Your use of the Services must follow our Usage Policies, so you may not use them for:"
    scraping = "scraping the Services with bots or crawlers"
    plain = "sending chain letters to strangers"
    for model in (None, _model_with_probability(0.6)):
        labels = {d.label for d in decide(scraping, lead_in=lead, model=model)}
        assert "data-extraction" in labels and "acceptable-use" not in labels
        assert "acceptable-use" in {d.label for d in decide(plain, lead_in=lead, model=model)}
    sure = _model_with_probability(min(0.99, SURE + 0.02))
    assert "acceptable-use" in {d.label for d in decide(scraping, lead_in=lead, model=sure)}


def test_a_models_guess_yields_to_a_rules_label_the_taxonomy_names_as_its_confusion() -> None:
    """liability-limitation yields_to indemnification in labels.toml: beside a rule's
    indemnity, the model's guess of a liability limit goes unless the model is sure; the
    rule's own labels and guesses beside other labels stay."""
    from tostrack.classify import SURE, decide

    indemnity = "You will indemnify and hold us harmless from all claims and liability."
    assert "indemnification" in {d.label for d in decide(indemnity, model=None)}
    eager = {d.label: d.by for d in decide(indemnity, model=_model_with_probability(0.9))}
    assert eager.get("indemnification") == "rule" and "liability-limitation" not in eager
    assert "arbitration" in eager  # a guess beside a label it is not confused with stays
    sure = decide(indemnity, model=_model_with_probability(min(0.99, SURE + 0.02)))
    assert "liability-limitation" in {d.label for d in sure}


def test_the_model_adds_no_label_under_a_definitions_heading() -> None:
    """Clauses under a definitions heading define terms (the labels README: no label without a
    rule); the model's guesses from the topics a definition lists are not labels there, while a
    rule's label is. heading_context says so, so a replay keys such readings apart."""
    from tostrack.classify import DEFINITIONS_CONTEXT, decide, heading_context, names_definitions

    eager = _model_with_probability(0.9)
    text = "Material that you upload, post or share through the Services, such as photos or posts"
    assert {d.label for d in decide(text, ("Using the Services",), model=eager)}
    assert decide(text, ("1. Definitions", "Your Material"), model=eager) == ()
    rule = "Bots mean any automated means, which you may not use to scrape the Services"
    assert "data-extraction" in {d.label for d in decide(rule, ("Definitions",), model=eager)}
    for heading in ("Definitions", "2.1 Defined Terms", "📘 A few definitions", "定义与解释"):
        assert names_definitions((heading,)), heading
        assert DEFINITIONS_CONTEXT in heading_context(("Terms", heading))
    for heading in ("Termination", "Definitions of the plans we offer", "Your content"):
        assert not names_definitions((heading,)), heading
        assert DEFINITIONS_CONTEXT not in heading_context((heading,))


def test_a_rule_stated_by_the_lead_in_inside_a_clause_text_passes_to_its_item() -> None:
    """A clause read with its lead-in in its own text ("We may terminate your account if: ...",
    as tostrack eval and classify --jsonl send it) keeps the label its lead-in states, as a
    separate lead-in would give it: a doubting model does not withhold it."""
    from tostrack.classify import decide

    doubting = _model_with_probability(0.00005)
    joined = "We may terminate your account at once if: you stop paying the monthly fee"
    (kept,) = [d for d in decide(joined, model=doubting, explain=True) if d.label == "termination"]
    assert kept.by == "lead-in" and kept.rule.startswith("termination/")
    separate = decide("you stop paying the monthly fee", lead_in=joined.split(": ")[0] + ":")
    assert "termination" in {d.label for d in separate}
    # Outside a lead-in the same words are the item's own, and the doubting model may overrule.
    plain = "We may terminate your account at once if you stop paying the monthly fee."
    assert "termination" not in {d.label for d in decide(plain, model=doubting)}
