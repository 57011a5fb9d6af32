"""Train the learned classifier (tostrack/classify/model.py) on labelled clauses.

    python -m tostrack.classify.train                 # writes tostrack/classify/data/model.npz
    python -m tostrack.classify.train --cv            # document-grouped cross-validation only
    python -m tostrack.classify.train --rules-only    # only data/rules.compiled (see rules.py)

Needs scikit-learn (`pip install 'tostrack[train]'`); tostrack itself never imports this
module. The training sets are JSON Lines with "text", "labels" and optionally "section" and
"doc" (tests/data/*.jsonl, written for this project, and ../shared/labels/real-clauses.jsonl,
real clauses labelled by our conventions). What is written holds weights per hash bucket only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tostrack.classify import RESIDUAL, decide, heading_parts
from tostrack.classify.model import (
    BUCKETS,
    MODEL_FILE,
    Model,
    features,
    rules_digest,
    vectorise,
)
from tostrack.classify.rules import match_rules
from tostrack.classify.taxonomy import taxonomy

ROOT = Path(__file__).resolve().parents[2]
# Every labelled set of the project except the held-out one, which stays unseen so that its
# figure still means something (tests/data/README.md).
OWN_SETS = tuple(
    p
    for p in sorted((ROOT / "tests" / "data").glob("*_clauses.jsonl"))
    if p.name != "heldout_clauses.jsonl"
)
REAL_SET = ROOT.parent / "shared" / "labels" / "real-clauses.jsonl"
C = 16.0  # inverse regularisation, chosen by grouped cross-validation
# Chosen by grouped cross-validation (benchmarks/eval_classifier.py --cv): Latin, CJK text.
THRESHOLDS = (0.5, 0.25)
# On Latin text, a lower bar for the labels a legal team most needs to see: those of high
# severity and the restrictions on customers other than the residual acceptable-use (missing
# one costs more than a false alarm). Cross-validation: micro-F1 +0.001, high-severity recall
# 0.921 -> 0.934, AI restrictions F1 0.927 -> 0.933.
PRIORITY_THRESHOLD = 0.4


def thresholds(labels: Sequence[str]) -> np.ndarray:
    """2 x len(labels): the probability each label needs, row 0 Latin text, row 1 CJK text."""
    by_id = {label.id: label for label in taxonomy()}
    out = np.array([[t] * len(labels) for t in THRESHOLDS])
    for j, label_id in enumerate(labels):
        label = by_id[label_id]
        restriction = label.group == "customer-restriction" and label_id != RESIDUAL
        if label.severity == "high" or restriction:
            out[0, j] = min(out[0, j], PRIORITY_THRESHOLD)
    return out


@dataclass(frozen=True)
class Example:
    text: str
    section: str
    labels: frozenset[str]
    doc: str  # the document it comes from: the unit of grouped cross-validation
    unsure: bool = False

    def feats(self) -> list[str]:
        return features(self.text, rule_labels(self.text, self.section))


def rule_labels(text: str, section: str = "") -> tuple[str, ...]:
    """The rules' labels, read as classify.decide reads them (the section as heading trail)."""
    return tuple(label for label, _ in match_rules(text, heading_parts(section)))


def read_examples(path: Path) -> list[Example]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        out.append(
            Example(
                r["text"],
                r.get("section", ""),
                frozenset(r["labels"]),
                r.get("doc") or f"own:{path.stem}",
                bool(r.get("unsure")),
            )
        )
    return out


def _matrix(examples: Sequence[Example]) -> object:
    from scipy.sparse import csr_matrix

    rows, cols, vals = [], [], []
    for i, ex in enumerate(examples):
        idx, val = vectorise(ex.feats())
        rows += [i] * len(idx)
        cols += idx.tolist()
        vals += val.tolist()
    return csr_matrix((vals, (rows, cols)), shape=(len(examples), BUCKETS), dtype=np.float64)


