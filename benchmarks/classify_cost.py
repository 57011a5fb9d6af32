"""What classification costs a replay of the corpus: per distinct clause, rules against model.

    python benchmarks/classify_cost.py                 # ../shared/corpus next to the project
    python benchmarks/classify_cost.py --only openai/
    python benchmarks/classify_cost.py --dump new.txt  # then: diff old.txt new.txt

Replay classifies each distinct reading of a clause (its text, lead-in and what its headings
mean to the rules; see replay.HistoryAnalyser) once per document history. This collects those
readings for every history of the corpus, classifies each once more on its own with
`tostrack.classify.decide`, and prints how many there are, the time per reading (mean, median,
95th percentile, slowest) and how much of it the rules take (`rules.match_rules` on the same
text), the rest being the learned model. Start-up (loading rules and model) is left out.

--dump writes, reading by reading, everything the classifier says of it: decide's decisions,
explain's (rule ids, blocked matches, heaviest words), the rules' labels and evidence, and the
model's probabilities to the last bit, as decide used them and on the whole text. Two dumps of
the same corpus, one per version of the code (PYTHONPATH picks which), must be equal when a
change is meant to make classification faster, not different.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import numpy as np

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
@click.option(
    "--dump",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write what the classifier says of every reading to this file.",
)
def main(corpus: Path | None, only: str, dump: Path | None) -> None:
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
    if dump is not None:
        write_dump(clauses, dump)
        click.echo(f"dump                           {dump}")


def write_dump(clauses: list[object], path: Path) -> None:
    """What the classifier says of each clause, one block per clause, probabilities in hex."""
    from tostrack.classify import decide, explain
    from tostrack.classify.model import Model, packaged_model
    from tostrack.classify.rules import explain_rules, match_rules

    model = packaged_model()
    calls: list[str] = []
    scores, scores_many = Model.scores, Model.scores_many

    def exact(values: object) -> str:
        return " ".join(float(v).hex() for v in np.asarray(values).ravel())

    def recorded_scores(self: Model, text: str, rules: object = ()) -> np.ndarray:
        out = scores(self, text, rules)
        calls.append(f"scores {exact(out)}")
        return out

    def recorded_scores_many(self: Model, texts: object) -> np.ndarray:
        out = scores_many(self, texts)
        calls.append(f"scores_many {exact(out)}")
        return out

    Model.scores, Model.scores_many = recorded_scores, recorded_scores_many  # type: ignore[method-assign]
    try:
        with path.open("w", encoding="utf-8") as out:
            for n, clause in enumerate(clauses):
                lead = len(clause.lead_in) + 1 if clause.lead_in else 0
                calls.clear()
                decided = decide(clause.text, clause.heading, clause.lead_in)
                used = list(calls)
                explained = explain(clause.text, clause.heading, clause.lead_in)
                rules = match_rules(clause.full_text, clause.heading, lead)
                why = explain_rules(clause.full_text, clause.heading, lead)
                whole = (
                    scores(model, clause.full_text, [label for label, _ in rules]) if model else ()
                )
                print(
                    f"## {n}",
                    repr(decided),
                    repr(explained),
                    repr(rules),
                    repr(why),
                    sep="\n",
                    file=out,
                )
                print(*used, f"whole {exact(whole)}", sep="\n", file=out)
    finally:
        Model.scores, Model.scores_many = scores, scores_many  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
