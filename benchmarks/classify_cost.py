"""What classification costs a replay of the corpus: per distinct clause, rules against model.

    python benchmarks/classify_cost.py                 # ../shared/corpus next to the project
    python benchmarks/classify_cost.py --only openai/

Replay classifies each distinct reading of a clause (its text, lead-in and what its headings
mean to the rules; see replay.HistoryAnalyser) once per document history. This collects those
readings for every history of the corpus, classifies each once more on its own with
`tostrack.classify.decide`, and prints how many there are, the time per reading (mean, median,
95th percentile, slowest) and how much of it the rules take (`rules.match_rules` on the same
text), the rest being the learned model. Start-up (loading rules and model) is left out.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"


def distinct_readings(corpus: Path, only: str) -> list[object]:
    """One clause for each reading replay classifies, history by history."""
    from tostrack.extract import extract_file
    from tostrack.history import dated_files
    from tostrack.replay import HistoryAnalyser, version_dirs
    from tostrack.segment import segment_document

    clauses = []
    for directory in version_dirs(corpus):
        if not directory.relative_to(corpus).as_posix().startswith(only):
            continue
        readings = HistoryAnalyser()  # only for the reading of a clause
        seen: set[object] = set()
        for _, path in dated_files(directory):
            for clause in segment_document(extract_file(path)):
                reading = readings._reading(clause)
                if reading not in seen:
                    seen.add(reading)
                    clauses.append(clause)
    return clauses


@click.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option("--only", default="", help="Only documents whose path starts with this.")
def main(corpus: Path | None, only: str) -> None:
    """Time the classifier on every distinct clause reading of CORPUS."""
    from tostrack.classify import classify_text, decide
    from tostrack.classify.rules import match_rules

    corpus = (corpus or DEFAULT_CORPUS).resolve()
    if not corpus.is_dir():
        raise click.ClickException(f"no corpus at {corpus}")
    clauses = distinct_readings(corpus, only)
    if not clauses:
        raise click.ClickException(f"no clauses under {corpus}")
    classify_text("The rules and the model are loaded on first use, which takes a second.")
    times = []
    for clause in clauses:
        started = time.process_time()
        decide(clause.text, clause.heading, clause.lead_in)
        times.append(time.process_time() - started)
    started = time.process_time()
    for clause in clauses:
        lead = len(clause.lead_in) + 1 if clause.lead_in else 0
        match_rules(clause.full_text, clause.heading, lead)
    rules = time.process_time() - started
    total = sum(times)
    ms = sorted(1000 * t for t in times)
    click.echo(f"distinct readings classified   {len(clauses)}")
    click.echo(f"classification, CPU            {total:.2f} s")
    click.echo(
        f"per reading                    mean {statistics.fmean(ms):.2f} ms, median "
        f"{statistics.median(ms):.2f} ms, 95th percentile "
        f"{ms[int(0.95 * (len(ms) - 1))]:.2f} ms, slowest {ms[-1]:.1f} ms"
    )
    click.echo(
        f"of which rules (match_rules)   {rules:.2f} s ({100 * rules / total:.0f}%), "
        f"{1000 * rules / len(clauses):.2f} ms per reading; the rest is the model"
    )


if __name__ == "__main__":
    main()
