"""Measure the classifier on labelled clauses: `tostrack eval FILE`.

FILE is JSON Lines, one clause per line: {"id": "...", "text": "...", "labels": ["..."]}.
A legal team can label its own clauses and see how far to trust the labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tostrack.classify import classify_text, taxonomy
from tostrack.errors import InputError


@dataclass(frozen=True)
class LabelScore:
    label: str
    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True)
class Miss:
    """A record whose predicted labels differ from its gold labels."""

    id: str
    text: str
    expected: tuple[str, ...]
    predicted: tuple[str, ...]
    evidence: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "expected": list(self.expected),
            "predicted": list(self.predicted),
            "missing": [x for x in self.expected if x not in self.predicted],
            "extra": [x for x in self.predicted if x not in self.expected],
            "evidence": dict(self.evidence),
        }


def _ratio(a: int, b: int) -> float:
    # No predictions and nothing to find is perfect, not undefined.
    return a / b if b else 1.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class EvalReport:
    source: str
    n: int
    labels: tuple[LabelScore, ...]  # every label seen in gold or predictions, taxonomy order
    misclassified: tuple[Miss, ...]

    def _totals(self) -> tuple[int, int, int]:
        return (
            sum(s.tp for s in self.labels),
            sum(s.fp for s in self.labels),
            sum(s.fn for s in self.labels),
        )

    @property
    def micro_precision(self) -> float:
        tp, fp, _ = self._totals()
        return _ratio(tp, tp + fp)

    @property
    def micro_recall(self) -> float:
        tp, _, fn = self._totals()
        return _ratio(tp, tp + fn)

    @property
    def micro_f1(self) -> float:
        return _f1(self.micro_precision, self.micro_recall)

    def _supported(self) -> list[LabelScore]:
        return [s for s in self.labels if s.support]

    @property
    def macro_precision(self) -> float:
        scores = self._supported()
        return sum(s.precision for s in scores) / len(scores) if scores else 1.0

    @property
    def macro_recall(self) -> float:
        scores = self._supported()
        return sum(s.recall for s in scores) / len(scores) if scores else 1.0

    @property
    def macro_f1(self) -> float:
        scores = self._supported()
        return sum(s.f1 for s in scores) / len(scores) if scores else 1.0

    def score(self, label: str) -> LabelScore:
        for s in self.labels:
            if s.label == label:
                return s
        return LabelScore(label, 0, 0, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n": self.n,
            "micro": {
                "precision": round(self.micro_precision, 4),
                "recall": round(self.micro_recall, 4),
                "f1": round(self.micro_f1, 4),
            },
            "macro": {
                "precision": round(self.macro_precision, 4),
                "recall": round(self.macro_recall, 4),
                "f1": round(self.macro_f1, 4),
            },
            "labels": [s.to_json() for s in self.labels],
            "misclassified": [m.to_json() for m in self.misclassified],
        }

    def format_text(self, max_misses: int = 20) -> str:
        width = max([len(s.label) for s in self.labels] + [len("label")])
        head = (
            f"{'label':<{width}}  {'prec':>6} {'recall':>6} {'f1':>6}  "
            f"{'tp':>4} {'fp':>4} {'fn':>4} {'support':>7}"
        )
        lines = [f"{self.source}: {self.n} clauses", "", head, "-" * len(head)]
        for s in self.labels:
            lines.append(
                f"{s.label:<{width}}  {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}  "
                f"{s.tp:4d} {s.fp:4d} {s.fn:4d} {s.support:7d}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'micro':<{width}}  {self.micro_precision:6.3f} {self.micro_recall:6.3f} "
            f"{self.micro_f1:6.3f}"
        )
        lines.append(
            f"{'macro':<{width}}  {self.macro_precision:6.3f} {self.macro_recall:6.3f} "
            f"{self.macro_f1:6.3f}"
        )
        if self.misclassified:
            lines += ["", f"{len(self.misclassified)} misclassified:"]
            for miss in self.misclassified[:max_misses]:
                missing = [x for x in miss.expected if x not in miss.predicted]
                extra = [x for x in miss.predicted if x not in miss.expected]
                text = miss.text if len(miss.text) <= 100 else miss.text[:97] + "..."
                lines.append(f"  {miss.id}: missing {missing or '-'} extra {extra or '-'}")
                lines.append(f"    {text}")
            if len(self.misclassified) > max_misses:
                lines.append(
                    f"  ... and {len(self.misclassified) - max_misses} more (--format json)"
                )
        return "\n".join(lines) + "\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The labelled records of a JSONL file, checked; InputError says which line is wrong."""
    known = {label.id for label in taxonomy()}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as UTF-8 JSON Lines") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {number} is not JSON: {exc.msg}") from None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("text"), str)
            or not isinstance(record.get("labels"), list)
        ):
            raise InputError(
                f'{path} line {number}: each line needs an object with "text" (a string) and '
                f'"labels" (a list of label ids)'
            )
        unknown = [x for x in record["labels"] if x not in known]
        if unknown:
            raise InputError(
                f"{path} line {number}: unknown label(s) {unknown}; known labels: "
                + ", ".join(sorted(known))
            )
        records.append(record)
    if not records:
        raise InputError(f"{path} has no labelled clauses")
    return records


def evaluate(path: Path, exclude_unsure: bool = False) -> EvalReport:
    """Run classify_text on every record of a labelled JSONL file and score it per label.

    A record's "section" is passed as its heading trail; with `exclude_unsure`, records marked
    "unsure": true (where careful readers could disagree) are left out.
    """
    records = read_records(Path(path))
    if exclude_unsure:
        records = [r for r in records if not r.get("unsure")]
    order = [label.id for label in taxonomy()]
    counts = {label: [0, 0, 0] for label in order}
    misses = []
    for number, record in enumerate(records, 1):
        gold = set(record["labels"])
        found = classify_text(record["text"], str(record.get("section") or ""))
        predicted = {label for label, _ in found}
        for label in gold & predicted:
            counts[label][0] += 1
        for label in predicted - gold:
            counts[label][1] += 1
        for label in gold - predicted:
            counts[label][2] += 1
        if gold != predicted:
            misses.append(
                Miss(
                    id=str(record.get("id", number)),
                    text=record["text"],
                    expected=tuple(x for x in order if x in gold),
                    predicted=tuple(x for x in order if x in predicted),
                    evidence=found,
                )
            )
    scores = tuple(LabelScore(label, *counts[label]) for label in order if any(counts[label]))
    source = f"{path} (unsure excluded)" if exclude_unsure else str(path)
    return EvalReport(source, len(records), scores, tuple(misses))
