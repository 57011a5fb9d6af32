"""Which rules change nothing? One-at-a-time ablation of every pattern, negative and veto.

    python benchmarks/rule_ablation.py                 # dead rules, then the ones that matter
    python benchmarks/rule_ablation.py --sequential    # dead rules, each checked with the dead
                                                       # ones before it already removed
    python benchmarks/rule_ablation.py --json

For each rule of tostrack/classify/data/rules/, remove it alone and classify every clause of the
labelled sets again (every tests/data/*_clauses.jsonl and, when present,
../shared/labels/real-clauses.jsonl). A clause is read as `tostrack eval` reads it (the
text alone) and once more with its section as heading trail (the only way `weak` rules fire). A
rule is dead when its removal changes no label of any clause: delete it. For the others, the
change of micro-F1 on each set when it is removed: a rule whose removal raises F1 on the real
clauses and lowers it nowhere is a candidate for deletion too. A rule with a `keep` key (the
reason, e.g. a test relies on it) is listed apart, not as dead.

Two rules that match the same clauses are each dead alone and not together: --sequential
removes the dead rules one after another, so the printed list can be deleted all at once.

Fast: a rule can only change a clause its regex matches (a veto: its pattern's regex), so only
those clauses are classified again, and only for the rule's label.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tostrack.classify import rules as engine

ROOT = Path(__file__).resolve().parents[1]
# Every labelled set: a rule that only one of the sets written for the project needs is alive.
SETS = {
    "dev": ROOT / "tests" / "data" / "dev_clauses.jsonl",
    "heldout": ROOT / "tests" / "data" / "heldout_clauses.jsonl",
    "real": ROOT.parent / "shared" / "labels" / "real-clauses.jsonl",
    **{
        p.stem.removesuffix("_clauses"): p
        for p in sorted((ROOT / "tests" / "data").glob("*_clauses.jsonl"))
        if p.stem not in ("dev_clauses", "heldout_clauses")
    },
}


@dataclass(frozen=True)
class Case:
    set: str
    id: str
    text: str
    masked: str
    present: frozenset[str]  # the gate literals the clause holds
    heading: tuple[str, ...]
    gold: frozenset[str]


def load_cases() -> list[Case]:
    cases = []
    for name, path in SETS.items():
        if not path.exists():
            print(f"skipping {path}: absent", file=sys.stderr)
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            heading = tuple(h for h in row.get("section", "").split(" › ") if h)
            masked = engine._mask(row["text"])
            cases.append(
                Case(
                    name,
                    row["id"],
                    row["text"],
                    masked,
                    engine._literals_in(masked.casefold()),
                    heading,
                    frozenset(row.get("labels", ())),
                )
            )
    return cases


def given(rules: engine._Rules, case: Case, heading: tuple[str, ...]) -> bool:
    """Does this label's rule set give its label to the clause (as match_rules decides)?"""
    if not case.text.strip():
        return False
    if engine._first_match(rules, rules.patterns, case.masked, case.present, 0) is not None:
        return True
    trail = " › ".join(heading)
    if rules.weak and rules.heading and trail and rules.heading.search(trail):
        return engine._first_match(rules, rules.weak, case.masked, case.present, 0) is not None
    return False


def readings(case: Case) -> tuple[tuple[str, ...], ...]:
    return ((), case.heading) if case.heading else ((),)


def without(rules: engine._Rules, rule_id: str) -> engine._Rules:
    """The label's rules with one pattern, negative or veto removed."""

    def strip(patterns: tuple[engine._Pattern, ...]) -> tuple[engine._Pattern, ...]:
        out = []
        for p in patterns:
            if p.id == rule_id:
                continue
            vetoes = {
                k: None for k in engine._VETOES if getattr(p, k) and getattr(p, k).id == rule_id
            }
            out.append(dataclasses.replace(p, **vetoes) if vetoes else p)
        return tuple(out)

    return dataclasses.replace(
        rules,
        patterns=strip(rules.patterns),
        weak=strip(rules.weak),
        negative=tuple(n for n in rules.negative if n.id != rule_id),
    )


def rule_ids(rules: engine._Rules) -> list[tuple[str, Any]]:
    """(id, the regex a clause must match for the rule to matter)."""
    out: list[tuple[str, Any]] = []
    for p in (*rules.patterns, *rules.weak):
        out.append((p.id, p.regex))
        out += [(getattr(p, k).id, p.regex) for k in engine._VETOES if getattr(p, k)]
    out += [(n.id, n.regex) for n in rules.negative]
    return out


def kept() -> dict[str, str]:
    """Rule id -> the reason its file gives for keeping it although it may change nothing."""
    out = {}
    for name, data in engine._rule_files().items():
        if name == "macros":
            continue
        for kind in ("pattern", "weak", "negative"):
            for entry in data.get(kind, ()):
                for e in (entry, *(entry[k] for k in engine._VETOES if k in entry)):
                    if "keep" in e:
                        out[e["id"]] = e["keep"]
    return out