def fit(examples: Sequence[Example], c: float = C, matrix: object = None) -> Model:
    from sklearn.linear_model import LogisticRegression

    labels = tuple(label.id for label in taxonomy())
    x = _matrix(examples) if matrix is None else matrix
    weights = np.zeros((BUCKETS, len(labels)), dtype=np.float32)
    bias = np.full(len(labels), -10.0)
    for j, label in enumerate(labels):
        y = np.array([label in ex.labels for ex in examples])
        if y.sum() < 2:
            continue  # too rare to learn: rules only
        clf = LogisticRegression(
            C=c,
            solver="liblinear",
            dual=True,
            class_weight="balanced",
            max_iter=500,
            random_state=0,
        )
        clf.fit(x, y)
        weights[:, j] = clf.coef_[0]
        bias[j] = clf.intercept_[0]
    return Model(labels, weights, bias, thresholds(labels), rules_digest())


def grouped_cv(
    own: Sequence[Example],
    real: Sequence[Example],
    c: float = C,
    log: Callable[[str], None] = lambda _: None,
) -> list[tuple[Example, set[str]]]:
    """Train on the project's sets and every real document but one, then label that one as
    tostrack would (rules and model, classify.decide): (example, labels) for every real one."""
    everything = [*own, *real]
    x = _matrix(everything)
    docs = sorted({ex.doc for ex in real})
    out = []
    for doc in docs:
        keep = np.array([ex.doc != doc for ex in everything])
        model = fit([ex for ex, k in zip(everything, keep, strict=True) if k], c, x[keep])
        test = [ex for ex in real if ex.doc == doc]
        for ex in test:
            out.append((ex, {d.label for d in decide(ex.text, ex.section, model=model)}))
        log(f"  {doc}: {len(test)} clauses")
    return out


def score(pairs: Sequence[tuple[Example, set[str]]], exclude_unsure: bool = True) -> dict:
    labels = [label.id for label in taxonomy()]
    counts = {label: [0, 0, 0] for label in labels}
    for ex, predicted in pairs:
        if exclude_unsure and ex.unsure:
            continue
        for label in labels:
            gold, got = label in ex.labels, label in predicted
            if gold and got:
                counts[label][0] += 1
            elif got:
                counts[label][1] += 1
            elif gold:
                counts[label][2] += 1
    tp, fp, fn = (sum(v[i] for v in counts.values()) for i in range(3))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "micro_f1": 2 * p * r / (p + r) if p + r else 0.0,
        "precision": p,
        "recall": r,
        "labels": counts,
    }


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tostrack.classify.train",
        description="Train the learned classifier and write tostrack/classify/data/model.npz.",
    )
    parser.add_argument(
        "--cv",
        action="store_true",
        help="only print document-grouped cross-validation; write nothing",
    )
    parser.add_argument(
        "--rules-only",
        action="store_true",
        help="only write data/rules.compiled, what the rules compile to on this Python",
    )
    args = parser.parse_args(argv)
    if args.rules_only:
        _write_compiled_rules()
        return 0
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("training needs scikit-learn: pip install 'tostrack[train]'", file=sys.stderr)
        return 2
    own = [ex for path in OWN_SETS for ex in read_examples(path)]
    real = read_examples(REAL_SET) if REAL_SET.is_file() else []
    if args.cv:
        if not real:
            print(f"no real clauses at {REAL_SET}", file=sys.stderr)
            return 2
        result = score(grouped_cv(own, real, log=print))
        print(json.dumps({k: v for k, v in result.items() if k != "labels"}, indent=1))
        return 0
    model = fit([*own, *real])
    target = Path(__file__).parent / "data" / MODEL_FILE
    tmp = target.with_suffix(".tmp.npz")
    # Stored, not deflated: float16 weights barely compress (4.0 MB against 4.8 MB), and
    # inflating them was a tenth of every start-up (30 ms).
    np.savez(tmp, **model.to_arrays())
    tmp.replace(target)
    print(
        f"wrote {target} ({target.stat().st_size // 1024} KiB) from "
        f"{len(own)} own and {len(real)} real clauses"
    )
    _write_compiled_rules()
    return 0


def _write_compiled_rules() -> None:
    from tostrack.classify.rules import COMPILED_FILE, write_compiled

    target = Path(__file__).parent / "data" / COMPILED_FILE
    count = write_compiled(target)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB): {count} regexes")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
