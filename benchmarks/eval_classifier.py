"""Measure the clause classifier: accuracy on the labelled sets, throughput, corpus label counts.

    python benchmarks/eval_classifier.py                      # dev + held-out figures, throughput
    python benchmarks/eval_classifier.py --corpus             # also ../shared/corpus, if present
    python benchmarks/eval_classifier.py --corpus PATH --only openai/ --all-versions
    python benchmarks/eval_classifier.py --json               # one JSON object instead of tables

Prints, for tests/data/dev_clauses.jsonl and tests/data/heldout_clauses.jsonl: precision, recall
and F1 per label, micro and macro averages; then throughput of classify_text in clauses per
second (the rules alone, no extraction). With --corpus: for each document (its newest version,
or every version with --all-versions) the number of clauses and how many carry each label, plus
the time spent extracting, segmenting and classifying.

Targets (issue #4), on the dev set: micro-F1 >= 0.95 and precision >= 0.95 on the nine
customer-restriction labels and customer-data-training.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from tostrack.classify import RESTRICTION_LABELS, classify_clauses, classify_text, taxonomy
from tostrack.evaluate import EvalReport, evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DEFAULT_SETS = (DATA / "dev_clauses.jsonl", DATA / "heldout_clauses.jsonl")
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
PRECISION_LABELS = (*RESTRICTION_LABELS, "customer-data-training")


def targets(report: EvalReport) -> dict[str, Any]:
    low = [
        label for label in PRECISION_LABELS
        if report.score(label).support and report.score(label).precision < 0.95
    ]
    return {"micro_f1_ok": report.micro_f1 >= 0.95, "precision_below_0_95": low}


def throughput(texts: list[str], min_seconds: float = 1.0) -> dict[str, float]:
    classify_text(texts[0])  # load and compile the rules outside the timing
    done, start = 0, time.perf_counter()
    while True:
        for text in texts:
            classify_text(text)
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return {"clauses": done, "seconds": round(elapsed, 3),
                    "clauses_per_second": round(done / elapsed, 1)}


def corpus_counts(corpus: Path, only: str, all_versions: bool) -> list[dict[str, Any]]:
    from tostrack.extract import extract_text
    from tostrack.segment import segment_document

    rows = []
    for folder in sorted(p for p in corpus.glob("*/*") if p.is_dir()):
        name = str(folder.relative_to(corpus))
        if only and not name.startswith(only):
            continue
        files = sorted(folder.glob("*.md"))
        for path in files if all_versions else files[-1:]:
            start = time.perf_counter()
            document = extract_text(path.read_text(encoding="utf-8"), "markdown")
            segmented = time.perf_counter()
            clauses = segment_document(document)
            classified_start = time.perf_counter()
            labelled = classify_clauses(clauses)
            end = time.perf_counter()
            counts = Counter(label for c in labelled for label in c.labels)
            rows.append({
                "document": name, "version": path.name, "clauses": len(labelled),
                "labelled": sum(1 for c in labelled if c.labels),
                "labels": {t.id: counts[t.id] for t in taxonomy() if counts[t.id]},
                "seconds": round(end - start, 3),
                "classify_seconds": round(end - classified_start, 3),
                "extract_seconds": round(segmented - start, 3),
            })
    return rows


@click.command()
@click.argument("sets", nargs=-1, type=click.Path(path_type=Path))
@click.option("--corpus", "corpus", is_flag=False, flag_value=str(DEFAULT_CORPUS), default=None,
              help="Also label ../shared/corpus (or PATH) and print label counts per document.")
@click.option("--only", default="", help="With --corpus: documents whose path starts with this.")
@click.option("--all-versions", is_flag=True, help="With --corpus: every version, not the newest.")
@click.option("--misses", default=0, show_default=True, help="Misclassified records to list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def main(
    sets: tuple[Path, ...], corpus: str | None, only: str, all_versions: bool, misses: int,
    as_json: bool,
) -> None:
    result: dict[str, Any] = {"sets": [], "throughput": None, "corpus": None}
    texts: list[str] = []
    for path in sets or DEFAULT_SETS:
        if not path.exists():
            print(f"(skipped {path}: not found)", file=sys.stderr)
            continue
        report = evaluate(path)
        texts += [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines()
                  if line.strip()]
        entry = {**report.to_json(), "targets": targets(report)}
        if not misses:
            entry.pop("misclassified")
        result["sets"].append(entry)
        if not as_json:
            print(report.format_text(max_misses=misses))
            t = entry["targets"]
            print(f"targets: micro-F1 >= 0.95 {'met' if t['micro_f1_ok'] else 'NOT met'}; "
                  f"precision < 0.95 on: {', '.join(t['precision_below_0_95']) or 'none'}\n")
    if texts:
        result["throughput"] = throughput(texts)
        if not as_json:
            tp = result["throughput"]
            print(f"throughput: {tp['clauses_per_second']:.0f} clauses/s "
                  f"(classify_text, {tp['clauses']} clauses in {tp['seconds']} s)\n")
    if corpus is not None:
        folder = Path(corpus)
        if not folder.is_dir():
            print(f"(no corpus at {folder}; skipped)", file=sys.stderr)
        else:
            rows = corpus_counts(folder, only, all_versions)
            result["corpus"] = rows
            if not as_json:
                print_corpus(rows)
    if as_json:
        print(json.dumps(result, indent=2))


def print_corpus(rows: list[dict[str, Any]]) -> None:
    width = max((len(r["document"]) for r in rows), default=10)
    total_clauses = sum(r["clauses"] for r in rows)
    classify_time = sum(r["classify_seconds"] for r in rows)
    for r in rows:
        labels = ", ".join(f"{k} {v}" for k, v in r["labels"].items()) or "-"
        print(f"{r['document']:<{width}}  {r['version'][:20]}  {r['clauses']:4d} clauses "
              f"{r['labelled']:4d} labelled  {r['seconds']:.2f}s")
        print(f"{'':<{width}}  {labels}")
    totals = Counter()
    for r in rows:
        totals.update(r["labels"])
    print(f"\n{len(rows)} versions, {total_clauses} clauses; classify_clauses "
          f"{total_clauses / classify_time if classify_time else 0:.0f} clauses/s")
    print("label totals: " + ", ".join(
        f"{t.id} {totals[t.id]}" for t in taxonomy() if totals[t.id]))


if __name__ == "__main__":
    main()