def micro_f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


class Ablation:
    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases
        self.rules = {r.label: r for r in engine._rules()}
        # predictions in the eval reading (text alone), per label: the set of case indexes
        self.pred = {
            label: {i for i, c in enumerate(cases) if given(r, c, ())}
            for label, r in self.rules.items()
        }
        self.pred_heading = {
            label: {i for i, c in enumerate(cases) if c.heading and given(r, c, c.heading)}
            for label, r in self.rules.items()
        }
        self.counts = {name: self._counts(name) for name in SETS}

    def _counts(self, name: str) -> tuple[int, int, int]:
        tp = fp = fn = 0
        for label, pred in self.pred.items():
            for i, c in enumerate(self.cases):
                if c.set != name:
                    continue
                p, g = i in pred, label in c.gold
                tp, fp, fn = tp + (p and g), fp + (p and not g), fn + (g and not p)
        return tp, fp, fn

    def effect(self, label: str, rule_id: str, regex: Any) -> dict[str, Any]:
        rules = without(self.rules[label], rule_id)
        flips: list[tuple[int, bool]] = []  # (case, now given) in the eval reading
        heading_flips = 0
        for i, c in enumerate(self.cases):
            if not regex.search(c.masked):
                continue
            now = given(rules, c, ())
            if now != (i in self.pred[label]):
                flips.append((i, now))
            if c.heading and given(rules, c, c.heading) != (i in self.pred_heading[label]):
                heading_flips += 1
        delta = {}
        for name, (tp, fp, fn) in self.counts.items():
            t, f, n = tp, fp, fn
            for i, now in flips:
                c = self.cases[i]
                if c.set != name:
                    continue
                g = label in c.gold
                sign = 1 if now else -1
                t, f = t + sign * g, f + sign * (not g)
                n = n - sign * g
            if tp + fp + fn:
                delta[name] = round(micro_f1(t, f, n) - micro_f1(tp, fp, fn), 5)
        return {
            "id": rule_id,
            "label": label,
            "changed": len(flips),
            "changed_with_heading": heading_flips,
            "delta_f1": delta,
            "cases": [self.cases[i].id for i, _ in flips][:5],
        }

    def remove(self, label: str, rule_id: str) -> None:
        self.rules[label] = without(self.rules[label], rule_id)


def run(sequential: bool) -> dict[str, Any]:
    ablation = Ablation(load_cases())
    keep = kept()
    dead, live, kept_dead = [], [], []
    for label in list(ablation.rules):
        for rule_id, regex in rule_ids(ablation.rules[label]):
            effect = ablation.effect(label, rule_id, regex)
            if effect["changed"] == 0 and effect["changed_with_heading"] == 0:
                if rule_id in keep:
                    kept_dead.append({**effect, "keep": keep[rule_id]})
                    continue
                dead.append(effect)
                if sequential:
                    ablation.remove(label, rule_id)
            else:
                live.append(effect)
    return {
        "cases": {name: sum(c.set == name for c in ablation.cases) for name in SETS},
        "micro_f1": {
            name: round(micro_f1(*ablation.counts[name]), 4)
            for name in SETS
            if sum(ablation.counts[name])
        },
        "dead": dead,
        "kept": kept_dead,
        "live": live,
    }


@click.command()
@click.option(
    "--sequential", is_flag=True, help="Check each rule with the dead ones before it removed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def main(sequential: bool, as_json: bool) -> None:
    result = run(sequential)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"clauses: {result['cases']}  micro-F1 (rules alone): {result['micro_f1']}")
    click.echo(f"\n{len(result['dead'])} dead rules (removal changes no label):")
    for e in result["dead"]:
        click.echo(f"  {e['id']}")
    for e in result["kept"]:
        click.echo(f"  (kept: {e['id']}: {e['keep']})")
    helps = [
        e
        for e in result["live"]
        if all(d >= 0 for d in e["delta_f1"].values()) and e["delta_f1"].get("real", 0) > 0
    ]
    click.echo(f"\n{len(helps)} rules whose removal raises real-clause F1 and lowers none:")
    for e in helps:
        click.echo(f"  {e['id']}  changed {e['changed']}  delta {e['delta_f1']}")
    click.echo(f"\n{len(result['live'])} live rules; removal changes labels:")
    for e in sorted(result["live"], key=lambda e: e["id"]):
        click.echo(
            f"  {e['id']}  changed {e['changed']} (+heading {e['changed_with_heading']})"
            f"  delta {e['delta_f1']}"
        )


if __name__ == "__main__":
    main()
